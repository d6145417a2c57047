//! Trials: one evaluation of the objective, and its life cycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ParamValue;

/// Parameter values of one trial, by name.
pub type Params = BTreeMap<String, ParamValue>;

/// Life cycle of a trial: WAITING → RUNNING → COMPLETE | PRUNED | FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialState {
    Waiting,
    Running,
    Complete,
    Pruned,
    Failed,
}

impl TrialState {
    /// Every state, in the order reports and summaries list them.
    pub const REPORT_ORDER: [TrialState; 5] = [
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Failed,
        TrialState::Running,
        TrialState::Waiting,
    ];

    /// Finished trials never change state again.
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Failed)
    }

    /// The state's name as stored and shown: `WAITING`, `RUNNING`, …
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Waiting => "WAITING",
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Failed => "FAILED",
        }
    }
}

/// A name that is no [`TrialState::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTrialState(pub String);

impl std::fmt::Display for UnknownTrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown trial state {:?}", self.0)
    }
}

impl std::error::Error for UnknownTrialState {}

/// The state named by [`TrialState::name`].
impl std::str::FromStr for TrialState {
    type Err = UnknownTrialState;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        TrialState::REPORT_ORDER
            .into_iter()
            .find(|state| state.name() == name)
            .ok_or_else(|| UnknownTrialState(name.to_owned()))
    }
}

/// Whether the objective is minimised or maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

/// A snapshot of a trial as samplers and pruners see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenTrial {
    /// Study-wide trial number, from 0.
    pub number: u64,
    /// Index of the study phase that created the trial.
    pub phase: usize,
    pub state: TrialState,
    pub params: Params,
    /// Objective value (COMPLETE trials; PRUNED trials may carry their last
    /// intermediate value).
    pub value: Option<f64>,
    /// Intermediate values by step (epoch).
    pub intermediate: BTreeMap<u64, f64>,
}

impl FrozenTrial {
    /// The last step with an intermediate value, and that value.
    pub fn last_intermediate(&self) -> Option<(u64, f64)> {
        self.intermediate.iter().next_back().map(|(&step, &value)| (step, value))
    }

    /// The last step with an intermediate value.
    pub fn last_step(&self) -> Option<u64> {
        self.intermediate.keys().next_back().copied()
    }
}

impl Direction {
    /// Whether `a` is strictly better than `b` in this direction.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// `value` turned into a loss: itself when minimising, negated when maximising.
    pub fn as_loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}
