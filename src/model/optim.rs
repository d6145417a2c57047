//! AdamW (decoupled weight decay, PyTorch semantics) for [`ModelParams`].

use dfdx::prelude::*;

use super::kernels::Real;
use super::ModelParams;

/// `p ← p·(1 − lr·wd)`, then the bias-corrected Adam step, as `torch.optim.AdamW`.
#[derive(Clone, Debug)]
pub struct AdamW<E> {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    step: i32,
    m: Vec<E>,
    v: Vec<E>,
    /// Reused host copies of the parameters and gradient.
    p: Vec<E>,
    g: Vec<E>,
}

impl<E: Real + Dtype> AdamW<E>
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
            p: vec![],
            g: vec![],
        }
    }

    /// One step with the gradient of `params.flat` found in `grads`.
    pub fn update(&mut self, params: &mut ModelParams<E, Cpu>, grads: &Gradients<E, Cpu>) {
        let n = params.flat.shape().0;
        if self.m.len() != n {
            self.m = vec![E::zero(); n];
            self.v = vec![E::zero(); n];
            self.p = vec![E::zero(); n];
            self.g = vec![E::zero(); n];
        }
        grads.get(&params.flat).copy_into(&mut self.g);
        params.flat.copy_into(&mut self.p);
        let (p, g) = (&mut self.p, &self.g);
        self.step += 1;
        let (b1, b2) = self.betas;
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
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
        params.flat.copy_from(p);
    }
}
