//! The GPU engine's kernels and the launch code they share with their CPU
//! emulation.
//!
//! Why its own kernels: the dfdx network ([`super::tensor_net`]) issues
//! thousands of small launches and host copies per training step, so on a
//! GPU it is bound by the driver, not the arithmetic. These kernels follow
//! the fused CPU network instead ([`super::kernels`]): one launch per fused
//! stage, each output owned by one thread (no atomics, so a GPU run is as
//! reproducible as a CPU run).
//!
//! One source, two targets: `kernels/anisonet.cu` is compiled for the GPU
//! and, by the build script, for the CPU (`kernels/shim.h`,
//! `kernels/emulate.cpp`). Everything above the [`Backend`] seam — the
//! tables, the buffer layouts, the parameter structs, the launch shapes — is
//! the same code for both, so the tests that run the emulation here check
//! what a GPU runs. [`Gpu`] counts every launch and transfer, the figures a
//! GPU engine is judged by.

pub mod conv;
mod emulated;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use emulated::Emulated;

/// An address in a backend's memory.
pub type DevicePtr = u64;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GpuError {
    #[error("out of device memory: {bytes} bytes asked on {device}")]
    OutOfMemory { device: String, bytes: usize },
    #[error("kernel `{kernel}` on {device}: {message}")]
    Launch { device: String, kernel: String, message: String },
    #[error("{device}: {message}")]
    Transfer { device: String, message: String },
}

/// What runs the kernels: a GPU through its driver, or the CPU emulation.
pub trait Backend: Send + Sync {
    /// e.g. `gpu-emulated` or `cuda:0`.
    fn name(&self) -> &str;
    fn alloc(&self, bytes: usize) -> Result<DevicePtr, GpuError>;
    /// Frees an allocation made by [`Backend::alloc`].
    fn free(&self, ptr: DevicePtr);
    fn upload(&self, dst: DevicePtr, bytes: &[u8]) -> Result<(), GpuError>;
    fn download(&self, src: DevicePtr, bytes: &mut [u8]) -> Result<(), GpuError>;
    /// Runs `kernel` on `grid` blocks of `block` threads with `shared` bytes
    /// of dynamic shared memory; `params` is the kernel's parameter struct.
    fn launch(&self, kernel: &str, grid: u32, block: u32, shared: u32, params: &[u8])
        -> Result<(), GpuError>;
}

/// Types whose bytes cross to a device as they are.
///
/// # Safety
/// `Self` is `Copy`, has no padding and no invalid bit patterns.
pub unsafe trait Plain: Copy + Send + Sync + 'static {}
// SAFETY: primitive numbers.
unsafe impl Plain for f32 {}
// SAFETY: as above.
unsafe impl Plain for f64 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}

fn bytes<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: `Plain` types are plain bytes without padding.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

fn bytes_mut<T: Plain>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes`; every bit pattern is a valid `T`.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), std::mem::size_of_val(values)) }
}

/// A kernel's parameter struct (`#[repr(C)]`, laid out as in anisonet.cu).
///
/// # Safety
/// `Self` is `#[repr(C)]` with the layout of the C struct named [`Self::NAME`].
pub unsafe trait KernelParams: Copy {
    const NAME: &'static str;
}

/// The precisions the kernels are built for, and each one's kernel-name suffix.
pub trait GpuReal: super::Real + Plain {
    const SUFFIX: &'static str;
}
impl GpuReal for f32 {
    const SUFFIX: &'static str = "f32";
}
impl GpuReal for f64 {
    const SUFFIX: &'static str = "f64";
}

/// Launches and host↔device transfers so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub launches: u64,
    pub uploads: u64,
    pub downloads: u64,
}

/// A backend with the launch and transfer counts of everything run on it.
pub struct Gpu {
    backend: Arc<dyn Backend>,
    launches: AtomicU64,
    uploads: AtomicU64,
    downloads: AtomicU64,
}

impl Gpu {
    pub fn new(backend: Arc<dyn Backend>) -> Gpu {
        Gpu { backend, launches: AtomicU64::new(0), uploads: AtomicU64::new(0), downloads: AtomicU64::new(0) }
    }

    /// The CPU emulation of the GPU.
    pub fn emulated() -> Gpu {
        Gpu::new(Arc::new(Emulated::default()))
    }

    pub fn name(&self) -> &str {
        self.backend.name()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            launches: self.launches.load(Ordering::Relaxed),
            uploads: self.uploads.load(Ordering::Relaxed),
            downloads: self.downloads.load(Ordering::Relaxed),
        }
    }

    /// A buffer holding a copy of `values`.
    pub fn upload<T: Plain>(&self, values: &[T]) -> Result<Buffer<T>, GpuError> {
        let buffer = self.alloc::<T>(values.len())?;
        self.write(&buffer, values)?;
        Ok(buffer)
    }

    /// Overwrites the start of `buffer` with `values`.
    pub fn write<T: Plain>(&self, buffer: &Buffer<T>, values: &[T]) -> Result<(), GpuError> {
        assert!(values.len() <= buffer.len, "{} values into a buffer of {}", values.len(), buffer.len);
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.backend.upload(buffer.ptr, bytes(values))
    }

    /// An uninitialised buffer of `len` values (at least one byte is allocated).
    pub fn alloc<T: Plain>(&self, len: usize) -> Result<Buffer<T>, GpuError> {
        let ptr = self.backend.alloc((len * std::mem::size_of::<T>()).max(1))?;
        Ok(Buffer { ptr, len, backend: self.backend.clone(), _values: PhantomData })
    }

    pub fn download<T: Plain + Default>(&self, buffer: &Buffer<T>) -> Result<Vec<T>, GpuError> {
        let mut values = vec![T::default(); buffer.len];
        self.downloads.fetch_add(1, Ordering::Relaxed);
        self.backend.download(buffer.ptr, bytes_mut(&mut values))?;
        Ok(values)
    }

    /// Launches `kernel` with its parameter struct.
    pub fn launch<P: KernelParams>(
        &self,
        kernel: &str,
        grid: u32,
        block: u32,
        shared: u32,
        params: &P,
    ) -> Result<(), GpuError> {
        if grid == 0 {
            return Ok(());
        }
        self.launches.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `KernelParams` structs are `repr(C)` plain data (the trait's contract).
        let raw = unsafe {
            std::slice::from_raw_parts((params as *const P).cast::<u8>(), std::mem::size_of::<P>())
        };
        self.backend.launch(kernel, grid, block, shared, raw)
    }
}

/// `len` values of type `T` in a backend's memory, freed on drop.
pub struct Buffer<T> {
    ptr: DevicePtr,
    len: usize,
    backend: Arc<dyn Backend>,
    _values: PhantomData<T>,
}

impl<T> Buffer<T> {
    pub fn ptr(&self) -> DevicePtr {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        self.backend.free(self.ptr);
    }
}
