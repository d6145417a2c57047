//! One study in a database, split by what it keeps: the study itself
//! ([`study`]), the definitions and phases it runs under ([`definitions`]),
//! its trials and their life cycle ([`trials`]), the attributes, artefacts
//! and metrics recorded beside them ([`attributes`]) and the heartbeats of
//! running trials ([`heartbeats`]).
//!
//! Each of those is an `impl` block of [`StudyStore`], which reads and
//! writes SQL and nothing else. The crate holds a study as a
//! [`SqliteStore`] ([`cached`]): the store with the caches that spare the
//! ask/tell core a reload of every trial on every ask.

mod attributes;
mod cached;
mod definitions;
mod heartbeats;
mod study;
mod trials;

use rusqlite::Connection;

pub use attributes::Artifact;
pub use cached::SqliteStore;
pub use definitions::{Change, Definition, Effect, Phase, RecordedChange};
pub use study::{NewStudy, StoredObjective, StudyInfo};
pub use trials::TrialDetails;

use super::database::Lock;
use super::Database;

/// One study in a database, without caches: every method is one
/// transaction of SQL.
struct StudyStore {
    db: Database,
    study_id: i64,
    info: StudyInfo,
}

impl StudyStore {
    /// Runs `change` on this study in one write transaction.
    fn write<T>(&mut self, change: impl FnOnce(&Connection, i64) -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.db.transaction(Lock::Write, |tx| change(tx, self.study_id))
    }

    /// Runs `query` on this study in one consistent snapshot.
    fn read<T>(&self, query: impl FnOnce(&Connection, i64) -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.db.transaction(Lock::Snapshot, |tx| query(tx, self.study_id))
    }
}
