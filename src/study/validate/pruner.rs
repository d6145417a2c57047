//! `pruner`: which trials stop early, with each pruner's own options.

use super::Checker;
use crate::error::InputError;
use crate::hpo::{HyperbandPruner, MedianPruner, PrunerConfig, SuccessiveHalvingPruner};
use crate::study::file::{PrunerSpec, StepsOrAuto};

impl Checker<'_> {
    /// The pruner of the study named `study_name` (Hyperband hashes it into its brackets, as Optuna does).
    pub(super) fn pruner(&self, p: &PrunerSpec, study_name: &str) -> Result<PrunerConfig, InputError> {
        let config = match p {
            PrunerSpec::None {} => PrunerConfig::None,
            PrunerSpec::Median(o) => {
                let d = MedianPruner::default();
                PrunerConfig::Median(MedianPruner {
                    n_startup_trials: o.n_startup_trials.unwrap_or(d.n_startup_trials),
                    n_warmup_steps: o.n_warmup_steps.unwrap_or(d.n_warmup_steps),
                    interval_steps: o.interval_steps.unwrap_or(d.interval_steps),
                    n_min_trials: o.n_min_trials.unwrap_or(d.n_min_trials),
                })
            }
            PrunerSpec::Asha(o) => {
                let d = SuccessiveHalvingPruner::default();
                PrunerConfig::SuccessiveHalving(SuccessiveHalvingPruner {
                    min_resource: o.min_resource.or(d.min_resource),
                    reduction_factor: o.reduction_factor.unwrap_or(d.reduction_factor),
                    min_early_stopping_rate: o.min_early_stopping_rate.unwrap_or(d.min_early_stopping_rate),
                })
            }
            PrunerSpec::Hyperband(o) => {
                let d = HyperbandPruner::default();
                let max_resource = match &o.max_resource {
                    None => d.max_resource,
                    Some(StepsOrAuto::Steps(steps)) => Some(*steps),
                    Some(StepsOrAuto::Word(word)) if word == "auto" => None,
                    Some(StepsOrAuto::Word(word)) => {
                        return Err(self
                            .err(
                                "pruner.max_resource",
                                format!("`{word}` is neither a number of steps nor `auto`"),
                            )
                            .with_hint("give the most steps (epochs) a trial reports, e.g. 100, or `auto`"))
                    }
                };
                let pruner = HyperbandPruner {
                    min_resource: o.min_resource.unwrap_or(d.min_resource),
                    max_resource,
                    reduction_factor: o.reduction_factor.unwrap_or(d.reduction_factor),
                    ..d
                };
                PrunerConfig::Hyperband(pruner.for_study(study_name))
            }
        };
        config.validate("pruner").map_err(|err| {
            // Each check names its option first: point at that key.
            let key = err.problem.split_whitespace().next().filter(|k| k.contains('_')).unwrap_or_default();
            let path = if key.is_empty() { "pruner".to_owned() } else { format!("pruner.{key}") };
            self.err(&path, &err.problem).with_hint(err.hint)
        })?;
        Ok(config)
    }
}
