//! Parzen estimators of the TPE sampler: weighted mixtures of kernels, one
//! kernel per observed trial plus a wide prior kernel, in the internal
//! representation (logs for log scales, indices for choices).
//!
//! Numeric kernels are Gaussians truncated to the domain [low, high]; on a
//! step grid they become the Gaussian's mass on [x − step/2, x + step/2]
//! (the domain widened by step/2 at both ends), as in Optuna. Categorical
//! kernels put weight 1 on the observed choice plus prior_weight / n_kernels
//! on every choice. Bandwidths follow Optuna: univariate kernels take the
//! larger gap to their sorted neighbours (the domain ends count as
//! neighbours), multivariate kernels Scott's rule 0.2·n^(−1/(d+4))·range;
//! both are clipped to [range / min(100, n_kernels + 1), range] ("magic clip").
//!
//! Evaluation is exact but cheap: identical kernels (same component in every
//! dimension) are merged by adding their weights, and each dimension's
//! log-densities are tabulated once per distinct component, so a thousand
//! trials on a small integer grid cost a few dozen kernels.

use std::collections::HashMap;

use rand::RngCore;

use super::normal::{log_gauss_mass, truncated_ppf, LN_SQRT_2PI};
use crate::hpo::rng;

/// One dimension of an estimator's domain, in the internal representation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DimSpec {
    /// [low, high]; with a step, kernels are discrete on low + k·step.
    Numeric { low: f64, high: f64, step: Option<f64> },
    /// Choice indices 0..n.
    Categorical { n: usize },
}

/// How kernels are shaped (Optuna's `_ParzenEstimatorParameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    pub multivariate: bool,
}

/// A truncated Gaussian kernel with its normalising log-mass on the domain.
#[derive(Debug, Clone, Copy)]
struct Gauss {
    mu: f64,
    sigma: f64,
    log_norm: f64,
}

#[derive(Debug, Clone)]
enum Dim {
    Numeric { low: f64, high: f64, step: Option<f64>, components: Vec<Gauss> },
    Categorical { probs: Vec<Vec<f64>>, cumulative: Vec<Vec<f64>> },
}

/// A mixture of product kernels over several dimensions.
#[derive(Debug, Clone)]
pub struct ParzenEstimator {
    dims: Vec<Dim>,
    /// Component index of kernel k in dimension d at `k * dims.len() + d`.
    kernel_components: Vec<u32>,
    log_weights: Vec<f64>,
    cumulative_weights: Vec<f64>,
}

/// Optuna's default weights: 1 for the 25 newest observations, a linear ramp
/// from 1/n up to 1 for older ones. `n` observations in trial-number order.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp_len = n - 25;
    let start = 1.0 / n as f64;
    let delta = if ramp_len > 1 { (1.0 - start) / (ramp_len - 1) as f64 } else { 0.0 };
    (0..ramp_len).map(|i| start + delta * i as f64).chain(std::iter::repeat(1.0).take(25)).collect()
}

impl ParzenEstimator {
    /// An estimator of `observations[d][i]` (dimension d, observation i, all
    /// in their domains) with `weights[i]`, plus the prior kernel.
    pub fn new(specs: &[DimSpec], observations: &[Vec<f64>], weights: &[f64], params: &ParzenParams) -> Self {
        let n = weights.len();
        debug_assert!(observations.iter().all(|o| o.len() == n));
        let n_kernels = n + 1;
        let mut kernel_weights: Vec<f64> = weights.to_vec();
        kernel_weights.push(params.prior_weight);

        let mut dims = Vec::with_capacity(specs.len());
        let mut per_dim_ids: Vec<Vec<u32>> = Vec::with_capacity(specs.len());
        for (spec, obs) in specs.iter().zip(observations) {
            let (dim, ids) = match *spec {
                DimSpec::Numeric { low, high, step } => {
                    numeric_dim(low, high, step, obs, specs.len(), params, n_kernels)
                }
                DimSpec::Categorical { n: n_choices } => categorical_dim(n_choices, obs, params.prior_weight),
            };
            dims.push(dim);
            per_dim_ids.push(ids);
        }

        // Merge kernels that coincide in every dimension.
        let n_dims = dims.len();
        let mut index_of: HashMap<Vec<u32>, usize> = HashMap::with_capacity(n_kernels);
        let mut kernel_components = Vec::with_capacity(n_kernels * n_dims);
        let mut merged_weights = Vec::with_capacity(n_kernels);
        for (k, &w) in kernel_weights.iter().enumerate() {
            let key: Vec<u32> = per_dim_ids.iter().map(|ids| ids[k]).collect();
            match index_of.get(&key) {
                Some(&m) => merged_weights[m] += w,
                None => {
                    index_of.insert(key.clone(), merged_weights.len());
                    kernel_components.extend_from_slice(&key);
                    merged_weights.push(w);
                }
            }
        }
        let total: f64 = merged_weights.iter().sum();
        let log_weights = merged_weights.iter().map(|w| (w / total).ln()).collect();
        let cumulative_weights = running_sums(&merged_weights);
        Self { dims, kernel_components, log_weights, cumulative_weights }
    }

