//! `study submit`: the controller's batch script, checked against the
//! partition's nodes, its submission, and the jobs file `study status` reads.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::allocation::{count_gpus, count_gres};
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
    pub nodes: Vec<PartitionNode>,
    /// Its `MaxTime` in seconds; `None` when unlimited.
    pub max_time: Option<u64>,
}

/// One node of a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionNode {
    pub name: String,
    pub cpus: u32,
    pub gpus: u32,
    /// Megabytes (`RealMemory`).
    pub mem_mb: u64,
    /// Slurm's GPU shards (`gres/shard`) of its GPUs, 0 where it has none.
    pub shards: u32,
}

/// Megabytes `study submit` adds to the job's memory, beyond its trials',
/// for the controller (it loads the data set to check the study).
pub const CONTROLLER_MEM_MB: u64 = 1024;

impl Partition {
    /// Refuses a time (of key `key`) above the partition's `MaxTime`: a job
    /// asking for it would wait in the queue for ever (`PartitionTimeLimit`).
    pub fn check_time(&self, key: &str, time: Option<&str>) -> Result<()> {
        let (Some(time), Some(max)) = (time, self.max_time) else { return Ok(()) };
        if parse_time(time).is_some_and(|t| t > max) {
            return Err(InputError::new(
                key,
                format!("`{time}` is longer than partition `{}` allows (MaxTime {} s)", self.name, max),
            )
            .with_hint(
                "ask for less time, or choose a partition with a longer MaxTime (`sinfo -o \"%P %l\"`)",
            )
            .into());
        }
        Ok(())
    }

    fn most_gpus(&self) -> u32 {
        self.nodes.iter().map(|n| n.gpus).max().unwrap_or(0)
    }

    /// `partition` (given by `key`, named in errors), or the cluster's
    /// default one; an [`InputError`] when Slurm cannot be reached or the
    /// partition does not exist.
    pub fn query(partition: Option<&str>, key: &str) -> Result<Partition> {
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
                    return Err(InputError::new(key, format!("no partition `{p}` on this cluster"))
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
        let list = slurm_command("sinfo", &["-h", "-N", "-p", &name, "-o", "%N|%c|%G|%m|%l"])?;
        let mut nodes: Vec<PartitionNode> = Vec::new();
        let mut max_time = None;
        for line in list.lines() {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let [node, cpus, gres, mem, limit] = fields[..] else { continue };
            max_time = parse_time(limit);
            if nodes.iter().any(|n| n.name == node) {
                continue; // sinfo -N lists a node once per state
            }
            nodes.push(PartitionNode {
                name: node.to_owned(),
                cpus: cpus.parse().unwrap_or(0),
                gpus: count_gpus(gres),
                shards: count_gres(gres, "shard"),
                mem_mb: mem.trim_end_matches('+').parse().unwrap_or(0),
            });
        }
        Ok(Partition { name, nodes, max_time })
    }
}

/// Single-quoted for a shell.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as one word of a shell command line: as it is when it holds
/// nothing a shell would read, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let plain =
        !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_=/.,:@%+".contains(c));
    if plain {
        text.to_owned()
    } else {
        quote(text)
    }
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

/// Where a submitted study's trials run.
#[derive(Debug, Clone, Copy)]
pub enum Trials<'a> {
    /// As job steps inside the controller's allocation (`executor: slurm`).
    Steps(&'a StepRequest),
    /// As batch jobs of their own (`executor: slurm-jobs`): the controller's
    /// job is small, and its trial jobs outlive it.
    Jobs,
}

/// Megabytes of the controller's own job when the trials are jobs of
/// their own: it loads the data set once to check the study.
pub const JOBS_CONTROLLER_MEM_MB: u64 = 2 * CONTROLLER_MEM_MB;

/// The `#SBATCH` lines of the allocation that runs the trials as steps,
/// checked against `partition`.
fn step_resources(
    step: &StepRequest,
    job: &JobRequest,
    partition: Option<&Partition>,
) -> Result<Vec<String>> {
    let node_gpus = job.gpus_per_node.or(partition.map(Partition::most_gpus)).unwrap_or(0);
    let gpus = step.gpus_per_trial.unwrap_or(u32::from(node_gpus > 0));
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
    let trial_mem = step.mem_per_trial.as_deref().and_then(megabytes);
    let slots = match (gpus, partition) {
        // CPU trials: as many as the job.nodes-th largest node holds, so that job.nodes nodes fit.
        (0, Some(p)) => {
            let mut cpus: Vec<u32> = p.nodes.iter().map(|n| n.cpus).collect();
            cpus.sort_unstable_by(|a, b| b.cmp(a));
            let cpus = cpus.get(job.nodes as usize - 1).or(cpus.last()).copied().unwrap_or(0);
            (cpus / step.cpus_per_trial).max(1)
        }
        (0, None) => 1,
        (g, _) => node_gpus / g * step.trials_per_gpu,
    };
    let job_mem = trial_mem.map(|m| m * u64::from(slots) + CONTROLLER_MEM_MB);
    if let Some(p) = partition {
        check_fits(p, job, slots, step.cpus_per_trial, node_gpus, job_mem)?;
        p.check_time("resources.slurm.time_per_trial", step.time_per_trial.as_deref())?;
    }
    let mut lines = vec![
        format!("#SBATCH --nodes={}", job.nodes),
        format!("#SBATCH --ntasks-per-node={slots}      # one task per concurrent trial"),
        format!("#SBATCH --cpus-per-task={}", step.cpus_per_trial),
    ];
    if node_gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{node_gpus}"));
    }
    if let Some(mem) = job_mem {
        lines.push(format!("#SBATCH --mem={mem}M      # {slots} trial(s) and the controller"));
    }
    Ok(lines)
}

