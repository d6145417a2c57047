//! One study in a database: its metadata, phases and trials.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use super::database::Lock;
use super::rows::{direction_name, load, param_columns, parse_direction, parse_state};
use super::{Database, Timestamp};
use crate::error::InputError;
use crate::hpo::{
    Direction, Distribution, FrozenTrial, ParamValue, Params, SearchSpace, TrialState, TrialStore,
};

/// What a new study starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudy {
    pub name: String,
    pub direction: Direction,
    /// Root of every random draw of the study.
    pub seed: u64,
    /// Snapshot of the study file (YAML or JSON text) as it was run.
    pub config: String,
}

/// A study's metadata as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyInfo {
    pub name: String,
    pub direction: Direction,
    pub seed: u64,
    pub created: Timestamp,
    pub config: String,
}

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
    /// What changed from the revision before (a JSON list; empty for the first).
    pub changes: Json,
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
        let changes = self.changes.as_array().map_or(&[][..], Vec::as_slice);
        changes
            .iter()
            .map(|c| {
                let text = c["text"].as_str().unwrap_or("(a change)");
                if c["effect"] == "stops" {
                    format!("accepted: {text}")
                } else {
                    text.to_owned()
                }
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

/// A file a trial produced (checkpoint, log, predictions), by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Artifact {
    pub kind: String,
    pub path: String,
}

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

    /// The COMPLETE trial with the best value in `direction`, and that value.
    pub fn best(trials: &[TrialDetails], direction: Direction) -> Option<(&TrialDetails, f64)> {
        trials
            .iter()
            .filter(|t| t.trial.state == TrialState::Complete)
            .filter_map(|t| t.trial.value.map(|v| (t, v)))
            .reduce(|a, b| if direction.better(b.1, a.1) { b } else { a })
    }
}

