//! A GPU through its driver: the [`Backend`] the engine runs on where a GPU
//! is asked for.
//!
//! The driver (`libcuda.so.1`) and NVRTC are loaded at run time (cudarc's
//! dynamic loading), so the one `study` binary builds and runs everywhere
//! and only `--device cuda:N` needs them; where they are missing it says so
//! instead of failing to load. The kernels come from the fatbin that
//! `scripts/cuda-build.sh` compiles with nvcc and embeds (SASS for sm_80 and
//! sm_90, PTX for later GPUs), or, in a build without it or on a GPU it does
//! not cover, from the embedded source compiled by NVRTC at first use.
//!
//! Uploads of a batch's size pass through page-locked host memory kept for
//! the purpose ([`Pinned`]): the driver then copies at the bus's full
//! speed, where from pageable memory it first copies into a buffer of its own.
//!
//! Every call makes the device's primary context current on the calling
//! thread (trials may call from any thread). Launches and copies go to the
//! legacy default stream, so each copy waits for the kernels before it and
//! a download returns a kernel's error, if it had one.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::Mutex;

use cudarc::driver::{result as cu, sys};

use super::{Backend, DevicePtr, GpuError};

/// The kernel source as one translation unit, for NVRTC.
pub const KERNEL_SOURCE: &str = concat!(
    "#define ANISO_SINGLE_SOURCE\n",
    include_str!("kernels/shim.h"),
    "\n",
    include_str!("kernels/anisonet.cu")
);

/// The kernels compiled ahead by `scripts/cuda-build.sh`, when it built this binary.
#[cfg(aniso_fatbin)]
const FATBIN: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/anisonet.fatbin")));
#[cfg(not(aniso_fatbin))]
const FATBIN: Option<&[u8]> = None;

/// One GPU, its primary context and the kernels' module.
pub struct Cuda {
    name: String,
    description: String,
    device: sys::CUdevice,
    context: sys::CUcontext,
    module: sys::CUmodule,
    functions: Mutex<HashMap<String, usize>>,
    pinned: Mutex<Pinned>,
}

/// Uploads at least this large go through [`Pinned`] memory.
const PINNED_FROM: usize = 64 << 10;

/// Page-locked host memory, grown to the largest upload that passed through it.
struct Pinned {
    ptr: *mut c_void,
    len: usize,
}

// SAFETY: the context and module handles are valid on any thread once the
// context is made current there, which every method does first.
unsafe impl Send for Cuda {}
// SAFETY: as above; the function cache and the pinned memory are behind mutexes.
unsafe impl Sync for Cuda {}

fn unavailable(device: &str, message: impl Into<String>) -> GpuError {
    GpuError::Unavailable { device: device.to_owned(), message: message.into() }
}