/// The `#SBATCH` lines of a controller whose trials are jobs of their own:
/// one CPU and [`JOBS_CONTROLLER_MEM_MB`] on one node.
fn jobs_controller_resources(job: &JobRequest, partition: Option<&Partition>) -> Result<Vec<String>> {
    if let Some(p) = partition {
        check_fits(p, job, 1, 1, 0, Some(JOBS_CONTROLLER_MEM_MB))?;
    }
    Ok(vec![
        "#SBATCH --nodes=1".to_owned(),
        "#SBATCH --ntasks=1".to_owned(),
        "#SBATCH --cpus-per-task=1".to_owned(),
        format!("#SBATCH --mem={JOBS_CONTROLLER_MEM_MB}M      # the controller alone: no trial runs here"),
    ])
}

/// The script's opening comment: what runs in the job, and what happens
/// when it is pre-empted or reaches its time limit (USR1 `warn` s before).
fn what_runs(trials: Trials, warn: u64) -> Vec<String> {
    let mut text: Vec<String> = match trials {
        Trials::Steps(_) => vec![
            "The controller runs `study run` in this allocation: every trial is a job step".into(),
            "(`srun`) on one of its nodes, with the GPUs and CPUs the study file asks for".into(),
            "(resources.slurm). The study's database is written with a rollback journal,".into(),
            "so `study status` and `study report` read it from any host.".into(),
            String::new(),
            "Pre-emption: Slurm sends SIGTERM to the job's steps (at once, or at the".into(),
            "start of a GraceTime): the trials checkpoint and end as interrupted, the".into(),
            "controller launches nothing more and ends. Time limit: --signal sends USR1".into(),
            format!("{warn} s before it, and the controller stops the same way. Either way the job"),
        ],
        Trials::Jobs => vec![
            "The controller runs `study run` in this small job: every trial is a batch job".into(),
            "of its own, with the GPUs, CPUs, memory and time the study file asks for".into(),
            "(resources.slurm), which the controller submits and follows through files in".into(),
            "the trial's folder. The study's database is written with a rollback journal,".into(),
            "so `study status` and `study report` read it from any host.".into(),
            String::new(),
            "The trial jobs outlive this one: pre-emption (SIGTERM) or the time limit".into(),
            format!("(--signal sends USR1 {warn} s before it) stops the controller, and the trial"),
            "jobs it followed keep running. Either way the job".into(),
        ],
    };
    text.extend([
        "then goes back in the queue (scontrol requeue) and resumes the study where it".into(),
        "stopped; where requeue is refused (the job is not requeueable: --no-requeue,".into(),
        "JobRequeue=0, a site's submit filter), this script submits itself again to".into(),
        "start after this job, and records the new job in the jobs file.".into(),
    ]);
    if let Trials::Jobs = trials {
        text.push("The controller that starts then re-attaches to the trial jobs by their names.".into());
    }
    text
}

