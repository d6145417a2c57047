//! AdamW whose state (step, first and second moments) can be saved and restored.
//!
//! PyTorch semantics: decoupled decay `p ← p·(1 − lr·wd)`, then the
//! bias-corrected Adam step. The state is public so checkpoints can save it
//! and a resumed run continues bit for bit.

use dfdx::prelude::*;

use crate::model::{AdamSettings, AdamStep, ModelFloat, ModelParams};

#[derive(Clone, Debug)]
pub struct AdamW<E> {
    pub settings: AdamSettings,
    /// Steps taken so far.
    pub step: u64,
    /// First and second moment per parameter (empty before the first step).
    pub m: Vec<E>,
    pub v: Vec<E>,
    /// Reused host copies of the parameters and their gradient (not state).
    host_p: Vec<E>,
    host_g: Vec<E>,
}

impl<E: ModelFloat> AdamW<E>
where
    Cpu: Device<E>,
{
    pub fn new(lr: f64, weight_decay: f64) -> AdamW<E> {
        AdamW {
            settings: AdamSettings::new(lr, weight_decay),
            step: 0,
            m: vec![],
            v: vec![],
            host_p: vec![],
            host_g: vec![],
        }
    }

    /// One step with the gradient of `params.flat` found in `grads`.
    pub fn update(&mut self, params: &mut ModelParams<E, Cpu>, grads: &Gradients<E, Cpu>) {
        let n = params.flat.shape().0;
        let (mut p, mut g) = (std::mem::take(&mut self.host_p), std::mem::take(&mut self.host_g));
        p.resize(n, E::zero());
        g.resize(n, E::zero());
        grads.get(&params.flat).copy_into(&mut g);
        params.flat.copy_into(&mut p);
        self.step_slices(&mut p, &g);
        params.flat.copy_from(&p);
        (self.host_p, self.host_g) = (p, g);
    }

    /// Counts a step and returns its settings, for an update that runs
    /// where the parameters live (a device's AdamW kernels).
    pub fn next_step(&mut self) -> AdamStep {
        self.step += 1;
        AdamStep { settings: self.settings, step: self.step }
    }

    /// The factor that brings `g` to at most `max_grad_norm` (1 when within it).
    /// The norm is summed in f64 in index order: the same on every run.
    pub fn clip_scale(&self, g: &[E]) -> f64 {
        let Some(max) = self.settings.max_grad_norm else { return 1.0 };
        let norm = g.iter().map(|v| v.to64() * v.to64()).sum::<f64>().sqrt();
        if norm > max {
            max / norm
        } else {
            1.0
        }
    }

    /// The update on host slices: `p` parameters, `g` their gradient.
    pub fn step_slices(&mut self, p: &mut [E], g: &[E]) {
        if self.m.len() != p.len() {
            self.m = vec![E::zero(); p.len()];
            self.v = vec![E::zero(); p.len()];
        }
        self.step += 1;
        let AdamSettings { lr, betas: (b1, b2), eps, weight_decay, .. } = self.settings;
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        let (lr, eps, decay) = (E::of(lr), E::of(eps), E::of(1.0 - lr * weight_decay));
        let (eb1, eb2) = (E::of(b1), E::of(b2));
        let (ec1, ec2) = (E::of(c1), E::of(c2));
        let scale = E::of(self.clip_scale(g));
        for i in 0..p.len() {
            let gi = g[i] * scale;
            self.m[i] = eb1 * self.m[i] + (E::one() - eb1) * gi;
            self.v[i] = eb2 * self.v[i] + (E::one() - eb2) * gi * gi;
            let mhat = self.m[i] / ec1;
            let vhat = self.v[i] / ec2;
            p[i] = p[i] * decay - lr * mhat / (vhat.sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on one parameter against PyTorch's AdamW written out by hand.
    #[test]
    fn matches_pytorch_adamw() {
        let mut opt = AdamW::<f64>::new(0.1, 0.01);
        let mut p = [1.0];
        opt.step_slices(&mut p, &[0.5]);
        // decay: 1·(1 − 0.1·0.01); m̂ = 0.5, v̂ = 0.25 → step 0.1·0.5/(0.5 + 1e-8)
        let p1 = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8);
        assert!((p[0] - p1).abs() < 1e-15, "{} vs {p1}", p[0]);
        opt.step_slices(&mut p, &[-0.25]);
        let (m, v) = (0.9 * 0.05 + 0.1 * -0.25, 0.999 * 0.00025 + 0.001 * 0.0625);
        let (mhat, vhat) = (m / (1.0 - 0.81), v / (1.0 - 0.999f64.powi(2)));
        let p2 = p1 * 0.999 - 0.1 * mhat / (vhat.sqrt() + 1e-8);
        assert!((p[0] - p2).abs() < 1e-15, "{} vs {p2}", p[0]);
        assert_eq!(opt.step, 2);
    }

    /// Clipping scales the whole gradient to the limit before the moments
    /// (as `torch.nn.utils.clip_grad_norm_` followed by AdamW) and leaves
    /// gradients within the limit untouched.
    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut clipped = AdamW::<f64>::new(0.1, 0.0);
        clipped.settings.max_grad_norm = Some(1.0);
        let mut plain = AdamW::<f64>::new(0.1, 0.0);
        let (mut p, mut q) = ([1.0, 2.0], [1.0, 2.0]);
        clipped.step_slices(&mut p, &[30.0, 40.0]);
        plain.step_slices(&mut q, &[0.6, 0.8]);
        assert_eq!((p, &clipped.m, &clipped.v), (q, &plain.m, &plain.v));
        assert_eq!(clipped.clip_scale(&[0.3, 0.4]), 1.0);
        assert_eq!(plain.clip_scale(&[300.0, 400.0]), 1.0);
    }
}
