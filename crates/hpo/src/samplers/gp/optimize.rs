//! Maximising the acquisition function over a mixed space, as Optuna's
//! `optimize_acqf_mixed` does (`optuna/_gp/optim_mixed.py`):
//!
//! 1. 2,048 quasi-random (Owen-scrambled Sobol) points are scored;
//! 2. local searches start from the best of them, from 8 more drawn by a
//!    roulette weighted by exp(acquisition − best), and from the best trial
//!    so far (10 in all);
//! 3. each local search alternates L-BFGS-B over the continuous dimensions
//!    (in units of their length scales, which makes the problem well
//!    conditioned) with a search over each discrete dimension: every value
//!    when it has at most 16 (and always for categoricals), a golden-section
//!    search over its grid otherwise; it stops when a round changes nothing;
//! 4. the best point of all searches wins.
//!
//! The L-BFGS-B here is a projected L-BFGS with an Armijo backtracking line
//! search along the projected path: it keeps scipy's memory (10 pairs) and
//! stopping rules (projected gradient, relative decrease 2.2·10⁻⁹, an
//! iteration cap) without porting its Fortran. The golden-section search
//! stands in for Optuna's Brent search on the piecewise-linear interpolation
//! of a large integer grid: both look at O(log n) grid points.

use rand::RngCore;

use super::space::EncodedSpace;
use crate::rng;

/// A function to maximise over encoded points.
pub trait Acquisition {
    fn value(&self, x: &[f64]) -> f64;
    /// The value and its gradient with respect to the dimensions `dims`.
    fn value_with_grad(&self, x: &[f64], dims: &[usize], grad: &mut [f64]) -> f64;
}

/// Stopping rules of [`lbfgsb`].
#[derive(Debug, Clone, Copy)]
pub struct LbfgsSettings {
    /// Stop when every projected gradient component is at most this.
    pub pgtol: f64,
    /// Stop when a step lowers f by at most this, relative.
    pub ftol: f64,
    pub max_iters: usize,
    /// Correction pairs kept.
    pub memory: usize,
}

impl Default for LbfgsSettings {
    fn default() -> Self {
        Self { pgtol: 1e-5, ftol: 2.220446049250313e-9, max_iters: 15_000, memory: 10 }
    }
}

/// The result of [`lbfgsb`].
#[derive(Debug, Clone)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
}

