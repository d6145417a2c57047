//! Gaussian-process Bayesian optimisation with the semantics of Optuna 5.0's
//! `GPSampler`, for budgets of tens of expensive trials over mostly numeric
//! spaces, where it needs fewer trials than TPE (`benches/hpo_quality.rs`,
//! budgets 30, 50 and 100; the table is in docs/benchmarks.md).
//!
//! Each proposal:
//!
//! 1. The first `n_startup_trials` COMPLETE trials are random, as Optuna's
//!    default independent sampler draws them.
//! 2. The COMPLETE trials whose parameters lie in this phase's space are
//!    encoded ([`space`]), their values turned into a quantity to maximise
//!    and standardised; a Matérn-5/2 ARD process is fitted to them
//!    ([`regressor`]).
//! 3. The acquisition is log EI over the best value, or, when trials are
//!    still running (several slots in `async` mode, or earlier trials of a
//!    `deterministic` batch), the batch log EI of the candidate together
//!    with them ([`acquisition`]).
//! 4. It is maximised over the space from quasi-random starts and the best
//!    trial by local searches over the continuous and the discrete
//!    dimensions ([`optimize`]); the point is decoded onto the domain.
//!
//! PRUNED and FAILED trials are not modelled, as in Optuna. The sampler is
//! stateless like every sampler here: all draws come from the (seed, trial
//! number) stream, so a resumed study asks what an uninterrupted one would
//! have asked, bit for bit.
//!
//! Differences from Optuna, each kept small and on purpose: every kernel
//! fit starts from the default parameters (Optuna starts from its previous
//! fit, a cache that a restart loses); the L-BFGS-B and the search of large
//! integer grids are our own ([`optimize`]); the random streams are ChaCha
//! and Owen-scrambled Sobol rather than numpy's and scipy's, so the same
//! seed gives other proposals than Optuna's but the same distribution of
//! results.

mod acquisition;
mod linalg;
mod optimize;
mod regressor;
mod space;

use serde::{Deserialize, Serialize};

use super::random::{sample_one, sample_space};
use super::{SampleContext, Sampler};
use crate::rng::{self, Stream};
use crate::{Direction, FrozenTrial, Params, SearchSpace, TrialState};
use anisostudy_error::InputError;

use acquisition::{ConstrainedLogEi, LogEi, LogPi, QLogEi};
use optimize::{maximise, Acquisition, SearchSettings};
use regressor::Gp;
use space::EncodedSpace;

/// Settings of the GP sampler; defaults are Optuna 5.0's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpConfig {
    /// COMPLETE trials sampled at random before the process is used.
    pub n_startup_trials: usize,
    /// The objective has no noise: the process interpolates its trials.
    pub deterministic_objective: bool,
    /// Quasi-random points scored before the local searches (at most 65,536).
    pub n_preliminary_samples: u32,
    /// Local searches of the acquisition per proposal.
    pub n_local_search: usize,
    /// Fantasies of the running trials in the batch acquisition.
    pub n_qmc_samples: u32,
}

impl Default for GpConfig {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            deterministic_objective: false,
            n_preliminary_samples: 2048,
            n_local_search: 10,
            n_qmc_samples: 128,
        }
    }
}

impl GpConfig {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if !(1..=65_536).contains(&self.n_preliminary_samples) {
            return Err(InputError::new(
                location,
                format!("n_preliminary_samples must be 1 to 65536, got {}", self.n_preliminary_samples),
            ));
        }
        if self.n_local_search < 2 {
            return Err(InputError::new(
                location,
                format!("n_local_search must be at least 2, got {}", self.n_local_search),
            )
            .with_hint("one search starts from the best sample and one from the best trial"));
        }
        if self.n_qmc_samples == 0 {
            return Err(InputError::new(location, "n_qmc_samples must be at least 1"));
        }
        Ok(())
    }
}

/// The GP sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpSampler {
    pub config: GpConfig,
}