impl Cuda {
    /// GPU `ordinal` among the visible ones, its kernels loaded.
    pub fn open(ordinal: usize) -> Result<Cuda, GpuError> {
        let name = format!("cuda:{ordinal}");
        // SAFETY: only tries to load the library.
        if !unsafe { sys::is_culib_present() } {
            return Err(unavailable(
                &name,
                "no NVIDIA driver here (libcuda.so.1 is not on the library path): run on a GPU node \
                 with driver 580 or newer, or use the cpu",
            ));
        }
        let fault = |what: &str, e: cu::DriverError| unavailable(&name, format!("{what}: {e}"));
        cu::init().map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_NO_DEVICE => unavailable(
                &name,
                "the driver sees no GPU (see CUDA_VISIBLE_DEVICES and `nvidia-smi`): run on a GPU node, or use the cpu",
            ),
            sys::CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
            | sys::CUresult::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => unavailable(
                &name,
                format!("the NVIDIA driver does not match its kernel module or this GPU ({e}): see `nvidia-smi`"),
            ),
            _ => fault("initialising the driver", e),
        })?;
        let count = cu::device::get_count().map_err(|e| fault("counting GPUs", e))? as usize;
        if ordinal >= count {
            return Err(unavailable(
                &name,
                format!("{count} GPUs are visible here, counted from cuda:0 (see CUDA_VISIBLE_DEVICES)"),
            ));
        }
        let device = cu::device::get(ordinal as i32).map_err(|e| fault("opening the GPU", e))?;
        let description = cu::device::get_name(device).unwrap_or_else(|_| "an NVIDIA GPU".into());
        // SAFETY: `device` is a valid device handle.
        let context = unsafe { cu::primary_ctx::retain(device) }.map_err(|e| fault("its context", e))?;
        // SAFETY: `context` was just retained.
        unsafe { cu::ctx::set_current(context) }.map_err(|e| fault("its context", e))?;
        let attribute = |a| {
            // SAFETY: a valid device and attribute.
            unsafe { cu::device::get_attribute(device, a) }.map_err(|e| fault("its compute capability", e))
        };
        let major = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let module = match FATBIN.map(load_image) {
            Some(Ok(module)) => module,
            // A GPU the fatbin has no code for: compile for it.
            _ => {
                let ptx = compile(&format!("compute_{major}{minor}")).map_err(|e| unavailable(&name, e))?;
                load_image(&ptx).map_err(|e| fault("loading the kernels NVRTC compiled", e))?
            }
        };
        let description = format!("{description} (sm_{major}{minor})");
        Ok(Cuda {
            name,
            description,
            device,
            context,
            module,
            functions: Mutex::new(HashMap::new()),
            pinned: Mutex::new(Pinned { ptr: std::ptr::null_mut(), len: 0 }),
        })
    }

    /// The GPU's name and compute capability.
    pub fn description(&self) -> &str {
        &self.description
    }

    fn current(&self) -> Result<(), GpuError> {
        // SAFETY: the context stays retained while `self` lives.
        unsafe { cu::ctx::set_current(self.context) }
            .map_err(|e| GpuError::Transfer { device: self.name.clone(), message: e.to_string() })
    }

    fn function(&self, kernel: &str) -> Result<sys::CUfunction, GpuError> {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&f) = functions.get(kernel) {
            return Ok(f as sys::CUfunction);
        }
        let launch_error = |message: String| GpuError::Launch {
            device: self.name.clone(),
            kernel: kernel.to_owned(),
            message,
        };
        let c_name = CString::new(kernel).map_err(|_| launch_error("no such kernel".into()))?;
        // SAFETY: a loaded module and a NUL-terminated name.
        let f = unsafe { cu::module::get_function(self.module, c_name) }
            .map_err(|e| launch_error(format!("no such kernel ({e})")))?;
        functions.insert(kernel.to_owned(), f as usize);
        Ok(f)
    }
}

/// Loads a module from a fatbin, cubin or NUL-terminated PTX image.
fn load_image(image: &[u8]) -> Result<sys::CUmodule, cu::DriverError> {
    // SAFETY: the driver reads the image, which outlives the call.
    unsafe { cu::module::load_data(image.as_ptr().cast()) }
}

/// The kernel source compiled by NVRTC for `arch` (e.g. `compute_90`): NUL-terminated PTX.
pub fn compile(arch: &str) -> Result<Vec<u8>, String> {
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
    // SAFETY: only tries to load the library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } && !preload_nvrtc(&nvrtc_prefixes()) {
        return Err("no NVRTC (libnvrtc.so.13) on the library path, in a CUDA toolkit or in a Python \
                    environment's nvidia/*/lib to compile the kernels for this GPU: put a CUDA 13 toolkit's \
                    lib64 or the nvidia-cuda-nvrtc wheel's nvidia/cu13/lib on LD_LIBRARY_PATH, or use a \
                    binary built by scripts/cuda-build.sh, which carries them compiled"
            .into());
    }
    let options = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("anisonet.cu".into()),
        ..CompileOptions::default()
    };
    let ptx = compile_ptx_with_opts(KERNEL_SOURCE, options).map_err(|e| match e {
        CompileError::CompileError { log, .. } => {
            format!("NVRTC could not compile the kernels for {arch}:\n{}", log.to_string_lossy())
        }
        other => format!("NVRTC could not compile the kernels for {arch}: {other:?}"),
    })?;
    let mut image = ptx.to_src().into_bytes();
    image.push(0);
    Ok(image)
}

/// The library NVRTC's loader asks for by name (its soname).
const NVRTC: &str = "libnvrtc.so.13";

