//! A study's trials and their life cycle, WAITING → RUNNING → COMPLETE |
//! PRUNED | FAILED: creating them with their parameters, moving them from
//! state to state, intermediate values, and reading them back.
//!
//! Every change of state is checked by [`check_transition`]: a finished
//! trial never changes again, and requeueing is the one way back to WAITING.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use super::attributes::{upsert_metrics, Artifact};
use super::cached::PhaseSpaces;
use super::StudyStore;
use crate::hpo::{Direction, Distribution, FrozenTrial, ParamValue, Params, TrialState};
use crate::storage::rows::{constraints_json, load, param_columns, StoredState};
use crate::storage::Timestamp;

/// Everything stored about one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialDetails {
    pub trial: FrozenTrial,
    /// Distribution of each parameter, where its phase's space had one.
    pub distributions: BTreeMap<String, Distribution>,
    pub seed: Option<u64>,
    /// Device the trial runs or ran on ("cuda:0", "cpu:1").
    pub device: Option<String>,
    /// 0 for the first run; each requeue adds one.
    pub attempt: u32,
    pub created: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub heartbeat: Option<Timestamp>,
    pub fail_reason: Option<String>,
    /// Why a RUNNING trial has not started yet (its job step is queued).
    pub waiting_for: Option<String>,
    /// Named final metrics (ε_poly MAE, a_r MAE, per crystal system …).
    pub metrics: BTreeMap<String, f64>,
    pub artifacts: Vec<Artifact>,
    pub user_attrs: BTreeMap<String, Json>,
}

impl TrialDetails {
    /// Wall time from start to finish of a finished trial.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.finished?.since(self.started?))
    }

    /// The feasible COMPLETE trial with the best value in `direction`
    /// ([`crate::hpo::best_trial`]), and that value.
    pub fn best(trials: &[TrialDetails], direction: Direction) -> Option<(&TrialDetails, f64)> {
        let best = crate::hpo::best_trial(trials.iter().map(|t| &t.trial), direction)?;
        let details = trials.iter().find(|t| t.trial.number == best.number)?;
        Some((details, best.value?))
    }
}

impl StudyStore {
    /// Creates a trial with the next number in `state` (WAITING or
    /// RUNNING), its parameters' distributions from `spaces`, and returns
    /// its number.
    pub(super) fn create_trial(
        &mut self,
        spaces: &mut PhaseSpaces,
        phase: usize,
        params: &Params,
        state: TrialState,
        seed: Option<u64>,
    ) -> anyhow::Result<u64> {
        if !matches!(state, TrialState::Waiting | TrialState::Running) {
            bail!("a new trial is WAITING or RUNNING, not {}", state.name());
        }
        if let Some((name, _)) =
            params.iter().find(|(_, value)| matches!(value, ParamValue::Float(x) if x.is_nan()))
        {
            bail!("parameter {name} is NaN; a trial's parameters must be numbers");
        }
        self.write(|tx, study| insert_trial(tx, study, spaces, phase, params, state, seed))
    }

