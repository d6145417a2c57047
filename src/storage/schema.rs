//! The versioned schema of a study database and its migrations.
//!
//! The version lives in the file header (`PRAGMA user_version`), next to an
//! application id that marks the file as a study database. [`MIGRATIONS`] is
//! an ordered list: step *k* takes a database from version *k − 1* to *k*,
//! in one transaction together with the version bump, so a crash during an
//! upgrade leaves the previous version intact. Never edit a released step;
//! append a new one.

use anyhow::Context;
use rusqlite::{Connection, TransactionBehavior};

/// `PRAGMA application_id` of study databases: "AnSt" in ASCII.
pub const APPLICATION_ID: i32 = 0x416E_5374;

/// One schema upgrade.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this step produces.
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every schema version this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "studies, phases, trials with typed parameters, intermediate values, metrics, \
                      artefacts and user attributes",
        sql: SCHEMA_V1,
    },
    Migration {
        version: 2,
        description: "the definitions a study ran under, with what changed between them",
        sql: SCHEMA_V2,
    },
    Migration {
        version: 3,
        description: "why a running trial still waits to start (its job step queued)",
        sql: SCHEMA_V3,
    },
    Migration {
        version: 4,
        description: "a trial's constraint values (feasible when each is at most 0)",
        sql: SCHEMA_V4,
    },
    Migration {
        version: 5,
        description: "several objectives: each one's name and direction, and a trial's values",
        sql: SCHEMA_V5,
    },
];

/// The version a database has once every migration ran.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |step| step.version)
}

/// Times are integer milliseconds since the Unix epoch (UTC). Seeds are u64
/// stored as their i64 bit pattern. Floats are IEEE doubles; SQLite turns
/// NaN into NULL, so a NULL intermediate value or metric reads back as NaN.
const SCHEMA_V1: &str = "
CREATE TABLE studies (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    direction   TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    seed        INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    config      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE study_user_attrs (
    study  INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL CHECK (json_valid(value)),
    PRIMARY KEY (study, key)
) WITHOUT ROWID;

CREATE TABLE phases (
    study    INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL CHECK (idx >= 0),
    name     TEXT NOT NULL,
    sampler  TEXT NOT NULL,
    space    TEXT NOT NULL CHECK (json_valid(space)),
    budget   INTEGER CHECK (budget >= 0),
    PRIMARY KEY (study, idx)
) WITHOUT ROWID;

-- phase is an index into phases, not a foreign key: a plan may be
-- recorded after its first trials, and trials outlive edits of the plan.
CREATE TABLE trials (
    id            INTEGER PRIMARY KEY,
    study         INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL CHECK (number >= 0),
    phase         INTEGER NOT NULL CHECK (phase >= 0),
    state         TEXT NOT NULL
                  CHECK (state IN ('WAITING', 'RUNNING', 'COMPLETE', 'PRUNED', 'FAILED')),
    seed          INTEGER,
    device        TEXT,
    attempt       INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    value         REAL,
    created_ms    INTEGER NOT NULL,
    started_ms    INTEGER,
    finished_ms   INTEGER,
    heartbeat_ms  INTEGER,
    fail_reason   TEXT,
    UNIQUE (study, number),
    CHECK (state <> 'COMPLETE' OR value IS NOT NULL)
);
CREATE INDEX trials_by_state ON trials (study, state);

-- float_value has no declared type on purpose: a REAL column stores
-- integral doubles as integers and so turns -0.0 into 0.0.
CREATE TABLE trial_params (
    trial         INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('float', 'int', 'str', 'bool')),
    float_value,
    int_value     INTEGER,
    str_value     TEXT,
    distribution  TEXT CHECK (distribution IS NULL OR json_valid(distribution)),
    PRIMARY KEY (trial, name),
    CHECK ((kind = 'float') = (typeof(float_value) = 'real')),
    CHECK ((kind IN ('int', 'bool')) = (typeof(int_value) = 'integer')),
    CHECK (kind <> 'bool' OR int_value IN (0, 1)),
    CHECK ((kind = 'str') = (typeof(str_value) = 'text'))
) WITHOUT ROWID;

CREATE TABLE trial_intermediate (
    trial  INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL CHECK (step >= 0),
    value  REAL,
    PRIMARY KEY (trial, step)
) WITHOUT ROWID;

CREATE TABLE trial_metrics (
    trial  INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    value  REAL,
    PRIMARY KEY (trial, name)
) WITHOUT ROWID;

CREATE TABLE trial_artifacts (
    trial  INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    path   TEXT NOT NULL,
    PRIMARY KEY (trial, kind, path)
) WITHOUT ROWID;

CREATE TABLE trial_user_attrs (
    trial  INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL CHECK (json_valid(value)),
    PRIMARY KEY (trial, key)
) WITHOUT ROWID;
";

