//! The Gaussian process of Optuna's `GPSampler` (`optuna/_gp/gp.py`,
//! `prior.py`): a Matérn-5/2 kernel with one length scale per dimension
//! (ARD), Hamming distance on categorical dimensions, a kernel scale and a
//! noise variance, fitted by maximising the marginal likelihood plus
//! Optuna's log prior:
//!
//! - inverse squared length scales w: −(0.1/w + 0.1·w) each;
//! - kernel scale: Gamma(2, 1); noise variance: Gamma(1.1, 30);
//! - the noise is at least 10⁻⁶, and exactly that with
//!   `deterministic_objective`.
//!
//! The fit runs L-BFGS over the logarithms of the parameters from all ones
//! (Optuna's default start), to the same gradient tolerance (10⁻²). Optuna
//! starts each fit from the previous trial's fit when it has one; that
//! cache would make a resumed study ask other points than an uninterrupted
//! one, so every fit here starts from the default, as Optuna's does after a
//! restart. The gradients are exact (closed form), not automatic.

use super::linalg::{self, Matrix};
use super::optimize::{lbfgsb, LbfgsSettings};

/// Smallest noise variance (Optuna's `DEFAULT_MINIMUM_NOISE_VAR`).
pub const MINIMUM_NOISE: f64 = 1e-6;

/// Matérn-5/2 of a squared scaled distance t: (1 + √(5t) + 5t/3)·e^{−√(5t)}.
#[inline]
fn matern52(t: f64) -> f64 {
    let r = (5.0 * t).sqrt();
    (-r).exp() * (5.0 / 3.0 * t + r + 1.0)
}

/// d matern52 / dt = −5/6·(1 + √(5t))·e^{−√(5t)} (finite at t = 0).
#[inline]
fn matern52_dt(t: f64) -> f64 {
    let r = (5.0 * t).sqrt();
    -5.0 / 6.0 * (1.0 + r) * (-r).exp()
}

/// A fitted Gaussian process over encoded points, with its factorised
/// covariance: ready for posteriors.
#[derive(Debug, Clone)]
pub struct Gp {
    pub x: Vec<Vec<f64>>,
    pub categorical: Vec<bool>,
    /// Inverse squared length scales, one per dimension.
    pub w: Vec<f64>,
    pub scale: f64,
    /// Cholesky factor of K(X, X) + noise·I.
    pub chol: Matrix,
    /// (K + noise·I)⁻¹·y.
    pub alpha: Vec<f64>,
}

/// Per-dimension squared differences of two points: (a − b)² on numbers,
/// [a ≠ b] on categoricals.
#[inline]
fn squared_difference(a: f64, b: f64, categorical: bool) -> f64 {
    if categorical {
        f64::from(u8::from(a != b))
    } else {
        (a - b) * (a - b)
    }
}

impl Gp {
    /// Fits the kernel to (x, y) (y standardised, to be maximised).
    pub fn fit(x: Vec<Vec<f64>>, y: &[f64], categorical: Vec<bool>, deterministic: bool) -> Gp {
        let n = x.len();
        let d = categorical.len();
        // Squared differences per pair and dimension, computed once.
        let mut sqd = vec![0.0; n * n * d];
        for i in 0..n {
            for j in 0..n {
                for k in 0..d {
                    sqd[(i * n + j) * d + k] = squared_difference(x[i][k], x[j][k], categorical[k]);
                }
            }
        }
        let objective = |raw: &[f64], grad: &mut [f64]| -> f64 {
            negative_log_posterior(raw, &sqd, y, n, d, deterministic, grad)
        };
        // log w = 0, log scale = 0, log(noise − 0.99·min) so noise starts at 1.
        let mut start = vec![0.0; d + 2];
        start[d + 1] = (1.0 - 0.99 * MINIMUM_NOISE).ln();
        let settings = LbfgsSettings { pgtol: 1e-2, max_iters: 15_000, ..Default::default() };
        let fitted = lbfgsb(objective, &start, None, &settings);
        let fitted = fitted.value.is_finite().then_some(fitted.x);
        // A failed fit falls back to the default kernel with noise 1, as Optuna's does.
        fitted
            .and_then(|raw| Gp::with_raw(x.clone(), y, categorical.clone(), &raw, deterministic))
            .or_else(|| Gp::with_raw(x, y, categorical, &default_raw(d), false))
            .expect("the default kernel with noise 1 is positive definite")
    }

