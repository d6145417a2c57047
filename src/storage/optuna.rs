//! Optuna's RDB storage in SQLite, as Optuna 5.0 writes it (schema version
//! 12, alembic revision `v3.2.0.a`), so a study of ours opens in
//! `optuna.load_study`, `optuna.visualization` and optuna-dashboard.
//!
//! The tables are created with Optuna's own DDL, verbatim. What goes where:
//! - states, directions and value types are the upper-case enum names
//!   Optuna's ORM reads (`COMPLETE`, `FAIL`, `MINIMIZE`, `INF_POS` …);
//! - times are naive UTC text with six fractional digits;
//! - a parameter is stored in Optuna's internal representation (floats as
//!   they are, integers as floats, a categorical as the index of its choice)
//!   beside its distribution as Optuna's JSON (`FloatDistribution` with
//!   `log`/`step`, `IntDistribution`, `CategoricalDistribution`);
//! - a PRUNED trial keeps its last intermediate value as its value, as
//!   Optuna does; FAILED, RUNNING and WAITING trials have none;
//! - our metrics (test ε_poly and a_r MAE, per crystal system, unphysical
//!   count …), phase, seed, device, attempt and failure reason become trial
//!   user attributes; the study's seed, its study file and its own user
//!   attributes (data set, cleaning counts, split sizes) study user
//!   attributes.
//!
//! The objective is named as `Study.set_metric_names` names it (the study
//! system attribute `study:metric_names`), so optuna-dashboard shows
//! `val_loss` rather than "Objective 0". [`Mirror`] keeps such a file up to
//! date while the study runs.
//!
//! What does not travel: artefact paths (they point into our results
//! folder) and heartbeats.

use std::path::Path;

use anyhow::Context;
use rusqlite::{params, Connection};
use serde_json::{json, Value as Json};

use super::{SqliteStore, Timestamp, TrialDetails};
use crate::error::InputError;
use crate::hpo::{Direction, Distribution, ParamValue, TrialState};

/// Optuna's `models.SCHEMA_VERSION` in 5.0.
pub const SCHEMA_VERSION: i64 = 12;
/// Optuna 5.0's alembic head: the revision Optuna checks a storage against.
pub const ALEMBIC_REVISION: &str = "v3.2.0.a";
/// The Optuna release whose storage this is.
const OPTUNA_VERSION: &str = "5.0.0";

/// Optuna 5.0's tables, as its `metadata.create_all` and `alembic stamp` make them.
const DDL: &str = r#"
CREATE TABLE studies (
	study_id INTEGER NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	PRIMARY KEY (study_id)
);
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL, 
	schema_version INTEGER, 
	library_version VARCHAR(256), 
	PRIMARY KEY (version_info_id), 
	CHECK (version_info_id=1)
);
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	study_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	PRIMARY KEY (study_direction_id), 
	UNIQUE (study_id, objective), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_user_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_system_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE trials (
	trial_id INTEGER NOT NULL, 
	number INTEGER, 
	study_id INTEGER, 
	state VARCHAR(8) NOT NULL, 
	datetime_start DATETIME, 
	datetime_complete DATETIME, 
	PRIMARY KEY (trial_id), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE INDEX ix_trials_study_id ON trials (study_id);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_user_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_system_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	param_name VARCHAR(512), 
	param_value FLOAT, 
	distribution_json TEXT, 
	PRIMARY KEY (param_id), 
	UNIQUE (trial_id, param_name), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	value FLOAT, 
	value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_value_id), 
	UNIQUE (trial_id, objective), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	intermediate_value FLOAT, 
	intermediate_value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_intermediate_value_id), 
	UNIQUE (trial_id, step), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	heartbeat DATETIME NOT NULL, 
	PRIMARY KEY (trial_heartbeat_id), 
	UNIQUE (trial_id), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
"#;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub trials: usize,
}

/// Optuna's study system attribute for the names of the objectives, as
/// `Study.set_metric_names` writes it (optuna-dashboard shows these names
/// instead of "Objective 0").
pub const METRIC_NAMES_ATTR: &str = "study:metric_names";