/// Where NVRTC is usually found besides the library path: CUDA toolkits
/// (`CUDA_PATH`, `CUDA_HOME`, `CUDA_ROOT`, /usr/local/cuda), and the Python
/// environments a GPU node's PyTorch lives in (the active virtual or conda
/// environment, the one of each `python3` on `PATH`, the user's and the
/// system's), whose nvidia-cuda-nvrtc wheel carries it.
fn nvrtc_prefixes() -> Vec<std::path::PathBuf> {
    use std::path::PathBuf;
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let mut prefixes: Vec<PathBuf> = ["CUDA_PATH", "CUDA_HOME", "CUDA_ROOT", "VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(|v| var(v))
        .collect();
    prefixes.push("/usr/local/cuda".into());
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    for dir in on_path.iter().filter(|dir| dir.join("python3").exists()) {
        let python = std::fs::canonicalize(dir.join("python3")).unwrap_or_else(|_| dir.join("python3"));
        prefixes.extend(
            [dir.parent(), python.parent().and_then(|bin| bin.parent())]
                .into_iter()
                .flatten()
                .map(PathBuf::from),
        );
    }
    prefixes.extend(var("HOME").map(|home| home.join(".local")));
    prefixes.extend(["/usr/local", "/usr", "/opt/conda"].map(PathBuf::from));
    prefixes
}

/// NVRTC files under `prefixes`, in order: a toolkit's `lib64` and `lib`,
/// then `lib/python3.*/{site,dist}-packages/nvidia/*/lib`.
fn nvrtc_candidates(prefixes: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let sorted = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        entries
    };
    let mut found = Vec::new();
    for prefix in prefixes {
        found.extend(["lib64", "lib"].map(|lib| prefix.join(lib).join(NVRTC)));
        let pythons = sorted(&prefix.join("lib"));
        for python in pythons
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python3")))
        {
            for packages in ["site-packages", "dist-packages"] {
                found.extend(
                    sorted(&python.join(packages).join("nvidia")).iter().map(|n| n.join("lib").join(NVRTC)),
                );
            }
        }
    }
    found.retain(|path| path.is_file());
    found.dedup();
    found
}

/// Loads the first NVRTC found under `prefixes` for good, so that the
/// loader's later request for it by name finds it loaded; whether one loaded.
fn preload_nvrtc(prefixes: &[std::path::PathBuf]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    nvrtc_candidates(prefixes).iter().any(|path| {
        let Ok(path) = CString::new(path.as_os_str().as_bytes()) else { return false };
        // SAFETY: loads a shared library by path and keeps it loaded (its handle is never closed).
        !unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) }.is_null()
    })
}

impl Drop for Cuda {
    fn drop(&mut self) {
        if self.current().is_ok() {
            let pinned = self.pinned.get_mut().unwrap_or_else(|e| e.into_inner());
            // SAFETY: the module and the pinned memory belong to this context, which is released last.
            unsafe {
                if !pinned.ptr.is_null() {
                    let _ = cu::free_host(pinned.ptr);
                }
                let _ = cu::module::unload(self.module);
                let _ = cu::primary_ctx::release(self.device);
            }
        }
    }
}