    pub fn n_kernels(&self) -> usize {
        self.log_weights.len()
    }

    /// `count` draws, each a point with one internal value per dimension.
    pub fn sample(&self, rng: &mut impl RngCore, count: usize) -> Vec<Vec<f64>> {
        let n_dims = self.dims.len();
        (0..count)
            .map(|_| {
                let k = rng::weighted_index(rng, &self.cumulative_weights);
                self.dims
                    .iter()
                    .enumerate()
                    .map(|(d, dim)| {
                        let c = self.kernel_components[k * n_dims + d] as usize;
                        match dim {
                            Dim::Numeric { low, high, step, components } => {
                                let g = components[c];
                                let half = step.map_or(0.0, |s| 0.5 * s);
                                let (lo, hi) = (low - half, high + half);
                                let z = truncated_ppf(
                                    rng::open_uniform(rng),
                                    (lo - g.mu) / g.sigma,
                                    (hi - g.mu) / g.sigma,
                                );
                                let x = g.mu + g.sigma * z;
                                match step {
                                    None => x.clamp(*low, *high),
                                    Some(s) => (low + ((x - low) / s).round() * s).clamp(*low, *high),
                                }
                            }
                            Dim::Categorical { cumulative, .. } => {
                                rng::weighted_index(rng, &cumulative[c]) as f64
                            }
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Log-density of each point (one internal value per dimension).
    pub fn log_pdf(&self, points: &[Vec<f64>]) -> Vec<f64> {
        let n_dims = self.dims.len();
        // tables[d][p * n_components + c]: log-density of point p under component c.
        let tables: Vec<(usize, Vec<f64>)> = self
            .dims
            .iter()
            .enumerate()
            .map(|(d, dim)| match dim {
                Dim::Numeric { low, high, step, components } => {
                    let table = points
                        .iter()
                        .flat_map(|p| {
                            let x = p[d];
                            components.iter().map(move |g| match step {
                                None => {
                                    let z = (x - g.mu) / g.sigma;
                                    -0.5 * z * z - g.sigma.ln() - LN_SQRT_2PI - g.log_norm
                                }
                                Some(s) => {
                                    let x = x.clamp(*low, *high);
                                    log_gauss_mass(
                                        (x - 0.5 * s - g.mu) / g.sigma,
                                        (x + 0.5 * s - g.mu) / g.sigma,
                                    ) - g.log_norm
                                }
                            })
                        })
                        .collect();
                    (components.len(), table)
                }
                Dim::Categorical { probs, .. } => {
                    let table = points
                        .iter()
                        .flat_map(|p| {
                            let i = p[d] as usize;
                            probs.iter().map(move |row| row[i].ln())
                        })
                        .collect();
                    (probs.len(), table)
                }
            })
            .collect();

        let mut terms = vec![0.0; self.n_kernels()];
        points
            .iter()
            .enumerate()
            .map(|(p, _)| {
                for (k, term) in terms.iter_mut().enumerate() {
                    let comps = &self.kernel_components[k * n_dims..(k + 1) * n_dims];
                    *term = self.log_weights[k]
                        + comps
                            .iter()
                            .zip(&tables)
                            .map(|(&c, (n_c, table))| table[p * n_c + c as usize])
                            .sum::<f64>();
                }
                log_sum_exp(&terms)
            })
            .collect()
    }
}

fn running_sums(weights: &[f64]) -> Vec<f64> {
    weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect()
}

fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// Kernels of one numeric dimension: bandwidths by Optuna's rules, then
/// deduplicated. Returns the dimension and each kernel's component index
/// (observations first, the prior last).
fn numeric_dim(
    low: f64,
    high: f64,
    step: Option<f64>,
    obs: &[f64],
    n_dims: usize,
    params: &ParzenParams,
    n_kernels: usize,
) -> (Dim, Vec<u32>) {
    let step_or_0 = step.unwrap_or(0.0);
    let range = high - low + step_or_0;
    let prior_mu = 0.5 * (low + high);
    let n = obs.len();

    let sigmas: Vec<f64> = if params.multivariate {
        let sigma = 0.2 * (n.max(1) as f64).powf(-1.0 / (n_dims as f64 + 4.0)) * range;
        vec![sigma; n]
    } else {
        // Gaps to sorted neighbours, the prior's centre among them and the
        // (step-widened) domain ends as outer neighbours.
        let mut mus: Vec<f64> = obs.to_vec();
        mus.push(prior_mu);
        let mut order: Vec<usize> = (0..mus.len()).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
        let mut ext = Vec::with_capacity(mus.len() + 2);
        ext.push(low - 0.5 * step_or_0);
        ext.extend(order.iter().map(|&i| mus[i]));
        ext.push(high + 0.5 * step_or_0);
        let m = mus.len();
        let mut sorted_sigmas: Vec<f64> =
            (1..=m).map(|i| (ext[i] - ext[i - 1]).max(ext[i + 1] - ext[i])).collect();
        if !params.consider_endpoints && ext.len() >= 4 {
            sorted_sigmas[0] = ext[2] - ext[1];
            sorted_sigmas[m - 1] = ext[m] - ext[m - 1];
        }
        let mut sigmas = vec![0.0; m];
        for (rank, &i) in order.iter().enumerate() {
            sigmas[i] = sorted_sigmas[rank];
        }
        sigmas.truncate(n);
        sigmas
    };

    let max_sigma = range;
    let min_sigma =
        if params.consider_magic_clip { range / (1.0 + n_kernels as f64).min(100.0) } else { 1e-12 };
    let half = 0.5 * step_or_0;
    let mut components: Vec<Gauss> = Vec::new();
    let mut index_of: HashMap<(u64, u64), u32> = HashMap::new();
    let mut ids = Vec::with_capacity(n + 1);
    let kernels = obs.iter().zip(&sigmas).map(|(&mu, &s)| (mu, s.clamp(min_sigma, max_sigma)));
    for (mu, sigma) in kernels.chain(std::iter::once((prior_mu, range))) {
        let id = *index_of.entry((mu.to_bits(), sigma.to_bits())).or_insert_with(|| {
            let log_norm = log_gauss_mass((low - half - mu) / sigma, (high + half - mu) / sigma);
            components.push(Gauss { mu, sigma, log_norm });
            (components.len() - 1) as u32
        });
        ids.push(id);
    }
    (Dim::Numeric { low, high, step, components }, ids)
}

/// Kernels of one categorical dimension: one row per distinct observed
/// choice, plus the uniform prior row (last).
fn categorical_dim(n_choices: usize, obs: &[f64], prior_weight: f64) -> (Dim, Vec<u32>) {
    let n_kernels = obs.len() + 1;
    let base = prior_weight / n_kernels as f64;
    let mut probs: Vec<Vec<f64>> = Vec::new();
    let mut row_of_choice: Vec<Option<u32>> = vec![None; n_choices];
    let mut ids: Vec<u32> = obs
        .iter()
        .map(|&x| {
            let choice = x as usize;
            *row_of_choice[choice].get_or_insert_with(|| {
                let mut row = vec![base; n_choices];
                row[choice] += 1.0;
                let total: f64 = row.iter().sum();
                probs.push(row.into_iter().map(|p| p / total).collect());
                (probs.len() - 1) as u32
            })
        })
        .collect();
    probs.push(vec![1.0 / n_choices as f64; n_choices]);
    ids.push((probs.len() - 1) as u32);
    let cumulative = probs.iter().map(|row| running_sums(row)).collect();
    (Dim::Categorical { probs, cumulative }, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpo::rng::{seeded, Stream};

    const PARAMS: ParzenParams = ParzenParams {
        prior_weight: 1.0,
        consider_magic_clip: true,
        consider_endpoints: false,
        multivariate: false,
    };

    #[test]
    fn default_weights_ramp_old_observations() {
        assert_eq!(default_weights(3), vec![1.0; 3]);
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-15);
        assert!((w[4] - 1.0).abs() < 1e-15);
        assert!(w[1] > w[0] && w[5..].iter().all(|&x| x == 1.0));
    }

    #[test]
    fn continuous_density_integrates_to_one() {
        let spec = [DimSpec::Numeric { low: -5.0, high: 10.0, step: None }];
        let obs = vec![vec![-4.9, 0.0, 0.3, 7.5]];
        let est = ParzenEstimator::new(&spec, &obs, &[1.0; 4], &PARAMS);
        let n = 20_000;
        let h = 15.0 / n as f64;
        let points: Vec<Vec<f64>> = (0..n).map(|i| vec![-5.0 + (i as f64 + 0.5) * h]).collect();
        let integral: f64 = est.log_pdf(&points).iter().map(|l| l.exp() * h).sum();
        assert!((integral - 1.0).abs() < 1e-4, "{integral}");
    }

    #[test]
    fn discrete_and_categorical_masses_sum_to_one() {
        let spec =
            [DimSpec::Numeric { low: 16.0, high: 64.0, step: Some(8.0) }, DimSpec::Categorical { n: 4 }];
        let obs = vec![vec![16.0, 48.0, 48.0, 64.0], vec![0.0, 2.0, 2.0, 3.0]];
        for multivariate in [false, true] {
            let est = ParzenEstimator::new(&spec, &obs, &[1.0; 4], &ParzenParams { multivariate, ..PARAMS });
            let points: Vec<Vec<f64>> =
                (0..7).flat_map(|k| (0..4).map(move |c| vec![16.0 + 8.0 * k as f64, c as f64])).collect();
            let total: f64 = est.log_pdf(&points).iter().map(|l| l.exp()).sum();
            assert!((total - 1.0).abs() < 1e-12, "{total}");
            // With one bandwidth per dimension, the two identical
            // observations merge into one kernel.
            assert_eq!(est.n_kernels(), if multivariate { 4 } else { 5 });
        }
    }

    #[test]
    fn samples_stay_in_domain_and_on_grid() {
        let spec = [
            DimSpec::Numeric { low: 1.0, high: 4.0, step: Some(1.0) },
            DimSpec::Numeric { low: -9.2, high: -0.7, step: None },
        ];
        let obs = vec![vec![1.0, 4.0, 2.0], vec![-9.2, -0.7, -3.0]];
        let est = ParzenEstimator::new(&spec, &obs, &[1.0; 3], &PARAMS);
        let mut rng = seeded(3, 0, Stream::Sample);
        for p in est.sample(&mut rng, 500) {
            assert!((1.0..=4.0).contains(&p[0]) && p[0].fract() == 0.0);
            assert!((-9.2..=-0.7).contains(&p[1]));
        }
    }

    #[test]
    fn bandwidths_follow_neighbour_gaps() {
        // Observations 0 and 1 in [0, 10], prior at 5: sorted 0, 1, 5 with
        // ends 0 and 10 → gaps; first/last use the inner gap (no endpoints).
        let (dim, _) = numeric_dim(0.0, 10.0, None, &[0.0, 1.0], 1, &PARAMS, 3);
        let Dim::Numeric { components, .. } = dim else { unreachable!() };
        let sigmas: Vec<f64> = components.iter().map(|g| g.sigma).collect();
        // min sigma = 10 / 4 = 2.5 clips the gap of 1 for observation 0; 1 has gap 4.
        assert_eq!(sigmas, vec![2.5, 4.0, 10.0]);
    }
}