/// Writes `store`'s study to a new Optuna storage at `out`, its objective
/// named `metric`. An existing file is refused unless `force`; the file
/// appears whole or not at all (it is written beside `out` and renamed).
pub fn export(store: &SqliteStore, out: &Path, force: bool, metric: &str) -> anyhow::Result<Exported> {
    export_trials(store, out, force, metric).map(|(exported, _)| exported)
}

fn export_trials(
    store: &SqliteStore,
    out: &Path,
    force: bool,
    metric: &str,
) -> anyhow::Result<(Exported, Vec<TrialDetails>)> {
    if out.exists() && !force {
        return Err(InputError::new(out.display().to_string(), "already exists")
            .with_hint("choose another --out file, or add --force to replace it")
            .into());
    }
    let folder = crate::paths::folder_of(out);
    if !folder.is_dir() {
        return Err(InputError::new(
            out.display().to_string(),
            format!("the folder {} does not exist", folder.display()),
        )
        .with_hint(format!("create it first (mkdir -p {})", folder.display()))
        .into());
    }
    let name = out.file_name().map_or("optuna.db".into(), |n| n.to_string_lossy().into_owned());
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = write(store, &temp, metric).and_then(|exported| {
        std::fs::rename(&temp, out).with_context(|| format!("cannot write {}", out.display()))?;
        Ok(exported)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn write(store: &SqliteStore, path: &Path, metric: &str) -> anyhow::Result<(Exported, Vec<TrialDetails>)> {
    let trials = store.all_trial_details()?;
    let phases = store.phases()?;
    let info = store.info();
    let mut conn = Connection::open(path).with_context(|| format!("cannot create {}", path.display()))?;
    let tx = conn.transaction()?;
    tx.execute_batch(DDL)?;
    tx.execute("INSERT INTO version_info VALUES (1, ?1, ?2)", params![SCHEMA_VERSION, OPTUNA_VERSION])?;
    tx.execute("INSERT INTO alembic_version VALUES (?1)", [ALEMBIC_REVISION])?;
    tx.execute("INSERT INTO studies (study_id, study_name) VALUES (1, ?1)", [&info.name])?;
    // One objective, or each of several with its name.
    let objectives: Vec<(Direction, String)> = match info.objectives.as_slice() {
        [] => vec![(info.direction, metric.to_owned())],
        several => several.iter().map(|o| (o.direction, o.name.clone())).collect(),
    };
    for (objective, (direction, _)) in objectives.iter().enumerate() {
        let direction = match direction {
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        };
        tx.execute(
            "INSERT INTO study_directions (direction, study_id, objective) VALUES (?1, 1, ?2)",
            params![direction, objective as i64],
        )?;
    }
    let names: Vec<&String> = objectives.iter().map(|(_, name)| name).collect();
    tx.execute(
        "INSERT INTO study_system_attributes (study_id, \"key\", value_json) VALUES (1, ?1, ?2)",
        params![METRIC_NAMES_ATTR, json!(names).to_string()],
    )?;
    write_study_attrs(&tx, store)?;
    for details in &trials {
        insert_trial(&tx, details, &phases)?;
    }
    tx.commit()?;
    Ok((Exported { trials: trials.len() }, trials))
}

/// The study's user attributes: its seed, its study file and its own.
fn write_study_attrs(tx: &Connection, store: &SqliteStore) -> anyhow::Result<()> {
    let info = store.info();
    let mut study_attrs = store.study_user_attrs()?;
    study_attrs.insert("seed".into(), json!(info.seed));
    study_attrs.insert("study_file".into(), json!(info.config));
    tx.execute("DELETE FROM study_user_attributes WHERE study_id = 1", [])?;
    for (key, value) in &study_attrs {
        tx.execute(
            "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES (1, ?1, ?2)",
            params![key, attr_json(value)],
        )?;
    }
    Ok(())
}

/// Optuna's `trial_id` of our trial `number` (Optuna counts from 1, in creation order).
fn trial_id(number: u64) -> i64 {
    number as i64 + 1
}

fn insert_trial(tx: &Connection, details: &TrialDetails, phases: &[super::Phase]) -> anyhow::Result<()> {
    let trial = &details.trial;
    let trial_id = trial_id(trial.number);
    let (start, complete) = match trial.state {
        TrialState::Waiting => (None, None),
        TrialState::Running => (details.started, None),
        _ => (details.started.or(Some(details.created)), details.finished.or(details.started)),
    };
    tx.execute(
        "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete)
         VALUES (?1, ?2, 1, ?3, ?4, ?5)",
        params![
            trial_id,
            trial.number as i64,
            state_name(trial.state),
            start.map(datetime),
            complete.map(datetime)
        ],
    )?;
    for (name, value) in &trial.params {
        let distribution = details
            .distributions
            .get(name)
            .cloned()
            .unwrap_or_else(|| Distribution::Categorical { choices: vec![value.clone()] });
        let internal = optuna_internal(&distribution, value).with_context(|| {
            format!("trial {}: parameter `{name}` = {value} does not fit its distribution", trial.number)
        })?;
        tx.execute(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
             VALUES (?1, ?2, ?3, ?4)",
            params![trial_id, name, internal, distribution_json(&distribution).to_string()],
        )?;
    }
    let values = match (trial.state, trial.value) {
        (TrialState::Complete, _) if !trial.values.is_empty() => trial.values.clone(),
        (TrialState::Complete | TrialState::Pruned, Some(value)) => vec![value],
        _ => Vec::new(),
    };
    for (objective, &value) in values.iter().enumerate() {
        let (value, kind) = value_and_type(value);
        tx.execute(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?1, ?2, ?3, ?4)",
            params![trial_id, objective as i64, value, kind],
        )?;
    }
    for (&step, &value) in &trial.intermediate {
        let (value, kind) = value_and_type(value);
        tx.execute(
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
             VALUES (?1, ?2, ?3, ?4)",
            params![trial_id, step as i64, value, kind],
        )?;
    }
    for (key, value) in super::export::trial_user_attrs(details, phases) {
        tx.execute(
            "INSERT INTO trial_user_attributes (trial_id, \"key\", value_json) VALUES (?1, ?2, ?3)",
            params![trial_id, key, attr_json(&value)],
        )?;
    }
    // Where Optuna keeps a trial's constraint values (`Trial.set_constraint`,
    // `constraints_func`), which its samplers, `best_trial` and the
    // dashboard read.
    if let Some(constraints) = &trial.constraints {
        let values: Vec<Option<f64>> =
            constraints.iter().map(|&c| super::rows::storable_constraint(c)).collect();
        tx.execute(
            "INSERT INTO trial_system_attributes (trial_id, \"key\", value_json) VALUES (?1, ?2, ?3)",
            params![trial_id, CONSTRAINTS_KEY, serde_json::to_string(&values)?],
        )?;
    }
    Ok(())
}

/// The trial system attribute holding Optuna's constraint values.
const CONSTRAINTS_KEY: &str = "constraints";

fn delete_trial(tx: &Connection, number: u64) -> anyhow::Result<()> {
    let id = trial_id(number);
    for table in [
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trials",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE trial_id = ?1"), [id])?;
    }
    Ok(())
}

