//! `study stop [STUDY]`: cancels the Slurm jobs of a study's trials.
//!
//! Trial jobs (`executor: slurm-jobs`) outlive their controller on purpose:
//! a controller that is stopped or dies leaves them running, and the next
//! `study run` follows them again. This is how a user ends them instead.
//! The trials stay unfinished in the study; a later `study run` runs them
//! again in new jobs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::exec::slurm::jobs::cancel_study_jobs;
use crate::study::{open_study, study_folder};

/// Cancel the trial jobs of a study that runs a Slurm job per trial.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The study's name (its folder in the results folder), or the path of
    /// that folder; optional when the results folder holds one study.
    pub study: Option<String>,
    /// Results folder the study ran in.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

pub fn run(args: StopArgs) -> Result<()> {
    let dir = study_folder(&args.results, args.study.as_deref())?;
    let name = open_study(&args.results, args.study.as_deref())?.info().name.clone();
    let cancelled = cancel_study_jobs(&name, &dir)?;
    if cancelled.is_empty() {
        println!("study `{name}` has no trial job queued or running");
    } else {
        let list: Vec<String> = cancelled.iter().map(|j| format!("{} (trial {})", j.id, j.trial)).collect();
        println!("cancelled {} trial job(s) of study `{name}`: {}", cancelled.len(), list.join(", "));
    }
    Ok(())
}
