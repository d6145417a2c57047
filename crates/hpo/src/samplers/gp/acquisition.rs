//! Acquisition functions (`optuna/_gp/acqf.py`), on standardised values to
//! be maximised:
//!
//! - [`LogEi`]: log expected improvement over the best value, computed
//!   stably far below it (Ament et al. 2023, "Unexpected improvements to
//!   expected improvement", eq. 9);
//! - [`QLogEi`]: with trials still running, the batch (q) log expected
//!   improvement of the candidate *together with* the running trials, by
//!   quasi-Monte Carlo over joint posterior samples: the running trials'
//!   values are drawn once (128 fantasies), and the candidate is scored by
//!   the mean over fantasies of the best improvement in the batch. A point
//!   next to a running trial gains little, since that trial's fantasy
//!   already holds most of its improvement: the batch spreads out as
//!   Optuna 5's `qLogEI` does (sequential greedy, not a joint optimisation).
//!
//! - [`ConstrainedLogEi`]: with constraints, log EI over the best
//!   *feasible* value plus, per constraint, the log probability that its
//!   process is feasible (Optuna's `ConstrainedLogEI`: a sum of log PIs);
//!   before any trial is feasible, the log probabilities alone.
//!
//! Log EHVI for several objectives would be a further implementation of
//! [`Acquisition`] over one [`Gp`] per objective.

use statrs::function::erf::{erf_inv, erfc};

use super::linalg::{self, Matrix};
use super::optimize::{self, Acquisition};
use super::regressor::Gp;

/// Added to variances before their square root (Optuna's `stabilizing_noise`).
const STABILIZING_NOISE: f64 = 1e-12;
/// Smallest improvement whose log is taken in the batch acquisition.
const EPS: f64 = 1e-12;
const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// log h(z) with h(z) = E[max(0, x + z)], x ~ N(0, 1) = z·Φ(z) + φ(z), and
/// its derivative Φ(z)/h(z).
pub fn log_h(z: f64) -> (f64, f64) {
    if z >= -25.0 {
        let cdf = 0.5 * erfc(-SQRT_HALF * z);
        let h = z * cdf + (-0.5 * z * z).exp() * INV_SQRT_2PI;
        (h.ln(), cdf / h)
    } else {
        // h = φ(z)·a(z), a(z) = 1 + z·Φ(z)/φ(z) = Σ_{k≥1} (−1)^{k+1}(2k−1)!!/z^{2k}
        // (the asymptotic series, converged to rounding for z < −25), and
        // Φ/h = −(1 − a)/(z·a).
        let inv_z2 = 1.0 / (z * z);
        let (mut a, mut term) = (0.0, 1.0);
        for k in 1..=8 {
            term *= (2 * k - 1) as f64 * inv_z2;
            a += if k % 2 == 1 { term } else { -term };
        }
        (-0.5 * z * z - LOG_SQRT_2PI + a.ln(), -(1.0 - a) / (z * a))
    }
}

/// Log expected improvement over `threshold`.
pub struct LogEi<'a> {
    pub gp: &'a Gp,
    pub threshold: f64,
}

impl LogEi<'_> {
    fn of(&self, mean: f64, var: f64) -> (f64, f64, f64) {
        let sigma = (var + STABILIZING_NOISE).sqrt();
        let z = (mean - self.threshold) / sigma;
        let (log_h, dlog_h) = log_h(z);
        // d/dmean and d/dvar of log h(z) + log σ.
        let d_mean = dlog_h / sigma;
        let d_var = (1.0 - dlog_h * z) / (2.0 * sigma * sigma);
        (log_h + sigma.ln(), d_mean, d_var)
    }
}

impl Acquisition for LogEi<'_> {
    fn value(&self, x: &[f64]) -> f64 {
        let (mean, var) = self.gp.posterior(x);
        self.of(mean, var).0
    }

    fn value_with_grad(&self, x: &[f64], dims: &[usize], grad: &mut [f64]) -> f64 {
        let post = self.gp.posterior_with_grad(x, dims);
        let (value, d_mean, d_var) = self.of(post.mean, post.var);
        for (c, g) in grad.iter_mut().enumerate() {
            *g = d_mean * post.d_mean[c] + d_var * post.d_var[c];
        }
        value
    }
}

/// log Φ(z) and its derivative φ(z)/Φ(z), stable far into the lower tail
/// (there Φ(z) = φ(z)/(−z)·Σ_k (−1)^k (2k−1)!!/z^{2k}, the asymptotic series).
pub fn log_cdf(z: f64) -> (f64, f64) {
    if z >= -25.0 {
        let cdf = 0.5 * erfc(-SQRT_HALF * z);
        (cdf.ln(), (-0.5 * z * z).exp() * INV_SQRT_2PI / cdf)
    } else {
        let inv_z2 = 1.0 / (z * z);
        let (mut series, mut term) = (1.0, 1.0);
        for k in 1..=8 {
            term *= (2 * k - 1) as f64 * inv_z2;
            series += if k % 2 == 1 { -term } else { term };
        }
        (-0.5 * z * z - LOG_SQRT_2PI - (-z).ln() + series.ln(), -z / series)
    }
}