/// An Optuna storage kept up to date with a study while it runs, for
/// optuna-dashboard to follow.
///
/// The mirror is a reader of the study like `study status`: it reads
/// snapshots of the study database (which never blocks the controller) and
/// writes only its own file. Each [`Mirror::sync`] is one transaction that
/// rewrites the trials that changed since the last one and adds the new
/// ones, in place, with their Optuna `trial_id` kept: Optuna's storage cache
/// fetches trials by growing `trial_id` and re-reads only unfinished ones,
/// so the file must change as a running Optuna study's would, never be
/// replaced (a reader holding the old file would not see the new one).
pub struct Mirror {
    conn: Connection,
    /// The trials as last written, heartbeats left out.
    written: std::collections::BTreeMap<u64, TrialDetails>,
    attrs: std::collections::BTreeMap<String, Json>,
}

/// What one [`Mirror::sync`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    pub added: usize,
    pub updated: usize,
    pub trials: usize,
}

/// A trial as the mirror compares it: a heartbeat alone changes nothing Optuna shows.
fn comparable(details: &TrialDetails) -> TrialDetails {
    TrialDetails { heartbeat: None, ..details.clone() }
}

impl Mirror {
    /// Exports `store` to `out` as [`export`] does and keeps the file open
    /// to follow the study.
    pub fn create(store: &SqliteStore, out: &Path, force: bool, metric: &str) -> anyhow::Result<Mirror> {
        let (_, trials) = export_trials(store, out, force, metric)?;
        let conn = Connection::open(out).with_context(|| format!("cannot open {}", out.display()))?;
        // Readers (the dashboard) and the mirror's writes do not block each other.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let written = trials.iter().map(|t| (t.trial.number, comparable(t))).collect();
        Ok(Mirror { conn, written, attrs: store.study_user_attrs()? })
    }

