//! `study submit`: the controller's batch script, checked against the
//! partition's nodes, its submission, and the jobs file `study status` reads.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::allocation::count_gpus;
use super::keys::{megabytes, parse_time, StepRequest};
use super::slurm_command;
use crate::error::InputError;

/// What `study submit` asks Slurm for, beyond the study file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRequest {
    pub nodes: u32,
    pub gpus_per_node: Option<u32>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
}

/// The nodes of a partition, as `sinfo` reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    /// CPUs and GPUs of its largest node.
    pub cpus: u32,
    pub gpus: u32,
}

impl Partition {
    /// `partition`, or the cluster's default one; an [`InputError`] when
    /// Slurm cannot be reached or the partition does not exist.
    pub fn query(partition: Option<&str>) -> Result<Partition> {
        let all =
            slurm_command("sinfo", &["-h", "-o", "%P"]).map_err(|err| {
                match crate::error::exit_code(&err) {
                    2 => err,
                    _ => {
                        InputError::new("resources.executor", format!("no Slurm controller answers: {err:#}"))
                            .with_hint(
                                "run on a machine of the cluster whose slurmctld is up (`sinfo` works there)",
                            )
                            .into()
                    }
                }
            })?;
        let names: Vec<&str> = all.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let name = match partition {
            Some(p) => {
                if !names.iter().any(|n| n.trim_end_matches('*') == p) {
                    let known = names.iter().map(|n| n.trim_end_matches('*')).collect::<Vec<_>>().join(", ");
                    return Err(InputError::new(
                        "--partition",
                        format!("no partition `{p}` on this cluster"),
                    )
                    .with_hint(format!("use one of: {known}"))
                    .into());
                }
                p.to_owned()
            }
            None => match names.iter().find(|n| n.ends_with('*')).or(names.first()) {
                Some(n) => n.trim_end_matches('*').to_owned(),
                None => bail!("`sinfo` lists no partitions"),
            },
        };
        let nodes = slurm_command("sinfo", &["-h", "-N", "-p", &name, "-o", "%c|%G"])?;
        let (mut cpus, mut gpus) = (0, 0);
        for line in nodes.lines() {
            let (c, g) = line.split_once('|').unwrap_or((line, ""));
            cpus = cpus.max(c.trim().parse().unwrap_or(0));
            gpus = gpus.max(count_gpus(g.trim()));
        }
        Ok(Partition { name, cpus, gpus })
    }
}

/// Single-quoted for a shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What the controller's batch script runs.
#[derive(Debug, Clone)]
pub struct Controller {
    pub study: String,
    /// Absolute paths.
    pub program: std::path::PathBuf,
    pub file: std::path::PathBuf,
    pub results: std::path::PathBuf,
    pub workdir: std::path::PathBuf,
    /// `--set` overrides of the study file.
    pub overrides: Vec<String>,
}

/// Seconds before the time limit at which running trials are asked to
/// checkpoint and stop: 5 minutes, or a tenth of a shorter job.
fn warning_seconds(time: Option<&str>) -> u64 {
    time.and_then(parse_time).map_or(300, |limit| (limit / 10).clamp(10, 300))
}