impl Database {
    /// Creates the study `new.name`; fails if the file already has it.
    pub fn create_study(self, new: &NewStudy) -> anyhow::Result<SqliteStore> {
        self.ensure_writable()?;
        if new.name.trim().is_empty() {
            bail!(InputError::new(self.location(), "a study needs a non-empty name"));
        }
        if self.find_study(&new.name)?.is_some() {
            bail!(InputError::new(self.location(), format!("already holds a study named {:?}", new.name))
                .with_hint("resume it, choose another study name, or another database file"));
        }
        self.conn.execute(
            "INSERT INTO studies (name, direction, seed, created_ms, config) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                new.name,
                direction_name(new.direction),
                new.seed as i64,
                Timestamp::now().unix_ms,
                new.config
            ],
        )?;
        self.open_study(&new.name)
    }

    /// Opens the existing study `name`.
    pub fn open_study(self, name: &str) -> anyhow::Result<SqliteStore> {
        let Some((id, info)) = self.find_study(name)? else {
            let names = self.study_names()?;
            bail!(InputError::new(self.location(), format!("has no study named {name:?}"))
                .with_hint(format!("studies in this file: {}", list_or_none(&names))));
        };
        Ok(SqliteStore {
            db: self,
            study_id: id,
            info,
            cache: RefCell::new(None),
            spaces: PhaseSpaces::default(),
        })
    }

    /// Resumes the study `new.name` if the file has it (its direction and
    /// seed must match `new`), else creates it.
    pub fn open_or_create_study(self, new: &NewStudy) -> anyhow::Result<SqliteStore> {
        let Some((_, info)) = self.find_study(&new.name)? else {
            return self.create_study(new);
        };
        if info.direction != new.direction || info.seed != new.seed {
            bail!(InputError::new(
                self.location(),
                format!(
                    "study {:?} exists with direction {} and seed {}, but {} and seed {} were asked for",
                    new.name,
                    direction_name(info.direction),
                    info.seed,
                    direction_name(new.direction),
                    new.seed
                ),
            )
            .with_hint("keep the study's direction and seed to resume it, or give the study a new name"));
        }
        self.open_study(&new.name)
    }

    /// Opens the study of a file that holds exactly one.
    pub fn open_only_study(self) -> anyhow::Result<SqliteStore> {
        match self.study_names()?.as_slice() {
            [name] => {
                let name = name.clone();
                self.open_study(&name)
            }
            [] => bail!(InputError::new(self.location(), "holds no study yet")
                .with_hint("run the study first (`study run STUDY.yaml`)")),
            names => bail!(InputError::new(self.location(), "holds several studies")
                .with_hint(format!("name one of them: {}", list_or_none(names)))),
        }
    }

    fn find_study(&self, name: &str) -> anyhow::Result<Option<(i64, StudyInfo)>> {
        let found = self
            .conn
            .query_row(
                "SELECT id, name, direction, seed, created_ms, config FROM studies WHERE name = ?1",
                [name],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        found
            .map(|(id, name, direction, seed, created_ms, config)| {
                let direction = parse_direction(&direction)?;
                let created = Timestamp { unix_ms: created_ms };
                Ok((id, StudyInfo { name, direction, seed: seed as u64, created, config }))
            })
            .transpose()
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A study in a SQLite database: the persistent [`TrialStore`].
///
/// Every method that changes something is one `BEGIN IMMEDIATE … COMMIT`
/// transaction. The trials the ask/tell core reads on every ask are cached in
/// memory, patched by this store's own commits and reloaded when another
/// connection commits (`PRAGMA data_version`).
pub struct SqliteStore {
    db: Database,
    study_id: i64,
    info: StudyInfo,
    cache: RefCell<Option<TrialCache>>,
    spaces: PhaseSpaces,
}

/// The trials as of `data_version`, ordered by number.
struct TrialCache {
    data_version: i64,
    trials: Vec<FrozenTrial>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("db", &self.db).field("study", &self.info.name).finish()
    }
}

impl SqliteStore {
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn info(&self) -> &StudyInfo {
        &self.info
    }

    /// Replaces the snapshot of the study file (e.g. after an edit on resume).
    pub fn set_config(&mut self, config: &str) -> anyhow::Result<()> {
        self.write(|tx, study| {
            tx.execute("UPDATE studies SET config = ?2 WHERE id = ?1", params![study, config])?;
            Ok(())
        })?;
        self.info.config = config.to_string();
        Ok(())
    }

    pub fn set_study_user_attr(&mut self, key: &str, value: &Json) -> anyhow::Result<()> {
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

    pub fn study_user_attrs(&self) -> anyhow::Result<BTreeMap<String, Json>> {
        let mut stmt =
            self.db.conn.prepare_cached("SELECT key, value FROM study_user_attrs WHERE study = ?1")?;
        let rows = stmt.query_map([self.study_id], |row| Ok((row.get(0)?, row.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (key, text) = row?;
            Ok((key, serde_json::from_str(&text)?))
        })
        .collect()
    }

    /// Every definition the study ran under, by revision.
    pub fn definitions(&self) -> anyhow::Result<Vec<Definition>> {
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
    /// covers trials recorded before definitions were kept). Returns its revision.
    pub fn add_definition(
        &mut self,
        definition: &Json,
        changes: &Json,
        accepted: bool,
    ) -> anyhow::Result<u32> {
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
    pub fn set_phase(&mut self, phase: &Phase) -> anyhow::Result<()> {
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
    pub fn phases(&self) -> anyhow::Result<Vec<Phase>> {
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

    /// Like [`TrialStore::create_trial`], also recording the trial's seed.
    pub fn create_trial_with_seed(
        &mut self,
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
        let spaces = &mut self.spaces;
        let number = self.db.transaction(Lock::Write, |tx| {
            insert_trial(tx, self.study_id, spaces, phase, params, state, seed)
        })?;
        self.patch_cache(|trials| {
            trials.push(FrozenTrial {
                number,
                phase,
                state,
                params: params.clone(),
                value: None,
                intermediate: BTreeMap::new(),
            })
        });
        Ok(number)
    }

    /// The controller starts a trial on `device`: RUNNING (from WAITING, or
    /// already RUNNING since its creation), start time and first heartbeat now.
    pub fn start_trial(&mut self, number: u64, device: &str, attempt: u32) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            check_transition(number, trial.state, TrialState::Running)?;
            let now = Timestamp::now().unix_ms;
            tx.prepare_cached(
                "UPDATE trials SET state = 'RUNNING', device = ?2, attempt = ?3, started_ms = ?4,
                     heartbeat_ms = ?4, waiting_for = NULL WHERE id = ?1",
            )?
            .execute(params![trial.id, device, attempt, now])?;
            Ok(())
        })?;
        self.patch_trial(number, |trial| trial.state = TrialState::Running);
        Ok(())
    }

    /// A RUNNING trial waits to start, for `reason`; with `None` it started
    /// now (its start time moves here, so its duration leaves the wait out).
    pub fn set_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
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

    /// A RUNNING trial shows it is alive.
    pub fn heartbeat(&mut self, number: u64) -> anyhow::Result<()> {
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
    pub fn stale_running_trials(&self, max_age: Duration) -> anyhow::Result<Vec<u64>> {
        let limit = Timestamp::now().minus(max_age).unix_ms;
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT number FROM trials WHERE study = ?1 AND state = 'RUNNING'
                 AND COALESCE(heartbeat_ms, started_ms, created_ms) < ?2 ORDER BY number",
        )?;
        let numbers = stmt.query_map(params![self.study_id, limit], |row| row.get(0))?;
        Ok(numbers.collect::<rusqlite::Result<_>>()?)
    }

    /// Records (or replaces) named final metrics of a trial.
    pub fn set_metrics(&mut self, number: u64, metrics: &BTreeMap<String, f64>) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            upsert_metrics(tx, trial.id, metrics)
        })
    }

    /// Finishes a trial in one transaction: its state (COMPLETE, PRUNED or
    /// FAILED), objective value and final metrics appear together or not at all.
    pub fn finish_trial(
        &mut self,
        number: u64,
        state: TrialState,
        value: Option<f64>,
        metrics: &BTreeMap<String, f64>,
    ) -> anyhow::Result<()> {
        if !state.is_finished() {
            bail!("finish_trial needs COMPLETE, PRUNED or FAILED, not {}", state.name());
        }
        let value = checked_value(number, state, value)?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            upsert_metrics(tx, trial.id, metrics)?;
            transition(tx, number, &trial, state, value, None)
        })?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (state, value));
        Ok(())
    }

    /// The trial failed (crash, out of memory, NaN loss): FAILED with the reason.
    pub fn fail_trial(&mut self, number: u64, reason: &str) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            transition(tx, number, &trial, TrialState::Failed, None, Some(reason))
        })?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (TrialState::Failed, None));
        Ok(())
    }

    /// Puts a RUNNING trial whose process died back in the queue: WAITING,
    /// one more attempt, no device. Its intermediate values stay (a resumed
    /// run overwrites them step by step).
    pub fn requeue(&mut self, number: u64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            if trial.state != TrialState::Running {
                bail!("only a RUNNING trial can be requeued; trial {number} is {}", trial.state.name());
            }
            tx.prepare_cached(
                "UPDATE trials SET state = 'WAITING', attempt = attempt + 1, device = NULL,
                     started_ms = NULL, heartbeat_ms = NULL, waiting_for = NULL WHERE id = ?1",
            )?
            .execute([trial.id])?;
            Ok(())
        })?;
        self.patch_trial(number, |trial| trial.state = TrialState::Waiting);
        Ok(())
    }

    /// Records the seed a trial's training runs with.
    pub fn set_trial_seed(&mut self, number: u64, seed: u64) -> anyhow::Result<()> {
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            tx.prepare_cached("UPDATE trials SET seed = ?2 WHERE id = ?1")?
                .execute(params![trial.id, seed as i64])?;
            Ok(())
        })
    }

    /// Records a file the trial produced; recording it twice changes nothing.
    pub fn add_artifact(&mut self, number: u64, kind: &str, path: &Path) -> anyhow::Result<()> {
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
    pub fn set_user_attr(&mut self, number: u64, key: &str, value: &Json) -> anyhow::Result<()> {
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

    /// Everything stored about trial `number`.
    pub fn trial_details(&self, number: u64) -> anyhow::Result<TrialDetails> {
        let mut found = self.read(|tx, study| load(tx, study, Some(number), true))?;
        found.pop().ok_or_else(|| anyhow!("trial {number} does not exist in study {:?}", self.info.name))
    }

    /// Everything stored about every trial, by number, from one snapshot.
    pub fn all_trial_details(&self) -> anyhow::Result<Vec<TrialDetails>> {
        self.read(|tx, study| load(tx, study, None, true))
    }

    /// Runs `change` on this study in one write transaction.
    fn write<T>(&mut self, change: impl FnOnce(&Connection, i64) -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.db.transaction(Lock::Write, |tx| change(tx, self.study_id))
    }

    /// Runs `query` on this study in one consistent snapshot.
    fn read<T>(&self, query: impl FnOnce(&Connection, i64) -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.db.transaction(Lock::Snapshot, |tx| query(tx, self.study_id))
    }

    fn data_version(&self) -> anyhow::Result<i64> {
        Ok(self.db.conn.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?)
    }

    /// Applies a committed change of this store to the cached trials.
    fn patch_cache(&self, change: impl FnOnce(&mut Vec<FrozenTrial>)) {
        if let Some(cache) = self.cache.borrow_mut().as_mut() {
            change(&mut cache.trials);
        }
    }

    fn patch_trial(&self, number: u64, change: impl FnOnce(&mut FrozenTrial)) {
        let mut cache = self.cache.borrow_mut();
        let Some(trials) = cache.as_mut().map(|cache| &mut cache.trials) else { return };
        match trials.binary_search_by_key(&number, |trial| trial.number) {
            Ok(index) => change(&mut trials[index]),
            Err(_) => *cache = None,
        }
    }
}

impl TrialStore for SqliteStore {
    fn load_trials(&self) -> anyhow::Result<Vec<FrozenTrial>> {
        let data_version = self.data_version()?;
        if let Some(cache) = self.cache.borrow().as_ref() {
            if cache.data_version == data_version {
                return Ok(cache.trials.clone());
            }
        }
        let details = self.read(|tx, study| load(tx, study, None, false))?;
        let trials: Vec<FrozenTrial> = details.into_iter().map(|details| details.trial).collect();
        *self.cache.borrow_mut() = Some(TrialCache { data_version, trials: trials.clone() });
        Ok(trials)
    }

    fn create_trial(&mut self, phase: usize, params: &Params, state: TrialState) -> anyhow::Result<u64> {
        self.create_trial_with_seed(phase, params, state, None)
    }

    /// COMPLETE needs a value; finished trials never change again; only
    /// [`SqliteStore::requeue`] moves a trial back to WAITING.
    fn set_state(&mut self, number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<()> {
        let value = checked_value(number, state, value)?;
        self.write(|tx, study| {
            let trial = trial_row(tx, study, number)?;
            transition(tx, number, &trial, state, value, None)
        })?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (state, value));
        Ok(())
    }

    /// Replaces an earlier value at the same step; finished trials take no
    /// more. NaN is stored as NULL and reads back as NaN.
    fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
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
        })?;
        self.patch_trial(number, |trial| {
            trial.intermediate.insert(step, value);
        });
        Ok(())
    }

    fn fail(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.fail_trial(number, reason.unwrap_or("failed (no reason given)"))
    }
}

