//! Study phases: an ordered list of (sampler, search space, budget), e.g.
//! TPE for 60 trials, then a grid around the best trial. A phase owns the
//! trials it created; it ends when it has created its `n_trials` or, for a
//! grid, when every combination is taken. Later phases see every earlier
//! trial.

use serde::{Deserialize, Serialize};

use super::samplers::{GpConfig, GridSpec, Nsga2Config, TpeConfig};
use super::SearchSpace;
use anisostudy_error::InputError;

/// The sampler of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerConfig {
    Tpe(TpeConfig),
    Gp(GpConfig),
    Nsga2(Nsga2Config),
    Random,
    Grid(GridSpec),
}

/// One phase of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub space: SearchSpace,
    pub sampler: SamplerConfig,
    /// Trials the phase creates: required for TPE, GP and random search; for a
    /// grid an optional cap (the grid ends by itself when exhausted).
    #[serde(default)]
    pub n_trials: Option<u64>,
}

impl Phase {
    pub fn new(name: &str, space: SearchSpace, sampler: SamplerConfig, n_trials: Option<u64>) -> Self {
        Self { name: name.to_owned(), space, sampler, n_trials }
    }

    /// Where errors about this phase point.
    pub fn location(&self) -> String {
        format!("phase `{}`", self.name)
    }

    pub fn validate(&self) -> Result<(), InputError> {
        let location = self.location();
        self.space.validate().map_err(|mut err| {
            err.location = format!("{location}, {}", err.location);
            err
        })?;
        if self.n_trials == Some(0) {
            return Err(InputError::new(&location, "n_trials must be at least 1"));
        }
        match &self.sampler {
            SamplerConfig::Tpe(config) => {
                config.validate(&location)?;
                self.require_budget(&location)
            }
            SamplerConfig::Gp(config) => {
                config.validate(&location)?;
                self.require_budget(&location)
            }
            SamplerConfig::Nsga2(config) => {
                config.validate(&location)?;
                self.require_budget(&location)
            }
            SamplerConfig::Random => self.require_budget(&location),
            SamplerConfig::Grid(spec) => spec.validate(&self.space, &location),
        }
    }

    fn require_budget(&self, location: &str) -> Result<(), InputError> {
        match self.n_trials {
            Some(_) => Ok(()),
            None => {
                Err(InputError::new(location, "has no n_trials")
                    .with_hint("say how many trials the phase runs"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Distribution;

    #[test]
    fn validation_names_the_phase_and_parameter() {
        let space =
            SearchSpace::new().with("mul", Distribution::Int { low: 64, high: 16, log: false, step: 1 });
        let err = Phase::new("bo", space, SamplerConfig::Random, Some(5)).validate().unwrap_err();
        assert!(err.location.starts_with("phase `bo`") && err.location.contains("`mul`"), "{err}");
        let space = SearchSpace::new().int("mul", 16, 64);
        let err = Phase::new("bo", space.clone(), SamplerConfig::Tpe(TpeConfig::default()), None).validate();
        assert!(err.unwrap_err().problem.contains("n_trials"));
        let err =
            Phase::new("grid", space.clone(), SamplerConfig::Grid(GridSpec::default()), None).validate();
        assert!(err.unwrap_err().location.contains("`mul`"));
        assert!(Phase::new("bo", space, SamplerConfig::Random, Some(0)).validate().is_err());
    }
}