/// The batch script of a study's controller (see the script's comments),
/// checked against `partition` when Slurm could be asked.
pub fn controller_script(
    controller: &Controller,
    step: &StepRequest,
    job: &JobRequest,
    partition: Option<&Partition>,
) -> Result<String> {
    let node_gpus = job.gpus_per_node.or(partition.map(|p| p.gpus)).unwrap_or(0);
    let gpus = step.gpus_per_trial.unwrap_or(u32::from(node_gpus > 0));
    if let Some(p) = partition {
        if job.gpus_per_node.is_some_and(|g| g > p.gpus) {
            return Err(InputError::new(
                "--gpus-per-node",
                format!(
                    "{node_gpus} GPUs per node, but the nodes of partition `{}` have at most {}",
                    p.name, p.gpus
                ),
            )
            .with_hint(format!("ask for at most {} GPUs per node", p.gpus))
            .into());
        }
        if step.cpus_per_trial > p.cpus {
            return Err(InputError::new(
                "resources.slurm.cpus_per_trial",
                format!(
                    "{} CPUs per trial, but the nodes of partition `{}` have {}",
                    step.cpus_per_trial, p.name, p.cpus
                ),
            )
            .with_hint("ask for fewer CPUs per trial")
            .into());
        }
    }
    if gpus > node_gpus {
        let (key, what) = match job.gpus_per_node {
            Some(_) => ("--gpus-per-node", format!("{node_gpus} per node were asked for")),
            None => {
                ("resources.slurm.gpus_per_trial", format!("the partition's nodes have at most {node_gpus}"))
            }
        };
        return Err(InputError::new(key, format!("{gpus} GPUs per trial, but {what}"))
            .with_hint("ask for fewer GPUs per trial (resources.slurm.gpus_per_trial), or more per node (--gpus-per-node)")
            .into());
    }
    if job.nodes == 0 {
        return Err(InputError::new("--nodes", "must be at least 1").into());
    }
    let slots = match (gpus, partition) {
        (0, Some(p)) => (p.cpus / step.cpus_per_trial).max(1),
        (0, None) => 1,
        (g, _) => node_gpus / g,
    };
    let name = &controller.study;
    let slurm_dir = controller.results.join(name).join("slurm");
    let warn = warning_seconds(job.time.as_deref());
    let grace = warn * 2 / 3;
    let mut lines = vec![
        "#!/bin/bash".to_owned(),
        format!("# The controller of study `{name}`, written by `study submit`. Submit it again"),
        "# (`sbatch` this file, or `study submit` the study file) to continue the study.".to_owned(),
        "#".to_owned(),
        "# The controller runs `study run` in this allocation: every trial is a job step".to_owned(),
        "# (`srun`) on one of its nodes, with the GPUs and CPUs the study file asks for".to_owned(),
        "# (resources.slurm). The study's database is written with a rollback journal,".to_owned(),
        "# so `study status` and `study report` read it from any host.".to_owned(),
        "#".to_owned(),
        "# Pre-emption: --requeue puts the job back in the queue. Slurm first sends".to_owned(),
        "# SIGTERM; the controller asks running trials to checkpoint and stop, and the".to_owned(),
        "# requeued job resumes the study where it stopped. Time limit: --signal sends".to_owned(),
        format!("# USR1 {warn} s before it; the controller stops the same way and the job requeues"),
        "# itself to go on.".to_owned(),
        format!("#SBATCH --job-name=anisostudy-{name}"),
        format!("#SBATCH --nodes={}", job.nodes),
        format!("#SBATCH --ntasks-per-node={slots}      # one task per concurrent trial"),
        format!("#SBATCH --cpus-per-task={}", step.cpus_per_trial),
    ];
    if node_gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{node_gpus}"));
    }
    if let Some(mem) = step.mem_per_trial.as_deref().and_then(megabytes) {
        lines.push(format!("#SBATCH --mem={}M", mem * u64::from(slots)));
    }
    if let Some(time) = &job.time {
        if parse_time(time).is_none() {
            return Err(InputError::new("--time", format!("`{time}` is not a Slurm time"))
                .with_hint("write minutes (`90`), `HH:MM:SS` or `D-HH:MM:SS`")
                .into());
        }
        lines.push(format!("#SBATCH --time={time}"));
    }
    if let Some(p) = job.partition.as_ref().or(partition.map(|p| &p.name)) {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(account) = &job.account {
        lines.push(format!("#SBATCH --account={account}"));
    }
    lines.extend([
        "#SBATCH --requeue".to_owned(),
        format!("#SBATCH --signal=B:USR1@{warn}"),
        "#SBATCH --open-mode=append".to_owned(),
        format!("#SBATCH --output={}", slurm_dir.join("controller-%j.out").display()),
        String::new(),
        format!("cd {}", quote(&controller.workdir.display().to_string())),
        format!("echo \"controller of {name}: job $SLURM_JOB_ID (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname)\""),
    ]);
    let mut run = vec![
        quote(&controller.program.display().to_string()),
        "run".to_owned(),
        quote(&controller.file.display().to_string()),
        "--results".to_owned(),
        quote(&controller.results.display().to_string()),
    ];
    for set in &controller.overrides {
        run.push("--set".to_owned());
        run.push(quote(set));
    }
    lines.extend([
        format!("{} &", run.join(" ")),
        "controller=$!".to_owned(),
        "# On pre-emption Slurm sends SIGTERM to every process of the job, the".to_owned(),
        "# controller included: nothing to pass on. The time-limit warning (USR1)".to_owned(),
        "# reaches this script only, and is passed on as SIGTERM.".to_owned(),
        "# Trials that do not stop when asked are interrupted by requeueing the job".to_owned(),
        format!("# {grace} s later, before the time limit would end it without a requeue."),
        "warned=0".to_owned(),
        "requeue() { echo \"time limit near: requeueing job $SLURM_JOB_ID to continue\"; scontrol requeue \"$SLURM_JOB_ID\"; }".to_owned(),
        format!("trap 'warned=1; kill -TERM \"$controller\"; (sleep {grace}; requeue) & timer=$!' USR1"),
        "trap ':' TERM".to_owned(),
        "while :; do".to_owned(),
        "  wait \"$controller\"; status=$?".to_owned(),
        "  kill -0 \"$controller\" 2>/dev/null || break".to_owned(),
        "done".to_owned(),
        "if [ \"$warned\" = 1 ]; then kill \"$timer\" 2>/dev/null; requeue; fi".to_owned(),
        "exit \"$status\"".to_owned(),
    ]);
    Ok(lines.join("\n") + "\n")
}

/// Submits `script` with `sbatch`; the job id.
pub fn submit(script: &Path) -> Result<String> {
    let out = slurm_command("sbatch", &["--parsable", &script.display().to_string()])
        .with_context(|| format!("sbatch refused {}", script.display()))?;
    let id = out.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() {
        bail!("sbatch printed no job id for {}", script.display());
    }
    Ok(id)
}

/// Where `study submit` records the jobs of the study in `dir`.
pub fn jobs_file(dir: &Path) -> std::path::PathBuf {
    dir.join("slurm").join("jobs")
}

/// The last submitted job of the study in `dir` as `study status` shows
/// it: id, state, nodes, restarts; `None` when none was submitted.
pub fn job_status(dir: &Path) -> Option<String> {
    let jobs = std::fs::read_to_string(jobs_file(dir)).ok()?;
    let id = jobs.lines().rev().find_map(|l| l.split_whitespace().next())?.to_owned();
    let Ok(text) = slurm_command("scontrol", &["show", "job", &id]) else {
        return Some(format!("job {id} (Slurm no longer knows it, or cannot be reached from here)"));
    };
    let get = |key: &str| {
        text.split_whitespace().find_map(|f| f.strip_prefix(key)?.strip_prefix('=')).unwrap_or("?")
    };
    let mut line = format!("job {id} {} on {}", get("JobState"), get("NodeList"));
    let restarts = get("Restarts");
    if restarts != "0" && restarts != "?" {
        line.push_str(&format!(", restarted {restarts} time(s)"));
    }
    if get("JobState") == "PENDING" {
        line.push_str(&format!(" ({})", get("Reason")));
    }
    Some(line)
}
