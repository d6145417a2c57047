//! Heartbeats: a RUNNING trial shows it is alive, and trials whose
//! process stopped showing it are found for requeueing.

use std::time::Duration;

use anyhow::bail;
use rusqlite::params;

use super::trials::trial_row;
use super::StudyStore;
use crate::hpo::TrialState;
use crate::storage::rows::StoredState;
use crate::storage::Timestamp;

impl StudyStore {
    /// A RUNNING trial shows it is alive.
    pub(super) fn heartbeat(&mut self, number: u64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state != TrialState::Running {
                bail!("trial {number} is {}, so it has no heartbeat", trial.state.name());
            }
            tx.prepare_cached("UPDATE trials SET heartbeat_ms = ?2 WHERE id = ?1")?
                .execute(params![trial.id, Timestamp::now().unix_ms])?;
            Ok(())
        })
    }

    /// RUNNING trials whose last heartbeat (or start) is older than `max_age`:
    /// their process is presumed dead.
    pub(super) fn stale_running_trials(&self, max_age: Duration) -> anyhow::Result<Vec<u64>> {
        let limit = Timestamp::now().minus(max_age).unix_ms;
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT number FROM trials WHERE study = ?1 AND state = ?3
                 AND COALESCE(heartbeat_ms, started_ms, created_ms) < ?2 ORDER BY number",
        )?;
        let running = StoredState(TrialState::Running);
        let numbers = stmt.query_map(params![self.study_id, limit, running], |row| row.get(0))?;
        Ok(numbers.collect::<rusqlite::Result<_>>()?)
    }
}