/// Inserts trial with the next number, and its parameters with their
/// distributions from the phase's space.
/// The number the study's next trial gets.
fn next_number(tx: &Connection, study: i64) -> anyhow::Result<u64> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study = ?1")?
        .query_row([study], |row| row.get(0))?)
}

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
    .execute(params![study, number, phase, state.name(), seed.map(|seed| seed as i64), now, started])?;
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

/// Distributions of each phase's space as stored JSON, parsed once per
/// version of the phase's text.
#[derive(Default)]
struct PhaseSpaces {
    by_phase: HashMap<usize, (String, BTreeMap<String, String>)>,
}

impl PhaseSpaces {
    /// The JSON of each parameter's distribution in `space_json`, the
    /// stored space of `phase`.
    fn distributions_json(
        &mut self,
        phase: usize,
        space_json: String,
    ) -> anyhow::Result<&BTreeMap<String, String>> {
        let fresh = self.by_phase.get(&phase).is_some_and(|(text, _)| *text == space_json);
        if !fresh {
            let space: SearchSpace = serde_json::from_str(&space_json).context("search space of a phase")?;
            let distributions = space
                .params
                .iter()
                .map(|(name, distribution)| Ok((name.clone(), serde_json::to_string(distribution)?)))
                .collect::<anyhow::Result<_>>()?;
            self.by_phase.insert(phase, (space_json, distributions));
        }
        Ok(&self.by_phase[&phase].1)
    }
}

