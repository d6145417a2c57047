//! AnisoNet (Lou & Ganose) on dfdx: an e3nn gate_points network that predicts
//! the dielectric tensor ε∞ as irreps 0e+2e (equivariant) or from six scalars.
//!
//! The whole network is one fused dfdx operation with a hand-written backward
//! pass ([`network`], kernels in [`kernels`]): the loss is built from its
//! output with ordinary dfdx ops, and `backward()` fills the gradient of the
//! single flat parameter tensor ([`ModelParams`]), updated by `train::optim::AdamW`.
//!
//! ```ignore
//! let model = AnisoNet::<f32>::new(&ModelConfig::default(), &Cpu::default(), seed)?;
//! let pred = model.forward(&batch, model.params.flat.clone().traced(Gradients::leaky()))?;
//! let grads = mse_loss(pred, target).backward();   // target: irreps 0e+2e per structure
//! opt.update(&mut model.params, &grads);
//! ```
//!
//! Speed comes from three facts: node attributes depend only on the element,
//! so each FullyConnectedTensorProduct becomes one weight matrix per species
//! of the batch; features are stored m-major (`[m][channel]`) so the per-edge
//! "uvu" tensor product vectorises over channels (AVX2 + FMA builds chosen at
//! run time); and the radial MLP runs as two large matrix products.
//! That is the CPU path. Other devices (CUDA, in a `cuda` build) run the
//! same network written in dfdx tensor ops ([`tensor_net`]) behind
//! [`AnisoNet::use_device`]; parameters and the optimiser stay on the host.

pub mod alloc;
pub mod arch;
pub(crate) mod checkpoint;
pub(crate) mod config;
pub mod gpu;
pub(crate) mod input;
pub(crate) mod kernels;
pub(crate) mod network;
pub(crate) mod normalize;
pub(crate) mod physical;
pub mod reference;
pub mod synthetic;
pub(crate) mod tensor_net;

use std::sync::Arc;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub use arch::Architecture;
pub use config::{ModelConfig, ModelError, ModelKind, OutputMode, Precision};

pub use gpu::optim::{AdamSettings, AdamStep, HostState};
pub use input::ModelInput;
pub use kernels::Real;
pub use network::Network;
pub use physical::{count_unphysical, is_unphysical};
pub use tensor_net::{DeviceEngine, ResidentTraining, StepLoss, TensorEngine};

/// All trainable parameters in one flat vector (layout: [`Architecture::params`]).
/// dfdx's `TensorCollection` only admits compile-time shapes, so the optimiser
/// for this runtime-sized vector is `train::optim::AdamW`.
#[derive(Clone, Debug)]
pub struct ModelParams<E: Dtype, D: Device<E>> {
    pub flat: Tensor<(usize,), E, D>,
}

/// Where a model's network is computed. Parameters, optimiser and
/// checkpoints stay on the host either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComputeDevice {
    /// The fused CPU kernels ([`network`]).
    #[default]
    Cpu,
    /// The GPU with this ordinal among the visible ones, running the GPU
    /// engine's fused kernels ([`gpu`]) through its driver, loaded at run time.
    Cuda(usize),
    /// dfdx's CUDA device with this ordinal ([`tensor_net`]), the cross-check
    /// of the GPU engine; needs a build with the `cuda` feature.
    TensorCuda(usize),
    /// The GPU engine's kernels ([`gpu`]) on their CPU emulation: what a GPU
    /// runs, checked on any machine (slow; for checks, not for studies).
    GpuEmulated,
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
            ComputeDevice::TensorCuda(i) => write!(f, "tensor-cuda:{i}"),
            ComputeDevice::GpuEmulated => f.write_str("gpu-emulated"),
        }
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = String;

    /// `cpu`, `cuda:N`, `tensor-cuda:N` or `gpu-emulated`.
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let ordinal = |prefix: &str| t.strip_prefix(prefix).and_then(|i| i.parse::<usize>().ok());
        match t {
            "cpu" => Ok(ComputeDevice::Cpu),
            "gpu-emulated" => Ok(ComputeDevice::GpuEmulated),
            _ => match (ordinal("cuda:"), ordinal("tensor-cuda:")) {
                (Some(i), _) => Ok(ComputeDevice::Cuda(i)),
                (_, Some(i)) => Ok(ComputeDevice::TensorCuda(i)),
                _ => Err(format!(
                    "`{t}` is not a compute device; use cpu, cuda:N (N: index of a visible GPU) or gpu-emulated"
                )),
            },
        }
    }
}

