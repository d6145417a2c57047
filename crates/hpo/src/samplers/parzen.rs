//! Parzen estimators of the TPE sampler: weighted mixtures of kernels, one
//! kernel per observed trial plus a wide prior kernel, in the internal
//! representation (logs for log scales, indices for choices).
//!
//! Numeric kernels are Gaussians truncated to the domain; on a step grid
//! a kernel gives each grid point the Gaussian's mass on its rounding cell
//! [x − step/2, x + step/2] (on a log scale, [ln(x − step/2), ln(x + step/2)]),
//! the domain being widened by step/2 at both ends, as in Optuna.
//! Categorical kernels put weight 1 on the observed choice plus
//! prior_weight / n_kernels on every choice. Bandwidths follow Optuna 5.0,
//! in univariate and multivariate mode alike: each kernel takes the larger
//! gap to its sorted neighbours (the domain ends count as neighbours; without
//! `consider_endpoints` the outermost kernels take their inner gap), clipped
//! to [range / min(100, n_kernels + 1), range] ("magic clip"). The prior
//! kernel sits at the centre with the whole range as bandwidth.
//!
//! Evaluation is exact but cheap: identical kernels (same component in every
//! dimension) are merged by adding their weights, and each dimension's
//! log-densities are tabulated once per distinct component, so a thousand
//! trials on a small integer grid cost a few dozen kernels.

use std::collections::HashMap;

use rand::RngCore;

use super::normal::{log_gauss_mass, truncated_ppf, LN_SQRT_2PI};
use crate::rng;

/// One dimension of an estimator's domain, in the internal representation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DimSpec {
    /// Gaussians on the internal interval [lo, hi] (already widened by half a
    /// step for grids), with the values they give mass to.
    Numeric { lo: f64, hi: f64, grid: Grid },
    /// Choice indices 0..n.
    Categorical { n: usize },
}

/// The values of a numeric dimension, in external units for grids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grid {
    /// Every real in [lo, hi].
    Continuous,
    /// low + k·step on a linear scale (internal = external).
    Linear { low: f64, high: f64, step: f64 },
    /// low + k·step on a log scale (internal = ln external).
    Log { low: f64, high: f64, step: f64 },
}

impl Grid {
    /// The nearest grid point to the external value `x`.
    fn snap(&self, x: f64) -> f64 {
        match *self {
            Grid::Continuous => x,
            Grid::Linear { low, high, step } | Grid::Log { low, high, step } => {
                (low + ((x - low) / step).round() * step).clamp(low, high)
            }
        }
    }

    /// The rounding cell of the grid point at internal value `x`, internal units.
    fn cell(&self, x: f64) -> (f64, f64) {
        match *self {
            Grid::Continuous => (x, x),
            Grid::Linear { step, .. } => {
                let x = self.snap(x);
                (x - 0.5 * step, x + 0.5 * step)
            }
            Grid::Log { step, .. } => {
                let x = self.snap(x.exp());
                ((x - 0.5 * step).ln(), (x + 0.5 * step).ln())
            }
        }
    }
}

/// How kernels are shaped (Optuna's `_ParzenEstimatorParameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
}

/// A truncated Gaussian kernel with its normalising log-mass on the domain.
#[derive(Debug, Clone, Copy)]
struct Gauss {
    mu: f64,
    sigma: f64,
    inv_sigma: f64,
    /// ln of the mass on the domain.
    log_norm: f64,
    /// −ln σ − ln √(2π) − log_norm: the log-density at the mode.
    log_peak: f64,
}

impl Gauss {
    fn new(mu: f64, sigma: f64, lo: f64, hi: f64) -> Self {
        let log_norm = log_gauss_mass((lo - mu) / sigma, (hi - mu) / sigma);
        Self { mu, sigma, inv_sigma: 1.0 / sigma, log_norm, log_peak: -sigma.ln() - LN_SQRT_2PI - log_norm }
    }
}

#[derive(Debug, Clone)]
enum Dim {
    Numeric { lo: f64, hi: f64, grid: Grid, components: Vec<Gauss> },
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
    (0..ramp_len).map(|i| start + delta * i as f64).chain(std::iter::repeat_n(1.0, 25)).collect()
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
        for (d, (spec, obs)) in specs.iter().zip(observations).enumerate() {
            let (dim, ids) = match *spec {
                DimSpec::Numeric { lo, hi, grid } => numeric_dim(lo, hi, grid, obs, tie_salt(d, n), params),
                DimSpec::Categorical { n: n_choices } => categorical_dim(n_choices, obs, params.prior_weight),
            };
            dims.push(dim);
            per_dim_ids.push(ids);
        }

