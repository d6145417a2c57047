//! Tree-structured Parzen estimator (Bergstra et al. 2011), with the
//! algorithm components of Optuna 5.0's `TPESampler` as analysed by Watanabe
//! (2023):
//!
//! - the first `n_startup_trials` finished trials are random;
//! - finished trials split into the γ(n) = min(⌈0.1·n⌉, 25) best ("below")
//!   and the rest ("above"). COMPLETE trials rank by value; PRUNED trials
//!   fill any remaining places in `below`, deeper ones first, then by their
//!   last intermediate value; with `constant_liar`, RUNNING trials join
//!   `above` (as if they were the worst); FAILED trials are ignored;
//! - with constraints, infeasible trials rank after every feasible one, by
//!   their summed violation (Optuna's `constraints_func`); a FAILED trial
//!   with constraint values (a study that counts failures for resources as
//!   infeasible) joins them instead of being ignored;
//! - with several objectives (Optuna 5.0's MOTPE), γ(n) = ⌈0.1·n⌉ without
//!   the cap, and COMPLETE trials split by non-dominated rank instead of
//!   value: whole ranks while they fit in γ(n), the rank that does not fit
//!   cut by greedy hypervolume subset selection; every "below" trial then
//!   weighs 1 (no ramp);
//! - each group gets a Parzen estimator ([`super::parzen`]) with Optuna's
//!   default weights (older trials ramped down beyond 25) and a prior kernel;
//! - `n_ei_candidates` draws from l(x) are scored by log l(x) − log g(x) and
//!   the best one is taken.
//!
//! Univariate mode (our default) treats every parameter independently, in
//! name order; multivariate mode (Optuna 5.0's default, usually better, see
//! `benches/hpo_quality.rs`) uses joint kernels over the whole space.
//! Constant liar is on by default, as in Optuna 5.0: it only matters when
//! several trials run at once.
//!
//! # Rule by rule against Optuna 5.0 (`optuna/samplers/_tpe/`)
//!
//! Compared on integer spaces with tied objectives, where a rule that is
//! arbitrary on continuous spaces decides what is proposed
//! (`benches/hpo_quality.rs`, the `int*` and `anisonet_rounded` functions).
//!
//! - Same: the split (γ(n) below, COMPLETE trials by value, ties in trial
//!   order since Optuna's sort is stable; PRUNED trials by depth then last
//!   value; the constant liar's RUNNING trials above), both groups then in
//!   trial order; the weights (ramp over the oldest beyond 25, prior weight
//!   appended); startup counts COMPLETE and PRUNED trials.
//! - Same: integer and stepped domains widened by step/2 (before the log on
//!   a log scale), `high` trimmed to the step grid, kernels that give a grid
//!   point the Gaussian's mass on its rounding cell, samples rounded to the
//!   grid and clipped; the random startup draws uniformly over grid points
//!   (log-uniformly over the widened range for log integers).
//! - Same: bandwidths from the sorted neighbour gaps with the domain ends,
//!   the outer kernels' inner gap without `consider_endpoints`, the magic
//!   clip, the prior at the centre with the whole range; Optuna 5.0 dropped
//!   the multivariate Scott-rule bandwidth, so both modes use these rules.
//! - Same: 24 candidates from l(x), duplicates allowed; the first candidate
//!   with the largest log l − log g wins (`np.argmax`).
//! - Different on purpose, **ties in the bandwidth rule**: which of several
//!   equal observations gets a neighbour gap and which the (clipped) zero gap
//!   depends on the sort. Optuna's numpy `argsort` is unstable and
//!   data-dependent (a SIMD sorting network on x86), so the choice is in
//!   effect random and differs from dimension to dimension. A stable order
//!   (always the oldest) and one fixed scramble for every dimension both gave
//!   the same repeated point the narrow kernel in all dimensions, and
//!   multivariate TPE then proposed points it had already tried; the order
//!   now depends on the dimension and the number of observations
//!   ([`super::parzen`]). Univariate TPE hardly notices (equal observations
//!   of one dimension differ only in their weights).
//! - Different, harmless: rounding half away from zero where numpy rounds
//!   half to even (a sample lands on a half step with probability 0); NaN
//!   scores are skipped (they cannot occur: the prior keeps both densities
//!   positive); random streams are ChaCha keyed by (seed, trial), not one
//!   `RandomState`, so the same seed gives other proposals than Optuna's but
//!   the same distribution of results.

