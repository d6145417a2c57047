//! Study phases: an ordered list of (sampler, search space, budget), e.g.
//! TPE for 60 trials, then a grid around the best trial. A phase owns the
//! trials it created; it ends when it has created its `n_trials` or, for a
//! grid, when every combination is taken. Later phases see every earlier
//! trial.

use serde::{Deserialize, Serialize};

use super::samplers::{GridSpec, TpeConfig};
use super::SearchSpace;
use crate::error::InputError;

/// The sampler of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerConfig {
    Tpe(TpeConfig),
    Random,
    Grid(GridSpec),
}

/// One phase of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub space: SearchSpace,
    pub sampler: SamplerConfig,
    /// Trials the phase creates: required for TPE and random search; for a
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
