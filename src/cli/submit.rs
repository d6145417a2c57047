//! `study submit`: run a study's controller as a batch job on a Slurm
//! cluster, from a login node. Writes `<results>/<name>/slurm/controller.sbatch`
//! (a readable, commented script that runs `study run` in the job), submits
//! it and records the job id for `study status`. The job is the allocation
//! of the trials' steps (`executor: slurm`), or a small CPU job whose trials
//! are jobs of their own (`executor: slurm-jobs`): a controller that outlives
//! a login session, requeued with its trials still running.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::error::InputError;
use crate::exec::launch::AttemptSetup;
use crate::exec::launch::Executor;
use crate::exec::scheduler::log_paths;
use crate::exec::slurm::{
    self, Allocation, Controller, JobRequest, NodeShare, Partition, SlurmJobs, StepRequest, Trials,
};
use crate::study;

/// Submit a study's controller as a Slurm batch job: with `executor: slurm`
/// its allocation runs the trials as job steps; with `executor: slurm-jobs`
/// it is a small CPU job that submits a batch job per trial.
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
    /// Nodes of the allocation (`executor: slurm`; default 1).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// GPUs per node (`executor: slurm`; default: all of a node of the partition).
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// Time limit of the controller's job, as Slurm writes it (`12:00:00`,
    /// `2-0`); the job requeues itself before it to go on.
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
    let trials = match (&plan.slurm, &plan.slurm_jobs) {
        (Some(step), _) => Trials::Steps(step),
        (None, Some(_)) => {
            // The controller's own job is small; its trials ask for their resources themselves.
            for (given, option) in
                [(args.nodes.is_some(), "--nodes"), (args.gpus_per_node.is_some(), "--gpus-per-node")]
            {
                if given {
                    return Err(InputError::new(
                        option,
                        "with `executor: slurm-jobs` the submitted job is the controller alone (one CPU): each trial is a job of its own",
                    )
                    .with_hint("leave it out; a trial job's resources are resources.slurm.gpus_per_trial, cpus_per_trial, mem_per_trial and time_per_trial")
                    .into());
                }
            }
            Trials::Jobs
        }
        (None, None) => {
            return Err(InputError::new(
                args.file.display().to_string(),
                "`resources.executor` is `local`; a submitted study runs its trials on a Slurm cluster",
            )
            .with_hint("add `executor: slurm` (trials as job steps in one allocation) or `executor: slurm-jobs` (a batch job per trial) under `resources:` (see docs/clusters.md)")
            .into());
        }
    };
    let job = JobRequest {
        nodes: args.nodes.unwrap_or(1),
        gpus_per_node: args.gpus_per_node,
        time: args.time.clone(),
        partition: args.partition.clone(),
        // A controller of trial jobs is charged where its trials are, unless told otherwise.
        account: args.account.clone().or_else(|| plan.slurm_jobs.as_ref().and_then(|r| r.account.clone())),
    };
    // Everything is checked against the cluster before anything is written or submitted.
    let partition = match Partition::query(args.partition.as_deref(), "--partition") {
        Ok(partition) => Some(partition),
        Err(err) if args.dry_run && crate::error::exit_code(&err) == 2 && args.partition.is_none() => {
            eprintln!("note: {err:#}; the scripts are not checked against a cluster");
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
    let script = slurm::controller_script(&controller, trials, &job, partition.as_ref())?;
    let dir = study::study_dir(&controller.results, &plan.name);
    // Trial jobs are checked against their own partition, which may not be the controller's.
    let trial_jobs = match &plan.slurm_jobs {
        Some(request) => {
            let theirs = match &partition {
                Some(_) => Some(Partition::query(request.partition.as_deref(), "resources.slurm.partition")?),
                None => None,
            };
            Some(SlurmJobs::for_partition(request, &plan.name, &dir, theirs.as_ref())?)
        }
        None => None,
    };
    if args.dry_run {
        print!("{script}");
        if let Trials::Steps(step) = trials {
            println!();
            println!("# ---- and each trial attempt, a job step the controller starts in the allocation: trial 0's");
            println!(
                "# (JOBID and NODE are the allocation's and its slot's; its parameters are sampled when it"
            );
            println!("# starts: written to its trial file, or here as placeholders)");
            println!("{}", step_preview(&plan, step, &job, partition.as_ref(), &dir)?);
        }
        if let Some(jobs) = &trial_jobs {
            let spec = study::preview_trial(&plan, &dir, 0, &jobs.slots()[0])?;
            let trial_dir = dir.join("trials").join("0");
            let (_, stderr) = log_paths(&trial_dir, 1);
            let setup = AttemptSetup { attempt: 1, dir: trial_dir, stderr, env: Vec::new() };
            println!();
            println!(
                "# ---- and the batch job of each trial attempt, submitted by the controller: trial 0's"
            );
            println!("# (its parameters are sampled when it starts: written to its trial file, or here as placeholders)");
            print!("{}", jobs.preview(&spec, &setup));
        }
        return Ok(());
    }
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

/// Trial 0's `srun` command line, as the controller would start it in the
/// allocation: the step executor's own command, on a node of the job's
/// request (`NODE`, of allocation `JOBID`).
fn step_preview(
    plan: &study::StudyPlan,
    step: &StepRequest,
    job: &JobRequest,
    partition: Option<&Partition>,
    dir: &std::path::Path,
) -> Result<String> {
    let partition_gpus = partition.map_or(0, |p| p.nodes.iter().map(|n| n.gpus).max().unwrap_or(0));
    let gpus = job.gpus_per_node.unwrap_or(partition_gpus).max(step.gpus_per_trial.unwrap_or(0));
    let node = NodeShare { name: "NODE".into(), cpus: step.cpus_per_trial, gpus, mem_mb: 0 };
    let allocation = Allocation { job_id: "JOBID".into(), nodes: vec![node] };
    let steps = slurm::Slurm::new(allocation, step, &plan.name, dir)?;
    let slot = &steps.slots()[0];
    let spec = study::preview_trial(plan, dir, 0, slot)?;
    let command = steps.command(&spec, slot);
    let command = command.as_std();
    let words = std::iter::once(command.get_program()).chain(command.get_args());
    Ok(words.map(|w| slurm::shell_word(&w.to_string_lossy())).collect::<Vec<_>>().join(" "))
}