/// Precisions the model runs in (f32, f64) on dfdx's CPU device.
pub trait ModelFloat: Real + Dtype + gpu::GpuReal
where
    Cpu: Device<Self>,
{
    /// The CPU storage of a gradient as a slice.
    fn slice_mut(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self];

    /// The network on a CUDA device (dfdx has CUDA kernels for f32 and f64).
    #[cfg(feature = "cuda")]
    fn cuda_engine(
        net: Arc<Network<Self>>,
        cuda: dfdx::tensor::Cuda,
        name: &str,
    ) -> Arc<dyn DeviceEngine<Self>>;
}

macro_rules! model_float {
    ($t:ty) => {
        impl ModelFloat for $t {
            fn slice_mut(v: &mut <Cpu as Storage<$t>>::Vec) -> &mut [$t] {
                &mut v[..]
            }

            #[cfg(feature = "cuda")]
            fn cuda_engine(
                net: Arc<Network<$t>>,
                cuda: dfdx::tensor::Cuda,
                name: &str,
            ) -> Arc<dyn DeviceEngine<$t>> {
                Arc::new(TensorEngine::new(net, cuda, name))
            }
        }
    };
}

model_float!(f32);
model_float!(f64);

/// Gradient of the outputs (flat, 6 per structure) → accumulated into the
/// gradient of the flat parameters.
type Vjp<E> = Box<dyn FnOnce(&[E], &mut [E])>;

/// The outputs of a pass (6 per structure) and, when asked, their [`Vjp`].
type Pass<E> = (Vec<[E; 6]>, Option<Vjp<E>>);

/// Per structure, ε as irreps 0e+2e in e3nn's `CartesianTensor("ij=ji")` basis.
pub type Prediction<E, T> = Tensor<(usize, Const<6>), E, Cpu, T>;

/// AnisoNet with parameters on dfdx's CPU device, precision `E` (f32 or f64).
pub struct AnisoNet<E: ModelFloat>
where
    Cpu: Device<E>,
{
    pub net: Arc<Network<E>>,
    pub params: ModelParams<E, Cpu>,
    pub device: Cpu,
    /// Where the network is computed: `None` for the fused CPU network, else
    /// a device engine (CUDA). Parameters and optimiser stay on the host.
    pub engine: Option<Arc<dyn DeviceEngine<E>>>,
    /// A device fault in an engine's backward pass. The tape's backward op
    /// cannot return an error, so it leaves the gradient alone and puts the
    /// fault here for [`AnisoNet::backward_fault`] to report.
    fault: Arc<std::sync::Mutex<Option<ModelError>>>,
}

impl<E: ModelFloat> AnisoNet<E>
where
    StandardNormal: Distribution<E>,
    Cpu: Device<E>,
{
    /// A fresh model: tensor-product and radial weights N(0, 1) as in e3nn; the
    /// embedding as PyTorch's Linear default, U(−1/√118, 1/√118).
    pub fn new(config: &ModelConfig, device: &Cpu, seed: u64) -> Result<AnisoNet<E>, ModelError> {
        let arch = Architecture::new(config)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = 1.0 / (arch::NUM_ELEMENTS as f64).sqrt();
        let mut flat = Vec::with_capacity(arch.num_params);
        for p in &arch.params {
            for _ in 0..p.numel() {
                if p.name.starts_with("em.") {
                    flat.push(E::of(rand::Rng::gen_range(&mut rng, -bound..bound)));
                } else {
                    flat.push(StandardNormal.sample(&mut rng));
                }
            }
        }
        Ok(Self::from_flat(arch, flat, device))
    }
}

