//! A trial's training state on the device, and the optimiser's launches on
//! it: the gradient-norm limit and AdamW as kernels (anisonet.cu), so that a
//! training step never brings the parameters or their gradient to the host.
//!
//! The update is `train::optim::AdamW`'s, term for term, in the model's
//! precision; only the global norm is summed in another fixed order (a
//! fixed number of interleaved parts, then the parts in order), so two runs
//! are bit-identical whatever the launch shape.

use super::{grid, kernel, Buffer, Gpu, GpuError, GpuReal, KernelParams, BLOCK};

/// The parts of the fixed-order gradient norm: one thread each, enough to
/// fill a GPU's memory bandwidth, few enough for one thread to add up.
const NORM_PARTS: usize = 8192;

/// The optimiser kernels' parameters (`OptimParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OptimParams {
    pub param: u64,
    pub grad: u64,
    pub m: u64,
    pub v: u64,
    pub partial: u64,
    pub scale: u64,
    pub copy: u64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub decay: f64,
    pub c1: f64,
    pub c2: f64,
    pub max_norm: f64,
    pub n: i64,
    pub parts: i32,
    pub unused: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for OptimParams {
    const NAME: &'static str = "OptimParams";
}

/// AdamW's settings: PyTorch's AdamW after an optional global
/// gradient-norm limit. `train::optim::AdamW` holds them, and hands them
/// with each step's number to an update that runs on a device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSettings {
    /// The step size, which the learning-rate schedule sets each epoch.
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// Largest global L2 norm of a step's gradient; a larger one is scaled
    /// down to it before the moments see it (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl AdamSettings {
    /// PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8), without a norm limit.
    pub fn new(lr: f64, weight_decay: f64) -> AdamSettings {
        AdamSettings { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay, max_grad_norm: None }
    }
}

/// One AdamW step: the settings, and the step's number counted from 1 (the
/// bias corrections' exponent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub settings: AdamSettings,
    pub step: u64,
}

/// A trial's parameters, their gradient, AdamW's moments and the best
/// validation parameters, in host memory: what goes onto the device at the
/// start of a trial (or a resumed one) and comes back for a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostState<E> {
    pub params: Vec<E>,
    /// Empty before the first step.
    pub m: Vec<E>,
    pub v: Vec<E>,
    pub best: Vec<E>,
}

/// The same state on the device, for the whole trial.
pub struct DeviceState<E> {
    pub params: Buffer<E>,
    pub grad: Buffer<E>,
    m: Buffer<E>,
    v: Buffer<E>,
    best: Buffer<E>,
    partial: Buffer<f64>,
    scale: Buffer<f64>,
}

impl<E: GpuReal> DeviceState<E> {
    /// `state` on `gpu`: five uploads (moments of zeros before the first step).
    pub fn load(gpu: &Gpu, state: &HostState<E>) -> Result<DeviceState<E>, GpuError> {
        let n = state.params.len();
        assert_eq!(state.best.len(), n, "best parameters of the model's size");
        let zeros;
        let (m, v) = if state.m.is_empty() {
            zeros = vec![E::zero(); n];
            (&zeros, &zeros)
        } else {
            (&state.m, &state.v)
        };
        assert!(m.len() == n && v.len() == n, "moments of the model's size");
        Ok(DeviceState {
            params: gpu.upload(&state.params)?,
            grad: gpu.alloc(n)?,
            m: gpu.upload(m)?,
            v: gpu.upload(v)?,
            best: gpu.upload(&state.best)?,
            partial: gpu.alloc(NORM_PARTS)?,
            scale: gpu.alloc(1)?,
        })
    }

    /// Everything back on the host (four downloads).
    pub fn store(&self, gpu: &Gpu) -> Result<HostState<E>, GpuError> {
        Ok(HostState {
            params: gpu.download(&self.params)?,
            m: gpu.download(&self.m)?,
            v: gpu.download(&self.v)?,
            best: gpu.download(&self.best)?,
        })
    }

    fn params(&self) -> OptimParams {
        OptimParams {
            param: self.params.ptr(),
            grad: self.grad.ptr(),
            m: self.m.ptr(),
            v: self.v.ptr(),
            partial: self.partial.ptr(),
            scale: self.scale.ptr(),
            n: self.params.len() as i64,
            parts: NORM_PARTS as i32,
            ..OptimParams::default()
        }
    }

