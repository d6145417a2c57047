//! `study import`: an Optuna study continues here. Its trials seed the
//! study of a study file, and `study run` with that file goes on from them.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::storage::optuna;
use crate::study;

/// Seed a study with the trials of an Optuna study (RDB storage, SQLite).
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Optuna storage: the SQLite file of `sqlite:///FILE` (Optuna 5.0's schema).
    pub file: PathBuf,
    /// The Optuna study to import; optional when the file holds one.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// The study file that continues it: its first phase's space must hold every imported trial.
    #[arg(long, value_name = "STUDY_FILE")]
    pub into: PathBuf,
    /// Results folder; the study goes to `<DIR>/<name>/`.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Override a key of the study file, as with `study run`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let plan = study::load(&args.into, &args.set)?;
    let optuna = optuna::read_study(&args.file, args.study.as_deref())?;
    let imported = study::import::import_optuna(&plan, &args.into, &args.results, &optuna, &args.file)?;
    let counts: Vec<String> = imported.iter().map(|(state, n)| format!("{n} {state}")).collect();
    println!(
        "imported {} trials of Optuna study {:?} ({}) into {}",
        optuna.trials.len(),
        optuna.name,
        counts.join(", "),
        study::study_dir(&args.results, &plan.name).display()
    );
    println!("continue with: study run {} --results {}", args.into.display(), args.results.display());
    Ok(())
}
