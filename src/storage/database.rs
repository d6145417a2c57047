//! Opening a study database file: checks that refuse to touch anything that
//! is not a healthy study database, connection settings, migrations.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, DatabaseName, ErrorCode, OpenFlags};

use super::schema::{self, FileKind};
use crate::error::InputError;

/// How long a connection waits for a lock (a checkpoint, a WAL recovery, a
/// second writer) before it reports "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Prepared statements kept per connection; more than the store uses, so
/// none is ever prepared twice.
const STATEMENT_CACHE: usize = 64;

/// First 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// An open study database file.
///
/// The writer runs in WAL mode with `synchronous = NORMAL`: a commit appends
/// to the write-ahead log without waiting for the disk, and the log is synced
/// at each checkpoint. This is durable against crashes of the application
/// (a killed process loses nothing it committed) and never corrupts the
/// file; a power loss or kernel crash may roll back the last few commits,
/// which the controller repairs by rerunning those trials. In exchange a
/// commit costs microseconds instead of an fsync's milliseconds.
pub struct Database {
    pub(super) conn: Connection,
    path: PathBuf,
    read_only: bool,
}

/// How the single writer journals its transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Journal {
    /// Write-ahead log: readers never wait for the writer, but its
    /// shared-memory index works only between processes of one host.
    #[default]
    Wal,
    /// Rollback journal (`journal_mode=DELETE`, `synchronous=FULL`): readers
    /// on any host of a shared file system see whole transactions through
    /// its byte-range locks; they and the writer wait for each other briefly.
    Rollback,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("path", &self.path).field("read_only", &self.read_only).finish()
    }
}

impl Database {
    /// Opens the study database at `path` for writing, creating it (and its
    /// schema) when missing and upgrading an older schema.
    ///
    /// Refused, with the file left untouched: a file that is not an SQLite
    /// database, a database of another program, a corrupted database
    /// (`PRAGMA quick_check`), a schema newer than this build.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<Database> {
        Database::open_with(path, Journal::Wal)
    }

    /// [`Database::open`] with the journal `journal`.
    pub fn open_with(path: impl AsRef<Path>, journal: Journal) -> anyhow::Result<Database> {
        let path = path.as_ref();
        let existing = check_location(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(|err| cannot_open(path, &err))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if conn.is_readonly(DatabaseName::Main)? {
            return Err(InputError::new(display(path), "the study database file is read-only")
                .with_hint("make it writable (chmod u+w) or open it only to read (status, export, report)")
                .into());
        }
        if existing {
            quick_check(&conn, path)?;
        }
        match schema::inspect(&conn).map_err(|err| unreadable(path, err))? {
            FileKind::Foreign => return Err(foreign(path)),
            FileKind::Study { version } if version > schema::latest_version() => {
                return Err(too_new(path, version))
            }
            FileKind::Empty | FileKind::Study { .. } => {}
        }
        let (want, sync) = match journal {
            Journal::Wal => ("wal", "NORMAL"),
            Journal::Rollback => ("delete", "FULL"),
        };
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", want, |row| row.get(0))
            .map_err(|err| cannot_write(path, err))?;
        if !mode.eq_ignore_ascii_case(want) {
            return Err(InputError::new(
                display(path),
                format!("cannot switch the database to {want} journal mode (it stays in {mode} mode)"),
            )
            .with_hint("put the study database on a local file system that supports shared memory (not NFS)")
            .into());
        }
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn).map_err(|err| cannot_write(path, err))?;
        Ok(Database { conn, path: path.to_path_buf(), read_only: false })
    }

    /// Opens an existing study database only to read it, while a writer may
    /// be running: never writes to the file, reads whole snapshots (WAL), and
    /// waits out the rare moments a checkpoint or recovery holds a lock.
    /// Without a running writer, SQLite may create the empty `FILE-wal` and
    /// `FILE-shm` sidecars that shared reading needs.
    pub fn open_read_only(path: impl AsRef<Path>) -> anyhow::Result<Database> {
        let path = path.as_ref();
        if !check_location(path)? {
            return Err(InputError::new(display(path), "no study database at this path")
                .with_hint("check the path, or run the study first (`study run STUDY.yaml`) to create it")
                .into());
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|err| cannot_open(path, &err))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "query_only", "ON")?;
        match schema::inspect(&conn).map_err(|err| unreadable(path, err))? {
            FileKind::Foreign | FileKind::Empty => return Err(foreign(path)),
            FileKind::Study { version } if version > schema::latest_version() => {
                return Err(too_new(path, version))
            }
            FileKind::Study { version } if version < schema::latest_version() => {
                return Err(InputError::new(
                    display(path),
                    format!(
                        "the study database has schema version {version}; this build reads version {}",
                        schema::latest_version()
                    ),
                )
                .with_hint("open it once for writing (resume the study with `study run`) to upgrade it")
                .into());
            }
            FileKind::Study { .. } => {}
        }
        Ok(Database { conn, path: path.to_path_buf(), read_only: true })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opened with [`Database::open_read_only`]: every write fails.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `PRAGMA integrity_check`: the messages of every problem found, empty
    /// for a healthy file. Slow on large files (it reads every page).
    pub fn integrity_problems(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        let messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(messages.into_iter().filter(|message| message != "ok").collect())
    }

    /// Names of the studies in the file, sorted.
    pub fn study_names(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT name FROM studies ORDER BY name")?;
        let names = stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }

    /// Runs `body` in one transaction: committed when it returns `Ok`,
    /// rolled back on an error or a panic. `BEGIN` and `COMMIT` are cached
    /// statements, as they run for every state change.
    pub(super) fn transaction<T>(
        &self,
        lock: Lock,
        body: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let begin = match lock {
            Lock::Snapshot => "BEGIN DEFERRED",
            Lock::Write => {
                self.ensure_writable()?;
                "BEGIN IMMEDIATE"
            }
        };
        self.conn.prepare_cached(begin)?.execute([])?;
        let open = RollbackUnlessCommitted(&self.conn);
        let out = body(&self.conn)?;
        open.0.prepare_cached("COMMIT")?.execute([])?;
        Ok(out)
    }

    /// Fails when the database was opened read-only.
    pub(super) fn ensure_writable(&self) -> anyhow::Result<()> {
        if self.read_only {
            anyhow::bail!(
                "{} is open read-only; only the study controller writes to it",
                display(&self.path)
            );
        }
        Ok(())
    }

    pub(super) fn location(&self) -> String {
        display(&self.path)
    }
}