    /// The controller starts a trial on `device`: RUNNING (from WAITING, or
    /// already RUNNING since its creation), start time and first heartbeat now.
    pub(super) fn start_trial(&mut self, number: u64, device: &str, attempt: u32) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            check_transition(number, trial.state, TrialState::Running)?;
            let now = Timestamp::now().unix_ms;
            tx.prepare_cached(
                "UPDATE trials SET state = ?5, device = ?2, attempt = ?3, started_ms = ?4,
                     heartbeat_ms = ?4, waiting_for = NULL WHERE id = ?1",
            )?
            .execute(params![
                trial.id,
                device,
                attempt,
                now,
                StoredState(TrialState::Running)
            ])?;
            Ok(())
        })
    }

    /// A RUNNING trial waits to start, for `reason`; with `None` it started
    /// now (its start time moves here, so its duration leaves the wait out).
    pub(super) fn set_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state != TrialState::Running {
                bail!("trial {number} is {}, so it does not wait to start", trial.state.name());
            }
            let sql = match reason {
                Some(_) => "UPDATE trials SET waiting_for = ?2 WHERE id = ?1",
                None => {
                    "UPDATE trials SET waiting_for = ?2, started_ms = ?3, heartbeat_ms = ?3 WHERE id = ?1"
                }
            };
            let mut stmt = tx.prepare_cached(sql)?;
            match reason {
                Some(_) => stmt.execute(params![trial.id, reason])?,
                None => stmt.execute(params![trial.id, reason, Timestamp::now().unix_ms])?,
            };
            Ok(())
        })
    }

    /// Finishes a trial in one transaction: its state (COMPLETE, PRUNED or
    /// FAILED), objective value and final metrics appear together or not at all.
    /// Returns the value as stored (NaN is none).
    pub(super) fn finish_trial(
        &mut self,
        number: u64,
        state: TrialState,
        value: Option<f64>,
        metrics: &BTreeMap<String, f64>,
    ) -> anyhow::Result<Option<f64>> {
        if !state.is_finished() {
            bail!("finish_trial needs COMPLETE, PRUNED or FAILED, not {}", state.name());
        }
        let value = checked_value(number, state, value)?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            upsert_metrics(tx, trial.id, metrics)?;
            transition(tx, number, &trial, state, value, None)
        })?;
        Ok(value)
    }

    /// The trial failed (crash, out of memory, NaN loss): FAILED with the reason.
    pub(super) fn fail_trial(&mut self, number: u64, reason: &str) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            transition(tx, number, &trial, TrialState::Failed, None, Some(reason))
        })
    }

    /// Puts a RUNNING trial whose process died back in the queue: WAITING,
    /// one more attempt, no device. Its intermediate values stay (a resumed
    /// run overwrites them step by step).
    pub(super) fn requeue(&mut self, number: u64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state != TrialState::Running {
                bail!("only a RUNNING trial can be requeued; trial {number} is {}", trial.state.name());
            }
            tx.prepare_cached(
                "UPDATE trials SET state = ?2, attempt = attempt + 1, device = NULL,
                     started_ms = NULL, heartbeat_ms = NULL, waiting_for = NULL WHERE id = ?1",
            )?
            .execute(params![trial.id, StoredState(TrialState::Waiting)])?;
            Ok(())
        })
    }

    /// Records the seed a trial's training runs with.
    pub(super) fn set_trial_seed(&mut self, number: u64, seed: u64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            tx.prepare_cached("UPDATE trials SET seed = ?2 WHERE id = ?1")?
                .execute(params![trial.id, seed as i64])?;
            Ok(())
        })
    }

    /// Moves a trial to `state` with its value: COMPLETE needs a value;
    /// finished trials never change again; only [`StudyStore::requeue`]
    /// moves a trial back to WAITING. Returns the value as stored (NaN is none).
    pub(super) fn set_state(
        &mut self,
        number: u64,
        state: TrialState,
        value: Option<f64>,
    ) -> anyhow::Result<Option<f64>> {
        let value = checked_value(number, state, value)?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            transition(tx, number, &trial, state, value, None)
        })?;
        Ok(value)
    }

    /// Records the intermediate value of a trial at `step`, replacing an
    /// earlier value at the same step; finished trials take no more. NaN is
    /// stored as NULL and reads back as NaN.
    pub(super) fn set_intermediate(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state.is_finished() {
                bail!(
                    "trial {number} is already {}; it takes no more intermediate values",
                    trial.state.name()
                );
            }
            tx.prepare_cached(
                "INSERT INTO trial_intermediate (trial, step, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (trial, step) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![trial.id, step, value])?;
            Ok(())
        })
    }

    /// Records the constraint values of an unfinished trial (≤ 0 feasible);
    /// infinite values are kept as NaN, which counts as violated.
    pub(super) fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state.is_finished() {
                bail!("trial {number} is already {}; its constraints cannot change", trial.state.name());
            }
            tx.prepare_cached("UPDATE trials SET constraints = ?2 WHERE id = ?1")?
                .execute(params![trial.id, constraints_json(values)])?;
            Ok(())
        })
    }

    /// Records every objective's value of an unfinished trial of a study
    /// with several, before it is told COMPLETE.
    pub(super) fn set_values(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state.is_finished() {
                bail!("trial {number} is already {}; its objective values cannot change", trial.state.name());
            }
            tx.prepare_cached("UPDATE trials SET objective_values = ?2 WHERE id = ?1")?
                .execute(params![trial.id, constraints_json(values)])?;
            Ok(())
        })
    }

    /// Everything stored about trial `number`.
    pub(super) fn trial_details(&self, number: u64) -> anyhow::Result<TrialDetails> {
        let mut found = self.read(|tx, study| load(tx, study, Some(number), true))?;
        found.pop().ok_or_else(|| anyhow!("trial {number} does not exist in study {:?}", self.info.name))
    }

    /// Everything stored about every trial, by number, from one snapshot.
    pub(super) fn all_trial_details(&self) -> anyhow::Result<Vec<TrialDetails>> {
        self.read(|tx, study| load(tx, study, None, true))
    }

    /// Every trial of the study (without details), by number, from one snapshot.
    pub(super) fn frozen_trials(&self) -> anyhow::Result<Vec<FrozenTrial>> {
        let details = self.read(|tx, study| load(tx, study, None, false))?;
        Ok(details.into_iter().map(|details| details.trial).collect())
    }

    /// The connection's `PRAGMA data_version`: it changes when another
    /// connection commits, never for this connection's own commits.
    pub(super) fn data_version(&self) -> anyhow::Result<i64> {
        Ok(self.db.conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?)
    }
}

