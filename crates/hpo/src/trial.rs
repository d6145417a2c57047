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
    /// intermediate value). With several objectives, the first one's.
    pub value: Option<f64>,
    /// Every objective's value, in a COMPLETE trial of a study with several
    /// objectives (`value` is the first of them); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    /// Intermediate values by step (epoch).
    pub intermediate: BTreeMap<u64, f64>,
    /// Constraint values, each feasible when ≤ 0 (Optuna's convention), where
    /// the study has constraints and the trial's were measured. A FAILED
    /// trial may carry them too: a study that counts failures for resources
    /// as infeasible gives such a trial a large violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<f64>>,
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

    /// The sum of the positive constraint values (Optuna's infeasibility
    /// score): 0 for a feasible trial, `None` for one without constraints.
    pub fn violation(&self) -> Option<f64> {
        self.constraints.as_ref().map(|values| violation(values))
    }

    /// Whether no constraint is violated (true without constraints).
    pub fn is_feasible(&self) -> bool {
        self.violation().is_none_or(|v| v <= 0.0)
    }
}

/// The sum of the positive values of `constraints`; NaN counts as violated
/// without bound.
pub fn violation(constraints: &[f64]) -> f64 {
    constraints.iter().map(|&c| if c.is_nan() { f64::INFINITY } else { c.max(0.0) }).sum()
}

/// The best COMPLETE trial among `trials` in `direction` (the lowest number
/// on ties), among the feasible ones: an infeasible trial is never the best,
/// as in Optuna.
pub fn best_trial<'a>(
    trials: impl IntoIterator<Item = &'a FrozenTrial>,
    direction: Direction,
) -> Option<&'a FrozenTrial> {
    trials
        .into_iter()
        .filter(|t| {
            t.state == TrialState::Complete && t.value.is_some_and(|v| !v.is_nan()) && t.is_feasible()
        })
        .fold(None, |best: Option<&FrozenTrial>, t| match best {
            Some(b) if !direction.better(t.value.unwrap(), b.value.unwrap()) => Some(b),
            _ => Some(t),
        })
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