/// How a transaction locks the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    /// A read snapshot (WAL): never waits for the writer, never blocks it.
    Snapshot,
    /// The write lock from the start, so the transaction never has to
    /// upgrade a read lock (which could fail with "database is locked").
    Write,
}

/// Rolls back an open transaction when dropped; a no-op after `COMMIT`.
struct RollbackUnlessCommitted<'c>(&'c Connection);

impl Drop for RollbackUnlessCommitted<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            // Nothing more to do if even the rollback fails: SQLite rolls
            // back an unfinished transaction when the connection closes.
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Checks the path before SQLite sees it; returns whether a non-empty file is
/// already there. An existing file must start with the SQLite header; an
/// empty file counts as a new database.
fn check_location(path: &Path) -> anyhow::Result<bool> {
    let parent = crate::paths::folder_of(path);
    if parent.exists() && !parent.is_dir() {
        return Err(InputError::new(
            display(path),
            format!("{} is a file, not a directory", display(parent)),
        )
        .with_hint("choose a database path inside a directory")
        .into());
    }
    if !parent.is_dir() {
        return Err(InputError::new(
            display(path),
            format!("the directory {} does not exist", display(parent)),
        )
        .with_hint(format!("create it first (mkdir -p {}) or choose another database path", display(parent)))
        .into());
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            return Err(InputError::new(display(path), format!("cannot read the study database: {err}"))
                .with_hint("check the file's permissions")
                .into())
        }
    };
    if file.metadata().map(|meta| meta.is_dir()).unwrap_or(false) {
        return Err(InputError::new(display(path), "is a directory, not a study database file")
            .with_hint("give the path of a file inside it, e.g. study.db")
            .into());
    }
    let mut header = Vec::with_capacity(SQLITE_MAGIC.len());
    file.by_ref()
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut header)
        .with_context(|| format!("cannot read {}", display(path)))?;
    if header.is_empty() {
        return Ok(false);
    }
    if header != SQLITE_MAGIC {
        return Err(InputError::new(display(path), "is not an SQLite database (wrong file header)")
            .with_hint("give the path of a study database; this file was left untouched")
            .into());
    }
    Ok(true)
}

/// `PRAGMA quick_check` before the writer changes anything.
fn quick_check(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let problems = conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
        stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()
    });
    match problems {
        Ok(messages) if messages.iter().all(|message| message == "ok") => Ok(()),
        Ok(messages) => Err(corrupted(path, &messages.join("; "))),
        Err(err) => Err(unreadable(path, err)),
    }
}

fn corrupted(path: &Path, details: &str) -> anyhow::Error {
    InputError::new(display(path), format!("the study database is corrupted: {details}"))
        .with_hint(
            "restore it from a backup or start a new study database; this file was left untouched \
             (`sqlite3 FILE .recover` may salvage its rows)",
        )
        .into()
}

/// The SQLite error code behind an error, if any.
fn sqlite_code(err: &anyhow::Error) -> Option<ErrorCode> {
    err.downcast_ref::<rusqlite::Error>().and_then(rusqlite::Error::sqlite_error_code)
}

/// An SQLite error while reading the header or catalogue.
fn unreadable(path: &Path, err: impl Into<anyhow::Error>) -> anyhow::Error {
    let err = err.into();
    match sqlite_code(&err) {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => corrupted(path, &err.to_string()),
        _ => err.context(format!("cannot read {}", display(path))),
    }
}

fn cannot_open(path: &Path, err: &rusqlite::Error) -> anyhow::Error {
    InputError::new(display(path), format!("cannot open the study database: {err}"))
        .with_hint(
            "check that the directory is writable and the file's permissions allow reading and writing",
        )
        .into()
}

fn cannot_write(path: &Path, err: impl Into<anyhow::Error>) -> anyhow::Error {
    let err = err.into();
    match sqlite_code(&err) {
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            InputError::new(display(path), format!("cannot write the study database: {err}"))
                .with_hint(
                    "the file and its directory must be writable (SQLite creates FILE-wal and FILE-shm \
                     next to it); fix the permissions or choose another path",
                )
                .into()
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => corrupted(path, &err.to_string()),
        _ => err.context(format!("cannot write {}", display(path))),
    }
}

fn foreign(path: &Path) -> anyhow::Error {
    InputError::new(display(path), "is an SQLite database, but not a study database")
        .with_hint("give the path of a study database (or of a new file); this file was left untouched")
        .into()
}

fn too_new(path: &Path, version: u32) -> anyhow::Error {
    InputError::new(
        display(path),
        format!(
            "the study database has schema version {version}, newer than this build supports (up to {})",
            schema::latest_version()
        ),
    )
    .with_hint(
        "upgrade anisostudy (the `study` tool) to a release that knows this schema; \
         the file was left untouched",
    )
    .into()
}