/// The number the study's next trial gets.
pub(super) fn next_number(tx: &Connection, study: i64) -> anyhow::Result<u64> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study = ?1")?
        .query_row([study], |row| row.get(0))?)
}

/// Inserts a trial with the next number, and its parameters with their
/// distributions from the phase's space.
fn insert_trial(
    tx: &Connection,
    study: i64,
    spaces: &mut PhaseSpaces,
    phase: usize,
    params: &Params,
    state: TrialState,
    seed: Option<u64>,
) -> anyhow::Result<u64> {
    let number = next_number(tx, study)?;
    let now = Timestamp::now().unix_ms;
    let started = (state == TrialState::Running).then_some(now);
    tx.prepare_cached(
        "INSERT INTO trials (study, number, phase, state, seed, created_ms, started_ms, heartbeat_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        study,
        number,
        phase,
        StoredState(state),
        seed.map(|seed| seed as i64),
        now,
        started
    ])?;
    let trial = tx.last_insert_rowid();

    let space: Option<String> = tx
        .prepare_cached("SELECT space FROM phases WHERE study = ?1 AND idx = ?2")?
        .query_row(params![study, phase], |row| row.get(0))
        .optional()?;
    let no_space = BTreeMap::new();
    let distributions = match space {
        Some(text) => spaces.distributions_json(phase, text)?,
        None => &no_space,
    };
    let mut insert = tx.prepare_cached(
        "INSERT INTO trial_params (trial, name, kind, float_value, int_value, str_value, distribution)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (name, value) in params {
        let (kind, float, int, text) = param_columns(value);
        insert.execute(params![trial, name, kind, float, int, text, distributions.get(name)])?;
    }
    Ok(number)
}

/// The row id and state of trial `number`.
pub(super) struct TrialRow {
    pub(super) id: i64,
    pub(super) state: TrialState,
}

pub(super) fn trial_row(conn: &Connection, study: i64, number: u64) -> anyhow::Result<TrialRow> {
    let found = conn
        .prepare_cached("SELECT id, state FROM trials WHERE study = ?1 AND number = ?2")?
        .query_row(params![study, number], |row| Ok((row.get(0)?, row.get::<_, StoredState>(1)?)))
        .optional()?;
    let (id, StoredState(state)) = found.ok_or_else(|| anyhow!("trial {number} does not exist"))?;
    Ok(TrialRow { id, state })
}

/// Finished trials never change; WAITING is reached only by requeueing.
fn check_transition(number: u64, from: TrialState, to: TrialState) -> anyhow::Result<()> {
    if from.is_finished() {
        bail!("trial {number} is already {}; a finished trial never changes state", from.name());
    }
    if to == TrialState::Waiting && from != TrialState::Waiting {
        bail!("trial {number} is {}; only requeue moves a trial back to WAITING", from.name());
    }
    Ok(())
}

/// A COMPLETE trial needs a value; NaN is no value (SQLite cannot store it).
fn checked_value(number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<Option<f64>> {
    let value = value.filter(|value| !value.is_nan());
    if state == TrialState::Complete && value.is_none() {
        bail!("trial {number} cannot be COMPLETE without an objective value (NaN is none: fail the trial)");
    }
    Ok(value)
}

/// Moves a trial to `to` with its timestamps: RUNNING keeps its first start
/// and heartbeat, a finished state is finished now.
fn transition(
    tx: &Connection,
    number: u64,
    trial: &TrialRow,
    to: TrialState,
    value: Option<f64>,
    fail_reason: Option<&str>,
) -> anyhow::Result<()> {
    check_transition(number, trial.state, to)?;
    let now = Timestamp::now().unix_ms;
    tx.prepare_cached(
        "UPDATE trials SET state = ?2, value = ?3, fail_reason = ?4, waiting_for = NULL,
             started_ms = CASE WHEN ?6 THEN COALESCE(started_ms, ?5) ELSE started_ms END,
             heartbeat_ms = CASE WHEN ?6 THEN COALESCE(heartbeat_ms, ?5) ELSE heartbeat_ms END,
             finished_ms = CASE WHEN ?7 THEN ?5 END
         WHERE id = ?1",
    )?
    .execute(params![
        trial.id,
        StoredState(to),
        value,
        fail_reason,
        now,
        to == TrialState::Running,
        to.is_finished()
    ])?;
    Ok(())
}
