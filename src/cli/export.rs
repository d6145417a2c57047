//! `study export`: every trial of a study as CSV or JSON (safe while the
//! study runs: one read-only snapshot).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::storage::export;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One row per trial, a column per parameter and metric.
    Csv,
    /// The study and its trials, typed and nested.
    Json,
}

/// Export a study's trials as CSV or JSON.
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
}

pub fn run(args: ExportArgs) -> Result<()> {
    let store = super::status::open_study(&args.results, args.study.as_deref())?;
    let mut buffer = Vec::new();
    match args.format {
        Format::Csv => export::to_csv(&store, &mut buffer)?,
        Format::Json => export::to_json(&store, &mut buffer)?,
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