use serde::{Deserialize, Serialize};

use super::parzen::{default_weights, DimSpec, Grid, ParzenEstimator, ParzenParams};
use super::random::{sample_one, sample_space};
use super::{SampleContext, Sampler};
use crate::rng::{self, Stream};
use crate::{pareto, Direction, Distribution, FrozenTrial, ParamValue, Params, SearchSpace, TrialState};
use anisostudy_error::InputError;

/// Settings of the TPE sampler; defaults are Optuna 5.0's, except that
/// `multivariate` is off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpeConfig {
    /// Finished (COMPLETE or PRUNED) trials sampled at random before TPE starts.
    pub n_startup_trials: usize,
    /// Draws from l(x) scored per suggestion.
    pub n_ei_candidates: usize,
    /// Joint kernels over all parameters instead of one estimator per parameter.
    pub multivariate: bool,
    /// Count RUNNING trials as bad ones, so parallel workers spread out
    /// instead of all sampling the same promising point.
    pub constant_liar: bool,
    /// Weight of the prior kernel (relative to weight 1 per trial).
    pub prior_weight: f64,
    /// Let the domain ends widen the bandwidths of the outermost kernels.
    pub consider_endpoints: bool,
    /// Clip bandwidths from below at range / min(100, n_kernels + 1).
    pub consider_magic_clip: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: false,
            constant_liar: true,
            prior_weight: 1.0,
            consider_endpoints: false,
            consider_magic_clip: true,
        }
    }
}

impl TpeConfig {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if self.n_ei_candidates == 0 {
            return Err(InputError::new(location, "n_ei_candidates must be at least 1"));
        }
        if !(self.prior_weight.is_finite() && self.prior_weight > 0.0) {
            return Err(InputError::new(
                location,
                format!("prior_weight must be a positive number, got {}", self.prior_weight),
            ));
        }
        Ok(())
    }
}

/// The TPE sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TpeSampler {
    pub config: TpeConfig,
}

impl TpeSampler {
    pub fn new(config: TpeConfig) -> Self {
        Self { config }
    }

    fn parzen_params(&self) -> ParzenParams {
        ParzenParams {
            prior_weight: self.config.prior_weight,
            consider_magic_clip: self.config.consider_magic_clip,
            consider_endpoints: self.config.consider_endpoints,
        }
    }
}

/// γ(n) = min(⌈0.1·n⌉, 25): how many finished trials count as good.
pub fn default_gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

