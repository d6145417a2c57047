//! `sampler: {type: auto}`: the GP sampler or multivariate TPE, chosen by
//! the rule the quality table supports (`benches/hpo_quality.rs` with
//! `HPO_QUALITY_BUDGETS=30,50,100`; docs/benchmarks.md § "GP against
//! Optuna 5.0 and TPE"):
//!
//! - **GP up to [`GP_MAX_TRIALS`] trials.** There it reached better values
//!   than TPE on every space measured (continuous, mixed, integer, and the
//!   all-categorical `categorical6`), except the multimodal Styblinski–Tang
//!   at 30 and 50 trials, where TPE's wider exploration wins. How many
//!   local optima an objective has is a property of the objective, not of
//!   its space, so the rule cannot see it: a user who expects many should
//!   choose `tpe`.
//! - **TPE above it.** The GP's fit grows with the cube of the trials (≈ 30
//!   ms an ask at 100, against a few ms for TPE at any size) and the table
//!   does not go beyond 100 trials, so larger budgets stay with TPE.
//!
//! - **TPE for conditional spaces.** The GP models only the parameters
//!   every trial has (as Optuna's does) and draws conditional ones at
//!   random; multivariate TPE models each group of parameters on the trials
//!   that have it.
//!
//! - **TPE for several objectives.** Multi-objective TPE (Optuna's
//!   MOTPE); the GP sampler here handles one objective.
//!
//! Constraints do not change the rule: the GP models each one and reached
//! better feasible values than TPE on both constrained problems measured
//! (`HPO_QUALITY_CONSTRAINED=1`: Gramacy's problem and the AnisoNet search
//! under a size budget, at 30, 50 and 100 trials).
//!
//! The share of categorical parameters does not enter: on `categorical6`
//! (six categoricals of five choices) the GP's Hamming kernel beat TPE at
//! every budget.

use super::{GpConfig, TpeConfig};
use crate::{Distribution, SamplerConfig, SearchSpace};

/// The largest budget the GP sampler is chosen for: the largest measured.
pub const GP_MAX_TRIALS: u64 = 100;

/// The sampler `auto` stands for, and why, in one line for the study's log.
pub fn choose(space: &SearchSpace, n_trials: u64, several_objectives: bool) -> (SamplerConfig, String) {
    let categorical = space.params.values().filter(|d| matches!(d, Distribution::Categorical { .. })).count();
    let total = space.len();
    let plural = if total == 1 { "" } else { "s" };
    let shape = format!("{n_trials} trials over {total} parameter{plural}, {categorical} categorical");
    if several_objectives {
        let why =
            format!("tpe (multivariate): {shape}, several objectives; the GP sampler handles one objective");
        (SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }), why)
    } else if space.is_conditional() {
        let why = format!(
            "tpe (multivariate): {shape}, {} conditional; TPE models conditional parameters, the GP draws them at random",
            space.conditions.len()
        );
        (SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }), why)
    } else if n_trials > GP_MAX_TRIALS {
        let why = format!(
            "tpe (multivariate): {shape}; above {GP_MAX_TRIALS} trials TPE's ask stays cheap while the GP's grows with the cube of the trials"
        );
        (SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }), why)
    } else {
        let why = format!(
            "gp: {shape}; up to {GP_MAX_TRIALS} trials the GP reached better values than TPE on every space measured (multimodal objectives excepted: choose tpe for those)"
        );
        (SamplerConfig::Gp(GpConfig::default()), why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_up_to_the_measured_ones_get_the_gp_and_larger_ones_tpe() {
        let space = SearchSpace::new().log_float("lr", 1e-4, 0.5).int("mul", 16, 64);
        let (config, why) = choose(&space, 60, false);
        assert!(matches!(config, SamplerConfig::Gp(_)), "{why}");
        assert!(why.starts_with("gp: 60 trials over 2 parameters, 0 categorical"), "{why}");
        let (config, why) = choose(&space, 500, false);
        assert!(matches!(config, SamplerConfig::Tpe(TpeConfig { multivariate: true, .. })), "{why}");
        assert!(why.contains("above 100 trials"), "{why}");
        let (config, why) = choose(&crate::test_functions::conditional_space(), 60, false);
        assert!(matches!(config, SamplerConfig::Tpe(_)) && why.contains("2 conditional"), "{why}");
    }
}