    /// Brings the file up to date with the study's current snapshot.
    pub fn sync(&mut self, store: &SqliteStore) -> anyhow::Result<Synced> {
        let trials = store.all_trial_details()?;
        let phases = store.phases()?;
        let attrs = store.study_user_attrs()?;
        let mut synced = Synced { trials: trials.len(), ..Synced::default() };
        let changed: Vec<TrialDetails> =
            trials.iter().map(comparable).filter(|t| self.written.get(&t.trial.number) != Some(t)).collect();
        if changed.is_empty() && attrs == self.attrs {
            return Ok(synced);
        }
        let tx = self.conn.transaction()?;
        if attrs != self.attrs {
            write_study_attrs(&tx, store)?;
        }
        for details in &changed {
            if self.written.contains_key(&details.trial.number) {
                delete_trial(&tx, details.trial.number)?;
                synced.updated += 1;
            } else {
                synced.added += 1;
            }
            insert_trial(&tx, details, &phases)?;
        }
        tx.commit()?;
        for details in changed {
            self.written.insert(details.trial.number, details);
        }
        self.attrs = attrs;
        Ok(synced)
    }
}

fn state_name(state: TrialState) -> &'static str {
    match state {
        TrialState::Waiting => "WAITING",
        TrialState::Running => "RUNNING",
        TrialState::Complete => "COMPLETE",
        TrialState::Pruned => "PRUNED",
        TrialState::Failed => "FAIL",
    }
}

/// A value and its Optuna value type: only finite values are stored as numbers.
fn value_and_type(value: f64) -> (Option<f64>, &'static str) {
    match value {
        v if v.is_nan() => (None, "NAN"),
        v if v == f64::INFINITY => (None, "INF_POS"),
        v if v == f64::NEG_INFINITY => (None, "INF_NEG"),
        v => (Some(v), "FINITE"),
    }
}

/// Naive UTC, `2026-12-01 10:00:00.123000`, as Optuna's ORM writes times.
fn datetime(time: Timestamp) -> String {
    let iso = time.to_string(); // 2026-12-01T10:00:00.123Z
    format!("{} {}000", &iso[..10], &iso[11..23])
}

/// Optuna's `distribution_to_json`.
pub fn distribution_json(distribution: &Distribution) -> Json {
    match distribution {
        Distribution::Float { low, high, log, step } => json!({
            "name": "FloatDistribution",
            "attributes": {"step": step, "low": low, "high": high, "log": log},
        }),
        Distribution::Int { low, high, log, step } => json!({
            "name": "IntDistribution",
            "attributes": {"log": log, "step": step, "low": low, "high": high},
        }),
        Distribution::Categorical { choices } => json!({
            "name": "CategoricalDistribution",
            "attributes": {"choices": choices.iter().map(choice_json).collect::<Vec<_>>()},
        }),
    }
}

fn choice_json(choice: &ParamValue) -> Json {
    match choice {
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(x) => json!(x),
        ParamValue::Str(s) => json!(s),
    }
}

/// Optuna's internal representation of `value`: the number itself for
/// floats and integers (log scales included), the choice's index for a
/// categorical.
fn optuna_internal(distribution: &Distribution, value: &ParamValue) -> Option<f64> {
    match distribution {
        Distribution::Float { .. } | Distribution::Int { .. } => value.as_f64(),
        Distribution::Categorical { choices } => choices.iter().position(|c| c.same(value)).map(|i| i as f64),
    }
}

/// JSON text of an attribute (non-finite numbers, which JSON lacks, are null).
fn attr_json(value: &Json) -> String {
    serde_json::to_string(value).expect("JSON values serialise")
}

/// A study read from an Optuna storage.
#[derive(Debug, Clone, PartialEq)]
pub struct OptunaStudy {
    pub name: String,
    /// The objective's direction; with several objectives, the first one's.
    pub direction: Direction,
    /// Every objective's direction, where the study has several; empty with one.
    pub directions: Vec<Direction>,
    /// By number, as Optuna numbers them (0, 1, …).
    pub trials: Vec<OptunaTrial>,
}