/// Log probability that a process lies above `threshold` (log PI).
pub struct LogPi<'a> {
    pub gp: &'a Gp,
    pub threshold: f64,
}

impl LogPi<'_> {
    fn of(&self, mean: f64, var: f64) -> (f64, f64, f64) {
        let sigma = (var + STABILIZING_NOISE).sqrt();
        let z = (mean - self.threshold) / sigma;
        let (log_cdf, dlog_cdf) = log_cdf(z);
        (log_cdf, dlog_cdf / sigma, -dlog_cdf * z / (2.0 * sigma * sigma))
    }
}

/// Log EI over the best feasible value (none before a trial is feasible)
/// plus the log probability of each constraint being met. With running
/// trials the objective's part is the batch [`QLogEi`]; the constraints'
/// part stays the candidate's own probability (Optuna 5's `qLogCEI` also
/// fantasises the running trials' feasibility).
pub struct ConstrainedLogEi<'a> {
    pub objective: Option<&'a dyn Acquisition>,
    /// One per constraint, over its sign-flipped standardised values, with
    /// the standardised zero as threshold.
    pub constraints: Vec<LogPi<'a>>,
}

impl Acquisition for ConstrainedLogEi<'_> {
    fn value(&self, x: &[f64]) -> f64 {
        let objective = self.objective.as_ref().map_or(0.0, |ei| ei.value(x));
        let feasible: f64 = self
            .constraints
            .iter()
            .map(|pi| {
                let (mean, var) = pi.gp.posterior(x);
                pi.of(mean, var).0
            })
            .sum();
        objective + feasible
    }

    fn value_with_grad(&self, x: &[f64], dims: &[usize], grad: &mut [f64]) -> f64 {
        let mut total = match &self.objective {
            Some(ei) => ei.value_with_grad(x, dims, grad),
            None => {
                grad.fill(0.0);
                0.0
            }
        };
        for pi in &self.constraints {
            let post = pi.gp.posterior_with_grad(x, dims);
            let (value, d_mean, d_var) = pi.of(post.mean, post.var);
            for (c, g) in grad.iter_mut().enumerate() {
                *g += d_mean * post.d_mean[c] + d_var * post.d_var[c];
            }
            total += value;
        }
        total
    }
}

/// Batch log expected improvement of a candidate with the running trials.
pub struct QLogEi<'a> {
    gp: &'a Gp,
    threshold: f64,
    running: Vec<Vec<f64>>,
    /// Standard normal QMC draws for the candidate, one per fantasy.
    candidate_draws: Vec<f64>,
    /// Best log improvement among the running trials' fantasies, per fantasy.
    running_best: Vec<f64>,
    /// Posterior covariance of the running trials (factorised).
    cov_rr: Matrix,
    /// Per fantasy: cov_rr⁻¹·(fantasy − posterior mean).
    beta: Vec<Vec<f64>>,
    /// (K + noise·I)⁻¹·K(X, X_running), n × r.
    v_r: Vec<Vec<f64>>,
}

