//! The CPU emulation of a GPU: memory is host memory, and a launch runs the
//! kernel as compiled for the CPU by the build script (kernels/emulate.cpp).
//!
//! A GPU does not clear what it allocates, and the engine clears nothing
//! either: every kernel must write what it later reads. So the emulation
//! fills new allocations (and each block's shared memory, in emulate.cpp)
//! with [`POISON`]: a NaN as f32 and as f64, and as an index a number far
//! past any buffer. A read of unwritten memory then turns a result into NaN
//! or faults, and fails the tests, where zeros would have passed them.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::Mutex;

use super::{Backend, DevicePtr, GpuError};

extern "C" {
    fn aniso_emu_launch(
        name: *const std::ffi::c_char,
        grid: u32,
        block: u32,
        shared: usize,
        params: *const u8,
        params_size: usize,
    ) -> i32;
}

#[cfg(test)]
extern "C" {
    fn aniso_emu_layout(name: *const std::ffi::c_char, out: *mut usize, capacity: usize) -> usize;
}

/// What new device memory holds: 0x7FF87FF8 in every 32-bit word, a quiet
/// NaN as f32 (and, two words together, as f64) and 2,146,992,120 as an
/// index. The same word as `ANISO_POISON` in emulate.cpp.
pub const POISON: u32 = 0x7FF8_7FF8;

/// Host memory standing in for a device's, allocations 16-byte aligned.
#[derive(Default)]
pub struct Emulated {
    memory: Mutex<BTreeMap<DevicePtr, Vec<u128>>>,
}

impl Emulated {
    fn error(&self, message: String) -> GpuError {
        GpuError::Transfer { device: self.name().to_owned(), message }
    }

    /// Runs `f` on address `ptr`, inside an allocation that holds `bytes`
    /// bytes from there on (an address may point into an allocation, as a
    /// section of a packed buffer does).
    fn with<R>(&self, ptr: DevicePtr, bytes: usize, f: impl FnOnce(*mut u8) -> R) -> Result<R, GpuError> {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let Some((&base, block)) = memory.range_mut(..=ptr).next_back() else {
            return Err(self.error(format!("no buffer at {ptr:#x}")));
        };
        let (offset, size) = ((ptr - base) as usize, block.len() * 16);
        if offset >= size.max(1) {
            return Err(self.error(format!("no buffer at {ptr:#x}")));
        }
        if offset + bytes > size {
            return Err(self.error(format!("{bytes} bytes at offset {offset} of a buffer of {size}")));
        }
        // SAFETY: `offset` lies inside the allocation (checked above).
        Ok(f(unsafe { block.as_mut_ptr().cast::<u8>().add(offset) }))
    }
}

impl Backend for Emulated {
    fn name(&self) -> &str {
        "gpu-emulated"
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr, GpuError> {
        let mut block = Vec::new();
        block
            .try_reserve_exact(bytes.div_ceil(16))
            .map_err(|_| GpuError::OutOfMemory { device: self.name().to_owned(), bytes })?;
        let word = u128::from(POISON);
        block.resize(bytes.div_ceil(16), word | word << 32 | word << 64 | word << 96);
        let ptr = block.as_ptr() as DevicePtr;
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).insert(ptr, block);
        Ok(ptr)
    }

    fn free(&self, ptr: DevicePtr) {
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).remove(&ptr);
    }

    fn upload(&self, dst: DevicePtr, bytes: &[u8]) -> Result<(), GpuError> {
        // SAFETY: `with` checked that the allocation holds `bytes.len()` bytes.
        self.with(dst, bytes.len(), |p| unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len())
        })
    }

    fn download(&self, src: DevicePtr, bytes: &mut [u8]) -> Result<(), GpuError> {
        let len = bytes.len();
        // SAFETY: as in `upload`.
        self.with(src, len, |p| unsafe { std::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), len) })
    }

    fn launch(
        &self,
        kernel: &str,
        grid: u32,
        block: u32,
        shared: u32,
        params: &[u8],
    ) -> Result<(), GpuError> {
        let fail = |message: String| GpuError::Launch {
            device: self.name().to_owned(),
            kernel: kernel.to_owned(),
            message,
        };
        let name = CString::new(kernel).map_err(|_| fail("a kernel name has no NUL".to_owned()))?;
        // The addresses in `params` are allocations of this backend, alive
        // while the caller holds their buffers; the kernel reads and writes
        // only inside them (the tests run it under AddressSanitizer).
        // SAFETY: `name` and `params` are valid for the call.
        let code = unsafe {
            aniso_emu_launch(name.as_ptr(), grid, block, shared as usize, params.as_ptr(), params.len())
        };
        match code {
            0 => Ok(()),
            1 => Err(fail("no such kernel in the emulation".to_owned())),
            2 => Err(fail(format!("a parameter struct of {} bytes has the wrong size", params.len()))),
            _ => Err(fail(format!("cannot launch {grid} blocks of {block} threads with {shared} B shared"))),
        }
    }
}

/// The layout of parameter struct `name` as the C++ compiler laid it out:
/// its size, then each field's offset in order.
#[cfg(test)]
pub fn c_layout(name: &str) -> Vec<usize> {
    let name = CString::new(name).expect("no NUL in a struct name");
    let mut out = vec![0usize; 64];
    // SAFETY: `out` holds 64 values and the call writes at most that many.
    let n = unsafe { aniso_emu_layout(name.as_ptr(), out.as_mut_ptr(), out.len()) };
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::super::layers::Graphs;
    use super::super::Gpu;
    use super::*;

    /// New memory reads as NaN in either precision and as an index past
    /// any buffer, so a kernel reading what nobody wrote fails its test.
    #[test]
    fn unwritten_memory_reads_as_nan_and_as_an_impossible_index() {
        let gpu = Gpu::emulated();
        assert!(gpu.download(&gpu.alloc::<f32>(5).unwrap()).unwrap().iter().all(|v| v.is_nan()));
        assert!(gpu.download(&gpu.alloc::<f64>(3).unwrap()).unwrap().iter().all(|v| v.is_nan()));
        assert!(gpu.download(&gpu.alloc::<i32>(2).unwrap()).unwrap().iter().all(|&i| i == POISON as i32));
        assert!(POISON as i32 > 1 << 30, "an index far past any buffer");
    }

    /// A kernel fed an input nobody wrote: its output is NaN, where zeroed
    /// memory would have given a plausible 0.
    #[test]
    fn a_kernel_reading_unwritten_memory_gives_nan() {
        let gpu = Gpu::emulated();
        let (ptr, nodes, node_graph) = (
            gpu.upload(&[0i32, 2]).unwrap(),
            gpu.upload(&[0i32, 1]).unwrap(),
            gpu.upload(&[0i32, 0]).unwrap(),
        );
        let graphs = Graphs { ptr: ptr.slice(), nodes: nodes.slice(), node_graph: node_graph.slice() };
        let (x, raw) = (gpu.alloc::<f32>(12).unwrap(), gpu.alloc::<f64>(6).unwrap());
        graphs.pool(&gpu, x.slice(), raw.slice()).unwrap();
        assert!(gpu.download(&raw).unwrap().iter().all(|v| v.is_nan()));
        gpu.write(&x, &[1.0; 12]).unwrap();
        graphs.pool(&gpu, x.slice(), raw.slice()).unwrap();
        assert_eq!(gpu.download(&raw).unwrap(), [1.0; 6]);
    }
}