/// Minimises `f` (value, gradient written into its second argument) from
/// `x0`, within `bounds` when given.
pub fn lbfgsb(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: &[f64],
    bounds: Option<&[(f64, f64)]>,
    settings: &LbfgsSettings,
) -> Minimum {
    let n = x0.len();
    let project = |x: &mut [f64]| {
        if let Some(bounds) = bounds {
            for (xi, &(lo, hi)) in x.iter_mut().zip(bounds) {
                *xi = xi.clamp(lo, hi);
            }
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut memory: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut iterations = 0;
    if !fx.is_finite() {
        return Minimum { x, value: fx, iterations };
    }
    let mut g_new = vec![0.0; n];
    while iterations < settings.max_iters {
        // Components held at a bound by the gradient are fixed this step.
        let fixed: Vec<bool> = (0..n)
            .map(|i| match bounds {
                Some(b) => (x[i] <= b[i].0 && g[i] > 0.0) || (x[i] >= b[i].1 && g[i] < 0.0),
                None => false,
            })
            .collect();
        let pg: Vec<f64> = (0..n).map(|i| if fixed[i] { 0.0 } else { g[i] }).collect();
        if pg.iter().all(|v| v.abs() <= settings.pgtol) {
            break;
        }
        let mut direction = two_loop(&pg, &memory);
        for i in 0..n {
            if fixed[i] {
                direction[i] = 0.0;
            }
        }
        let mut slope: f64 = direction.iter().zip(&g).map(|(d, g)| d * g).sum();
        if slope.is_nan() || slope >= 0.0 {
            memory.clear();
            direction = pg.iter().map(|v| -v).collect();
            slope = direction.iter().zip(&g).map(|(d, g)| d * g).sum();
        }
        let mut step = if memory.is_empty() {
            (1.0 / pg.iter().map(|v| v * v).sum::<f64>().sqrt()).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..40 {
            let mut candidate: Vec<f64> = x.iter().zip(&direction).map(|(x, d)| x + step * d).collect();
            project(&mut candidate);
            let moved: f64 = candidate.iter().zip(&x).zip(&g).map(|((c, x), g)| (c - x) * g).sum();
            if moved == 0.0 && candidate == x {
                break;
            }
            let f_candidate = f(&candidate, &mut g_new);
            if f_candidate.is_finite() && f_candidate <= fx + 1e-4 * moved {
                accepted = Some((candidate, f_candidate));
                break;
            }
            step *= 0.5;
        }
        let Some((x_new, f_new)) = accepted else { break };
        iterations += 1;
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-10 * y.iter().map(|v| v * v).sum::<f64>() {
            if memory.len() == settings.memory {
                memory.pop_front();
            }
            memory.push_back((s, y, 1.0 / sy));
        }
        let decrease = (fx - f_new) / fx.abs().max(f_new.abs()).max(1.0);
        x = x_new;
        fx = f_new;
        std::mem::swap(&mut g, &mut g_new);
        if decrease <= settings.ftol {
            break;
        }
    }
    Minimum { x, value: fx, iterations }
}

/// −H·g by the L-BFGS two-loop recursion over the stored pairs.
fn two_loop(g: &[f64], memory: &std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(memory.len());
    for (s, y, rho) in memory.iter().rev() {
        let a = rho * s.iter().zip(&q).map(|(s, q)| s * q).sum::<f64>();
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
        alphas.push(a);
    }
    if let Some((s, y, _)) = memory.back() {
        let gamma = s.iter().zip(y).map(|(s, y)| s * y).sum::<f64>() / y.iter().map(|y| y * y).sum::<f64>();
        q.iter_mut().for_each(|q| *q *= gamma);
    }
    for ((s, y, rho), a) in memory.iter().zip(alphas.into_iter().rev()) {
        let b = rho * y.iter().zip(&q).map(|(y, q)| y * q).sum::<f64>();
        q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
    }
    q.iter_mut().for_each(|q| *q = -*q);
    q
}

/// How the acquisition is searched (Optuna's defaults).
#[derive(Debug, Clone, Copy)]
pub struct SearchSettings {
    pub preliminary_samples: u32,
    pub local_searches: usize,
    pub tol: f64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self { preliminary_samples: 2048, local_searches: 10, tol: 1e-4 }
    }
}

/// Discrete dimensions with at most this many values are searched exhaustively.
const EXHAUSTIVE_UP_TO: usize = 16;

/// The point of `space` that maximises `acq`, and its value.
pub fn maximise(
    acq: &dyn Acquisition,
    space: &EncodedSpace<'_>,
    length_scales: &[f64],
    warm_starts: &[Vec<f64>],
    settings: &SearchSettings,
    rng: &mut impl RngCore,
) -> (Vec<f64>, f64) {
    let d = space.len();
    let sobol_seed = rng.next_u32();
    let samples: Vec<Vec<f64>> = (0..settings.preliminary_samples)
        .map(|i| {
            let u: Vec<f64> = (0..d).map(|k| sobol(i, k as u32, sobol_seed)).collect();
            space.point_from_uniform(&u)
        })
        .collect();
    let values: Vec<f64> = samples.iter().map(|x| acq.value(x)).collect();
    let best = first_argmax(&values);

    // Roulette over the rest, weights exp(f − f_best), without replacement.
    let mut weights: Vec<f64> = values.iter().map(|v| (v - values[best]).exp()).collect();
    weights[best] = 0.0;
    weights.iter_mut().for_each(|w| {
        if !w.is_finite() {
            *w = 0.0
        }
    });
    let nonzero = weights.iter().filter(|&&w| w > 0.0).count();
    let additional = settings.local_searches.saturating_sub(warm_starts.len() + 1).min(nonzero);
    let mut starts = vec![samples[best].clone()];
    for _ in 0..additional {
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0.0;
        for w in &weights {
            total += w;
            cumulative.push(total);
        }
        if total.is_nan() || total <= 0.0 {
            break;
        }
        let i = rng::weighted_index(rng, &cumulative);
        weights[i] = 0.0;
        starts.push(samples[i].clone());
    }
    starts.extend(warm_starts.iter().cloned());

    let continuous = space.continuous();
    let discrete = space.discrete();
    let scales: Vec<f64> = continuous.iter().map(|&k| length_scales[k]).collect();
    let mut best_point = starts[0].clone();
    let mut best_value = f64::NEG_INFINITY;
    for start in starts {
        let value = acq.value(&start);
        let (x, f) = local_search(acq, start, value, &continuous, &scales, &discrete, settings.tol);
        if f > best_value {
            best_value = f;
            best_point = x;
        }
    }
    (best_point, best_value)
}

/// One dimension of one Sobol point, in (0, 1).
pub fn sobol(index: u32, dimension: u32, seed: u32) -> f64 {
    // sobol_burley has 256 dimensions per seed; further ones take another seed.
    let per_seed = sobol_burley::NUM_DIMENSIONS;
    let seed = seed.wrapping_add((dimension / per_seed).wrapping_mul(0x9E37_79B9));
    let u = f64::from(sobol_burley::sample(index, dimension % per_seed, seed));
    u.clamp(0.5 / (1u64 << 24) as f64, 1.0 - 0.5 / (1u64 << 24) as f64)
}

fn first_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] || (values[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Alternating continuous and discrete improvement from `x` until a round
/// changes nothing (Optuna's `local_search_mixed`, at most 100 rounds).
fn local_search(
    acq: &dyn Acquisition,
    mut x: Vec<f64>,
    mut f: f64,
    continuous: &[usize],
    scales: &[f64],
    discrete: &[(usize, Vec<f64>)],
    tol: f64,
) -> (Vec<f64>, f64) {
    const CONTINUOUS: usize = usize::MAX;
    let mut last_changed = CONTINUOUS;
    for _ in 0..100 {
        if gradient_ascent(acq, &mut x, &mut f, continuous, scales, tol) {
            last_changed = CONTINUOUS;
        }
        for (dim, values) in discrete {
            if last_changed == *dim {
                return (x, f);
            }
            if discrete_search(acq, &mut x, &mut f, *dim, values) {
                last_changed = *dim;
            }
        }
        if last_changed == CONTINUOUS {
            return (x, f);
        }
    }
    (x, f)
}

/// L-BFGS-B over the continuous dimensions in units of their length
/// scales; true when it improved `f`.
fn gradient_ascent(
    acq: &dyn Acquisition,
    x: &mut [f64],
    f: &mut f64,
    continuous: &[usize],
    scales: &[f64],
    tol: f64,
) -> bool {
    if continuous.is_empty() {
        return false;
    }
    let z0: Vec<f64> = continuous.iter().zip(scales).map(|(&k, s)| x[k] / s).collect();
    let bounds: Vec<(f64, f64)> = scales.iter().map(|s| (0.0, 1.0 / s)).collect();
    let mut point = x.to_vec();
    let mut grad = vec![0.0; continuous.len()];
    let objective = |z: &[f64], g: &mut [f64]| -> f64 {
        for ((&k, s), zi) in continuous.iter().zip(scales).zip(z) {
            point[k] = zi * s;
        }
        let value = acq.value_with_grad(&point, continuous, &mut grad);
        for ((gi, dg), s) in g.iter_mut().zip(&grad).zip(scales) {
            *gi = -dg * s;
        }
        if value.is_nan() {
            f64::INFINITY
        } else {
            -value
        }
    };
    let settings = LbfgsSettings { pgtol: tol.sqrt(), max_iters: 200, ..Default::default() };
    let result = lbfgsb(objective, &z0, Some(&bounds), &settings);
    let value = -result.value;
    if result.iterations > 0 && value > *f {
        for ((&k, s), zi) in continuous.iter().zip(scales).zip(&result.x) {
            x[k] = (zi * s).clamp(0.0, 1.0);
        }
        *f = value;
        true
    } else {
        false
    }
}

/// The best value of one discrete dimension with the others fixed; true
/// when it improved `f`.
fn discrete_search(acq: &dyn Acquisition, x: &mut [f64], f: &mut f64, dim: usize, values: &[f64]) -> bool {
    if values.len() < 2 {
        return false;
    }
    let current = x[dim];
    let mut probe = x.to_vec();
    let mut eval = |value: f64| {
        probe[dim] = value;
        acq.value(&probe)
    };
    let (best_value, best_f) = if values.len() <= EXHAUSTIVE_UP_TO {
        let mut best = (current, *f);
        for &v in values.iter().filter(|&&v| v != current) {
            let fv = eval(v);
            if fv > best.1 {
                best = (v, fv);
            }
        }
        best
    } else {
        golden_section(values, &mut eval)
    };
    if best_value != current && best_f > *f {
        x[dim] = best_value;
        *f = best_f;
        true
    } else {
        false
    }
}

/// A maximum of `eval` over the grid `values` by golden-section search on
/// the grid index (exact for unimodal functions of the index).
fn golden_section(values: &[f64], eval: &mut impl FnMut(f64) -> f64) -> (f64, f64) {
    let mut cache: std::collections::BTreeMap<usize, f64> = Default::default();
    let mut at =
        |i: usize, eval: &mut dyn FnMut(f64) -> f64| *cache.entry(i).or_insert_with(|| eval(values[i]));
    let (mut lo, mut hi) = (0usize, values.len() - 1);
    let ratio = 0.381_966_011_250_105_1;
    while hi - lo > 3 {
        let a = lo + ((hi - lo) as f64 * ratio).round() as usize;
        let b = hi - ((hi - lo) as f64 * ratio).round() as usize;
        let (a, b) = (a.max(lo + 1), b.min(hi - 1).max(a.max(lo + 1) + 1));
        if at(a, eval) >= at(b, eval) {
            hi = b;
        } else {
            lo = a;
        }
    }
    let mut best = (values[lo], f64::NEG_INFINITY);
    for (i, &value) in values.iter().enumerate().take(hi + 1).skip(lo) {
        let v = at(i, eval);
        if v > best.1 {
            best = (value, v);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lbfgsb_minimises_within_bounds() {
        // Rosenbrock, unbounded: the minimum at (1, 1).
        let rosen = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
            g[1] = 200.0 * (x[1] - x[0] * x[0]);
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        };
        let settings = LbfgsSettings { pgtol: 1e-8, ..Default::default() };
        let m = lbfgsb(rosen, &[-1.2, 1.0], None, &settings);
        assert!((m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4, "{m:?}");
        // A bowl centred outside the box: the minimum on its edge.
        let bowl = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 2.0 * (x[1] + 0.5);
            (x[0] - 3.0).powi(2) + (x[1] + 0.5).powi(2)
        };
        let m = lbfgsb(bowl, &[0.2, 0.7], Some(&[(0.0, 1.0), (0.0, 1.0)]), &settings);
        assert_eq!(m.x, vec![1.0, 0.0]);
    }

    #[test]
    fn golden_section_finds_a_unimodal_maximum() {
        let values: Vec<f64> = (0..100).map(|i| i as f64 / 99.0).collect();
        let mut calls = 0;
        let (best, _) = golden_section(&values, &mut |v: f64| {
            calls += 1;
            -(v - 0.3).powi(2)
        });
        assert!((best - 30.0 / 99.0).abs() < 1e-12, "{best}");
        assert!(calls < 20, "{calls} evaluations");
    }
}
