//! What a study runs under: every definition (normalised study file) it
//! ran under with what changed from the one before, and the phases of its
//! plan.
//!
//! The changes are typed here, below the study layer that finds them
//! (`study::definition` compares definitions and re-exports [`Change`]), so
//! that the store reads back what it recorded as [`RecordedChange`]s
//! rather than as untyped JSON.

use anyhow::Context;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::trials::next_number;
use super::StudyStore;
use crate::hpo::SearchSpace;
use crate::storage::Timestamp;

/// One phase of a study's plan, e.g. TPE over a wide space, then a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Position in the plan, from 0; trials refer to it.
    pub index: usize,
    pub name: String,
    /// Sampler name or settings, as the study file gives them.
    pub sampler: String,
    pub space: SearchSpace,
    /// Number of trials the phase may run; `None` for "until exhausted".
    pub budget: Option<u64>,
}

/// One definition a study ran under: its normalised study file, and what
/// changed from the revision before.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// From 1, in the order they were recorded.
    pub revision: u32,
    pub created: Timestamp,
    /// The first trial created under it; it holds every trial up to the
    /// next revision's first.
    pub first_trial: u64,
    pub definition: Json,
    /// What changed from the revision before (empty for the first).
    pub changes: Vec<RecordedChange>,
    /// Some change alters what earlier trials mean, and the user accepted it.
    pub accepted: bool,
    /// The version of the tool that recorded it.
    pub version: String,
}

impl Definition {
    /// The revision trial `number` was created under, from `definitions` in order.
    pub fn of_trial(definitions: &[Definition], number: u64) -> Option<&Definition> {
        definitions.iter().rev().find(|d| d.first_trial <= number)
    }

    /// The changes as recorded text (`key: old → new`), those that altered
    /// earlier trials marked `accepted:`.
    pub fn change_texts(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|c| match c.change.effect {
                Effect::Stops => format!("accepted: {}", c.text),
                Effect::Continues => c.text.clone(),
            })
            .collect()
    }

    /// The trials created under each of `definitions` (in order), of a
    /// study whose next trial is `next`: `trials 4–11`, `trials 12–`, `no trials`.
    pub fn trial_ranges(definitions: &[Definition], next: u64) -> Vec<String> {
        definitions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let end = definitions.get(i + 1).map_or(next, |n| n.first_trial);
                match (end.saturating_sub(d.first_trial), i + 1 == definitions.len()) {
                    (0, _) => "no trials".to_owned(),
                    (1, false) => format!("trial {}", d.first_trial),
                    (_, false) => format!("trials {}–{}", d.first_trial, end - 1),
                    (_, true) => format!("trials {}–", d.first_trial),
                }
            })
            .collect()
    }
}

/// Whether a change keeps the earlier trials' meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Continues,
    Stops,
}

/// One changed key: `key` as a path (`phases[0].space.x.high`), its old and
/// new value (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub old: Option<Json>,
    pub new: Option<Json>,
    pub effect: Effect,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Json>| match v {
            None => "(not set)".to_owned(),
            Some(v) => compact(v),
        };
        write!(f, "{}: {} → {}", self.key, show(&self.old), show(&self.new))
    }
}

/// A value as a user would write it inline (`0.5`, `[1, 2]`, `{type: tpe}`).
fn compact(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) => format!("[{}]", items.iter().map(compact).collect::<Vec<_>>().join(", ")),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}: {}", compact(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A change as a definition records it: the change's fields and its text
/// (`key: old → new`), so that readers of the study need not know the keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedChange {
    #[serde(flatten)]
    pub change: Change,
    pub text: String,
}

impl From<&Change> for RecordedChange {
    fn from(change: &Change) -> Self {
        RecordedChange { change: change.clone(), text: change.to_string() }
    }
}