impl GpSampler {
    pub fn new(config: GpConfig) -> Self {
        Self { config }
    }
}

impl Sampler for GpSampler {
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params> {
        if !ctx.space.is_conditional() {
            return self.sample_in(ctx, ctx.space);
        }
        // As Optuna's GPSampler: the process models the parameters every
        // trial has; conditional ones are drawn at random when active.
        let always = SearchSpace {
            params: ctx
                .space
                .params
                .iter()
                .filter(|(name, _)| !ctx.space.conditions.contains_key(*name))
                .map(|(name, dist)| (name.clone(), dist.clone()))
                .collect(),
            conditions: Default::default(),
        };
        let mut params = if always.is_empty() { Params::new() } else { self.sample_in(ctx, &always)? };
        let mut rng = rng::seeded(ctx.seed, ctx.trial_number, Stream::Conditional);
        for name in ctx.space.sampling_order() {
            if !params.contains_key(name) && ctx.space.is_active(name, &params) {
                params.insert(name.clone(), sample_one(&ctx.space.params[name], &mut rng));
            }
        }
        Ok(params)
    }
}

impl GpSampler {
    /// A proposal over `space`, a space without conditions.
    fn sample_in(&self, ctx: &SampleContext<'_>, searched: &SearchSpace) -> anyhow::Result<Params> {
        let mut rng = rng::seeded(ctx.seed, ctx.trial_number, Stream::Sample);
        let space = EncodedSpace::new(searched);
        let complete: Vec<(&FrozenTrial, Vec<f64>)> = ctx
            .history
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(|v| !v.is_nan()))
            .filter_map(|t| Some((t, space.encode(&t.params)?)))
            .collect();
        if complete.len() < self.config.n_startup_trials.max(1) {
            return Ok(sample_space(searched, &mut rng));
        }
        let values: Vec<f64> = complete
            .iter()
            .map(|(t, _)| {
                let v = t.value.expect("COMPLETE trials with a value");
                if ctx.direction == Direction::Minimize {
                    -v
                } else {
                    v
                }
            })
            .collect();
        let y = standardise(&values);
        let feasible: Vec<bool> = complete.iter().map(|(t, _)| t.is_feasible()).collect();
        let x: Vec<Vec<f64>> = complete.into_iter().map(|(_, x)| x).collect();
        let categorical: Vec<bool> = (0..space.len()).map(|d| space.is_categorical(d)).collect();
        // The best feasible trial: EI's threshold and a local search's start.
        let best = (0..y.len()).filter(|&i| feasible[i]).reduce(|b, i| if y[i] > y[b] { i } else { b });
        let warm_start: Vec<Vec<f64>> = best.map(|b| x[b].clone()).into_iter().collect();
        let threshold = best.map(|b| y[b]);
        let constraint_data = constraint_data(ctx.history, &space);
        let gp = Gp::fit(x, &y, categorical.clone(), self.config.deterministic_objective);

