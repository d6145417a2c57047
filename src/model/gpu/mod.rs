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
//! what a GPU runs: [`cuda::Cuda`] is a GPU through its driver, [`Emulated`]
//! the CPU. [`Gpu`] counts every launch and transfer, the figures a GPU
//! engine is judged by; [`GpuEngine`] is the whole network on one.
//!
//! Launch shapes are chosen for the GPU (an H200: 132 SMs), not for the
//! emulation, and no result depends on them (the tests sweep them). At the
//! published configuration in f32, on a batch of 12 structures of the MP
//! data's sizes (≈ 216 atoms, ≈ 7,300 edges), a training step is ≈ 15
//! GFLOP, and the kernels are expected to reach:
//!
//! | kernels | grid × block, shared | work a step | expected |
//! |---|---|---|---|
//! | radial MLP (`mlp_*`) | 32 × 32 tiles × 128 threads, 4 KB; the weight gradient also per chunk of 2,048 edges | ≈ 5.6 GMAC | 20–40 % of FP32 peak: register-tiled FMA, no tensor cores |
//! | edge tensor products (`tp_conv_*`) | a node a block × 256 threads, ≤ 48 KB of A_e tiles | ≈ 1 GMAC | bound by shared memory; ≈ 1.6 blocks an SM at 216 nodes |
//! | per-species products (`fctp_*`) | a thread an output, 128 a block; the attributes' gradient a thread per part of 32 rows (≤ 51 parts) | ≈ 0.9 GMAC | bound by L2 |
//! | gates, pooling, embedding | a thread an output | small | bound by memory |
//! | optimiser (`grad_*`, `adamw_step`) | 8,192 norm parts; a thread a parameter | 7 passes over 41.5 MB | bound by memory: ≈ 0.1 ms |
//!
//! So a step is a few milliseconds of GPU time, against ≈ 0.5 ms of the
//! host's own work ([`engine`]). Not yet measured on a GPU.
//!
//! The step's 90 launches are not captured as a CUDA graph. Issuing them
//! costs ≈ 2–4 µs each, ≈ 0.3 ms a step, which the GPU overlaps with the
//! kernels already queued. A graph would also have to be cut in two where
//! the host applies the head and the loss, and re-parametrised for every
//! batch, whose grids and workspace offsets change with its atoms and
//! edges. At most a few per cent, then, and only a GPU can tell: `study
//! doctor` on one prints the host's time outside the device's calls, which
//! bounds what a graph could save.

pub mod conv;
pub mod cuda;
mod emulated;
pub mod engine;
pub mod fctp;
pub mod layers;
pub mod optim;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use emulated::Emulated;
pub use engine::GpuEngine;

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
    /// The device cannot be opened here (no driver, no such GPU, no compiler for its kernels).
    #[error("{device} is not available: {message}")]
    Unavailable { device: String, message: String },
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
// SAFETY: as above.
unsafe impl Plain for u8 {}

fn bytes<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: `Plain` types are plain bytes without padding.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