/// The batch script of a study's controller (see the script's comments),
/// checked against `partition` when Slurm could be asked.
// Long on purpose: most of it is the batch script's text, line by line, reviewed best in one place.
pub fn controller_script(
    controller: &Controller,
    trials: Trials,
    job: &JobRequest,
    partition: Option<&Partition>,
) -> Result<String> {
    let resources = match trials {
        Trials::Steps(step) => step_resources(step, job, partition)?,
        Trials::Jobs => jobs_controller_resources(job, partition)?,
    };
    if let Some(p) = partition {
        p.check_time("--time", job.time.as_deref())?;
    }
    let name = &controller.study;
    let slurm_dir = controller.results.join(name).join("slurm");
    let warn = warning_seconds(job.time.as_deref());
    let grace = warn * 2 / 3;
    let mut lines = vec![
        "#!/bin/bash".to_owned(),
        format!("# The controller of study `{name}`, written by `study submit`. Submit it again"),
        "# (`sbatch` this file, or `study submit` the study file) to continue the study.".to_owned(),
        "#".to_owned(),
    ];
    lines.extend(what_runs(trials, warn).iter().map(|l| format!("# {l}").trim_end().to_owned()));
    lines.extend([format!("#SBATCH --job-name=anisostudy-{name}")]);
    lines.extend(resources);
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
        "# The time-limit warning (USR1) reaches this script only, and is passed on to".to_owned(),
        match trials {
            Trials::Steps(_) => "# the controller as SIGTERM. Trials that do not stop when asked are interrupted",
            Trials::Jobs => "# the controller as SIGTERM. A controller that does not stop when asked ends",
        }
        .to_owned(),
        format!("# by requeueing the job {grace} s later, before the time limit would end it."),
        "# Pre-emption signals the steps, or (at the end of a GraceTime) every process;".to_owned(),
        "# this script waits for the controller either way.".to_owned(),
        format!("script={}", quote(&slurm_dir.join("controller.sbatch").display().to_string())),
        format!("jobs={}", quote(&slurm_dir.join("jobs").display().to_string())),
        "job() { scontrol show job \"$SLURM_JOB_ID\" 2>/dev/null; }".to_owned(),
        "preempted() { job | grep -q 'PreemptTime=[0-9]'; }".to_owned(),
        "go_on() {".to_owned(),
        "  if job | grep -q 'Requeue=1' && scontrol requeue \"$SLURM_JOB_ID\"; then".to_owned(),
        "    echo \"$1: requeued job $SLURM_JOB_ID to continue\"".to_owned(),
        "  elif next=$(sbatch --parsable --dependency=afterany:\"$SLURM_JOB_ID\" \"$script\"); then".to_owned(),
        "    next=${next%%;*}".to_owned(),
        "    echo \"$next $(date -u +%Y-%m-%dT%H:%M:%SZ) submitted by job $SLURM_JOB_ID, whose requeue was refused\" >> \"$jobs\"".to_owned(),
        "    echo \"$1: requeue refused; submitted job $next to continue after job $SLURM_JOB_ID\"".to_owned(),
        "  else".to_owned(),
        "    echo \"$1: requeue refused and sbatch failed: submit $script again to continue\"".to_owned(),
        "  fi".to_owned(),
        "}".to_owned(),
        "warned=0".to_owned(),
        format!("trap 'warned=1; kill -TERM \"$controller\"; (sleep {grace}; go_on \"time limit near\") & timer=$!' USR1"),
        "trap ':' TERM".to_owned(),
        "while :; do".to_owned(),
        "  wait \"$controller\"; status=$?".to_owned(),
        "  kill -0 \"$controller\" 2>/dev/null || break".to_owned(),
        "done".to_owned(),
        "if [ \"$warned\" = 1 ]; then".to_owned(),
        "  # (unless the timer went on already)".to_owned(),
        "  kill \"$timer\" 2>/dev/null && go_on \"time limit near\"".to_owned(),
        "elif preempted; then".to_owned(),
        "  go_on \"pre-empted\"".to_owned(),
        "fi".to_owned(),
        "exit \"$status\"".to_owned(),
    ]);
    Ok(lines.join("\n") + "\n")
}