    /// The process with raw (log) parameters, factorised; `None` when the
    /// covariance is not positive definite.
    fn with_raw(
        x: Vec<Vec<f64>>,
        y: &[f64],
        categorical: Vec<bool>,
        raw: &[f64],
        deterministic: bool,
    ) -> Option<Gp> {
        let d = categorical.len();
        let w: Vec<f64> = raw[..d].iter().map(|r| r.exp()).collect();
        let scale = raw[d].exp();
        let noise = noise_of(raw[d + 1], deterministic);
        let n = x.len();
        let mut cov = Matrix::zeros(n);
        for i in 0..n {
            for j in 0..=i {
                let t: f64 =
                    (0..d).map(|k| w[k] * squared_difference(x[i][k], x[j][k], categorical[k])).sum();
                let c = scale * matern52(t) + if i == j { noise } else { 0.0 };
                cov.set(i, j, c);
                cov.set(j, i, c);
            }
        }
        let chol = linalg::cholesky(&cov)?;
        let mut alpha = y.to_vec();
        linalg::solve_cholesky(&chol, &mut alpha);
        Some(Gp { x, categorical, w, scale, chol, alpha })
    }

    pub fn dim(&self) -> usize {
        self.w.len()
    }

    /// Length scales 1/√w, which precondition the acquisition's search.
    pub fn length_scales(&self) -> Vec<f64> {
        self.w.iter().map(|w| 1.0 / w.sqrt()).collect()
    }

    /// k(x, b) for one point b.
    pub fn kernel(&self, x: &[f64], b: &[f64]) -> f64 {
        let t: f64 =
            (0..self.dim()).map(|k| self.w[k] * squared_difference(x[k], b[k], self.categorical[k])).sum();
        self.scale * matern52(t)
    }

    /// k(x, b) and its gradient with respect to x's dimensions `dims`
    /// (numeric dimensions only), written into `grad`.
    pub fn kernel_with_grad(&self, x: &[f64], b: &[f64], dims: &[usize], grad: &mut [f64]) -> f64 {
        let t: f64 =
            (0..self.dim()).map(|k| self.w[k] * squared_difference(x[k], b[k], self.categorical[k])).sum();
        let dk_dt = self.scale * matern52_dt(t);
        for (g, &k) in grad.iter_mut().zip(dims) {
            *g = dk_dt * 2.0 * self.w[k] * (x[k] - b[k]);
        }
        self.scale * matern52(t)
    }

    /// Posterior mean and variance at x (variance clamped at 0).
    pub fn posterior(&self, x: &[f64]) -> (f64, f64) {
        let mut k: Vec<f64> = self.x.iter().map(|b| self.kernel(x, b)).collect();
        let mean = linalg::dot(&k, &self.alpha);
        linalg::solve_lower(&self.chol, &mut k);
        let var = (self.scale - linalg::dot(&k, &k)).max(0.0);
        (mean, var)
    }

    /// Posterior mean and variance at x, with their gradients with respect
    /// to the dimensions `dims`.
    pub fn posterior_with_grad(&self, x: &[f64], dims: &[usize]) -> Posterior {
        let n = self.x.len();
        let m = dims.len();
        let mut k = vec![0.0; n];
        let mut dk = vec![0.0; n * m];
        for (i, b) in self.x.iter().enumerate() {
            k[i] = self.kernel_with_grad(x, b, dims, &mut dk[i * m..(i + 1) * m]);
        }
        let mean = linalg::dot(&k, &self.alpha);
        let mut v = k.clone();
        linalg::solve_lower(&self.chol, &mut v);
        let var_raw = self.scale - linalg::dot(&v, &v);
        linalg::solve_upper_transposed(&self.chol, &mut v); // v = C⁻¹·k
        let mut d_mean = vec![0.0; m];
        let mut d_var = vec![0.0; m];
        for i in 0..n {
            let row = &dk[i * m..(i + 1) * m];
            for c in 0..m {
                d_mean[c] += self.alpha[i] * row[c];
                d_var[c] -= 2.0 * v[i] * row[c];
            }
        }
        if var_raw <= 0.0 {
            d_var.iter_mut().for_each(|g| *g = 0.0);
        }
        Posterior { mean, var: var_raw.max(0.0), d_mean, d_var, k, dk }
    }
}