impl<'a> QLogEi<'a> {
    pub fn new(gp: &'a Gp, threshold: f64, running: Vec<Vec<f64>>, fantasies: u32, qmc_seed: u32) -> Self {
        let r = running.len();
        let n = gp.x.len();
        // Posterior mean and covariance at the running points.
        let mut v_r = vec![vec![0.0; r]; n];
        let mut mean_r = vec![0.0; r];
        let mut inv_l_k = Vec::with_capacity(r);
        for (j, xr) in running.iter().enumerate() {
            let mut k: Vec<f64> = gp.x.iter().map(|b| gp.kernel(xr, b)).collect();
            mean_r[j] = linalg::dot(&k, &gp.alpha);
            linalg::solve_lower(&gp.chol, &mut k);
            inv_l_k.push(k.clone());
            linalg::solve_upper_transposed(&gp.chol, &mut k);
            for i in 0..n {
                v_r[i][j] = k[i];
            }
        }
        let mut cov = Matrix::zeros(r);
        for a in 0..r {
            for b in 0..=a {
                let c = gp.kernel(&running[a], &running[b]) - linalg::dot(&inv_l_k[a], &inv_l_k[b]);
                cov.set(a, b, c);
                cov.set(b, a, c);
            }
        }
        // Optuna adds 10⁻¹²; running trials at one point need more to factorise.
        let cov_rr = [STABILIZING_NOISE, 1e-10, 1e-8, 1e-6, 1e-4]
            .iter()
            .find_map(|&jitter| {
                let mut c = cov.clone();
                (0..r).for_each(|i| c.data[i * r + i] += jitter);
                linalg::cholesky(&c)
            })
            .unwrap_or_else(|| {
                let mut c = Matrix::zeros(r);
                (0..r).for_each(|i| c.set(i, i, gp.scale.sqrt()));
                c
            });
        let mut candidate_draws = Vec::with_capacity(fantasies as usize);
        let mut running_best = Vec::with_capacity(fantasies as usize);
        let mut beta = Vec::with_capacity(fantasies as usize);
        for s in 0..fantasies {
            let z: Vec<f64> = (0..=r as u32).map(|k| normal(optimize::sobol(s, k, qmc_seed))).collect();
            // fantasy = mean + L·z.
            let delta: Vec<f64> = (0..r).map(|a| (0..=a).map(|b| cov_rr.at(a, b) * z[b]).sum()).collect();
            let best = (0..r)
                .map(|a| (mean_r[a] + delta[a] - threshold).max(EPS).ln())
                .fold(f64::NEG_INFINITY, f64::max);
            let mut b = delta;
            linalg::solve_cholesky(&cov_rr, &mut b);
            candidate_draws.push(z[r]);
            running_best.push(best);
            beta.push(b);
        }
        QLogEi { gp, threshold, running, candidate_draws, running_best, cov_rr, beta, v_r }
    }

    /// Per fantasy the candidate's conditional sample, and (with `dims`)
    /// its gradient; returns the acquisition and writes the gradient.
    fn evaluate(&self, x: &[f64], dims: &[usize], grad: Option<&mut [f64]>) -> f64 {
        let m = dims.len();
        let r = self.running.len();
        let post = self.gp.posterior_with_grad(x, dims);
        // Posterior cross-covariance c_j = k(x, x_j) − k(x, X)·V_r[:, j] and its gradient.
        let mut c = vec![0.0; r];
        let mut dc = vec![0.0; r * m];
        let mut dkr = vec![0.0; m];
        for (j, xr) in self.running.iter().enumerate() {
            c[j] = self.gp.kernel_with_grad(x, xr, dims, &mut dkr);
            dc[j * m..(j + 1) * m].copy_from_slice(&dkr);
        }
        for (i, row) in self.v_r.iter().enumerate() {
            let dk = &post.dk[i * m..(i + 1) * m];
            for j in 0..r {
                c[j] -= post.k[i] * row[j];
                for q in 0..m {
                    dc[j * m + q] -= dk[q] * row[j];
                }
            }
        }
        let mut w = c.clone();
        linalg::solve_cholesky(&self.cov_rr, &mut w);
        let cond_var_raw = post.var + STABILIZING_NOISE - linalg::dot(&c, &w);
        let cond_var = cond_var_raw.max(0.0);
        let sigma = cond_var.sqrt();
        let s_count = self.candidate_draws.len();
        let mut best = Vec::with_capacity(s_count);
        let mut samples = Vec::with_capacity(s_count);
        for s in 0..s_count {
            let y = post.mean + linalg::dot(&c, &self.beta[s]) + sigma * self.candidate_draws[s];
            let u = (y - self.threshold).max(EPS).ln();
            samples.push((y, u));
            best.push(u.max(self.running_best[s]));
        }
        let top = best.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = best.iter().map(|b| (b - top).exp()).sum();
        let value = top + sum.ln() - (s_count as f64).ln();
        if let Some(grad) = grad {
            // d cond_var = d var − 2·Σ_j w_j·d c_j.
            let mut d_var = post.d_var.clone();
            for j in 0..r {
                for q in 0..m {
                    d_var[q] -= 2.0 * w[j] * dc[j * m + q];
                }
            }
            let d_sigma: Vec<f64> = if cond_var_raw > 0.0 && sigma > 0.0 {
                d_var.iter().map(|d| d / (2.0 * sigma)).collect()
            } else {
                vec![0.0; m]
            };
            grad.iter_mut().for_each(|g| *g = 0.0);
            for s in 0..s_count {
                let (y, u) = samples[s];
                let improvement = y - self.threshold;
                if !(u > self.running_best[s] && improvement > EPS) {
                    continue;
                }
                let weight = (best[s] - top).exp() / sum / improvement;
                for q in 0..m {
                    let dc_beta: f64 = (0..r).map(|j| dc[j * m + q] * self.beta[s][j]).sum();
                    let dy = post.d_mean[q] + dc_beta + self.candidate_draws[s] * d_sigma[q];
                    grad[q] += weight * dy;
                }
            }
        }
        value
    }
}

