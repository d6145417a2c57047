//! AdamW whose state (step, first and second moments) can be saved and restored.
//!
//! The update is exactly [`crate::model::optim::AdamW`]'s (PyTorch semantics:
//! decoupled decay `p ← p·(1 − lr·wd)`, then the bias-corrected Adam step), and
//! a test checks both give bit-identical parameters; the model's optimiser
//! keeps its moments private, and a resumable run needs them.

use dfdx::prelude::*;

use crate::model::{ModelFloat, ModelParams};

#[derive(Clone, Debug)]
pub struct AdamW<E> {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
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
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
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

    /// The update on host slices: `p` parameters, `g` their gradient.
    pub fn step_slices(&mut self, p: &mut [E], g: &[E]) {
        if self.m.len() != p.len() {
            self.m = vec![E::zero(); p.len()];
            self.v = vec![E::zero(); p.len()];
        }
        self.step += 1;
        let (b1, b2) = self.betas;
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        let (lr, eps, decay) = (E::of(self.lr), E::of(self.eps), E::of(1.0 - self.lr * self.weight_decay));
        let (eb1, eb2) = (E::of(b1), E::of(b2));
        let (ec1, ec2) = (E::of(c1), E::of(c2));
        for i in 0..p.len() {
            self.m[i] = eb1 * self.m[i] + (E::one() - eb1) * g[i];
            self.v[i] = eb2 * self.v[i] + (E::one() - eb2) * g[i] * g[i];
            let mhat = self.m[i] / ec1;
            let vhat = self.v[i] / ec2;
            p[i] = p[i] * decay - lr * mhat / (vhat.sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::synthetic::random_batch;
    use crate::model::{AnisoNet, ModelConfig};

    /// Same parameters, step for step, as the model's own AdamW.
    #[test]
    fn matches_the_model_optimiser_bit_for_bit() {
        let config = ModelConfig {
            em_dim: 4,
            layers: 1,
            lmax: 1,
            mul: 2,
            num_basis: 4,
            radial_neurons: 5,
            ..Default::default()
        };
        let dev = Cpu::default();
        let mut a = AnisoNet::<f32>::new(&config, &dev, 1).unwrap();
        let mut b = AnisoNet::<f32>::new(&config, &dev, 1).unwrap();
        let mut ours = AdamW::<f32>::new(0.01, 0.03);
        let mut theirs = crate::model::optim::AdamW::<f32>::new(0.01, 0.03);
        let input = random_batch(2, 3, 4, 5, 5.0);
        let target: Tensor<(usize, Const<6>), f32, Cpu> = dev.tensor_from_vec(vec![1.5; 18], (3, Const::<6>));
        for lr in [0.01, 0.005, 0.0025] {
            ours.lr = lr;
            theirs.lr = lr;
            let pa = a.forward(&input, a.params.flat.clone().traced(Gradients::leaky())).unwrap();
            let ga = mse_loss(pa, target.clone()).backward();
            ours.update(&mut a.params, &ga);
            let pb = b.forward(&input, b.params.flat.clone().traced(Gradients::leaky())).unwrap();
            let gb = mse_loss(pb, target.clone()).backward();
            theirs.update(&mut b.params, &gb);
            assert_eq!(a.params.flat.as_vec(), b.params.flat.as_vec());
        }
        assert_eq!(ours.step, 3);
    }
}