impl Sampler for TpeSampler {
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params> {
        let mut rng = rng::seeded(ctx.seed, ctx.trial_number, Stream::Sample);
        // The running trials the liar counts: a proposal never repeats one of
        // their points while the space has others left.
        let taken: Vec<&Params> = if self.config.constant_liar {
            ctx.history.iter().filter(|t| t.state == TrialState::Running).map(|t| &t.params).collect()
        } else {
            Vec::new()
        };
        let finished = ctx.history.iter().filter(|t| is_finished_observation(t)).count();
        if finished < self.config.n_startup_trials {
            let proposal = sample_space(ctx.space, &mut rng);
            return Ok(avoid_taken(proposal, ctx.space, &taken, &mut rng));
        }
        let (below, above) =
            split_trials(ctx.history, ctx.direction, ctx.directions, self.config.constant_liar);
        let weights_below = below_weights(&below, ctx.directions);
        let weights_below = weights_below.as_deref();
        let params = self.parzen_params();
        let n_candidates = self.config.n_ei_candidates;

        let proposal = if self.config.multivariate {
            // One joint estimator per group of parameters that exist in the
            // same trials (one group without conditions), each from the
            // trials that have its parameters, a group only when the values
            // chosen before it make it active.
            let mut proposal = Params::new();
            for group in ctx.space.groups() {
                if !ctx.space.is_active(group[0], &proposal) {
                    continue;
                }
                let dists: Vec<(&String, &Distribution)> =
                    group.iter().map(|name| (*name, &ctx.space.params[*name])).collect();
                let specs: Vec<DimSpec> = dists.iter().map(|(_, d)| dim_spec(d)).collect();
                let l = estimator(&dists, &specs, &below, weights_below, &params);
                let g = estimator(&dists, &specs, &above, None, &params);
                let candidates: Vec<Params> = l
                    .sample(&mut rng, n_candidates)
                    .into_iter()
                    .map(|point| {
                        dists
                            .iter()
                            .zip(point)
                            .map(|((name, d), x)| ((*name).clone(), d.from_internal(x)))
                            .collect()
                    })
                    .collect();
                let points: Vec<Vec<f64>> = candidates
                    .iter()
                    .map(|p| dists.iter().map(|(name, d)| internal(d, &p[*name])).collect())
                    .collect();
                let order = by_acquisition(&l.log_pdf(&points), &g.log_pdf(&points));
                // The best candidate whose point no running trial has, else the best.
                let with = |i: usize| -> Params {
                    let mut point = proposal.clone();
                    point.extend(candidates[i].clone());
                    point
                };
                let pick = order.iter().copied().find(|&i| !is_taken(&with(i), &taken)).unwrap_or(order[0]);
                proposal.extend(candidates.into_iter().nth(pick).expect("at least one candidate"));
            }
            proposal
        } else if ctx.space.is_conditional() {
            // Each parameter the values before it make active, from the
            // trials that have it; its best candidate.
            let mut proposal = Params::new();
            for name in ctx.space.sampling_order() {
                if !ctx.space.is_active(name, &proposal) {
                    continue;
                }
                let dist = &ctx.space.params[name];
                let (dists, specs) = ([(name, dist)], [dim_spec(dist)]);
                let l = estimator(&dists, &specs, &below, weights_below, &params);
                let g = estimator(&dists, &specs, &above, None, &params);
                let candidates: Vec<_> =
                    l.sample(&mut rng, n_candidates).into_iter().map(|p| dist.from_internal(p[0])).collect();
                let value = if candidates.is_empty() {
                    sample_one(dist, &mut rng)
                } else {
                    let points: Vec<Vec<f64>> = candidates.iter().map(|v| vec![internal(dist, v)]).collect();
                    let best = by_acquisition(&l.log_pdf(&points), &g.log_pdf(&points))[0];
                    candidates[best].clone()
                };
                proposal.insert(name.clone(), value);
            }
            proposal
        } else {
            let mut dims = Vec::with_capacity(ctx.space.len());
            for (name, dist) in &ctx.space.params {
                let dists = [(name, dist)];
                let specs = [dim_spec(dist)];
                let l = estimator(&dists, &specs, &below, weights_below, &params);
                let g = estimator(&dists, &specs, &above, None, &params);
                let candidates: Vec<_> =
                    l.sample(&mut rng, n_candidates).into_iter().map(|p| dist.from_internal(p[0])).collect();
                if candidates.is_empty() {
                    dims.push((name, vec![(sample_one(dist, &mut rng), 0.0)]));
                    continue;
                }
                let points: Vec<Vec<f64>> = candidates.iter().map(|v| vec![internal(dist, v)]).collect();
                let (log_l, log_g) = (l.log_pdf(&points), g.log_pdf(&points));
                let mut ranked: Vec<(ParamValue, f64)> = Vec::new();
                for i in by_acquisition(&log_l, &log_g) {
                    if !ranked.iter().any(|(v, _)| v.same(&candidates[i])) {
                        ranked.push((candidates[i].clone(), log_l[i] - log_g[i]));
                    }
                }
                dims.push((name, ranked));
            }
            best_untaken_combination(&dims, &taken)
        };
        Ok(avoid_taken(proposal, ctx.space, &taken, &mut rng))
    }
}

/// Whether a running trial already has `params`' point.
fn is_taken(params: &Params, taken: &[&Params]) -> bool {
    taken.iter().any(|t| params.iter().all(|(name, v)| t.get(name).is_some_and(|w| w.same(v))))
}