impl<E: ModelFloat> AnisoNet<E>
where
    Cpu: Device<E>,
{
    /// A model with the given flat parameters (layout of `arch.params`).
    pub fn from_flat(arch: Architecture, flat: Vec<E>, device: &Cpu) -> AnisoNet<E> {
        let n = flat.len();
        assert_eq!(n, arch.num_params, "flat parameter vector length");
        AnisoNet {
            net: Arc::new(Network::new(arch)),
            params: ModelParams { flat: device.tensor_from_vec(flat, (n,)) },
            device: device.clone(),
            engine: None,
            fault: Arc::default(),
        }
    }

    pub fn arch(&self) -> &Architecture {
        &self.net.arch
    }

    /// The device fault of the last backward pass through the tape, if any:
    /// its gradient is then incomplete and must not be applied.
    pub fn backward_fault(&self) -> Result<(), ModelError> {
        match self.fault.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }

    /// Inference: ε (irreps 0e+2e) per structure.
    pub fn predict(&self, input: &ModelInput) -> Result<Vec<[f64; 6]>, ModelError> {
        let prep = self.net.prepare(input)?;
        let (out, _) = self.pass(prep, self.params.flat.as_vec(), false)?;
        Ok(out.iter().map(|o| o.map(|v| v.to64())).collect())
    }

    /// Computes the network with dfdx tensor ops on `dev` (called `name`)
    /// instead of the fused CPU kernels ([`tensor_net`]).
    pub fn compute_on<D: Device<E> + 'static>(&mut self, dev: D, name: &str) {
        self.engine = Some(Arc::new(TensorEngine::new(self.net.clone(), dev, name)));
    }

    /// Computes the network on `device` from now on.
    pub fn use_device(&mut self, device: ComputeDevice) -> Result<(), ModelError> {
        match device {
            ComputeDevice::Cpu => self.engine = None,
            ComputeDevice::GpuEmulated => {
                self.engine = Some(Arc::new(gpu::GpuEngine::new(gpu::Gpu::emulated(), self.net.clone())?))
            }
            ComputeDevice::Cuda(ordinal) => {
                let gpu = gpu::Gpu::cuda(ordinal).map_err(|e| ModelError::Device(e.to_string()))?;
                self.engine = Some(Arc::new(gpu::GpuEngine::new(gpu, self.net.clone())?))
            }
            #[cfg(feature = "cuda")]
            ComputeDevice::TensorCuda(ordinal) => {
                let cuda = open_cuda(ordinal)?;
                self.engine = Some(E::cuda_engine(self.net.clone(), cuda, &device.to_string()));
            }
            #[cfg(not(feature = "cuda"))]
            ComputeDevice::TensorCuda(_) => {
                return Err(ModelError::Device(format!(
                    "{device} needs a build with CUDA support: `cargo build --release --features cuda`, or use the cpu"
                )))
            }
        }
        Ok(())
    }

    /// The engine's hold on a training run kept on its device, where it keeps one.
    pub fn resident(&self) -> Option<&dyn ResidentTraining<E>> {
        self.engine.as_deref().and_then(|e| e.resident())
    }

    /// One training step of the run kept on the engine's device: `loss` maps
    /// the model's outputs (ε as irreps 0e+2e per structure, in f64) to the
    /// loss and its gradient; the head, the backward pass and AdamW's
    /// `adam` step are the model's.
    pub fn resident_step(
        &self,
        input: &ModelInput,
        loss: StepLoss<'_>,
        adam: &AdamStep,
    ) -> Result<f64, ModelError> {
        let resident = self.resident_run()?;
        let prep = self.net.prepare(input)?;
        let net = &self.net;
        let mut on_raw = |raw: &[[f64; 6]]| {
            let out: Vec<[f64; 6]> = raw.iter().map(|r| net.head_forward(r)).collect();
            let (value, grad) = loss(&out);
            (value, raw.iter().zip(&grad).map(|(r, g)| net.head_backward(r, g)).collect())
        };
        resident.train_step(&prep, &mut on_raw, adam)
    }

    /// ε (irreps 0e+2e) per structure with the parameters of the run kept
    /// on the engine's device.
    pub fn resident_predict(&self, input: &ModelInput) -> Result<Vec<[f64; 6]>, ModelError> {
        let raw = self.resident_run()?.predict(&self.net.prepare(input)?)?;
        Ok(raw.iter().map(|r| self.net.head_forward(r)).collect())
    }

    fn resident_run(&self) -> Result<&dyn ResidentTraining<E>, ModelError> {
        self.resident().ok_or_else(|| {
            ModelError::Device(format!("{} keeps no training run on its device", self.compute_device()))
        })
    }

    /// Where the network is computed: `cpu` (fused kernels) or an engine's device.
    pub fn compute_device(&self) -> &str {
        self.engine.as_ref().map_or("cpu", |e| e.name())
    }

    /// Forward pass recorded on `params`' tape: pass `model.params.flat.clone().traced(grads)`
    /// to train, or `model.params.flat.clone()` for no gradients. The backward pass
    /// accumulates into the gradient of `params.flat`.
    pub fn forward<T: Tape<E, Cpu>>(
        &self,
        input: &ModelInput,
        params: Tensor<(usize,), E, Cpu, T>,
    ) -> Result<Prediction<E, T>, ModelError> {
        if params.shape().0 != self.arch().num_params {
            return Err(ModelError::InvalidInput(format!(
                "{} parameters passed, the architecture has {}",
                params.shape().0,
                self.arch().num_params
            )));
        }
        let prep = self.net.prepare(input)?;
        let (params, mut tape) = params.split_tape();
        let (out, vjp) = self.pass(prep, params.as_vec(), T::OWNS_TAPE)?;
        let result =
            self.device.tensor_from_vec(out.iter().flatten().copied().collect(), (out.len(), Const::<6>));
        if let Some(vjp) = vjp {
            let (p_ghost, out_ghost) = (params.ghost(), result.ghost());
            tape.add_backward_op(move |grads| {
                grads.try_alloc_for(&p_ghost)?;
                grads.try_alloc_for(&out_ghost)?;
                let g_out = grads.get(&out_ghost).as_vec();
                vjp(&g_out, E::slice_mut(grads.get_or_alloc_mut(&p_ghost)?));
                Ok(())
            });
        }
        Ok(result.put_tape(tape))
    }

    /// The output per structure for parameters `values`, on the fused CPU
    /// network or the engine; with `backward`, its vector–Jacobian product.
    fn pass(
        &self,
        prep: network::Prepared<E>,
        values: Vec<E>,
        backward: bool,
    ) -> Result<Pass<E>, ModelError> {
        let net = self.net.clone();
        let Some(engine) = &self.engine else {
            let (out, cache) = net.forward(&values, prep);
            let vjp = backward.then(|| {
                Box::new(move |g_out: &[E], g_params: &mut [E]| {
                    let g_rows: Vec<[E; 6]> =
                        g_out.chunks(6).map(|c| std::array::from_fn(|k| c[k])).collect();
                    net.backward_into(&values, &cache, &g_rows, g_params);
                }) as Vjp<E>
            });
            return Ok((out, vjp));
        };
        // The engine computes the pooled head output; the host applies the head.
        let (raw, back) = engine.forward(&prep, &values, backward)?;
        let out = raw.iter().map(|r| net.head_forward(r).map(E::of)).collect();
        let fault = self.fault.clone();
        let vjp = back.map(|back| {
            Box::new(move |g_out: &[E], g_params: &mut [E]| {
                let g_raw: Vec<[f64; 6]> = raw
                    .iter()
                    .zip(g_out.chunks(6))
                    .map(|(r, g)| net.head_backward(r, &std::array::from_fn(|k| g[k].to64())))
                    .collect();
                match back(&g_raw) {
                    Ok(grads) => g_params.iter_mut().zip(grads).for_each(|(acc, g)| *acc += g),
                    Err(e) => *fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(e),
                }
            }) as Vjp<E>
        });
        Ok((out, vjp))
    }
}