impl Backend for Cuda {
    fn name(&self) -> &str {
        &self.name
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr, GpuError> {
        self.current()?;
        // SAFETY: a plain allocation in the current context.
        unsafe { cu::malloc_sync(bytes.max(1)) }.map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                GpuError::OutOfMemory { device: self.name.clone(), bytes }
            }
            _ => GpuError::Transfer {
                device: self.name.clone(),
                message: format!("allocating {bytes} bytes: {e}"),
            },
        })
    }

    fn free(&self, ptr: DevicePtr) {
        if self.current().is_ok() {
            // SAFETY: `ptr` came from `alloc` and is freed once (by its `Buffer`).
            let _ = unsafe { cu::free_sync(ptr) };
        }
    }

    fn upload(&self, dst: DevicePtr, bytes: &[u8]) -> Result<(), GpuError> {
        self.current()?;
        let fault = |e: cu::DriverError| GpuError::Transfer {
            device: self.name.clone(),
            message: format!("upload: {e}"),
        };
        if bytes.len() < PINNED_FROM {
            // SAFETY: `Gpu` checked the destination holds `bytes.len()` bytes.
            return unsafe { cu::memcpy_htod_sync(dst, bytes) }.map_err(fault);
        }
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if pinned.len < bytes.len() {
            if !pinned.ptr.is_null() {
                // SAFETY: allocated below by `malloc_host`, and no copy from it is in flight (copies are synchronous).
                unsafe { cu::free_host(pinned.ptr) }.map_err(fault)?;
                *pinned = Pinned { ptr: std::ptr::null_mut(), len: 0 };
            }
            let len = bytes.len() + bytes.len() / 4;
            // SAFETY: a plain page-locked allocation in the current context.
            pinned.ptr = unsafe { cu::malloc_host(len, 0) }.map_err(fault)?;
            pinned.len = len;
        }
        // SAFETY: `pinned` holds at least `bytes.len()` bytes, and the
        // destination as many (checked by `Gpu`); the copy is synchronous.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), pinned.ptr.cast::<u8>(), bytes.len());
            let staged = std::slice::from_raw_parts(pinned.ptr.cast::<u8>(), bytes.len());
            cu::memcpy_htod_sync(dst, staged).map_err(fault)
        }
    }

    fn download(&self, src: DevicePtr, bytes: &mut [u8]) -> Result<(), GpuError> {
        self.current()?;
        // SAFETY: `Gpu` checked the source holds `bytes.len()` bytes.
        unsafe { cu::memcpy_dtoh_sync(bytes, src) }
            .map_err(|e| GpuError::Transfer { device: self.name.clone(), message: format!("download: {e}") })
    }

    fn launch(
        &self,
        kernel: &str,
        grid: u32,
        block: u32,
        shared: u32,
        params: &[u8],
    ) -> Result<(), GpuError> {
        self.current()?;
        let f = self.function(kernel)?;
        // The one by-value parameter: the driver copies the struct's bytes.
        let mut args = [params.as_ptr() as *mut c_void];
        // SAFETY: every kernel takes one parameter struct, whose bytes `params` are.
        unsafe { cu::launch_kernel(f, (grid, 1, 1), (block, 1, 1), shared, std::ptr::null_mut(), &mut args) }
            .map_err(|e| GpuError::Launch {
                device: self.name.clone(),
                kernel: kernel.to_owned(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVRTC compiles the embedded source where its library is on the
    /// library path (no GPU needed): what a GPU node without the fatbin runs.
    #[test]
    fn nvrtc_compiles_the_kernel_source() {
        // SAFETY: only tries to load the library.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            println!("note: no libnvrtc on the library path; skipping the NVRTC compile");
            return;
        }
        let ptx = compile("compute_90").unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&ptx);
        for kernel in ["tp_conv_forward_f64", "fctp_param_grad_f32", "mlp_forward_f32", "pool_backward_f64"] {
            assert!(text.contains(&format!(".entry {kernel}")), "{kernel} missing from the PTX");
        }
    }

    /// NVRTC is found in a Python environment's nvidia wheels and in a
    /// toolkit, as a GPU node has them, in that prefix order.
    #[test]
    fn nvrtc_is_found_in_python_environments_and_toolkits() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv");
        let wheel = venv.join("lib/python3.12/site-packages/nvidia/cu13/lib");
        let toolkit = root.path().join("cuda/lib64");
        for dir in [&wheel, &toolkit] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(NVRTC), b"").unwrap();
        }
        std::fs::create_dir_all(venv.join("lib/python3.12/site-packages/nvidia/cublas/lib")).unwrap();
        let prefixes = [root.path().join("nowhere"), venv, root.path().join("cuda")];
        assert_eq!(nvrtc_candidates(&prefixes), [wheel.join(NVRTC), toolkit.join(NVRTC)]);
        assert!(!preload_nvrtc(&prefixes[..1]), "nothing to load");
    }

    #[test]
    fn without_a_driver_opening_a_gpu_says_so() {
        // SAFETY: only tries to load the library.
        if unsafe { sys::is_culib_present() } {
            println!("note: a driver is present here; the no-driver message is not checked");
            return;
        }
        let err = Cuda::open(0).err().expect("no driver, no GPU");
        assert!(matches!(err, GpuError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("no NVIDIA driver"), "{err}");
    }
}