/// A posterior at one point with its gradients, and the pieces the batch
/// acquisition reuses.
#[derive(Debug, Clone)]
pub struct Posterior {
    pub mean: f64,
    pub var: f64,
    pub d_mean: Vec<f64>,
    pub d_var: Vec<f64>,
    /// k(x, X) and its gradient (n × dims, row-major).
    pub k: Vec<f64>,
    pub dk: Vec<f64>,
}

fn noise_of(raw: f64, deterministic: bool) -> f64 {
    if deterministic {
        MINIMUM_NOISE
    } else {
        raw.exp() + MINIMUM_NOISE
    }
}

fn default_raw(d: usize) -> Vec<f64> {
    let mut raw = vec![0.0; d + 2];
    raw[d + 1] = (1.0 - 0.99 * MINIMUM_NOISE).ln();
    raw
}

/// −(log marginal likelihood + log prior) at raw parameters
/// [log w₁…w_d, log scale, log(noise − min)], and its gradient; +∞ when the
/// covariance is not positive definite (the line search then steps back).
fn negative_log_posterior(
    raw: &[f64],
    sqd: &[f64],
    y: &[f64],
    n: usize,
    d: usize,
    deterministic: bool,
    grad: &mut [f64],
) -> f64 {
    let w: Vec<f64> = raw[..d].iter().map(|r| r.exp()).collect();
    let scale = raw[d].exp();
    let noise = noise_of(raw[d + 1], deterministic);
    if !(w.iter().all(|w| w.is_finite()) && scale.is_finite() && noise.is_finite()) {
        return f64::INFINITY;
    }
    // Kernel matrix and the derivative of its entries with respect to t.
    let mut cov = Matrix::zeros(n);
    let mut dk_dt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let pair = &sqd[(i * n + j) * d..(i * n + j + 1) * d];
            let t: f64 = pair.iter().zip(&w).map(|(s, w)| s * w).sum();
            let k = scale * matern52(t);
            let dk = scale * matern52_dt(t);
            cov.set(i, j, k);
            cov.set(j, i, k);
            dk_dt[i * n + j] = dk;
            dk_dt[j * n + i] = dk;
        }
    }
    let kernel = cov.clone();
    for i in 0..n {
        cov.data[i * n + i] += noise;
    }
    let Some(l) = linalg::cholesky(&cov) else { return f64::INFINITY };
    let mut u = y.to_vec();
    linalg::solve_lower(&l, &mut u);
    let log_det_half: f64 = (0..n).map(|i| l.at(i, i).ln()).sum();
    let mll = -log_det_half - 0.5 * linalg::dot(&u, &u);
    let gamma = |x: f64, concentration: f64, rate: f64| (concentration - 1.0) * x.ln() - rate * x;
    let prior =
        -w.iter().map(|w| 0.1 / w + 0.1 * w).sum::<f64>() + gamma(scale, 2.0, 1.0) + gamma(noise, 1.1, 30.0);
    let loss = -(mll + prior);
    if !loss.is_finite() {
        return f64::INFINITY;
    }

    // d mll / dθ = ½·tr(Q·∂C/∂θ), Q = α·αᵀ − C⁻¹.
    let mut alpha = u;
    linalg::solve_upper_transposed(&l, &mut alpha);
    let inv = linalg::inverse_from_cholesky(&l);
    let mut q = inv;
    for i in 0..n {
        for j in 0..n {
            q.data[i * n + j] = alpha[i] * alpha[j] - q.data[i * n + j];
        }
    }
    grad.iter_mut().for_each(|g| *g = 0.0);
    for i in 0..n {
        for j in 0..n {
            let qd = q.data[i * n + j] * dk_dt[i * n + j];
            let pair = &sqd[(i * n + j) * d..(i * n + j + 1) * d];
            for k in 0..d {
                grad[k] += qd * pair[k];
            }
        }
    }
    for k in 0..d {
        // ∂C/∂log w_k = dk/dt · sqd_k · w_k; loss = −mll − prior.
        let d_mll = 0.5 * grad[k] * w[k];
        let d_prior = 0.1 / w[k] - 0.1 * w[k];
        grad[k] = -(d_mll + d_prior);
    }
    let tr_q_k: f64 = q.data.iter().zip(&kernel.data).map(|(a, b)| a * b).sum();
    grad[d] = -(0.5 * tr_q_k + (1.0 - scale));
    grad[d + 1] = if deterministic {
        0.0
    } else {
        let raw_noise = noise - MINIMUM_NOISE;
        let tr_q: f64 = (0..n).map(|i| q.at(i, i)).sum();
        -(0.5 * tr_q * raw_noise + (0.1 / noise - 30.0) * raw_noise)
    };
    loss
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<Vec<f64>>, Vec<f64>, Vec<bool>) {
        let x: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                let a = (i as f64 * 0.37).fract();
                let b = (i as f64 * 0.61 + 0.2).fract();
                vec![a, b, (i % 3) as f64]
            })
            .collect();
        let y: Vec<f64> = x.iter().map(|p| (3.0 * p[0]).sin() + p[1] * p[1] - 0.3 * p[2]).collect();
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len() as f64).sqrt();
        (x, y.iter().map(|v| (v - mean) / sd).collect(), vec![false, false, true])
    }

    #[test]
    fn the_likelihood_gradient_is_exact() {
        let (x, y, cat) = data();
        let (n, d) = (x.len(), 3);
        let mut sqd = vec![0.0; n * n * d];
        for i in 0..n {
            for j in 0..n {
                for k in 0..d {
                    sqd[(i * n + j) * d + k] = squared_difference(x[i][k], x[j][k], cat[k]);
                }
            }
        }
        let raw = [0.3, -0.4, 0.1, 0.2, -2.0];
        let mut grad = [0.0; 5];
        negative_log_posterior(&raw, &sqd, &y, n, d, false, &mut grad);
        for p in 0..5 {
            let h = 1e-6;
            let (mut up, mut down) = (raw, raw);
            up[p] += h;
            down[p] -= h;
            let mut scratch = [0.0; 5];
            let numeric = (negative_log_posterior(&up, &sqd, &y, n, d, false, &mut scratch)
                - negative_log_posterior(&down, &sqd, &y, n, d, false, &mut scratch))
                / (2.0 * h);
            assert!(
                (numeric - grad[p]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "{p}: {numeric} vs {}",
                grad[p]
            );
        }
    }

    #[test]
    fn the_posterior_gradient_is_exact_and_the_fit_interpolates() {
        let (x, y, cat) = data();
        let gp = Gp::fit(x.clone(), &y, cat, false);
        // Near-noiseless smooth data: the posterior mean passes close to the data.
        let (mean, var) = gp.posterior(&x[4]);
        assert!((mean - y[4]).abs() < 0.1 && var < 0.05, "{mean} vs {}, var {var}", y[4]);
        let point = [0.33, 0.71, 1.0];
        let post = gp.posterior_with_grad(&point, &[0, 1]);
        for c in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (point, point);
            up[c] += h;
            down[c] -= h;
            let (mu, vu) = gp.posterior(&up);
            let (md, vd) = gp.posterior(&down);
            assert!(((mu - md) / (2.0 * h) - post.d_mean[c]).abs() < 1e-5);
            assert!(((vu - vd) / (2.0 * h) - post.d_var[c]).abs() < 1e-5);
        }
    }
}
