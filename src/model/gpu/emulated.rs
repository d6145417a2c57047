//! The CPU emulation of a GPU: memory is host memory, and a launch runs the
//! kernel as compiled for the CPU by the build script (kernels/emulate.cpp).

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
        block.resize(bytes.div_ceil(16), 0u128);
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
