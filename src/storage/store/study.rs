//! The study itself: creating, opening and resuming it in a database, and
//! its metadata (name, direction, seed, the snapshot of its file).

use anyhow::bail;
use rusqlite::{params, OptionalExtension};

use super::{SqliteStore, StudyStore};
use crate::error::InputError;
use crate::hpo::Direction;
use crate::storage::rows::{direction_name, parse_direction};
use crate::storage::{Database, Timestamp};

/// One objective of a study with several, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredObjective {
    pub name: String,
    pub direction: Direction,
}

/// What a new study starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudy {
    pub name: String,
    /// The objective's direction; with several objectives, the first one's.
    pub direction: Direction,
    /// Every objective, in a study with several; empty with one.
    pub objectives: Vec<StoredObjective>,
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
    /// Every objective, in a study with several; empty with one.
    pub objectives: Vec<StoredObjective>,
    pub seed: u64,
    pub created: Timestamp,
    pub config: String,
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
            "INSERT INTO studies (name, direction, seed, created_ms, config, objectives)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                new.name,
                direction_name(new.direction),
                new.seed as i64,
                Timestamp::now().unix_ms,
                new.config,
                objectives_json(&new.objectives)
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
        Ok(SqliteStore::new(StudyStore { db: self, study_id: id, info }))
    }

    /// Resumes the study `new.name` if the file has it (its direction and
    /// seed must match `new`), else creates it.
    pub fn open_or_create_study(self, new: &NewStudy) -> anyhow::Result<SqliteStore> {
        let Some((_, info)) = self.find_study(&new.name)? else {
            return self.create_study(new);
        };
        if info.objectives != new.objectives {
            let describe = |objectives: &[StoredObjective], direction: Direction| match objectives {
                [] => format!("one objective ({})", direction_name(direction)),
                list => list
                    .iter()
                    .map(|o| format!("{} ({})", o.name, direction_name(o.direction)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            bail!(InputError::new(
                self.location(),
                format!(
                    "study {:?} exists with objectives {}, but {} were asked for",
                    new.name,
                    describe(&info.objectives, info.direction),
                    describe(&new.objectives, new.direction)
                ),
            )
            .with_hint("keep the study's objectives to resume it, or give the study a new name"));
        }
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
                "SELECT id, name, direction, seed, created_ms, config, objectives FROM studies WHERE name = ?1",
                [name],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()?;
        found
            .map(|(id, name, direction, seed, created_ms, config, objectives)| {
                let direction = parse_direction(&direction)?;
                let created = Timestamp { unix_ms: created_ms };
                let objectives = match objectives {
                    Some(text) => serde_json::from_str(&text).map_err(|err| {
                        anyhow::anyhow!("study {name:?} has unreadable objectives {text:?}: {err}")
                    })?,
                    None => Vec::new(),
                };
                Ok((id, StudyInfo { name, direction, objectives, seed: seed as u64, created, config }))
            })
            .transpose()
    }
}

/// The `objectives` column: NULL for a study with one.
fn objectives_json(objectives: &[StoredObjective]) -> Option<String> {
    (!objectives.is_empty()).then(|| serde_json::to_string(objectives).expect("objectives always serialise"))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

impl StudyStore {
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    pub(super) fn info(&self) -> &StudyInfo {
        &self.info
    }

    /// Replaces the snapshot of the study file (e.g. after an edit on resume).
    pub(super) fn set_config(&mut self, config: &str) -> anyhow::Result<()> {
        self.write(|tx, study| {
            tx.execute("UPDATE studies SET config = ?2 WHERE id = ?1", params![study, config])?;
            Ok(())
        })?;
        self.info.config = config.to_string();
        Ok(())
    }
}
