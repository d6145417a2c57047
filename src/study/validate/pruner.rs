//! `pruner`: which trials stop early, with each pruner's own options.

use super::Checker;
use crate::error::InputError;
use crate::hpo::{MedianPruner, PrunerConfig, SuccessiveHalvingPruner};
use crate::study::file::PrunerSpec;

impl Checker<'_> {
    pub(super) fn pruner(&self, p: &PrunerSpec) -> Result<PrunerConfig, InputError> {
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
        };
        config.validate("pruner").map_err(|err| self.err("pruner", err.problem).with_hint(err.hint))?;
        Ok(config)
    }
}