/// The univariate proposal: per parameter its candidates ranked by
/// acquisition, best first. Univariate TPE's acquisition is a sum over the
/// parameters, so the best point is every parameter's best candidate; when
/// a running trial has that point, the next best sums are visited in order
/// (a best-first walk over the ranks) until one is free. At most
/// `taken.len() + 1` points are looked at. All taken: the best point.
fn best_untaken_combination(dims: &[(&String, Vec<(ParamValue, f64)>)], taken: &[&Params]) -> Params {
    use std::collections::{BTreeSet, BinaryHeap};

    /// A choice of one rank per parameter, ordered by its summed score
    /// (ties: the lexicographically smaller ranks first).
    #[derive(PartialEq)]
    struct Node(f64, Vec<usize>);
    impl Eq for Node {}
    impl PartialOrd for Node {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Node {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0).then_with(|| other.1.cmp(&self.1))
        }
    }

    let point = |ranks: &[usize]| -> Params {
        dims.iter().zip(ranks).map(|((name, ranked), &r)| ((*name).clone(), ranked[r].0.clone())).collect()
    };
    let score =
        |ranks: &[usize]| -> f64 { dims.iter().zip(ranks).map(|((_, ranked), &r)| ranked[r].1).sum() };
    let first = vec![0; dims.len()];
    let mut heap = BinaryHeap::from([Node(score(&first), first.clone())]);
    let mut seen = BTreeSet::from([first.clone()]);
    for _ in 0..=taken.len() {
        let Some(Node(_, ranks)) = heap.pop() else { break };
        let candidate = point(&ranks);
        if !is_taken(&candidate, taken) {
            return candidate;
        }
        for d in 0..dims.len() {
            let mut next = ranks.clone();
            next[d] += 1;
            if next[d] < dims[d].1.len() && seen.insert(next.clone()) {
                heap.push(Node(score(&next), next));
            }
        }
    }
    point(&first)
}

/// `proposal`, unless a running trial has its point: then a random point
/// no running trial has (drawn, or on a finite space the first free one in
/// order). On an exhausted space, where every point runs, `proposal` stays.
fn avoid_taken(
    proposal: Params,
    space: &SearchSpace,
    taken: &[&Params],
    rng: &mut impl rand::RngCore,
) -> Params {
    if !is_taken(&proposal, taken) {
        return proposal;
    }
    for _ in 0..64 {
        let draw = sample_space(space, rng);
        if !is_taken(&draw, taken) {
            return draw;
        }
    }
    let sizes: Option<Vec<u64>> = space.params.values().map(Distribution::n_values).collect();
    let Some(sizes) = sizes else { return proposal };
    let total = sizes.iter().try_fold(1u64, |n, &s| n.checked_mul(s)).unwrap_or(u64::MAX);
    // Among any `taken.len() + 1` points one is free, unless the space is that small.
    for index in 0..total.min(taken.len() as u64 + 1) {
        let mut rest = index;
        let point: Params = space
            .params
            .iter()
            .zip(&sizes)
            .map(|((name, dist), &size)| {
                let value = dist.value_at(rest % size).expect("an index below the domain's size");
                rest /= size;
                (name.clone(), value)
            })
            .collect();
        if !is_taken(&point, taken) {
            return point;
        }
    }
    proposal
}

fn internal(dist: &Distribution, value: &crate::ParamValue) -> f64 {
    dist.to_internal(value).expect("sampled values have the distribution's kind")
}

/// Candidate indices by descending log l(x) − log g(x), ties in candidate
/// order: the first is Optuna's pick (the first maximum). NaN scores (which
/// the prior rules out) come last.
fn by_acquisition(log_l: &[f64], log_g: &[f64]) -> Vec<usize> {
    let score = |i: usize| {
        let s = log_l[i] - log_g[i];
        if s.is_nan() {
            f64::NEG_INFINITY
        } else {
            s
        }
    };
    let mut order: Vec<usize> = (0..log_l.len()).collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    order
}

/// How a domain looks to the Parzen estimator: the internal interval of
/// its Gaussians (widened by half a step at both ends on a grid) and the
/// values it takes.
fn dim_spec(dist: &Distribution) -> DimSpec {
    if let Distribution::Categorical { choices } = dist {
        return DimSpec::Categorical { n: choices.len() };
    }
    let (lo, hi) = dist.internal_bounds();
    match dist.step() {
        None => DimSpec::Numeric { lo, hi, grid: Grid::Continuous },
        Some(step) => {
            let (low, high) = (dist_low(dist), dist.from_internal(hi).as_f64().unwrap_or(hi));
            let (lo, hi) = (low - 0.5 * step, high + 0.5 * step);
            if dist.is_log() {
                DimSpec::Numeric { lo: lo.ln(), hi: hi.ln(), grid: Grid::Log { low, high, step } }
            } else {
                DimSpec::Numeric { lo, hi, grid: Grid::Linear { low, high, step } }
            }
        }
    }
}