impl Acquisition for QLogEi<'_> {
    fn value(&self, x: &[f64]) -> f64 {
        self.evaluate(x, &[], None)
    }

    fn value_with_grad(&self, x: &[f64], dims: &[usize], grad: &mut [f64]) -> f64 {
        self.evaluate(x, dims, Some(grad))
    }
}

/// The standard normal quantile of u ∈ (0, 1).
fn normal(u: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(2.0 * u - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_h_is_continuous_and_its_derivative_exact() {
        for z in [-40.0, -25.5, -24.5, -3.0, 0.0, 2.0] {
            let (v, d) = log_h(z);
            let h = 1e-6;
            let numeric = (log_h(z + h).0 - log_h(z - h).0) / (2.0 * h);
            assert!((numeric - d).abs() < 1e-5 * (1.0 + d.abs()), "z {z}: {numeric} vs {d}");
            assert!(v.is_finite());
        }
        // Both branches agree at the switch.
        let below = log_h(-25.0 - 1e-9).0;
        let above = log_h(-25.0).0;
        assert!((below - above).abs() < 1e-6, "{below} vs {above}");
    }

    fn gp() -> Gp {
        let x: Vec<Vec<f64>> =
            (0..10).map(|i| vec![(i as f64 * 0.37).fract(), (i as f64 * 0.73).fract()]).collect();
        let y: Vec<f64> = x.iter().map(|p| -(p[0] - 0.4).powi(2) - (p[1] - 0.6).powi(2)).collect();
        let mean = y.iter().sum::<f64>() / 10.0;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 10.0).sqrt();
        Gp::fit(x, &y.iter().map(|v| (v - mean) / sd).collect::<Vec<_>>(), vec![false, false], false)
    }

    fn check_gradient(acq: &dyn Acquisition, point: [f64; 2]) {
        let mut grad = [0.0; 2];
        acq.value_with_grad(&point, &[0, 1], &mut grad);
        for c in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (point, point);
            up[c] += h;
            down[c] -= h;
            let numeric = (acq.value(&up) - acq.value(&down)) / (2.0 * h);
            assert!(
                (numeric - grad[c]).abs() < 1e-4 * (1.0 + numeric.abs()),
                "{c}: {numeric} vs {}",
                grad[c]
            );
        }
    }

    #[test]
    fn acquisition_gradients_are_exact() {
        let gp = gp();
        let threshold = 1.2;
        check_gradient(&LogEi { gp: &gp, threshold }, [0.42, 0.55]);
        let q = QLogEi::new(&gp, threshold, vec![vec![0.4, 0.6], vec![0.9, 0.1]], 128, 7);
        check_gradient(&q, [0.47, 0.52]);
        let ei = LogEi { gp: &gp, threshold };
        let constrained = ConstrainedLogEi {
            objective: Some(&ei),
            constraints: vec![LogPi { gp: &gp, threshold: 0.3 }, LogPi { gp: &gp, threshold: 2.5 }],
        };
        check_gradient(&constrained, [0.47, 0.52]);
        check_gradient(&ConstrainedLogEi { objective: None, ..constrained }, [0.1, 0.9]);
    }

    #[test]
    fn log_cdf_is_continuous_and_its_derivative_exact() {
        for z in [-60.0, -25.5, -24.5, -3.0, 0.0, 4.0] {
            let (v, d) = log_cdf(z);
            let h = 1e-6;
            let numeric = (log_cdf(z + h).0 - log_cdf(z - h).0) / (2.0 * h);
            assert!((numeric - d).abs() < 1e-5 * (1.0 + d.abs()), "z {z}: {numeric} vs {d}");
            assert!(v.is_finite() && v <= 0.0);
        }
        let (below, above) = (log_cdf(-25.0 - 1e-9).0, log_cdf(-25.0).0);
        assert!((below - above).abs() < 1e-6, "{below} vs {above}");
        assert!((log_cdf(0.0).0 - 0.5f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn the_batch_moves_away_from_a_running_trial() {
        let gp = gp();
        let threshold = 1.2;
        let grid: Vec<[f64; 2]> =
            (0..=40).flat_map(|i| (0..=40).map(move |j| [i as f64 / 40.0, j as f64 / 40.0])).collect();
        let argmax = |acq: &dyn Acquisition| {
            *grid.iter().max_by(|a, b| acq.value(&a[..]).total_cmp(&acq.value(&b[..]))).unwrap()
        };
        let best = argmax(&LogEi { gp: &gp, threshold });
        let batch = QLogEi::new(&gp, threshold, vec![best.to_vec()], 128, 3);
        let next = argmax(&batch);
        let distance = ((next[0] - best[0]).powi(2) + (next[1] - best[1]).powi(2)).sqrt();
        assert!(distance > 0.05, "{best:?} then {next:?}");
    }
}