/// The row id and state of trial `number`.
struct TrialRow {
    id: i64,
    state: TrialState,
}

fn trial_row(conn: &Connection, study: i64, number: u64) -> anyhow::Result<TrialRow> {
    let found = conn
        .prepare_cached("SELECT id, state FROM trials WHERE study = ?1 AND number = ?2")?
        .query_row(params![study, number], |row| Ok((row.get(0)?, row.get::<_, String>(1)?)))
        .optional()?;
    let (id, state) = found.ok_or_else(|| anyhow!("trial {number} does not exist"))?;
    Ok(TrialRow { id, state: parse_state(&state)? })
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

/// Moves a trial to `to` with its timestamps.
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
             started_ms = CASE WHEN ?2 = 'RUNNING' THEN COALESCE(started_ms, ?5) ELSE started_ms END,
             heartbeat_ms = CASE WHEN ?2 = 'RUNNING' THEN COALESCE(heartbeat_ms, ?5) ELSE heartbeat_ms END,
             finished_ms = CASE WHEN ?2 IN ('COMPLETE', 'PRUNED', 'FAILED') THEN ?5 END
         WHERE id = ?1",
    )?
    .execute(params![trial.id, to.name(), value, fail_reason, now])?;
    Ok(())
}

fn upsert_metrics(tx: &Connection, trial: i64, metrics: &BTreeMap<String, f64>) -> anyhow::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO trial_metrics (trial, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (trial, name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in metrics {
        upsert.execute(params![trial, name, value])?;
    }
    Ok(())
}