    /// One AdamW step with the gradient in `grad` (three launches).
    pub fn adamw(&self, gpu: &Gpu, adam: &AdamStep) -> Result<(), GpuError> {
        let AdamStep { settings: s, step } = *adam;
        let (b1, b2) = s.betas;
        let p = OptimParams {
            lr: s.lr,
            beta1: b1,
            beta2: b2,
            eps: s.eps,
            decay: 1.0 - s.lr * s.weight_decay,
            c1: 1.0 - b1.powi(step as i32),
            c2: 1.0 - b2.powi(step as i32),
            max_norm: s.max_grad_norm.unwrap_or(0.0),
            ..self.params()
        };
        gpu.launch(&kernel::<E>("grad_sumsq"), grid(NORM_PARTS), BLOCK, 0, &p)?;
        gpu.launch(&kernel::<E>("grad_clip_scale"), 1, 1, 0, &p)?;
        gpu.launch(&kernel::<E>("adamw_step"), grid(self.params.len()), BLOCK, 0, &p)
    }

    /// The parameters become the best ones so far (one launch, on the device).
    pub fn keep_best(&self, gpu: &Gpu) -> Result<(), GpuError> {
        let p = OptimParams { copy: self.best.ptr(), ..self.params() };
        gpu.launch(&kernel::<E>("param_copy"), grid(self.params.len()), BLOCK, 0, &p)
    }

    /// The best parameters become the parameters (one launch, on the device).
    pub fn restore_best(&self, gpu: &Gpu) -> Result<(), GpuError> {
        let p = OptimParams { param: self.best.ptr(), copy: self.params.ptr(), ..self.params() };
        gpu.launch(&kernel::<E>("param_copy"), grid(self.params.len()), BLOCK, 0, &p)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::model::gpu::emulated::c_layout;

    #[test]
    fn the_parameter_struct_has_the_c_layout() {
        let offsets = [
            offset_of!(OptimParams, param),
            offset_of!(OptimParams, grad),
            offset_of!(OptimParams, m),
            offset_of!(OptimParams, v),
            offset_of!(OptimParams, partial),
            offset_of!(OptimParams, scale),
            offset_of!(OptimParams, copy),
            offset_of!(OptimParams, lr),
            offset_of!(OptimParams, beta1),
            offset_of!(OptimParams, beta2),
            offset_of!(OptimParams, eps),
            offset_of!(OptimParams, decay),
            offset_of!(OptimParams, c1),
            offset_of!(OptimParams, c2),
            offset_of!(OptimParams, max_norm),
            offset_of!(OptimParams, n),
            offset_of!(OptimParams, parts),
            offset_of!(OptimParams, unused),
        ];
        let mut want = vec![size_of::<OptimParams>()];
        want.extend(offsets);
        assert_eq!(c_layout("OptimParams"), want);
    }

    /// Steps with and without the norm limit, against the host's AdamW:
    /// the same update to the bit where the limit does not bite, and to the
    /// last digits of the norm where it does.
    #[test]
    fn the_device_adamw_is_the_hosts() {
        use crate::train::optim::AdamW;
        let gpu = Gpu::emulated();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let n = 3 * NORM_PARTS + 17;
        for (max_grad_norm, exact) in [(None, true), (Some(1e6), true), (Some(0.5), false)] {
            let params: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut host = AdamW::<f64>::new(0.01, 0.05);
            host.settings.max_grad_norm = max_grad_norm;
            let state = HostState { params: params.clone(), best: params.clone(), ..HostState::default() };
            let device = DeviceState::load(&gpu, &state).unwrap();
            let mut p = params;
            for step in 1..=3 {
                let g: Vec<f64> = (0..n).map(|_| rng.gen_range(-0.1..0.1)).collect();
                host.step_slices(&mut p, &g);
                gpu.write(&device.grad, &g).unwrap();
                let adam = AdamStep { settings: host.settings, step };
                device.adamw(&gpu, &adam).unwrap();
            }
            let got = device.store(&gpu).unwrap();
            for (name, got, want) in
                [("params", &got.params, &p), ("m", &got.m, &host.m), ("v", &got.v, &host.v)]
            {
                for (a, b) in got.iter().zip(want.iter()) {
                    if exact {
                        assert_eq!(a.to_bits(), b.to_bits(), "{name} with limit {max_grad_norm:?}");
                    } else {
                        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-3), "{name}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_best_parameters_are_kept_and_restored_on_the_device() {
        let gpu = Gpu::emulated();
        let state = HostState { params: vec![1.0f32, 2.0, 3.0], best: vec![0.0; 3], ..HostState::default() };
        let device = DeviceState::load(&gpu, &state).unwrap();
        device.keep_best(&gpu).unwrap();
        gpu.write(&device.params, &[7.0, 8.0, 9.0]).unwrap();
        assert_eq!(device.store(&gpu).unwrap().best, [1.0, 2.0, 3.0]);
        device.restore_best(&gpu).unwrap();
        let back = device.store(&gpu).unwrap();
        assert_eq!((back.params, back.m), (vec![1.0, 2.0, 3.0], vec![0.0; 3]));
    }
}