impl StudyStore {
    /// Every definition the study ran under, by revision.
    pub(super) fn definitions(&self) -> anyhow::Result<Vec<Definition>> {
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT revision, created_ms, first_trial, definition, changes, accepted, version
                 FROM definitions WHERE study = ?1 ORDER BY revision",
        )?;
        let rows = stmt.query_map([self.study_id], |row| {
            Ok((
                row.get::<_, u32>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, bool>(5)?,
                row.get::<_, String>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (revision, created_ms, first_trial, definition, changes, accepted, version) = row?;
            Ok(Definition {
                revision,
                created: Timestamp { unix_ms: created_ms },
                first_trial: first_trial as u64,
                definition: serde_json::from_str(&definition).context("a stored study definition")?,
                changes: serde_json::from_str(&changes).context("a stored definition's changes")?,
                accepted,
                version,
            })
        })
        .collect()
    }

    /// Records the definition the study goes on under; its first trial is
    /// the next one created (trial 0 for the first revision, which so also
    /// covers trials recorded before definitions were kept). `changes` is a
    /// JSON list of [`RecordedChange`]s, refused before anything is written
    /// when it is not. Returns its revision.
    pub(super) fn add_definition(
        &mut self,
        definition: &Json,
        changes: &Json,
        accepted: bool,
    ) -> anyhow::Result<u32> {
        Vec::<RecordedChange>::deserialize(changes).context("a definition's changes")?;
        let (definition, changes) = (serde_json::to_string(definition)?, serde_json::to_string(changes)?);
        self.write(|tx, study| {
            let last: Option<u32> =
                tx.query_row("SELECT MAX(revision) FROM definitions WHERE study = ?1", [study], |row| {
                    row.get(0)
                })?;
            let revision = last.map_or(1, |r| r + 1);
            let first_trial = if last.is_none() { 0 } else { next_number(tx, study)? };
            tx.execute(
                "INSERT INTO definitions (study, revision, created_ms, first_trial, definition, changes,
                     accepted, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    study,
                    revision,
                    Timestamp::now().unix_ms,
                    first_trial as i64,
                    definition,
                    changes,
                    accepted,
                    env!("CARGO_PKG_VERSION")
                ],
            )?;
            Ok(revision)
        })
    }

    /// Records or replaces phase `phase.index` of the plan.
    pub(super) fn set_phase(&mut self, phase: &Phase) -> anyhow::Result<()> {
        let space = serde_json::to_string(&phase.space)?;
        self.write(|tx, study| {
            tx.execute(
                "INSERT INTO phases (study, idx, name, sampler, space, budget) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (study, idx) DO UPDATE SET name = excluded.name,
                     sampler = excluded.sampler, space = excluded.space, budget = excluded.budget",
                params![study, phase.index, phase.name, phase.sampler, space, phase.budget],
            )?;
            Ok(())
        })
    }

    /// The phases of the plan, by index.
    pub(super) fn phases(&self) -> anyhow::Result<Vec<Phase>> {
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT idx, name, sampler, space, budget FROM phases WHERE study = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([self.study_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get::<_, String>(3)?, row.get(4)?))
        })?;
        rows.map(|row| {
            let (index, name, sampler, space, budget) = row?;
            let space = serde_json::from_str(&space).context("search space of a phase")?;
            Ok(Phase { index, name, sampler, space, budget })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hpo::Direction;
    use crate::storage::{Database, NewStudy};

    fn change(key: &str, old: Option<Json>, new: Json, effect: Effect) -> Change {
        Change { key: key.to_owned(), old, new: Some(new), effect }
    }

    /// A change as `study run` records it: the change as JSON, with its text.
    fn as_study_run_records(change: &Change) -> Json {
        let mut value = serde_json::to_value(change).unwrap();
        value["text"] = change.to_string().into();
        value
    }

    #[test]
    fn recorded_changes_keep_the_stored_json_and_read_back_typed() {
        let dir = tempfile::tempdir().unwrap();
        let new = NewStudy {
            name: "s".to_owned(),
            direction: Direction::Minimize,
            objectives: Vec::new(),
            seed: 1,
            config: String::new(),
        };
        let mut store = Database::open(dir.path().join("study.db")).unwrap().create_study(&new).unwrap();
        let changes = [
            change("phases[0].n_trials", Some(json!(4)), json!(6), Effect::Continues),
            change("phases[0].sampler.multivariate", None, json!(true), Effect::Stops),
        ];
        let recorded = Json::Array(changes.iter().map(as_study_run_records).collect());
        for change in &changes {
            assert_eq!(
                serde_json::to_value(RecordedChange::from(change)).unwrap(),
                as_study_run_records(change)
            );
        }
        store.add_definition(&json!({"seed": 1}), &json!([]), false).unwrap();
        store.add_definition(&json!({"seed": 1, "more": true}), &recorded, true).unwrap();

        let stored: String = store
            .database()
            .conn
            .query_row("SELECT changes FROM definitions WHERE revision = 2", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, serde_json::to_string(&recorded).unwrap());
        assert!(stored
            .contains(r#""effect":"stops","key":"phases[0].sampler.multivariate","new":true,"old":null"#));

        let definitions = store.definitions().unwrap();
        assert!(definitions[0].changes.is_empty());
        let read: Vec<Change> = definitions[1].changes.iter().map(|c| c.change.clone()).collect();
        assert_eq!(read, changes);
        assert_eq!(
            definitions[1].change_texts(),
            ["phases[0].n_trials: 4 → 6", "accepted: phases[0].sampler.multivariate: (not set) → true"]
        );

        let err = store.add_definition(&json!({}), &json!([{"text": "no key"}]), false).unwrap_err();
        assert!(format!("{err:#}").contains("a definition's changes"), "{err:#}");
        assert_eq!(store.definitions().unwrap().len(), 2, "nothing written");
    }
}