/// One trial of an [`OptunaStudy`], its parameters in their external form.
#[derive(Debug, Clone, PartialEq)]
pub struct OptunaTrial {
    pub number: u64,
    pub state: TrialState,
    pub params: crate::hpo::Params,
    /// Optuna's distribution of each parameter.
    pub distributions: std::collections::BTreeMap<String, Distribution>,
    pub value: Option<f64>,
    /// Every objective's value, in a COMPLETE trial of a study with several.
    pub values: Vec<f64>,
    pub intermediate: std::collections::BTreeMap<u64, f64>,
    /// Its constraint values, where the study has constraints.
    pub constraints: Option<Vec<f64>>,
    pub datetime_start: Option<String>,
    pub datetime_complete: Option<String>,
}

/// Reads study `name` (or the file's only study) from the Optuna storage at
/// `path`, which must have Optuna 5.0's schema. Never writes to the file.
/// The Optuna storage at `path`, opened read-only, once its schema is known
/// to be Optuna 5.0's.
fn open_storage(path: &Path) -> anyhow::Result<Connection> {
    let at = path.display().to_string();
    if !path.is_file() {
        return Err(InputError::new(&at, "no such file")
            .with_hint("give the SQLite file of an Optuna RDB storage")
            .into());
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {at}"))?;
    let revision: String =
        conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).map_err(|_| {
            InputError::new(&at, "is not an Optuna storage (it has no alembic_version table)")
                .with_hint("give the file of `optuna.create_study(storage=\"sqlite:///FILE\")`")
        })?;
    let schema: Option<i64> =
        conn.query_row("SELECT schema_version FROM version_info", [], |r| r.get(0)).ok();
    if revision != ALEMBIC_REVISION || schema.is_some_and(|v| v != SCHEMA_VERSION) {
        return Err(InputError::new(
            &at,
            format!(
                "has Optuna storage revision {} (schema version {}); this tool reads revision {ALEMBIC_REVISION} (schema {SCHEMA_VERSION}), that of Optuna 5.0",
                revision,
                schema.map_or("unknown".into(), |v| v.to_string())
            ),
        )
        .with_hint(format!("upgrade a copy with Optuna 5.0: `optuna storage upgrade --storage sqlite:///{at}`"))
        .into());
    }
    Ok(conn)
}