/// Every definition (normalised study file) a study ran under, numbered
/// from 1. A trial belongs to the last revision whose `first_trial` is not
/// above its number: revisions are recorded before the trials they create.
/// `changes` lists what changed from the revision before (a JSON list);
/// `accepted` marks changes that alter what earlier trials mean, recorded
/// because the user accepted them.
const SCHEMA_V2: &str = "
CREATE TABLE definitions (
    study        INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    revision     INTEGER NOT NULL CHECK (revision >= 1),
    created_ms   INTEGER NOT NULL,
    first_trial  INTEGER NOT NULL CHECK (first_trial >= 0),
    definition   TEXT NOT NULL CHECK (json_valid(definition)),
    changes      TEXT NOT NULL CHECK (json_valid(changes)),
    accepted     INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    version      TEXT NOT NULL,
    PRIMARY KEY (study, revision)
) WITHOUT ROWID;
";

/// `waiting_for`: why a RUNNING trial's attempt has not started yet (its
/// executor queues it, e.g. a job step waiting for its node's resources),
/// NULL once it runs and whenever the trial changes state.
const SCHEMA_V3: &str = "
ALTER TABLE trials ADD COLUMN waiting_for TEXT;
";

/// `constraints`: a JSON list of a trial's constraint values, each feasible
/// when ≤ 0 (Optuna's convention); `null` in the list for NaN (violated).
/// NULL where the study has no constraints or they were not measured.
const SCHEMA_V4: &str = "
ALTER TABLE trials ADD COLUMN constraints TEXT CHECK (constraints IS NULL OR json_valid(constraints));
";

/// Several objectives. `studies.objectives`: a JSON list of
/// `{"name", "direction"}`, one per objective (`direction` holds the
/// first's); NULL for a study with one. `trials.objective_values`: a
/// COMPLETE trial's value of each (`value` holds the first); NULL with one.
const SCHEMA_V5: &str = "
ALTER TABLE studies ADD COLUMN objectives TEXT CHECK (objectives IS NULL OR json_valid(objectives));
ALTER TABLE trials ADD COLUMN objective_values TEXT
    CHECK (objective_values IS NULL OR json_valid(objective_values));
";

/// What the header and catalogue of an opened file say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// No tables and no application id: a new or empty file.
    Empty,
    /// A study database at this schema version.
    Study { version: u32 },
    /// An SQLite database of some other program.
    Foreign,
}

/// Reads the application id, schema version and table count.
pub fn inspect(conn: &Connection) -> rusqlite::Result<FileKind> {
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    Ok(match application_id {
        APPLICATION_ID => FileKind::Study { version: version.clamp(0, u32::MAX as i64) as u32 },
        0 if version == 0 && objects == 0 => FileKind::Empty,
        _ => FileKind::Foreign,
    })
}

/// Applies every migration newer than the file's version, one transaction
/// each. Safe against a second process migrating at the same time: the
/// version is read again under the write lock.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<u32> {
    apply(conn, MIGRATIONS)
}

/// Applies the `steps` newer than the file's version; returns the version
/// reached.
fn apply(conn: &mut Connection, steps: &[Migration]) -> anyhow::Result<u32> {
    for step in steps {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version >= i64::from(step.version) {
            continue;
        }
        tx.execute_batch(step.sql)
            .with_context(|| format!("schema migration to version {} failed", step.version))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
    }
    Ok(steps.last().map_or(0, |step| step.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_by_one_from_one() {
        for (index, step) in MIGRATIONS.iter().enumerate() {
            assert_eq!(step.version as usize, index + 1, "{}", step.description);
        }
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(inspect(&conn).unwrap(), FileKind::Empty);
        migrate(&mut conn).unwrap();
        let tables = |conn: &Connection| -> Vec<String> {
            let mut stmt = conn.prepare("SELECT sql FROM sqlite_schema ORDER BY name").unwrap();
            stmt.query_map([], |row| row.get::<_, Option<String>>(0))
                .unwrap()
                .map(|sql| sql.unwrap().unwrap_or_default())
                .collect()
        };
        let before = tables(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(tables(&conn), before);
        assert_eq!(inspect(&conn).unwrap(), FileKind::Study { version: latest_version() });
    }

    #[test]
    fn each_step_is_one_transaction() {
        let mut conn = Connection::open_in_memory().unwrap();
        let version =
            |conn: &Connection| -> u32 { conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap() };
        let v1 = Migration { version: 1, description: "table", sql: "CREATE TABLE t (a INTEGER);" };
        let v2 = Migration { version: 2, description: "column", sql: "ALTER TABLE t ADD COLUMN b TEXT;" };
        let broken = Migration {
            version: 3,
            description: "half broken",
            sql: "CREATE TABLE u (x); INSERT INTO t VALUES (1, 'x'); SELECT no_such_function();",
        };
        assert_eq!(apply(&mut conn, &[v1]).unwrap(), 1);
        conn.execute("INSERT INTO t VALUES (7)", []).unwrap();
        assert_eq!(apply(&mut conn, &[v1, v2]).unwrap(), 2, "only the new step runs");
        assert_eq!(version(&conn), 2);
        let err = apply(&mut conn, &[v1, v2, broken]).unwrap_err();
        assert!(format!("{err:#}").contains("version 3"), "{err:#}");
        assert_eq!(version(&conn), 2, "a failed step leaves the previous version");
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'u'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "and none of its changes");
        let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
    }
}
