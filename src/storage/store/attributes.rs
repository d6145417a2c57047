//! What is recorded beside a trial's life cycle: user attributes of the
//! study and of each trial, the files a trial produced (artefacts) and its
//! named final metrics.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use rusqlite::{params, Connection};
use serde_json::Value as Json;

use super::trials::trial_row;
use super::StudyStore;

/// A file a trial produced (checkpoint, log, predictions), by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Artifact {
    pub kind: String,
    pub path: String,
}

impl StudyStore {
    pub(super) fn set_study_user_attr(&mut self, key: &str, value: &Json) -> anyhow::Result<()> {
        let text = serde_json::to_string(value)?;
        self.write(|tx, study| {
            tx.prepare_cached(
                "INSERT INTO study_user_attrs (study, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (study, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![study, key, text])?;
            Ok(())
        })
    }

    pub(super) fn study_user_attrs(&self) -> anyhow::Result<BTreeMap<String, Json>> {
        let mut stmt =
            self.db.conn.prepare_cached("SELECT key, value FROM study_user_attrs WHERE study = ?1")?;
        let rows = stmt.query_map([self.study_id], |row| Ok((row.get(0)?, row.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (key, text) = row?;
            Ok((key, serde_json::from_str(&text)?))
        })
        .collect()
    }

    /// Records (or replaces) named final metrics of a trial.
    pub(super) fn set_metrics(&mut self, number: u64, metrics: &BTreeMap<String, f64>) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            upsert_metrics(tx, trial.id, metrics)
        })
    }

    /// Records a file the trial produced; recording it twice changes nothing.
    pub(super) fn add_artifact(&mut self, number: u64, kind: &str, path: &Path) -> anyhow::Result<()> {
        let path = path.to_str().ok_or_else(|| anyhow!("artefact path {} is not UTF-8", path.display()))?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO trial_artifacts (trial, kind, path) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![trial.id, kind, path])?;
            Ok(())
        })
    }

    /// Sets (or replaces) a user attribute of a trial.
    pub(super) fn set_user_attr(&mut self, number: u64, key: &str, value: &Json) -> anyhow::Result<()> {
        let text = serde_json::to_string(value)?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            tx.prepare_cached(
                "INSERT INTO trial_user_attrs (trial, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (trial, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![trial.id, key, text])?;
            Ok(())
        })
    }
}

/// Inserts or replaces `metrics` of the trial with row id `trial`.
pub(super) fn upsert_metrics(
    tx: &Connection,
    trial: i64,
    metrics: &BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO trial_metrics (trial, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (trial, name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in metrics {
        upsert.execute(params![trial, name, value])?;
    }
    Ok(())
}
