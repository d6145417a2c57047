//! `study submit`: run a study as a batch job on a Slurm cluster, from a
//! login node. Writes `<results>/<name>/slurm/controller.sbatch` (a
//! readable, commented script that runs `study run` in the allocation),
//! submits it and records the job id for `study status`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::error::InputError;
use crate::exec::slurm::{self, Controller, JobRequest, Partition};
use crate::study;

/// Submit a study (with `resources.executor: slurm`) as a Slurm batch job.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The study file (YAML; see docs/study-file.md).
    pub file: PathBuf,
    /// Results folder, on a file system the nodes share.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Override a key of the file, e.g. `--set training.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Nodes of the allocation.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// GPUs per node (default: all of a node of the partition).
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// Time limit of the job, as Slurm writes it (`12:00:00`, `2-0`); the
    /// job requeues itself before it to go on.
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    /// Print the script instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: SubmitArgs) -> Result<()> {
    let plan = study::load(&args.file, &args.set)?;
    if plan.slurm_jobs.is_some() {
        return Err(InputError::new(
            format!("{}: resources.executor", args.file.display()),
            "`slurm-jobs` submits a batch job per trial from wherever `study run` runs: there is no allocation to submit",
        )
        .with_hint(format!(
            "run `study run {}` on a login node; a controller started again follows the jobs an earlier one left",
            args.file.display()
        ))
        .into());
    }
    let Some(step) = &plan.slurm else {
        return Err(InputError::new(
            args.file.display().to_string(),
            "`resources.executor` is `local`; a submitted study runs its trials as Slurm job steps",
        )
        .with_hint("add `executor: slurm` under `resources:` (see docs/study-file.md)")
        .into());
    };
    let job = JobRequest {
        nodes: args.nodes,
        gpus_per_node: args.gpus_per_node,
        time: args.time.clone(),
        partition: args.partition.clone(),
        account: args.account.clone(),
    };
    // Everything is checked against the cluster before anything is written or submitted.
    let partition = match Partition::query(args.partition.as_deref(), "--partition") {
        Ok(partition) => Some(partition),
        Err(err) if args.dry_run && crate::error::exit_code(&err) == 2 && args.partition.is_none() => {
            eprintln!("note: {err:#}; the script is not checked against a cluster");
            None
        }
        Err(err) => return Err(err),
    };
    let absolute =
        |p: &PathBuf| std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()));
    let controller = Controller {
        study: plan.name.clone(),
        program: std::env::current_exe()?,
        file: absolute(&args.file)?,
        results: absolute(&args.results)?,
        workdir: std::env::current_dir()?,
        overrides: args.set.clone(),
    };
    let script = slurm::controller_script(&controller, step, &job, partition.as_ref())?;
    if args.dry_run {
        print!("{script}");
        return Ok(());
    }
    let dir = study::study_dir(&controller.results, &plan.name);
    let slurm_dir = dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|err| {
        InputError::new(slurm_dir.display().to_string(), format!("cannot create the folder: {err}"))
            .with_hint("choose a writable --results folder on a file system the nodes share")
    })?;
    let path = slurm_dir.join("controller.sbatch");
    std::fs::write(&path, &script).with_context(|| format!("cannot write {}", path.display()))?;
    let id = slurm::submit(&path)?;
    let mut jobs = std::fs::OpenOptions::new().create(true).append(true).open(slurm::jobs_file(&dir))?;
    writeln!(jobs, "{id} {}", crate::storage::Timestamp::now())?;
    println!("submitted job {id}: study {} ({})", plan.name, path.display());
    println!("follow it:  study status {} --results {}", plan.name, args.results.display());
    println!("            tail -f {}", slurm_dir.join(format!("controller-{id}.out")).display());
    Ok(())
}