fn dist_low(dist: &Distribution) -> f64 {
    match *dist {
        Distribution::Float { low, .. } => low,
        Distribution::Int { low, .. } => low as f64,
        Distribution::Categorical { .. } => 0.0,
    }
}

/// The estimator of `trials` (in number order) over the given parameters,
/// from the trials whose values for all of them lie in their domains, with
/// `weights` (one per trial) where given, else Optuna's default weights.
fn estimator(
    dists: &[(&String, &Distribution)],
    specs: &[DimSpec],
    trials: &[&FrozenTrial],
    weights: Option<&[f64]>,
    params: &ParzenParams,
) -> ParzenEstimator {
    let bounds: Vec<(f64, f64)> = dists.iter().map(|(_, d)| d.internal_bounds()).collect();
    let mut observations: Vec<Vec<f64>> = vec![Vec::with_capacity(trials.len()); dists.len()];
    let mut kept_weights = Vec::with_capacity(trials.len());
    let mut row = vec![0.0; dists.len()];
    'trials: for (i, trial) in trials.iter().enumerate() {
        for (((name, dist), &(lo, hi)), x) in dists.iter().zip(&bounds).zip(row.iter_mut()) {
            match trial.params.get(*name).and_then(|v| dist.to_internal(v)) {
                Some(value) if value >= lo && value <= hi => *x = value,
                _ => continue 'trials,
            }
        }
        for (column, &x) in observations.iter_mut().zip(&row) {
            column.push(x);
        }
        if let Some(weights) = weights {
            kept_weights.push(weights[i]);
        }
    }
    if weights.is_none() {
        kept_weights = default_weights(observations.first().map_or(0, Vec::len));
    }
    ParzenEstimator::new(specs, &observations, &kept_weights, params)
}

/// The weights of the "below" trials of a study with several objectives:
/// 1 each, as Optuna 5.0's MOTPE gives them (no ramp for old trials; its
/// earlier weighting by hypervolume contribution is gone). `None` with one
/// objective: the default weights then apply.
fn below_weights(below: &[&FrozenTrial], directions: &[Direction]) -> Option<Vec<f64>> {
    (!directions.is_empty()).then(|| vec![1.0; below.len()])
}

/// What TPE learns from: COMPLETE trials with a value, PRUNED trials, and
/// FAILED trials that carry constraint values (failures counted as
/// infeasible).
fn is_finished_observation(trial: &FrozenTrial) -> bool {
    match trial.state {
        TrialState::Complete => trial.value.is_some() || !trial.values.is_empty(),
        TrialState::Pruned => true,
        TrialState::Failed => trial.constraints.is_some(),
        _ => false,
    }
}