pub fn read_study(path: &Path, name: Option<&str>) -> anyhow::Result<OptunaStudy> {
    let at = path.display().to_string();
    let conn = open_storage(path)?;
    let names: Vec<(i64, String)> = conn
        .prepare("SELECT study_id, study_name FROM studies ORDER BY study_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let listed = || names.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ");
    let (study_id, study_name) = match name {
        Some(name) => names.iter().find(|(_, n)| n == name).cloned().ok_or_else(|| {
            InputError::new(&at, format!("holds no study named {name:?}"))
                .with_hint(format!("its studies: {}", listed()))
        })?,
        None => match names.as_slice() {
            [one] => one.clone(),
            [] => return Err(InputError::new(&at, "holds no study").into()),
            _ => {
                return Err(InputError::new(&at, "holds several studies")
                    .with_hint(format!("name one with --study: {}", listed()))
                    .into())
            }
        },
    };
    let directions: Vec<String> = conn
        .prepare("SELECT direction FROM study_directions WHERE study_id = ?1 ORDER BY objective")?
        .query_map([study_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let directions: Vec<Direction> = directions
        .iter()
        .map(|d| match d.as_str() {
            "MINIMIZE" => Ok(Direction::Minimize),
            "MAXIMIZE" => Ok(Direction::Maximize),
            other => Err(InputError::new(&at, format!("study {study_name:?} has direction {other}"))
                .with_hint("only studies that minimise or maximise every objective can be read")),
        })
        .collect::<Result<_, _>>()?;
    let Some(&direction) = directions.first() else {
        return Err(InputError::new(&at, format!("study {study_name:?} has no direction")).into());
    };
    let objectives = directions.len();
    let directions = if objectives > 1 { directions } else { Vec::new() };

    let mut trials = Vec::new();
    let mut rows = conn.prepare(
        "SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials
         WHERE study_id = ?1 ORDER BY number",
    )?;
    let found = rows.query_map([study_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
    })?;
    for row in found {
        let (trial_id, number, state, datetime_start, datetime_complete) = row?;
        let trial_at = format!("{at}, study {study_name:?}, trial {number}");
        let mut trial =
            read_trial(&conn, &trial_at, trial_id, number, &state, datetime_start, datetime_complete)?;
        if objectives > 1 && trial.state == TrialState::Complete {
            trial.values = read_values(&conn, &trial_at, trial_id, objectives)?;
        }
        trials.push(trial);
    }
    Ok(OptunaStudy { name: study_name, direction, directions, trials })
}

/// One trial of an Optuna study: its state, parameters (in their external
/// form), value and intermediate values. `trial_at` names it in errors.
fn read_trial(
    conn: &Connection,
    trial_at: &str,
    trial_id: i64,
    number: i64,
    state: &str,
    datetime_start: Option<String>,
    datetime_complete: Option<String>,
) -> anyhow::Result<OptunaTrial> {
    let state = match state {
        "WAITING" => TrialState::Waiting,
        "RUNNING" => TrialState::Running,
        "COMPLETE" => TrialState::Complete,
        "PRUNED" => TrialState::Pruned,
        "FAIL" => TrialState::Failed,
        other => return Err(InputError::new(trial_at, format!("has the unknown state {other}")).into()),
    };
    let mut params = crate::hpo::Params::new();
    let mut distributions = std::collections::BTreeMap::new();
    let mut param_rows = conn.prepare_cached(
        "SELECT param_name, param_value, distribution_json FROM trial_params WHERE trial_id = ?1",
    )?;
    for param in param_rows.query_map([trial_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get::<_, String>(2)?))
    })? {
        let (param, internal, json) = param?;
        let distribution = distribution_from_json(&json)
            .map_err(|problem| InputError::new(format!("{}, parameter `{param}`", trial_at), problem))?;
        let value = external(&distribution, internal).ok_or_else(|| {
            InputError::new(
                format!("{}, parameter `{param}`", trial_at),
                format!("value {internal} is outside its distribution"),
            )
        })?;
        params.insert(param.clone(), value);
        distributions.insert(param, distribution);
    }
    let value = conn
        .query_row(
            "SELECT value, value_type FROM trial_values WHERE trial_id = ?1 AND objective = 0",
            [trial_id],
            |r| Ok(from_typed(r.get(0)?, &r.get::<_, String>(1)?)),
        )
        .ok();
    let mut intermediate = std::collections::BTreeMap::new();
    let mut steps = conn.prepare_cached(
        "SELECT step, intermediate_value, intermediate_value_type FROM trial_intermediate_values WHERE trial_id = ?1",
    )?;
    for step in steps.query_map([trial_id], |r| {
        Ok((r.get::<_, i64>(0)?, from_typed(r.get(1)?, &r.get::<_, String>(2)?)))
    })? {
        let (step, value) = step?;
        intermediate.insert(step.max(0) as u64, value);
    }
    let constraints = read_constraints(conn, trial_at, trial_id)?;
    Ok(OptunaTrial {
        number: number.max(0) as u64,
        state,
        params,
        distributions,
        value,
        values: Vec::new(),
        intermediate,
        constraints,
        datetime_start,
        datetime_complete,
    })
}

/// Every objective's value of a COMPLETE trial of a study with `objectives`.
fn read_values(
    conn: &Connection,
    trial_at: &str,
    trial_id: i64,
    objectives: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut rows = conn.prepare_cached(
        "SELECT objective, value, value_type FROM trial_values WHERE trial_id = ?1 ORDER BY objective",
    )?;
    let values: Vec<(i64, f64)> = rows
        .query_map([trial_id], |r| Ok((r.get::<_, i64>(0)?, from_typed(r.get(1)?, &r.get::<_, String>(2)?))))?
        .collect::<Result<_, _>>()?;
    if values.len() != objectives
        || values.iter().enumerate().any(|(i, (objective, _))| *objective != i as i64)
    {
        return Err(InputError::new(
            trial_at,
            format!(
                "is COMPLETE with {} objective values, but the study has {objectives} objectives",
                values.len()
            ),
        )
        .into());
    }
    Ok(values.into_iter().map(|(_, v)| v).collect())
}

