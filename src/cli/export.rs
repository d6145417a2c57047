//! `study export`: every trial of a study as CSV or JSON, or the whole study
//! as an Optuna storage for Optuna's own tools (safe while the study runs:
//! one read-only snapshot).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::error::InputError;
use crate::storage::{export, optuna};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One row per trial, a column per parameter and metric.
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
}

pub fn run(args: ExportArgs) -> Result<()> {
    let store = super::status::open_study(&args.results, args.study.as_deref())?;
    let mut buffer = Vec::new();
    match args.format {
        Format::Csv => export::to_csv(&store, &mut buffer)?,
        Format::Json => export::to_json(&store, &mut buffer)?,
        Format::Optuna => {
            let out = args.out.as_deref().ok_or_else(|| {
                InputError::new("--format optuna", "writes an SQLite file, not text")
                    .with_hint("give the file with --out FILE.db")
            })?;
            let exported = optuna::export(&store, out, args.force)?;
            let name = &store.info().name;
            eprintln!("wrote {} trials of study {name} to {}", exported.trials, out.display());
            eprintln!(
                "open it with optuna.load_study(study_name={name:?}, storage=\"sqlite:///{}\")",
                out.display()
            );
            return Ok(());
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