/// Splits the history into the good ("below") and the other ("above")
/// trials, each in trial-number order. See the module docs for the rules.
///
/// With constraints (Optuna's `constraints_func`), infeasible trials (a
/// positive violation) leave their state's ranking: the γ(n) places go to
/// feasible COMPLETE trials by value, then PRUNED ones, then infeasible
/// ones by least violation; the rest are above.
pub fn split_trials<'a>(
    history: &'a [FrozenTrial],
    direction: Direction,
    directions: &[Direction],
    constant_liar: bool,
) -> (Vec<&'a FrozenTrial>, Vec<&'a FrozenTrial>) {
    let loss = |value: f64| if value.is_nan() { f64::INFINITY } else { direction.as_loss(value) };
    let observed = history.iter().filter(|t| is_finished_observation(t));
    let (mut infeasible, feasible): (Vec<&FrozenTrial>, Vec<&FrozenTrial>) =
        observed.partition(|t| t.violation().is_some_and(|v| v > 0.0));
    let mut complete: Vec<&FrozenTrial> =
        feasible.iter().copied().filter(|t| t.state == TrialState::Complete).collect();
    let mut pruned: Vec<&FrozenTrial> =
        feasible.iter().copied().filter(|t| t.state == TrialState::Pruned).collect();
    let observed = complete.len() + pruned.len() + infeasible.len();
    let n_below =
        if directions.is_empty() { default_gamma(observed) } else { multi_objective_gamma(observed) };

    let n_complete_below = n_below.min(complete.len());
    if directions.is_empty() {
        // By value, ties by number (unique keys: the unstable sort is deterministic).
        complete.sort_unstable_by(|a, b| {
            loss(a.value.unwrap()).total_cmp(&loss(b.value.unwrap())).then(a.number.cmp(&b.number))
        });
    } else {
        complete = order_by_domination(complete, directions, n_complete_below);
    }
    // Deeper pruned trials rank first, then the better last value; none reported ranks last.
    let pruned_key = |t: &FrozenTrial| match t.last_intermediate() {
        Some((step, value)) => (0, -(step as i128), loss(value)),
        None => (1, 0, 0.0),
    };
    pruned.sort_unstable_by(|a, b| {
        let (ka, kb) = (pruned_key(a), pruned_key(b));
        ka.0.cmp(&kb.0).then(ka.1.cmp(&kb.1)).then(ka.2.total_cmp(&kb.2)).then(a.number.cmp(&b.number))
    });
    let n_pruned_below = (n_below - n_complete_below).min(pruned.len());
    // The least violation first (Optuna's sort is stable: ties by number).
    infeasible.sort_by(|a, b| a.violation().unwrap().total_cmp(&b.violation().unwrap()));
    let n_infeasible_below = (n_below - n_complete_below - n_pruned_below).min(infeasible.len());

    let mut below: Vec<&FrozenTrial> = complete[..n_complete_below].to_vec();
    below.extend_from_slice(&pruned[..n_pruned_below]);
    below.extend_from_slice(&infeasible[..n_infeasible_below]);
    let mut above: Vec<&FrozenTrial> = complete[n_complete_below..].to_vec();
    above.extend_from_slice(&pruned[n_pruned_below..]);
    above.extend_from_slice(&infeasible[n_infeasible_below..]);
    if constant_liar {
        above.extend(history.iter().filter(|t| t.state == TrialState::Running));
    }
    below.sort_unstable_by_key(|t| t.number);
    above.sort_unstable_by_key(|t| t.number);
    (below, above)
}

/// γ(n) with several objectives: ⌈0.1·n⌉, without the cap at 25 (Optuna 5.0).
pub fn multi_objective_gamma(n: usize) -> usize {
    n.div_ceil(10)
}