fn bytes_mut<T: Plain>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes`; every bit pattern is a valid `T`.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), std::mem::size_of_val(values)) }
}

/// Threads per block of the grid-stride kernels (each thread strides past the grid).
pub(super) const BLOCK: u32 = 128;

/// Blocks for `total` thread-owned elements (the kernels stride past the grid).
pub(super) fn grid(total: usize) -> u32 {
    total.div_ceil(BLOCK as usize).min(1 << 16) as u32
}

/// The name of kernel `name` built for precision `E`, e.g. `fctp_forward_f32`.
pub(super) fn kernel<E: GpuReal>(name: &str) -> String {
    format!("{name}_{}", E::SUFFIX)
}

/// Indices as the kernels read them.
pub(super) fn ints(values: impl IntoIterator<Item = usize>) -> Vec<i32> {
    values.into_iter().map(|v| i32::try_from(v).expect("index fits in i32")).collect()
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

/// Launches and host↔device transfers so far, and the bytes those moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub launches: u64,
    pub uploads: u64,
    pub downloads: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Device allocations made.
    pub allocs: u64,
    /// Nanoseconds the host spent in the backend's calls (launching,
    /// copying, and waiting for the device); the rest of a step's time is
    /// the host's own work.
    pub device_ns: u64,
}

impl Counts {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            launches: self.launches - before.launches,
            uploads: self.uploads - before.uploads,
            downloads: self.downloads - before.downloads,
            bytes_up: self.bytes_up - before.bytes_up,
            bytes_down: self.bytes_down - before.bytes_down,
            allocs: self.allocs - before.allocs,
            device_ns: self.device_ns - before.device_ns,
        }
    }

    pub fn transfers(&self) -> u64 {
        self.uploads + self.downloads
    }
}

/// A backend with the launch and transfer counts of everything run on it.
pub struct Gpu {
    backend: Arc<dyn Backend>,
    launches: AtomicU64,
    uploads: AtomicU64,
    downloads: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    allocs: AtomicU64,
    device_ns: AtomicU64,
}

impl Gpu {
    pub fn new(backend: Arc<dyn Backend>) -> Gpu {
        Gpu {
            backend,
            launches: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            allocs: AtomicU64::new(0),
            device_ns: AtomicU64::new(0),
        }
    }

    /// The CPU emulation of the GPU.
    pub fn emulated() -> Gpu {
        Gpu::new(Arc::new(Emulated::default()))
    }

    /// GPU `ordinal` through its driver.
    pub fn cuda(ordinal: usize) -> Result<Gpu, GpuError> {
        Ok(Gpu::new(Arc::new(cuda::Cuda::open(ordinal)?)))
    }

    pub fn name(&self) -> &str {
        self.backend.name()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            launches: self.launches.load(Ordering::Relaxed),
            uploads: self.uploads.load(Ordering::Relaxed),
            downloads: self.downloads.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            allocs: self.allocs.load(Ordering::Relaxed),
            device_ns: self.device_ns.load(Ordering::Relaxed),
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
        self.send(buffer.ptr, bytes(values))
    }

    /// Overwrites `slice` with `values` (one transfer).
    pub fn write_slice<T: Plain>(&self, slice: Slice<T>, values: &[T]) -> Result<(), GpuError> {
        assert!(values.len() <= slice.len, "{} values into a slice of {}", values.len(), slice.len);
        self.send(slice.ptr, bytes(values))
    }

    /// One counted host-to-device transfer.
    fn send(&self, dst: DevicePtr, bytes: &[u8]) -> Result<(), GpuError> {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.timed(|| self.backend.upload(dst, bytes))
    }

    /// `call` into the backend, its time counted as the device's.
    fn timed<R>(&self, call: impl FnOnce() -> R) -> R {
        let start = std::time::Instant::now();
        let result = call();
        self.device_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }

    /// An uninitialised buffer of `len` values (at least one byte is allocated).
    pub fn alloc<T: Plain>(&self, len: usize) -> Result<Buffer<T>, GpuError> {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        let ptr = self.timed(|| self.backend.alloc((len * std::mem::size_of::<T>()).max(1)))?;
        Ok(Buffer { ptr, len, backend: self.backend.clone(), _values: PhantomData })
    }

    pub fn download<T: Plain + Default>(&self, buffer: &Buffer<T>) -> Result<Vec<T>, GpuError> {
        self.download_slice(buffer.slice())
    }

    /// The values of a buffer or of a section of one (one transfer).
    pub fn download_slice<T: Plain + Default>(&self, slice: Slice<T>) -> Result<Vec<T>, GpuError> {
        let mut values = vec![T::default(); slice.len];
        self.downloads.fetch_add(1, Ordering::Relaxed);
        self.bytes_down.fetch_add(std::mem::size_of_val(values.as_slice()) as u64, Ordering::Relaxed);
        self.timed(|| self.backend.download(slice.ptr, bytes_mut(&mut values)))?;
        Ok(values)
    }

    /// One allocation holding every section of `packing`, filled by one upload.
    pub fn upload_packed(&self, packing: &Packing) -> Result<Buffer<u8>, GpuError> {
        self.upload(&packing.bytes)
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
        self.timed(|| self.backend.launch(kernel, grid, block, shared, raw))
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
    /// The whole buffer as a [`Slice`].
    pub fn slice(&self) -> Slice<T> {
        Slice { ptr: self.ptr, len: self.len, _values: PhantomData }
    }
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

impl<T> From<&Buffer<T>> for Slice<T> {
    fn from(buffer: &Buffer<T>) -> Slice<T> {
        buffer.slice()
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        self.backend.free(self.ptr);
    }
}

/// `len` values of type `T` at a device address: a whole [`Buffer`] or a
/// section of one. It borrows nothing; whoever launches with it keeps the
/// buffer alive.
#[derive(Debug)]
pub struct Slice<T> {
    ptr: DevicePtr,
    len: usize,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for Slice<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Slice<T> {}

impl<T> Slice<T> {
    /// `len` values from value `offset` on.
    pub fn range(&self, offset: usize, len: usize) -> Slice<T> {
        assert!(offset + len <= self.len, "values {offset}..{} of a slice of {}", offset + len, self.len);
        Slice { ptr: self.ptr + (offset * std::mem::size_of::<T>()) as u64, len, _values: PhantomData }
    }
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

/// How a kernel writes a gradient: over what the target holds, or added to
/// it (where several terms of one gradient come from separate launches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accumulate {
    Overwrite,
    Add,
}

impl Accumulate {
    /// The launch parameters' `accumulate` flag.
    pub fn flag(self) -> i32 {
        match self {
            Accumulate::Overwrite => 0,
            Accumulate::Add => 1,
        }
    }
}

/// Typed sections of one allocation, laid out on the host, so that data of
/// several types (parameters, a batch's indices and embeddings) crosses to
/// the device in one transfer. Sections start 16-byte aligned.
#[derive(Default)]
pub struct Packing {
    bytes: Vec<u8>,
}

/// Typed sections of one device allocation that the host never fills (a
/// workspace): a [`Packing`] without the bytes.
#[derive(Default)]
pub struct Layout {
    len: usize,
}

impl Layout {
    /// A section of `len` values.
    pub fn reserve<T: Plain>(&mut self, len: usize) -> Section<T> {
        let offset = self.len.next_multiple_of(16);
        self.len = offset + len * std::mem::size_of::<T>();
        Section { offset, len, _values: PhantomData }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where a [`Packing`] put `len` values of type `T`.
#[derive(Debug)]
pub struct Section<T> {
    offset: usize,
    len: usize,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for Section<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Section<T> {}

impl<T> Section<T> {
    /// The section inside `bytes`, the upload of its packing (or the
    /// allocation of its layout).
    pub fn of(&self, bytes: impl Into<Slice<u8>>) -> Slice<T> {
        let bytes = bytes.into();
        assert!(self.offset + self.len * std::mem::size_of::<T>() <= bytes.len, "a section past its buffer");
        Slice { ptr: bytes.ptr + self.offset as u64, len: self.len, _values: PhantomData }
    }
}

impl Packing {
    /// A section holding a copy of `values`.
    pub fn push<T: Plain>(&mut self, values: &[T]) -> Section<T> {
        let section = self.reserve::<T>(values.len());
        self.bytes[section.offset..][..std::mem::size_of_val(values)].copy_from_slice(bytes(values));
        section
    }

    /// A zeroed section of `len` values.
    pub fn reserve<T: Plain>(&mut self, len: usize) -> Section<T> {
        let section = Layout { len: self.bytes.len() }.reserve(len);
        self.bytes.resize(section.offset + len * std::mem::size_of::<T>(), 0);
        section
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// What crosses to the device.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Empty again, keeping its memory for the next batch.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packing_crosses_in_one_upload_and_its_sections_read_back() {
        let gpu = Gpu::emulated();
        let mut packing = Packing::default();
        let a = packing.push(&[1.5f64, -2.0, 3.25]);
        let b = packing.push(&[7i32, 8, 9, 10, 11]);
        let c = packing.push(&[0.5f32]);
        let buffer = gpu.upload_packed(&packing).unwrap();
        assert_eq!(gpu.download_slice(a.of(&buffer)).unwrap(), [1.5, -2.0, 3.25]);
        assert_eq!(gpu.download_slice(b.of(&buffer)).unwrap(), [7, 8, 9, 10, 11]);
        assert_eq!(gpu.download_slice(c.of(&buffer)).unwrap(), [0.5]);
        let up = packing.bytes.len() as u64;
        let counts = Counts {
            launches: 0,
            uploads: 1,
            downloads: 3,
            bytes_up: up,
            bytes_down: 24 + 20 + 4,
            allocs: 1,
            device_ns: 0,
        };
        assert_eq!(Counts { device_ns: 0, ..gpu.counts() }, counts);
    }

    #[test]
    fn a_transfer_past_its_allocation_is_an_error() {
        let gpu = Gpu::emulated();
        let mut packing = Packing::default();
        let a = packing.push(&[1.0f64; 4]);
        let buffer = gpu.upload_packed(&packing).unwrap();
        let slice = a.of(&buffer);
        let past = Slice::<f64> { ptr: slice.ptr + 16, len: 4, _values: PhantomData };
        assert!(matches!(gpu.download_slice(past), Err(GpuError::Transfer { .. })));
        let outside = Slice::<f64> { ptr: slice.ptr + 4096, len: 1, _values: PhantomData };
        assert!(gpu.download_slice(outside).is_err());
    }
}