/// The CUDA include folder that kernels compiled at run time (NVRTC) read
/// `cuda_fp16.h` from, searched as the `cuda` build does
/// (`scripts/cuda/dfdx-0.13-runtime-includes.patch`): `CUDA_INCLUDE_DIR`,
/// then `include` under `CUDA_PATH`, `CUDA_ROOT`, `CUDA_HOME`, then
/// `/usr/local/cuda/include`.
pub fn cuda_include_dir() -> Option<std::path::PathBuf> {
    let var = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
    let roots =
        ["CUDA_PATH", "CUDA_ROOT", "CUDA_HOME"].into_iter().filter_map(var).map(|root| root.join("include"));
    var("CUDA_INCLUDE_DIR")
        .into_iter()
        .chain(roots)
        .chain(["/usr/local/cuda/include".into()])
        .find(|dir| dir.join("cuda_fp16.h").is_file())
}

/// The `ordinal`-th visible GPU, or an error that says what to do.
#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<dfdx::tensor::Cuda, ModelError> {
    if cuda_include_dir().is_none() {
        return Err(ModelError::Device(
            "no CUDA include folder with cuda_fp16.h, which the kernels compiled at run time need: \
             set CUDA_INCLUDE_DIR to one (a CUDA 13 toolkit's include, or nvidia/cu13/include of \
             the nvidia-cuda-runtime wheel) or CUDA_PATH to a CUDA 13 toolkit"
                .into(),
        ));
    }
    dfdx::tensor::Cuda::try_build(ordinal, 0).map_err(|e| {
        let text = format!("{e:?}");
        let what = if text.contains("CUDA_ERROR_NO_DEVICE") {
            "no GPU is visible here (see CUDA_VISIBLE_DEVICES and `nvidia-smi`): run on a GPU node, or use the cpu"
                .to_string()
        } else if text.contains("CUDA_ERROR_INVALID_DEVICE") {
            format!("cuda:{ordinal} is not among the visible GPUs (they count from cuda:0; see CUDA_VISIBLE_DEVICES)")
        } else if text.contains("CUDA_ERROR_INSUFFICIENT_DRIVER") || text.contains("COMPAT_NOT_SUPPORTED") {
            "the NVIDIA driver is older than this build's CUDA 13.0, which needs driver 580 or newer".to_string()
        } else {
            "see `study doctor --device cuda:N`".to_string()
        };
        ModelError::Device(format!("cannot open CUDA device {ordinal} ({text}): {what}"))
    })
}