/// A trial's constraint values in either of Optuna's forms: the list under
/// `constraints` (`constraints_func`, and our export), then one value per
/// `constraints:<name>` (`Trial.set_constraint`, Optuna 5), in the order
/// they were set.
fn read_constraints(conn: &Connection, trial_at: &str, trial_id: i64) -> anyhow::Result<Option<Vec<f64>>> {
    let mut rows = conn.prepare_cached(
        "SELECT \"key\", value_json FROM trial_system_attributes
         WHERE trial_id = ?1 AND (\"key\" = 'constraints' OR \"key\" LIKE 'constraints:%')
         ORDER BY trial_system_attribute_id",
    )?;
    let mut values: Option<Vec<f64>> = None;
    for row in rows.query_map([trial_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (key, json) = row?;
        let bad = |err: serde_json::Error| {
            InputError::new(
                trial_at,
                format!("its constraint `{key}` = {json} is not a number or a list of them: {err}"),
            )
        };
        let found = if key == CONSTRAINTS_KEY {
            super::rows::constraints_from_json(&json).map_err(bad)?
        } else {
            vec![serde_json::from_str::<Option<f64>>(&json).map_err(bad)?.unwrap_or(f64::NAN)]
        };
        values.get_or_insert_with(Vec::new).extend(found);
    }
    Ok(values)
}

fn from_typed(value: Option<f64>, kind: &str) -> f64 {
    match kind {
        "INF_POS" => f64::INFINITY,
        "INF_NEG" => f64::NEG_INFINITY,
        "NAN" => f64::NAN,
        _ => value.unwrap_or(f64::NAN),
    }
}

/// The external value of Optuna's internal representation `internal`.
fn external(distribution: &Distribution, internal: f64) -> Option<ParamValue> {
    match distribution {
        Distribution::Float { .. } => Some(ParamValue::Float(internal)),
        Distribution::Int { .. } => (internal.fract() == 0.0).then_some(ParamValue::Int(internal as i64)),
        Distribution::Categorical { choices } => (internal.fract() == 0.0 && internal >= 0.0)
            .then(|| choices.get(internal as usize).cloned())
            .flatten(),
    }
}

/// Optuna's `json_to_distribution`, for the three distributions of Optuna 5.0.
pub fn distribution_from_json(text: &str) -> Result<Distribution, String> {
    let json: Json =
        serde_json::from_str(text).map_err(|err| format!("its distribution is not JSON: {err}"))?;
    let attrs = &json["attributes"];
    let log = attrs["log"].as_bool().unwrap_or(false);
    match json["name"].as_str() {
        Some("FloatDistribution") => {
            let (Some(low), Some(high)) = (attrs["low"].as_f64(), attrs["high"].as_f64()) else {
                return Err(format!("FloatDistribution without low/high: {text}"));
            };
            Ok(Distribution::Float { low, high, log, step: attrs["step"].as_f64() })
        }
        Some("IntDistribution") => {
            let (Some(low), Some(high)) = (attrs["low"].as_i64(), attrs["high"].as_i64()) else {
                return Err(format!("IntDistribution without integer low/high: {text}"));
            };
            Ok(Distribution::Int { low, high, log, step: attrs["step"].as_i64().unwrap_or(1) })
        }
        Some("CategoricalDistribution") => {
            let choices = attrs["choices"]
                .as_array()
                .ok_or_else(|| format!("CategoricalDistribution without choices: {text}"))?;
            let choices = choices
                .iter()
                .map(|c| match c {
                    Json::Bool(b) => Ok(ParamValue::Bool(*b)),
                    Json::Number(n) if n.is_i64() => Ok(ParamValue::Int(n.as_i64().unwrap_or_default())),
                    Json::Number(n) => Ok(ParamValue::Float(n.as_f64().unwrap_or(f64::NAN))),
                    Json::String(s) => Ok(ParamValue::Str(s.clone())),
                    other => Err(format!("choice {other} has no counterpart here (null, lists and objects cannot be parameters)")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Distribution::Categorical { choices })
        }
        other => Err(format!("unknown distribution {}", other.unwrap_or("without a name"))),
    }
}