        // Merge kernels that coincide in every dimension. Kernels of a
        // continuous dimension are all distinct, so there is nothing to merge.
        let n_dims = dims.len();
        let mergeable = dims.iter().all(|d| !matches!(d, Dim::Numeric { grid: Grid::Continuous, .. }));
        let mut kernel_components = Vec::with_capacity(n_kernels * n_dims);
        let mut merged_weights = Vec::with_capacity(n_kernels);
        if !mergeable {
            for k in 0..n_kernels {
                kernel_components.extend(per_dim_ids.iter().map(|ids| ids[k]));
            }
            merged_weights = kernel_weights;
        } else if let [ids] = per_dim_ids.as_slice() {
            let mut slot: Vec<Option<usize>> = vec![None; ids.iter().max().map_or(0, |&m| m as usize + 1)];
            for (&id, &w) in ids.iter().zip(&kernel_weights) {
                match slot[id as usize] {
                    Some(m) => merged_weights[m] += w,
                    None => {
                        slot[id as usize] = Some(merged_weights.len());
                        kernel_components.push(id);
                        merged_weights.push(w);
                    }
                }
            }
        } else {
            let mut index_of: HashMap<Vec<u32>, usize> = HashMap::with_capacity(n_kernels);
            for (k, &w) in kernel_weights.iter().enumerate() {
                let key: Vec<u32> = per_dim_ids.iter().map(|ids| ids[k]).collect();
                match index_of.get(&key) {
                    Some(&m) => merged_weights[m] += w,
                    None => {
                        kernel_components.extend_from_slice(&key);
                        index_of.insert(key, merged_weights.len());
                        merged_weights.push(w);
                    }
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
                            Dim::Numeric { lo, hi, grid, components } => {
                                let g = components[c];
                                let z = truncated_ppf(
                                    rng::open_uniform(rng),
                                    (lo - g.mu) / g.sigma,
                                    (hi - g.mu) / g.sigma,
                                );
                                let x = (g.mu + g.sigma * z).clamp(*lo, *hi);
                                match grid {
                                    Grid::Continuous => x,
                                    Grid::Linear { .. } => grid.snap(x),
                                    Grid::Log { .. } => grid.snap(x.exp()).ln(),
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
        if let [Dim::Numeric { grid: Grid::Continuous, components, .. }] = self.dims.as_slice() {
            return self.log_pdf_continuous_1d(components, points);
        }
        let tables: Vec<Table> =
            self.dims.iter().enumerate().map(|(d, dim)| Table::new(dim, points, d)).collect();
        let mut terms = vec![0.0; self.n_kernels()];
        let mut rows: Vec<&[f64]> = Vec::with_capacity(n_dims);
        (0..points.len())
            .map(|p| {
                rows.clear();
                rows.extend(tables.iter().map(|t| t.row(p)));
                for ((term, comps), &log_w) in
                    terms.iter_mut().zip(self.kernel_components.chunks_exact(n_dims)).zip(&self.log_weights)
                {
                    *term = log_w + comps.iter().zip(&rows).map(|(&c, row)| row[c as usize]).sum::<f64>();
                }
                log_sum_exp(&terms)
            })
            .collect()
    }

    /// The common univariate case of a continuous parameter: kernel k is
    /// component k (nothing merges), so densities need no tables.
    fn log_pdf_continuous_1d(&self, components: &[Gauss], points: &[Vec<f64>]) -> Vec<f64> {
        let offsets: Vec<f64> =
            components.iter().zip(&self.log_weights).map(|(g, w)| g.log_peak + w).collect();
        let mut terms = vec![0.0; components.len()];
        points
            .iter()
            .map(|p| {
                let x = p[0];
                for ((term, g), offset) in terms.iter_mut().zip(components).zip(&offsets) {
                    let z = (x - g.mu) * g.inv_sigma;
                    *term = offset - 0.5 * z * z;
                }
                log_sum_exp(&terms)
            })
            .collect()
    }
}

/// One dimension's log-densities: for each distinct value among the points,
/// a row over the dimension's components.
struct Table {
    /// Row of each point.
    row_of_point: Vec<usize>,
    /// rows × components, row-major.
    values: Vec<f64>,
    n_components: usize,
}

impl Table {
    fn new(dim: &Dim, points: &[Vec<f64>], d: usize) -> Self {
        // Distinct values (grids and choices repeat a lot among candidates).
        let mut distinct: Vec<f64> = Vec::new();
        let row_of_point = points
            .iter()
            .map(|p| match distinct.iter().position(|&x| x == p[d]) {
                Some(i) => i,
                None => {
                    distinct.push(p[d]);
                    distinct.len() - 1
                }
            })
            .collect();
        let n_components = match dim {
            Dim::Numeric { components, .. } => components.len(),
            Dim::Categorical { probs, .. } => probs.len(),
        };
        let mut values = Vec::with_capacity(distinct.len() * n_components);
        for &x in &distinct {
            match dim {
                Dim::Numeric { grid: Grid::Continuous, components, .. } => {
                    values.extend(components.iter().map(|g| {
                        let z = (x - g.mu) * g.inv_sigma;
                        g.log_peak - 0.5 * z * z
                    }))
                }
                Dim::Numeric { grid, components, .. } => {
                    let (left, right) = grid.cell(x);
                    values.extend(components.iter().map(|g| {
                        log_gauss_mass((left - g.mu) * g.inv_sigma, (right - g.mu) * g.inv_sigma) - g.log_norm
                    }))
                }
                Dim::Categorical { probs, .. } => values.extend(probs.iter().map(|row| row[x as usize].ln())),
            }
        }
        Self { row_of_point, values, n_components }
    }

    fn row(&self, point: usize) -> &[f64] {
        let r = self.row_of_point[point];
        &self.values[r * self.n_components..(r + 1) * self.n_components]
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

/// ln Σ exp(terms). Terms more than 40 below the largest change the sum by
/// less than e⁻⁴⁰ each (relative), so their exponentials are skipped.
fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    let floor = max - 40.0;
    max + terms.iter().filter(|&&t| t > floor).map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// Kernels of one numeric dimension on [lo, hi]: bandwidths by Optuna's
/// rules, then deduplicated. Returns the dimension and each kernel's
/// component index (observations first, the prior last).
fn numeric_dim(
    lo: f64,
    hi: f64,
    grid: Grid,
    obs: &[f64],
    salt: usize,
    params: &ParzenParams,
) -> (Dim, Vec<u32>) {
    let range = hi - lo;
    let n = obs.len();
    // Equal observations are ordered by a scramble of their index keyed by
    // `salt`, not by age: which of them gets the wide gap then varies between
    // runs of duplicates, between dimensions and as trials accumulate, as
    // with Optuna's (unstable, data-dependent) numpy sort. See [`tie_salt`].
    let mut keyed: Vec<(f64, u64, u32)> =
        obs.iter().enumerate().map(|(i, &x)| (x, scramble(i ^ salt), i as u32)).collect();
    keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let order: Vec<usize> = keyed.iter().map(|k| k.2 as usize).collect();
    let mut ext = Vec::with_capacity(n + 2);
    ext.push(lo);
    ext.extend(order.iter().map(|&i| obs[i]));
    ext.push(hi);
    let mut sorted_sigmas: Vec<f64> =
        (1..=n).map(|i| (ext[i] - ext[i - 1]).max(ext[i + 1] - ext[i])).collect();
    if !params.consider_endpoints && ext.len() >= 4 {
        sorted_sigmas[0] = ext[2] - ext[1];
        sorted_sigmas[n - 1] = ext[n] - ext[n - 1];
    }
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted_sigmas[rank];
    }

    let n_kernels = n + 1;
    let min_sigma =
        if params.consider_magic_clip { range / (1.0 + n_kernels as f64).min(100.0) } else { 1e-12 };
    let mut components: Vec<Gauss> = Vec::with_capacity(n_kernels);
    let mut ids: Vec<u32> = vec![0; n_kernels];
    if grid == Grid::Continuous {
        // Distinct almost surely: one component per kernel.
        components.extend(
            obs.iter().zip(&sigmas).map(|(&mu, &s)| Gauss::new(mu, s.clamp(min_sigma, range), lo, hi)),
        );
        ids.iter_mut().enumerate().for_each(|(k, id)| *id = k as u32);
    } else {
        // Walking in sorted order, equal observations are adjacent: a
        // kernel repeats one of the few components of its run.
        let mut run_start = 0;
        for (rank, &i) in order.iter().enumerate() {
            let (mu, sigma) = (obs[i], sigmas[i].clamp(min_sigma, range));
            if rank > 0 && obs[order[rank - 1]] != mu {
                run_start = components.len();
            }
            let existing = components[run_start..].iter().position(|g| g.sigma == sigma);
            ids[i] = match existing {
                Some(j) => (run_start + j) as u32,
                None => {
                    components.push(Gauss::new(mu, sigma, lo, hi));
                    (components.len() - 1) as u32
                }
            };
        }
    }
    components.push(Gauss::new(0.5 * (lo + hi), range, lo, hi));
    ids[n] = (components.len() - 1) as u32;
    (Dim::Numeric { lo, hi, grid, components }, ids)
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

/// The key that orders equal observations of dimension `d` of an estimator
/// of `n` observations. A stable order always widened the oldest of a run of
/// equal values, and one fixed order for every dimension gave the same
/// observation the wide bandwidth in all of them, so that repeated points
/// of an integer space became jointly narrow kernels that proposed them
/// again: both measurably hurt multivariate TPE on integer parameters.
fn tie_salt(d: usize, n: usize) -> usize {
    scramble(d.wrapping_mul(0x1_0000).wrapping_add(n)) as usize
}

/// A fixed bijective scramble of an index (SplitMix64's finaliser).
fn scramble(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{seeded, Stream};

    const PARAMS: ParzenParams =
        ParzenParams { prior_weight: 1.0, consider_magic_clip: true, consider_endpoints: false };

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
        let spec = [DimSpec::Numeric { lo: -5.0, hi: 10.0, grid: Grid::Continuous }];
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
        let grid = Grid::Linear { low: 16.0, high: 64.0, step: 8.0 };
        let spec = [DimSpec::Numeric { lo: 12.0, hi: 68.0, grid }, DimSpec::Categorical { n: 4 }];
        let obs = vec![vec![16.0, 48.0, 48.0, 64.0], vec![0.0, 2.0, 2.0, 3.0]];
        let est = ParzenEstimator::new(&spec, &obs, &[1.0; 4], &PARAMS);
        let points: Vec<Vec<f64>> =
            (0..7).flat_map(|k| (0..4).map(move |c| vec![16.0 + 8.0 * k as f64, c as f64])).collect();
        let total: f64 = est.log_pdf(&points).iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        // Identical observations with identical bandwidths merge into one kernel.
        assert!(est.n_kernels() <= 5);
    }

    #[test]
    fn log_grid_masses_sum_to_one() {
        let grid = Grid::Log { low: 1.0, high: 64.0, step: 1.0 };
        let spec = [DimSpec::Numeric { lo: 0.5f64.ln(), hi: 64.5f64.ln(), grid }];
        let obs = vec![vec![2.0f64.ln(), 3.0f64.ln(), 40.0f64.ln()]];
        let est = ParzenEstimator::new(&spec, &obs, &[1.0; 3], &PARAMS);
        let points: Vec<Vec<f64>> = (1..=64).map(|k| vec![(k as f64).ln()]).collect();
        let total: f64 = est.log_pdf(&points).iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let mut rng = seeded(2, 0, Stream::Sample);
        for p in est.sample(&mut rng, 300) {
            let x = p[0].exp().round();
            assert!((1.0..=64.0).contains(&x) && (p[0] - x.ln()).abs() < 1e-12);
        }
    }

    #[test]
    fn samples_stay_in_domain_and_on_grid() {
        let spec = [
            DimSpec::Numeric { lo: 0.5, hi: 4.5, grid: Grid::Linear { low: 1.0, high: 4.0, step: 1.0 } },
            DimSpec::Numeric { lo: -9.2, hi: -0.7, grid: Grid::Continuous },
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
        // Observations 0, 1 and 6 in [0, 10]: the inner one takes its larger
        // gap (5); the outer ones their inner gaps (1, clipped to 10 / 5 = 2, and 5).
        let (dim, _) = numeric_dim(0.0, 10.0, Grid::Continuous, &[0.0, 1.0, 6.0], 0, &PARAMS);
        let Dim::Numeric { components, .. } = dim else { unreachable!() };
        let sigmas: Vec<f64> = components.iter().map(|g| g.sigma).collect();
        assert_eq!(sigmas, vec![2.0, 5.0, 5.0, 10.0]);
        let endpoints = ParzenParams { consider_endpoints: true, ..PARAMS };
        let (dim, _) = numeric_dim(0.0, 10.0, Grid::Continuous, &[1.0, 6.0], 0, &endpoints);
        let Dim::Numeric { components, .. } = dim else { unreachable!() };
        assert_eq!(components.iter().map(|g| g.sigma).collect::<Vec<_>>(), vec![5.0, 5.0, 10.0]);
    }
}
