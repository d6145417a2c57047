//! A study's memory in SQLite: the only code in the crate that writes SQL.
//!
//! One database file holds one or more studies ([`Database`]); a
//! [`SqliteStore`] is one study in it, implements [`crate::hpo::TrialStore`]
//! for the ask/tell core and adds what the controller needs (heartbeats,
//! metrics, artefacts, requeueing of trials whose process died).
//!
//! - The controller is the single writer; `status`, `export` and `report`
//!   open the file with [`Database::open_read_only`], which never writes and
//!   reads consistent snapshots while the writer goes on. The writer keeps a
//!   WAL journal, whose shared-memory index works only within one host; a
//!   study read from other hosts of a shared file system (a cluster's login
//!   node) is written with a rollback journal instead ([`Journal`]), which
//!   needs only the file system's locks.
//! - The controller's lock lives beside the database ([`lock`]).
//! - Every state change is one `BEGIN IMMEDIATE … COMMIT` transaction, so a
//!   process killed at any point leaves every trial in a state it really had.
//! - The schema is versioned (`PRAGMA user_version`) and upgraded by the
//!   ordered migrations of [`schema`]; a file from a newer version of the tool,
//!   a file that is not a study database and a corrupted file are refused
//!   with an [`crate::error::InputError`] and left untouched.

mod database;
pub mod export;
pub mod lock;
pub mod optuna;
mod rows;
pub mod schema;
mod store;
mod time;

pub use database::{Database, Journal};
pub use store::{
    Artifact, Change, Definition, Effect, NewStudy, Phase, RecordedChange, SqliteStore, StoredObjective,
    StudyInfo, TrialDetails,
};
pub use time::Timestamp;

#[cfg(test)]
mod tests;