        let running: Vec<Vec<f64>> = ctx
            .history
            .iter()
            .filter(|t| t.state == TrialState::Running && t.number != ctx.trial_number)
            .filter_map(|t| space.encode(&t.params))
            .collect();
        let settings = SearchSettings {
            preliminary_samples: self.config.n_preliminary_samples,
            local_searches: self.config.n_local_search,
            ..Default::default()
        };
        let single;
        let batch;
        let objective: Option<&dyn Acquisition> = match threshold {
            None => None,
            Some(threshold) if running.is_empty() => {
                single = LogEi { gp: &gp, threshold };
                Some(&single)
            }
            Some(threshold) => {
                let qmc_seed = rand::RngCore::next_u32(&mut rng);
                batch = QLogEi::new(&gp, threshold, running, self.config.n_qmc_samples, qmc_seed);
                Some(&batch)
            }
        };
        let constraint_gps: Vec<(Gp, f64)> = constraint_data
            .map(|(x, columns)| {
                columns
                    .iter()
                    .map(|c| {
                        // Sign-flipped (feasible is high) and standardised; the
                        // standardised zero is the feasibility threshold.
                        let flipped: Vec<f64> = c.iter().map(|v| -v).collect();
                        let (y, zero) = standardise_with_zero(&flipped);
                        (
                            Gp::fit(x.clone(), &y, categorical.clone(), self.config.deterministic_objective),
                            zero,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let constrained;
        let acquisition: &dyn Acquisition = if constraint_gps.is_empty() {
            match objective {
                Some(objective) => objective,
                // Unconstrained, a COMPLETE trial is feasible: unreachable.
                None => return Ok(sample_space(searched, &mut rng)),
            }
        } else {
            constrained = ConstrainedLogEi {
                objective,
                constraints: constraint_gps.iter().map(|(gp, zero)| LogPi { gp, threshold: *zero }).collect(),
            };
            &constrained
        };
        let (point, _) = maximise(acquisition, &space, &gp.length_scales(), &warm_start, &settings, &mut rng);
        Ok(space.decode(&point))
    }
}

/// The trials that constraint processes learn from, where the study has
/// constraints: the COMPLETE trials (as Optuna's) and the FAILED trials
/// that carry constraint values (failures counted as infeasible), each with
/// its encoded point; and per constraint its values. A failure's sentinel
/// violation (and NaN) becomes a value beyond the measured ones: the
/// largest measured value plus their range (at least 1), so a failed
/// setting reads as worse than any trial that ran, without one enormous
/// number flattening the standardised values. `None` without constraints.
#[allow(clippy::type_complexity)]
fn constraint_data(history: &[FrozenTrial], space: &EncodedSpace) -> Option<(Vec<Vec<f64>>, Vec<Vec<f64>>)> {
    let width = history.iter().find_map(|t| t.constraints.as_ref().map(Vec::len)).filter(|&k| k > 0)?;
    let learnt = |t: &&FrozenTrial| match t.state {
        TrialState::Complete => t.value.is_some_and(|v| !v.is_nan()),
        TrialState::Failed => true,
        _ => false,
    };
    let (mut x, mut columns) = (Vec::new(), vec![Vec::new(); width]);
    for t in history.iter().filter(learnt) {
        let Some(values) = t.constraints.as_ref().filter(|c| c.len() == width) else { continue };
        let Some(point) = space.encode(&t.params) else { continue };
        x.push(point);
        for (column, &v) in columns.iter_mut().zip(values) {
            column.push(v);
        }
    }
    if x.is_empty() {
        return None;
    }
    let measured = |v: f64| v.is_finite() && v < FAILURE_VIOLATION_FLOOR;
    for column in &mut columns {
        let (lo, hi) = column
            .iter()
            .copied()
            .filter(|&v| measured(v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let beyond = if lo <= hi { hi.max(0.0) + (hi - lo).max(1.0) } else { 1.0 };
        for v in column.iter_mut().filter(|v| !measured(**v)) {
            *v = beyond;
        }
    }
    Some((x, columns))
}

/// Constraint values at least this large are failures' sentinels, not
/// measurements (the study layer's violation for a failure is 10³⁰⁰).
const FAILURE_VIOLATION_FLOOR: f64 = 1e299;

/// [`standardise`], and where 0 lands on the standardised scale
/// (Optuna's `-mean / max(EPS, std)`).
fn standardise_with_zero(values: &[f64]) -> (Vec<f64>, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (standardise(values), -mean / std.max(1e-10))
}

/// (v − mean)/std with the population std (numpy's default), infinities
/// clipped to the finite range first, as Optuna's `_standardize_values`.
fn standardise(values: &[f64]) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 0.0) };
    let clipped: Vec<f64> = values.iter().map(|v| v.clamp(lo, hi)).collect();
    let n = clipped.len() as f64;
    let mean = clipped.iter().sum::<f64>() / n;
    let std = (clipped.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    clipped.iter().map(|v| (v - mean) / std.max(1e-10)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_functions::{branin, branin_space, mixed, mixed_space};
    use crate::{ParamValue, SearchSpace};

    fn run(
        space: &SearchSpace,
        f: fn(&Params) -> f64,
        seed: u64,
        trials: u64,
        workers: u64,
    ) -> Vec<FrozenTrial> {
        crate::samplers::drive(&GpSampler::default(), space, f, Direction::Minimize, seed, trials, workers)
    }

    fn best(history: &[FrozenTrial]) -> f64 {
        history.iter().filter_map(|t| t.value).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn finds_the_branin_minimum_and_is_bit_identical_for_a_seed() {
        let a = run(&branin_space(), branin, 3, 30, 1);
        // Branin's minimum is 0.397887; random search needs hundreds of trials for 0.5.
        assert!(best(&a) < 0.42, "best {}", best(&a));
        let b = run(&branin_space(), branin, 3, 30, 1);
        assert_eq!(a, b);
    }

    #[test]
    fn a_batch_spreads_out_and_mixed_spaces_decode_onto_their_domains() {
        let history = run(&mixed_space(), mixed, 5, 24, 4);
        for batch in history[12..].chunks(4) {
            for (i, a) in batch.iter().enumerate() {
                for b in &batch[..i] {
                    assert_ne!(a.params, b.params, "a batch proposed one point twice");
                }
            }
        }
        assert!(history.iter().all(|t| matches!(t.params["l_max"], ParamValue::Int(_))));
    }

    /// Ties, repeated points, infinite values and a one-choice categorical
    /// give proposals in the space, with and without noise.
    #[test]
    fn degenerate_histories_still_give_proposals() {
        let space = SearchSpace::new()
            .int("a", 0, 2)
            .int("b", 0, 1)
            .categorical("fixed", [ParamValue::from("only")])
            .with("big", crate::Distribution::Int { low: 0, high: 5000, log: false, step: 1 });
        let objectives: [fn(&Params) -> f64; 3] = [
            |_| 1.0,
            |p| if p["a"] == ParamValue::Int(0) { f64::INFINITY } else { p["b"].as_f64().unwrap() },
            |p| -(p["big"].as_f64().unwrap() - 1234.0).abs(),
        ];
        for deterministic in [false, true] {
            let sampler =
                GpSampler::new(GpConfig { deterministic_objective: deterministic, ..Default::default() });
            for f in objectives {
                crate::samplers::drive(&sampler, &space, f, Direction::Maximize, 9, 25, 1);
            }
        }
    }

    /// With constraints and trials running, the batch log EI carries the
    /// objective and each constraint's log probability is added: the batch
    /// spreads out and still finds Gramacy's feasible optimum region.
    #[test]
    fn a_constrained_batch_spreads_out_and_stays_feasible() {
        use crate::test_functions::{gramacy, gramacy_constraints, gramacy_space};
        let history = crate::samplers::drive_constrained(
            &GpSampler::default(),
            &gramacy_space(),
            gramacy,
            Some(gramacy_constraints),
            Direction::Minimize,
            2,
            48,
            4,
        );
        for batch in history[12..].chunks(4) {
            for (i, a) in batch.iter().enumerate() {
                assert!(batch[..i].iter().all(|b| b.params != a.params), "a batch proposed one point twice");
            }
        }
        let best =
            history.iter().filter(|t| t.is_feasible()).filter_map(|t| t.value).fold(f64::INFINITY, f64::min);
        assert!(best < 0.66, "best feasible {best} (the optimum is 0.5998)");
    }

    #[test]
    fn validation_names_the_option() {
        let config = GpConfig { n_local_search: 1, ..Default::default() };
        assert!(config.validate("phase `bo`").unwrap_err().problem.contains("n_local_search"));
        assert!(GpConfig::default().validate("x").is_ok());
    }
}