/// A model whose precision is chosen at run time from [`ModelConfig::dtype`].
pub enum AnyAnisoNet {
    F32(AnisoNet<f32>),
    F64(AnisoNet<f64>),
}

impl AnyAnisoNet {
    pub fn new(config: &ModelConfig, device: &Cpu, seed: u64) -> Result<AnyAnisoNet, ModelError> {
        Ok(match config.dtype {
            Precision::F32 => AnyAnisoNet::F32(AnisoNet::new(config, device, seed)?),
            Precision::F64 => AnyAnisoNet::F64(AnisoNet::new(config, device, seed)?),
        })
    }

    pub fn arch(&self) -> &Architecture {
        match self {
            AnyAnisoNet::F32(m) => m.arch(),
            AnyAnisoNet::F64(m) => m.arch(),
        }
    }

    /// See [`AnisoNet::use_device`].
    pub fn use_device(&mut self, device: ComputeDevice) -> Result<(), ModelError> {
        match self {
            AnyAnisoNet::F32(m) => m.use_device(device),
            AnyAnisoNet::F64(m) => m.use_device(device),
        }
    }

    /// ε (irreps 0e+2e) per structure.
    pub fn predict(&self, input: &ModelInput) -> Result<Vec<[f64; 6]>, ModelError> {
        match self {
            AnyAnisoNet::F32(m) => m.predict(input),
            AnyAnisoNet::F64(m) => m.predict(input),
        }
    }
}
