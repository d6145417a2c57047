//! `sampler: {type: auto}`: the GP sampler or multivariate TPE, chosen from
//! the phase's budget and space by the rule the quality table supports
//! (`benches/hpo_quality.rs` with `HPO_QUALITY_BUDGETS`; docs/benchmarks.md
//! § "GP against TPE"):
//!
//! - **GP** for budgets up to [`GP_MAX_TRIALS`] trials over spaces at most
//!   half categorical: there it needs fewer trials than TPE (Branin,
//!   Hartmann-6, the mixed space, at 30, 50 and 100 trials), and its ask
//!   (≈ 30 ms at 100 trials, cubic in the trials) stays small beside a trial;
//! - **TPE** otherwise: for large budgets the GP's fit grows with the cube
//!   of the trials while TPE's cost is linear and its quality catches up;
//!   categorical-heavy spaces give the GP's Hamming kernel little to learn
//!   from, where TPE models each choice's frequency directly.

use super::{GpConfig, TpeConfig};
use crate::{Distribution, SamplerConfig, SearchSpace};

/// The largest budget the GP sampler is chosen for.
pub const GP_MAX_TRIALS: u64 = 100;

/// The sampler `auto` stands for, and why, in one line for the study's log.
pub fn choose(space: &SearchSpace, n_trials: u64) -> (SamplerConfig, String) {
    let categorical = space.params.values().filter(|d| matches!(d, Distribution::Categorical { .. })).count();
    let total = space.len();
    let plural = if total == 1 { "" } else { "s" };
    let shape = format!("{n_trials} trials over {total} parameter{plural}, {categorical} categorical");
    if n_trials > GP_MAX_TRIALS {
        let why = format!("tpe (multivariate): {shape}; a budget above {GP_MAX_TRIALS} trials is TPE's");
        (SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }), why)
    } else if 2 * categorical > total {
        let why = format!("tpe (multivariate): {shape}; a space more than half categorical is TPE's");
        (SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }), why)
    } else {
        let why = format!(
            "gp: {shape}; a budget of at most {GP_MAX_TRIALS} trials over a mostly numeric space is the GP's"
        );
        (SamplerConfig::Gp(GpConfig::default()), why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamValue;

    #[test]
    fn small_numeric_budgets_get_the_gp_and_the_rest_tpe() {
        let numeric = SearchSpace::new().log_float("lr", 1e-4, 0.5).int("mul", 16, 64);
        let (config, why) = choose(&numeric, 60);
        assert!(matches!(config, SamplerConfig::Gp(_)), "{why}");
        assert!(why.starts_with("gp: 60 trials over 2 parameters"), "{why}");
        assert!(matches!(choose(&numeric, 500).0, SamplerConfig::Tpe(TpeConfig { multivariate: true, .. })));
        let choices = |n: i64| (1..=n).map(ParamValue::Int);
        let categorical = numeric
            .clone()
            .categorical("a", choices(3))
            .categorical("b", choices(4))
            .categorical("c", choices(2));
        let (config, why) = choose(&categorical, 60);
        assert!(matches!(config, SamplerConfig::Tpe(_)) && why.contains("half categorical"), "{why}");
    }
}
