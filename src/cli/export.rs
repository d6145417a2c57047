//! `study export`: every trial of a study as CSV or JSON, or the whole study
//! as an Optuna storage for Optuna's own tools (safe while the study runs:
//! one read-only snapshot). With `--follow` the Optuna storage follows the
//! running study, so optuna-dashboard shows its trials as they change.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::error::InputError;
use crate::report::collect::objective_name_of;
use crate::storage::{export, optuna, SqliteStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One row per trial with Optuna's `trials_dataframe()` columns: a column
    /// per parameter (`params_*`) and per metric or other fact (`user_attrs_*`).
    Csv,
    /// The study and its trials, typed and nested.
    Json,
    /// An SQLite file in Optuna 5.0's storage schema (needs --out): opens in
    /// `optuna.load_study`, `optuna.visualization` and optuna-dashboard.
    Optuna,
}

/// Export a study's trials as CSV or JSON, or as an Optuna storage.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The study's name (its folder in the results folder), or the path of
    /// that folder; optional when the results folder holds one study.
    pub study: Option<String>,
    /// Results folder the study ran in.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file (with --format optuna).
    #[arg(long)]
    pub force: bool,
    /// Keep the --format optuna file up to date while the study runs (until
    /// Ctrl-C), for optuna-dashboard; the study never waits on it.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between updates with --follow.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, requires = "follow")]
    pub interval: f64,
}

pub fn run(args: ExportArgs) -> Result<()> {
    if args.follow && args.format != Format::Optuna {
        return Err(InputError::new("--follow", "keeps an Optuna storage up to date")
            .with_hint("use it with --format optuna --out FILE.db")
            .into());
    }
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(InputError::new("--interval", "must be a positive number of seconds").into());
    }
    let store = if args.follow {
        open_when_there(&args.results, args.study.as_deref())?
    } else {
        crate::study::open_study(&args.results, args.study.as_deref())?
    };
    let mut buffer = Vec::new();
    match args.format {
        Format::Csv => export::to_csv(&store, &mut buffer)?,
        Format::Json => export::to_json(&store, &mut buffer)?,
        Format::Optuna => {
            let out = args.out.as_deref().ok_or_else(|| {
                InputError::new("--format optuna", "writes an SQLite file, not text")
                    .with_hint("give the file with --out FILE.db")
            })?;
            let config = serde_yaml::from_str(&store.info().config).unwrap_or(serde_yaml::Value::Null);
            let metric = objective_name_of(&config);
            let name = store.info().name.clone();
            if !args.follow {
                let exported = optuna::export(&store, out, args.force, &metric)?;
                eprintln!("wrote {} trials of study {name} to {}", exported.trials, out.display());
                eprintln!(
                    "open it with optuna.load_study(study_name={name:?}, storage=\"sqlite:///{}\")",
                    out.display()
                );
                return Ok(());
            }
            return follow(&store, out, args.force, &metric, args.interval);
        }
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, &buffer).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&buffer)?;
        }
    }
    Ok(())
}

/// How long `--follow` waits for a study that `study run` is just creating.
const WAIT_FOR_STUDY: std::time::Duration = std::time::Duration::from_secs(30);

/// The study, waiting up to [`WAIT_FOR_STUDY`] for a `study run` started
/// at the same time to create its database.
fn open_when_there(results: &std::path::Path, study: Option<&str>) -> Result<SqliteStore> {
    let start = std::time::Instant::now();
    loop {
        match crate::study::open_study(results, study) {
            Ok(store) => return Ok(store),
            Err(_) if start.elapsed() < WAIT_FOR_STUDY => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            Err(err) => return Err(err),
        }
    }
}

/// Mirrors the study into `out` every `interval` seconds until interrupted.
fn follow(
    store: &SqliteStore,
    out: &std::path::Path,
    force: bool,
    metric: &str,
    interval: f64,
) -> Result<()> {
    let mut mirror = optuna::Mirror::create(store, out, force, metric)?;
    let name = &store.info().name;
    eprintln!(
        "following study {name} in {} every {interval} s (Ctrl-C to stop); open it with optuna-dashboard sqlite:///{}",
        out.display(),
        out.display()
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs_f64(interval));
        let synced = mirror.sync(store)?;
        if synced.added + synced.updated > 0 {
            eprintln!("{} trials: {} new, {} changed", synced.trials, synced.added, synced.updated);
        }
    }
}
