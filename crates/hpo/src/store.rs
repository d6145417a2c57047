//! Where a study's trials live. The ask/tell core reads and writes trials only
//! through [`TrialStore`]; the study database (in `anisostudy::storage`) and memory implement it.

use super::{FrozenTrial, Params, TrialState};

/// Persistence of trials for the ask/tell core. The controller is the single
/// writer; every method is one atomic state change.
pub trait TrialStore {
    /// Every trial of the study, ordered by number.
    fn load_trials(&self) -> anyhow::Result<Vec<FrozenTrial>>;
    /// Creates a trial with the next number in `state` (WAITING or RUNNING)
    /// and returns its number.
    fn create_trial(&mut self, phase: usize, params: &Params, state: TrialState) -> anyhow::Result<u64>;
    /// Moves a trial to `state`, with its objective value when it has one.
    fn set_state(&mut self, number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<()>;
    /// Records every objective's value of an unfinished trial of a study
    /// with several objectives, before it is told COMPLETE.
    fn set_values(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()>;
    /// Records the intermediate value of a trial at `step` (an epoch).
    fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()>;
    /// Records the constraint values of an unfinished trial (≤ 0 feasible).
    fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()>;
    /// Moves a trial to FAILED in one atomic change, keeping why (when known)
    /// for the user. Stores without a place for the reason may drop it (the
    /// default).
    fn fail(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        let _ = reason;
        self.set_state(number, TrialState::Failed, None)
    }
}

/// Trials kept in memory: for tests, benchmarks and library users who need no
/// persistence.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    trials: Vec<FrozenTrial>,
    failure_reasons: std::collections::BTreeMap<u64, String>,
}

impl MemoryStore {
    /// Why trial `number` failed, when the study was told.
    pub fn failure_reason(&self, number: u64) -> Option<&str> {
        self.failure_reasons.get(&number).map(String::as_str)
    }

    fn trial_mut(&mut self, number: u64) -> anyhow::Result<&mut FrozenTrial> {
        self.trials.get_mut(number as usize).ok_or_else(|| anyhow::anyhow!("no trial number {number}"))
    }
}

impl TrialStore for MemoryStore {
    fn load_trials(&self) -> anyhow::Result<Vec<FrozenTrial>> {
        Ok(self.trials.clone())
    }

    fn create_trial(&mut self, phase: usize, params: &Params, state: TrialState) -> anyhow::Result<u64> {
        let number = self.trials.len() as u64;
        self.trials.push(FrozenTrial {
            number,
            phase,
            state,
            params: params.clone(),
            value: None,
            intermediate: Default::default(),
            values: Vec::new(),
            constraints: None,
        });
        Ok(number)
    }

    fn set_state(&mut self, number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<()> {
        let trial = self.trial_mut(number)?;
        trial.state = state;
        trial.value = value;
        Ok(())
    }

    fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        self.trial_mut(number)?.intermediate.insert(step, value);
        Ok(())
    }

    fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.trial_mut(number)?.constraints = Some(values.to_vec());
        Ok(())
    }

    fn set_values(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.trial_mut(number)?.values = values.to_vec();
        Ok(())
    }

    fn fail(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.set_state(number, TrialState::Failed, None)?;
        if let Some(reason) = reason {
            self.failure_reasons.insert(number, reason.to_owned());
        }
        Ok(())
    }
}