/// Checks that `job.nodes` real nodes of `p` each hold what the job asks
/// of one node: `slots` trials of `cpus` CPUs, `gpus` GPUs and `mem` MB.
fn check_fits(
    p: &Partition,
    job: &JobRequest,
    slots: u32,
    cpus: u32,
    gpus: u32,
    mem: Option<u64>,
) -> Result<()> {
    let want_cpus = slots * cpus;
    let fits = |n: &&PartitionNode| {
        n.cpus >= want_cpus && n.gpus >= gpus && mem.is_none_or(|m| n.mem_mb == 0 || n.mem_mb >= m)
    };
    let fitting = p.nodes.iter().filter(fits).count();
    if fitting >= job.nodes as usize {
        return Ok(());
    }
    let mem_text = mem.map_or(String::new(), |m| format!(", {m} MB"));
    let largest = p
        .nodes
        .iter()
        .map(|n| format!("{} ({} CPUs, {} GPUs, {} MB)", n.name, n.cpus, n.gpus, n.mem_mb))
        .collect::<Vec<_>>()
        .join(", ");
    let (key, hint) = if fitting == p.nodes.len() {
        ("--nodes", "ask for fewer nodes")
    } else if p.nodes.iter().any(|n| n.cpus >= want_cpus && n.gpus >= gpus) && mem.is_some() {
        (
            "resources.slurm.mem_per_trial",
            "ask for less memory per trial, or for fewer trials per node (--gpus-per-node)",
        )
    } else if p.nodes.iter().any(|n| n.gpus >= gpus) {
        (
            "resources.slurm.cpus_per_trial",
            "ask for fewer CPUs per trial, or fewer GPUs per node (--gpus-per-node)",
        )
    } else {
        ("--gpus-per-node", "ask for fewer GPUs per node")
    };
    Err(InputError::new(
        key,
        format!(
            "each of {} node(s) must hold {slots} trial(s): {want_cpus} CPUs, {gpus} GPUs{mem_text}, but {fitting} node(s) of partition `{}` do: {largest}",
            job.nodes, p.name
        ),
    )
    .with_hint(match fitting {
        0 => hint.to_owned(),
        n if n == p.nodes.len() => format!("{hint}: --nodes {n}"),
        n => format!("{hint}, or --nodes {n}"),
    })
    .into())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> Controller {
        Controller {
            study: "s".into(),
            program: "/bin/study".into(),
            file: "/w/s.yaml".into(),
            results: "/w/results".into(),
            workdir: "/w".into(),
            overrides: vec![],
        }
    }

    fn node(name: &str, cpus: u32, gpus: u32, mem_mb: u64) -> PartitionNode {
        PartitionNode { name: name.into(), cpus, gpus, mem_mb, shards: 0 }
    }

    #[test]
    fn checks_the_job_against_real_nodes() {
        // The most CPUs and the most GPUs are on different nodes: no node has both.
        let p = Partition {
            name: "mixed".into(),
            nodes: vec![node("big", 64, 0, 256_000), node("gpu", 8, 4, 64_000)],
            max_time: Some(86_400),
        };
        let step = |cpus, mem: Option<&str>| StepRequest {
            gpus_per_trial: Some(1),
            cpus_per_trial: cpus,
            mem_per_trial: mem.map(str::to_owned),
            time_per_trial: None,
            start_limit: 600,
            srun_args: vec![],
            trials_per_gpu: 1,
        };
        let job = JobRequest { nodes: 1, ..Default::default() };
        let err =
            controller_script(&controller(), Trials::Steps(&step(4, None)), &job, Some(&p)).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("16 CPUs, 4 GPUs") && text.contains("cpus_per_trial"), "{text}");
        let ok =
            controller_script(&controller(), Trials::Steps(&step(2, Some("8G"))), &job, Some(&p)).unwrap();
        // 4 trials of 8 GB and the controller's headroom.
        assert!(ok.contains(&format!("#SBATCH --mem={}M", 4 * 8192 + CONTROLLER_MEM_MB)), "{ok}");
        let err = controller_script(&controller(), Trials::Steps(&step(2, Some("16G"))), &job, Some(&p))
            .unwrap_err();
        assert!(format!("{err:#}").contains("mem_per_trial"), "{err:#}");
        let two = JobRequest { nodes: 2, ..Default::default() };
        let err =
            controller_script(&controller(), Trials::Steps(&step(2, None)), &two, Some(&p)).unwrap_err();
        assert!(format!("{err:#}").contains("--nodes 1"), "{err:#}");
        // Every node fits, but there are too few of them.
        let even = Partition {
            name: "even".into(),
            nodes: vec![node("a", 8, 4, 0), node("b", 8, 4, 0)],
            max_time: None,
        };
        let three = JobRequest { nodes: 3, ..Default::default() };
        let err =
            controller_script(&controller(), Trials::Steps(&step(1, None)), &three, Some(&even)).unwrap_err();
        assert!(format!("{err:#}").starts_with("--nodes: each of 3 node(s)"), "{err:#}");
        // Longer than the partition's MaxTime (a day).
        let long = JobRequest { nodes: 1, time: Some("2-0".into()), ..Default::default() };
        let err =
            controller_script(&controller(), Trials::Steps(&step(2, None)), &long, Some(&p)).unwrap_err();
        assert!(format!("{err:#}").starts_with("--time: `2-0` is longer than partition `mixed`"), "{err:#}");
        assert!(p.check_time("resources.slurm.time_per_trial", Some("23:00:00")).is_ok());
    }
}