/// The COMPLETE trials of a study with several objectives, the `n_below`
/// best first (Optuna's MOTPE split): whole non-dominated ranks while they
/// fit, then the rank that does not fit cut by hypervolume subset selection
/// (reference 10 % beyond its worst point); each part in trial order.
fn order_by_domination<'a>(
    complete: Vec<&'a FrozenTrial>,
    directions: &[Direction],
    n_below: usize,
) -> Vec<&'a FrozenTrial> {
    if n_below == 0 || n_below >= complete.len() {
        return complete;
    }
    let losses: Vec<Vec<f64>> = complete
        .iter()
        .map(|t| pareto::losses(t, directions).unwrap_or_else(|| vec![f64::INFINITY; directions.len()]))
        .collect();
    let ranks = pareto::non_dominated_ranks(&losses, |a, b| pareto::dominates(a, b));
    let mut taken = vec![false; complete.len()];
    let mut count = 0;
    for rank in 0.. {
        let members: Vec<usize> = (0..complete.len()).filter(|&i| ranks[i] == rank).collect();
        if count + members.len() <= n_below {
            members.iter().for_each(|&i| taken[i] = true);
            count += members.len();
            if count == n_below {
                break;
            }
            continue;
        }
        let points: Vec<Vec<f64>> = members.iter().map(|&i| losses[i].clone()).collect();
        let reference = pareto::reference_point(&points);
        for k in pareto::select_by_hypervolume(&points, n_below - count, &reference) {
            taken[members[k]] = true;
        }
        break;
    }
    let (below, above): (Vec<_>, Vec<_>) = complete.into_iter().zip(taken).partition(|(_, t)| *t);
    below.into_iter().chain(above).map(|(t, _)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParamValue, SearchSpace};

    fn trial(number: u64, state: TrialState, value: Option<f64>, x: f64) -> FrozenTrial {
        FrozenTrial {
            number,
            phase: 0,
            state,
            params: [("x".to_owned(), ParamValue::Float(x))].into(),
            value,
            intermediate: Default::default(),
            values: Vec::new(),
            constraints: None,
        }
    }

    #[test]
    fn gamma_matches_optuna() {
        assert_eq!(default_gamma(0), 0);
        assert_eq!(default_gamma(1), 1);
        assert_eq!(default_gamma(10), 1);
        assert_eq!(default_gamma(11), 2);
        assert_eq!(default_gamma(1000), 25);
    }

    #[test]
    fn split_ranks_complete_then_pruned_and_lies_about_running() {
        let mut history: Vec<FrozenTrial> =
            (0..18).map(|i| trial(i, TrialState::Complete, Some(i as f64), 0.1)).collect();
        let mut deep = trial(18, TrialState::Pruned, None, 0.2);
        deep.intermediate.insert(9, 100.0);
        let mut shallow = trial(19, TrialState::Pruned, None, 0.3);
        shallow.intermediate.insert(2, -100.0);
        history.push(deep);
        history.push(shallow);
        history.push(trial(20, TrialState::Running, None, 0.4));
        history.push(trial(21, TrialState::Failed, None, 0.5));
        // n = 20 finished → γ = 2 below: both from COMPLETE trials.
        let (below, above) = split_trials(&history, Direction::Minimize, &[], true);
        assert_eq!(below.iter().map(|t| t.number).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(above.len(), 19);
        assert!(above.iter().any(|t| t.number == 20) && !above.iter().any(|t| t.number == 21));
        // With only one COMPLETE trial, the deeper pruned trial fills the gap.
        let few: Vec<FrozenTrial> = history.into_iter().filter(|t| t.number == 0 || t.number >= 18).collect();
        let mut more = few.clone();
        for i in 30..40 {
            let mut p = trial(i, TrialState::Pruned, None, 0.0);
            p.intermediate.insert(1, 0.0);
            more.push(p);
        }
        let (below, _) = split_trials(&more, Direction::Maximize, &[], false);
        assert_eq!(below.iter().map(|t| t.number).collect::<Vec<_>>(), vec![0, 18]);
    }

    /// Optuna's constrained split: feasible trials by value first, then the
    /// infeasible ones by least violation; a FAILED trial with constraint
    /// values (a failure counted as infeasible) is one of them.
    #[test]
    fn split_puts_infeasible_trials_after_feasible_ones() {
        let with = |mut t: FrozenTrial, c: &[f64]| {
            t.constraints = Some(c.to_vec());
            t
        };
        let mut history: Vec<FrozenTrial> = Vec::new();
        // The best values, all infeasible.
        for i in 0..5 {
            history.push(with(trial(i, TrialState::Complete, Some(i as f64), 0.1), &[1.0 + i as f64, -1.0]));
        }
        // Worse values, feasible.
        for i in 5..20 {
            history.push(with(trial(i, TrialState::Complete, Some(100.0 + i as f64), 0.2), &[0.0, -1.0]));
        }
        history.push(with(trial(20, TrialState::Failed, None, 0.3), &[0.5]));
        history.push(trial(21, TrialState::Failed, None, 0.4));
        // n = 21 observations (the plain failure is not one) → γ = 3.
        let (below, above) = split_trials(&history, Direction::Minimize, &[], false);
        assert_eq!(below.iter().map(|t| t.number).collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(above.len(), 18);
        assert!(above.iter().any(|t| t.number == 20) && !above.iter().any(|t| t.number == 21));
        // With only three feasible trials, the least violations fill γ: the
        // failure's 0.5 ranks before trial 0's 1.0.
        let few: Vec<FrozenTrial> =
            history.iter().filter(|t| t.number < 7 || t.number >= 20).cloned().collect();
        let mut more = few.clone();
        for i in 22..32 {
            more.push(with(trial(i, TrialState::Complete, Some(0.0), 0.5), &[9.0]));
        }
        // n = 18 → γ = 2: both feasible trials.
        let (below, _) = split_trials(&more, Direction::Minimize, &[], false);
        assert_eq!(below.iter().map(|t| t.number).collect::<Vec<_>>(), vec![5, 6]);
        for i in 32..45 {
            more.push(with(trial(i, TrialState::Complete, Some(0.0), 0.5), &[9.0]));
        }
        // n = 31 → γ = 4: two feasible, then the failure (0.5) and trial 0 (1.0).
        let (below, _) = split_trials(&more, Direction::Minimize, &[], false);
        assert_eq!(below.iter().map(|t| t.number).collect::<Vec<_>>(), vec![0, 5, 6, 20]);
    }

    /// Asks `n` trials one after another, each seeing the earlier ones RUNNING
    /// (as a deterministic batch does), and returns their points.
    fn batch(sampler: &TpeSampler, space: &SearchSpace, history: &[FrozenTrial], n: usize) -> Vec<Params> {
        let mut history = history.to_vec();
        let mut points = Vec::new();
        for _ in 0..n {
            let number = history.len() as u64;
            let ctx = SampleContext {
                space,
                history: &history,
                direction: Direction::Minimize,
                directions: &[],
                seed: 7,
                trial_number: number,
                phase: 0,
            };
            let params = sampler.sample(&ctx).unwrap();
            assert!(space.contains(&params), "{params:?} outside the space");
            history.push(FrozenTrial {
                number,
                phase: 0,
                state: TrialState::Running,
                params: params.clone(),
                value: None,
                intermediate: Default::default(),
                values: Vec::new(),
                constraints: None,
            });
            points.push(params);
        }
        points
    }

    #[test]
    fn batch_mates_never_share_a_point_while_the_space_has_others() {
        // 3 × 2 × 2 = 12 points; the good region is small, so TPE wants one point.
        let space =
            SearchSpace::new().int("a", 0, 2).int("b", 0, 1).categorical("c", ["x".into(), "y".into()]);
        let history: Vec<FrozenTrial> = (0..20)
            .map(|i| {
                let (a, b, c) = (i % 3, (i / 3) % 2, if i % 5 == 0 { "x" } else { "y" });
                let params: Params = [
                    ("a".to_owned(), ParamValue::Int(a as i64)),
                    ("b".to_owned(), ParamValue::Int(b as i64)),
                    ("c".to_owned(), ParamValue::from(c)),
                ]
                .into();
                let value = (a as f64 - 1.0).abs() + b as f64 + f64::from(u8::from(c == "x"));
                FrozenTrial {
                    number: i,
                    phase: 0,
                    state: TrialState::Complete,
                    params,
                    value: Some(value),
                    intermediate: Default::default(),
                    values: Vec::new(),
                    constraints: None,
                }
            })
            .collect();
        for multivariate in [false, true] {
            let sampler = TpeSampler::new(TpeConfig { multivariate, ..Default::default() });
            for (past, n) in [(&history[..], 12), (&history[..0], 12)] {
                let points = batch(&sampler, &space, past, n);
                for (i, p) in points.iter().enumerate() {
                    assert!(
                        !is_taken(p, &points[..i].iter().collect::<Vec<_>>()),
                        "{multivariate}: {i} repeats"
                    );
                }
                // The 13th finds the space exhausted and still proposes a point in it.
                let more = batch(&sampler, &space, past, n + 1);
                assert_eq!(more[..n], points[..], "the same batch, asked again");
            }
            // Without the liar, batch-mates see no running trial: the repeats come back.
            let plain =
                TpeSampler::new(TpeConfig { multivariate, constant_liar: false, ..Default::default() });
            let points = batch(&plain, &space, &history, 4);
            assert!(points.windows(2).any(|w| w[0] == w[1]), "{multivariate}: {points:?}");
        }
    }

    #[test]
    fn tpe_concentrates_near_good_trials() {
        let space = SearchSpace::new().float("x", 0.0, 1.0);
        let history: Vec<FrozenTrial> = (0..40)
            .map(|i| {
                let x = (i as f64 * 0.618_033_988_7) % 1.0;
                trial(i, TrialState::Complete, Some((x - 0.3).abs()), x)
            })
            .collect();
        let sampler = TpeSampler::default();
        let mut near = 0;
        for number in 40..80 {
            let ctx = SampleContext {
                space: &space,
                history: &history,
                direction: Direction::Minimize,
                directions: &[],
                seed: 1,
                trial_number: number,
                phase: 0,
            };
            let x = sampler.sample(&ctx).unwrap()["x"].as_f64().unwrap();
            near += usize::from((x - 0.3).abs() < 0.1);
        }
        assert!(near >= 30, "only {near} of 40 suggestions near the optimum");
    }
}
