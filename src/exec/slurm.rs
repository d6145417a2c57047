//! Slurm: a study's trials as job steps on the nodes of an allocation.
//!
//! The controller runs inside an allocation (`SLURM_JOB_ID` is set: an
//! `sbatch` script, `salloc`, or the batch job `study submit` writes). The
//! pool is the allocation's nodes × their GPUs (or CPUs), read from
//! `scontrol show job -d`; each attempt is one `srun` job step pinned to one
//! node (`--nodelist`) and its share (`--gres=gpu:G`, `--cpus-per-task`,
//! `--mem`, `--time`). Slurm, not the slot, picks the step's GPUs and sets
//! its `CUDA_VISIBLE_DEVICES`, so two steps never share one. srun streams
//! the step's stdout and stdin line by line and returns its exit status, so
//! the trial protocol is the one of local trials.
//!
//! Ending a step: srun runs in its own process group (a terminal's Ctrl-C
//! reaches only the controller); closing its stdin (the protocol's "stop")
//! reaches the trial; SIGTERM to srun alone (prune, timeout, kill) makes
//! srun cancel the step. Killing srun's process group would leave the
//! tasks running, so that is never done.
//!
//! No orphans, no doubles: every srun gets SIGTERM when the controller dies
//! (`PR_SET_PDEATHSIG`), so a SIGKILLed controller leaves no step running
//! unsupervised; and each step is named after its study and trial
//! (`anisostudy.<study>.<hash of its folder>.<trial>`), so a controller
//! that starts finds the steps an earlier one left (its pid could not be
//! signalled, or it ran on another node) and cancels them, and waits until
//! they are gone, before it runs anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::devices::{Device, Slot};
use super::launch::{Ended, Executor};
use super::scheduler::TrialSpec;
use crate::error::InputError;

/// `resources.slurm` of a study file: what one trial's job step asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmSpec {
    /// GPUs per trial; default 1 when the allocation's nodes have GPUs, else 0.
    pub gpus_per_trial: Option<u32>,
    /// CPUs per trial; default `resources.cpu_threads_per_trial`.
    pub cpus_per_trial: Option<u32>,
    /// Memory per trial as Slurm writes it (`16G`, `4000M`); default: Slurm's.
    pub mem_per_trial: Option<String>,
    /// Time limit of one step as Slurm writes it (`90`, `1:30:00`, `1-12`).
    pub time_per_trial: Option<String>,
    /// Extra `srun` arguments, passed as they are.
    pub srun_args: Vec<String>,
}

/// A validated [`SlurmSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepRequest {
    pub gpus_per_trial: Option<u32>,
    pub cpus_per_trial: u32,
    pub mem_per_trial: Option<String>,
    pub time_per_trial: Option<String>,
    pub srun_args: Vec<String>,
}

/// srun options the executor sets itself, with the key that sets them.
const OWN_OPTIONS: &[(&str, &str)] = &[
    ("--nodelist", "the executor pins each step to one node"),
    ("-w", "the executor pins each step to one node"),
    ("--nodes", "each trial is one step on one node"),
    ("-N", "each trial is one step on one node"),
    ("--ntasks", "each trial is one task"),
    ("-n", "each trial is one task"),
    ("--gres", "use resources.slurm.gpus_per_trial"),
    ("--gpus", "use resources.slurm.gpus_per_trial"),
    ("-G", "use resources.slurm.gpus_per_trial"),
    ("--gpus-per-task", "use resources.slurm.gpus_per_trial"),
    ("--cpus-per-task", "use resources.slurm.cpus_per_trial"),
    ("-c", "use resources.slurm.cpus_per_trial"),
    ("--mem", "use resources.slurm.mem_per_trial"),
    ("--time", "use resources.slurm.time_per_trial"),
    ("-t", "use resources.slurm.time_per_trial"),
    ("--job-name", "the executor names steps after their trials"),
    ("-J", "the executor names steps after their trials"),
    ("--overlap", "it lets steps share GPUs; use resources.trials_per_device"),
    ("--jobid", "the executor runs steps in its own allocation"),
];

impl SlurmSpec {
    /// Checks the keys; `key` prefixes the names in errors (`resources.slurm`).
    pub fn validate(&self, cpu_threads_per_trial: u32) -> Result<StepRequest, (String, String, String)> {
        let err =
            |k: &str, problem: String, hint: &str| (format!("resources.slurm.{k}"), problem, hint.to_owned());
        if self.cpus_per_trial == Some(0) {
            return Err(err("cpus_per_trial", "must be at least 1".into(), "e.g. `cpus_per_trial: 4`"));
        }
        if let Some(mem) = &self.mem_per_trial {
            let digits = mem.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || mem.len() - digits.len() > 1
            {
                return Err(err(
                    "mem_per_trial",
                    format!("`{mem}` is not a memory size"),
                    "write it as Slurm does: a number with an optional K, M, G or T suffix, e.g. `16G`",
                ));
            }
        }
        if let Some(time) = &self.time_per_trial {
            if parse_time(time).is_none() {
                return Err(err(
                    "time_per_trial",
                    format!("`{time}` is not a Slurm time"),
                    "write minutes (`90`), `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`",
                ));
            }
        }
        for (i, arg) in self.srun_args.iter().enumerate() {
            let name = arg.split('=').next().unwrap_or(arg);
            if let Some((_, why)) = OWN_OPTIONS.iter().find(|(option, _)| *option == name) {
                return Err((
                    format!("resources.slurm.srun_args[{i}]"),
                    format!("`{arg}` is set by the executor"),
                    format!("remove it: {why}"),
                ));
            }
        }
        Ok(StepRequest {
            gpus_per_trial: self.gpus_per_trial,
            cpus_per_trial: self.cpus_per_trial.unwrap_or(cpu_threads_per_trial).max(1),
            mem_per_trial: self.mem_per_trial.clone(),
            time_per_trial: self.time_per_trial.clone(),
            srun_args: self.srun_args.clone(),
        })
    }
}

/// Seconds of a Slurm time: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn parse_time(text: &str) -> Option<u64> {
    let num =
        |s: &str| (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok())?;
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (num(d)?, Some(rest)),
        None => (0, None),
    };
    let parts: Vec<u64> = rest.unwrap_or(text).split(':').map(num).collect::<Option<_>>()?;
    let seconds = match (rest.is_some(), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (false, [h, m, s]) | (true, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some(days * 86400 + seconds)
}

/// One node of an allocation and its share of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeShare {
    pub name: String,
    pub cpus: u32,
    pub gpus: u32,
}

/// The allocation a controller runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub job_id: String,
    pub nodes: Vec<NodeShare>,
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
fn slurm_command(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().map_err(|err| {
        InputError::new("resources.executor", format!("no Slurm here: cannot run `{program}` ({err})"))
            .with_hint("run on a machine of the cluster (where srun, sbatch and scontrol work), or use `executor: local`")
    })?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `scontrol show hostnames LIST`: `n[1-2],m3` as node names.
pub fn expand_nodelist(list: &str) -> Result<Vec<String>> {
    Ok(slurm_command("scontrol", &["show", "hostnames", list])?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The number of CPUs in a `CPU_IDs=0-3,8` list.
fn count_ids(list: &str) -> u32 {
    list.split(',')
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some(b.parse::<u32>().ok()? + 1 - a.parse::<u32>().ok()?),
            None => range.parse::<u32>().ok().map(|_| 1),
        })
        .sum()
}

/// GPUs in a `GRES=gpu:2(IDX:0-1)` or `GRES=gpu:a100:2(IDX:0,1),…` field.
fn count_gpus(gres: &str) -> u32 {
    gres.split("),")
        .filter(|entry| entry.starts_with("gpu"))
        .filter_map(|entry| entry.split('(').next()?.rsplit(':').next()?.parse::<u32>().ok())
        .sum()
}

/// A `key=value` field of a `scontrol show` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

impl Allocation {
    /// The allocation this process runs in, or `None` outside one.
    pub fn current() -> Result<Option<Allocation>> {
        match std::env::var("SLURM_JOB_ID") {
            Ok(id) if !id.trim().is_empty() => Allocation::read(id.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// Job `job_id`'s nodes and their CPUs and GPUs, from `scontrol show job -d`.
    pub fn read(job_id: &str) -> Result<Allocation> {
        let text = slurm_command("scontrol", &["show", "job", "-d", job_id])
            .with_context(|| format!("cannot read the allocation of Slurm job {job_id}"))?;
        Allocation::parse(job_id, &text, expand_nodelist)
    }

    /// Reads `scontrol show job -d` output; `expand` turns a node list into names.
    pub fn parse(
        job_id: &str,
        text: &str,
        expand: impl Fn(&str) -> Result<Vec<String>>,
    ) -> Result<Allocation> {
        let mut nodes: BTreeMap<String, NodeShare> = BTreeMap::new();
        let mut order = Vec::new();
        for line in text.lines().map(str::trim) {
            // The per-node detail lines: `Nodes=n[1-2] CPU_IDs=2-3 Mem=0 GRES=gpu:2(IDX:0-1)`.
            let (Some(list), Some(cpus)) = (field(line, "Nodes"), field(line, "CPU_IDs")) else { continue };
            let gpus = field(line, "GRES").map_or(0, count_gpus);
            for name in expand(list)? {
                if !nodes.contains_key(&name) {
                    order.push(name.clone());
                }
                nodes.insert(name.clone(), NodeShare { name, cpus: count_ids(cpus), gpus });
            }
        }
        if nodes.is_empty() {
            bail!("`scontrol show job -d {job_id}` lists no nodes: is the job running?");
        }
        let nodes = order.into_iter().map(|name| nodes.remove(&name).expect("listed")).collect();
        Ok(Allocation { job_id: job_id.to_owned(), nodes })
    }
}

/// The Slurm executor of one study in one allocation.
#[derive(Debug, Clone)]
pub struct Slurm {
    allocation: Allocation,
    request: StepRequest,
    /// GPUs each step asks for.
    gpus: u32,
    /// Step names start with this (see the module docs).
    tag: String,
}

/// `anisostudy.<name>.<8 hex digits of the folder's path>`.
fn step_tag(study: &str, dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let hash = Sha256::digest(dir.to_string_lossy().as_bytes());
    let name: String = study.chars().map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("anisostudy.{name}.{:02x}{:02x}{:02x}{:02x}", hash[0], hash[1], hash[2], hash[3])
}

impl Slurm {
    /// The executor for study `name` (folder `dir`) in the allocation this
    /// process runs in. Bad input (no allocation, a request no node can
    /// meet) is an [`InputError`] naming the key to change.
    pub fn in_allocation(request: &StepRequest, name: &str, dir: &Path) -> Result<Slurm> {
        let Some(allocation) = Allocation::current()? else {
            return Err(InputError::new(
                "resources.executor",
                "`slurm` runs trials as job steps of an allocation, but this process is in none (SLURM_JOB_ID is not set)",
            )
            .with_hint("submit the study with `study submit FILE`, or run `study run` inside `sbatch` or `salloc`")
            .into());
        };
        Slurm::new(allocation, request, name, dir)
    }

    pub fn new(allocation: Allocation, request: &StepRequest, name: &str, dir: &Path) -> Result<Slurm> {
        let most_gpus = allocation.nodes.iter().map(|n| n.gpus).max().unwrap_or(0);
        let gpus = request.gpus_per_trial.unwrap_or(u32::from(most_gpus > 0));
        if gpus > most_gpus {
            return Err(InputError::new(
                "resources.slurm.gpus_per_trial",
                format!(
                    "{gpus} GPUs per trial, but the nodes of allocation {} have at most {most_gpus}",
                    allocation.job_id
                ),
            )
            .with_hint("ask for fewer GPUs per trial, or for nodes with more (`--gres=gpu:N`)")
            .into());
        }
        let slurm = Slurm { allocation, request: request.clone(), gpus, tag: step_tag(name, dir) };
        if slurm.slots().is_empty() {
            return Err(InputError::new(
                "resources.slurm.cpus_per_trial",
                format!(
                    "{} CPUs per trial, but no node of allocation {} has that many",
                    request.cpus_per_trial, slurm.allocation.job_id
                ),
            )
            .with_hint("ask for fewer CPUs per trial, or allocate more per node (`--cpus-per-task`, `--ntasks-per-node`)")
            .into());
        }
        Ok(slurm)
    }

    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// GPUs each job step asks for.
    pub fn gpus_per_trial(&self) -> u32 {
        self.gpus
    }

    /// The pool: per node, as many slots as its GPUs (or CPUs) allow. Slurm
    /// gives each job step GPUs of its own, so a GPU runs one trial at a time.
    pub fn slots(&self) -> Vec<Slot> {
        let cpus = self.request.cpus_per_trial.max(1);
        let mut slots = Vec::new();
        for node in &self.allocation.nodes {
            let by_cpus = node.cpus / cpus;
            let (count, device): (u32, fn(u32) -> Device) = match node.gpus.checked_div(self.gpus) {
                Some(by_gpus) => (by_gpus.min(by_cpus), |k| Device::Cuda(k.to_string())),
                None => (by_cpus, |_| Device::Cpu),
            };
            for k in 0..count {
                slots.push(Slot {
                    index: slots.len(),
                    device: device(k),
                    threads: cpus,
                    host: Some(node.name.clone()),
                });
            }
        }
        slots
    }

    /// The allocation's `JobState` now (`RUNNING`, `COMPLETING`, `PENDING`…).
    fn job_state(&self) -> Option<String> {
        let text = slurm_command("scontrol", &["show", "job", &self.allocation.job_id]).ok()?;
        text.split_whitespace().find_map(|f| f.strip_prefix("JobState=")).map(str::to_owned)
    }

    /// Cancels the steps an earlier controller of this study left running
    /// (found by name in every job of this user) and waits until they are
    /// gone; returns how many there were.
    pub fn cancel_leftovers(&self) -> Result<usize> {
        let prefix = format!("{}.", self.tag);
        let find = || -> Result<Vec<String>> {
            let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
            let list = slurm_command("squeue", &["-h", "-s", "-u", &user, "-o", "%i %j"])?;
            Ok(list
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, name)| name.trim().starts_with(&prefix))
                .map(|(id, _)| id.to_owned())
                .collect())
        };
        let leftovers = find()?;
        if leftovers.is_empty() {
            return Ok(0);
        }
        eprintln!(
            "cancelling {} job step(s) an earlier controller of this study left: {}",
            leftovers.len(),
            leftovers.join(", ")
        );
        let mut args = vec!["--quiet"];
        args.extend(leftovers.iter().map(String::as_str));
        // scancel of a step that ends meanwhile fails harmlessly; what counts is that none is left.
        let _ = Command::new("scancel").args(&args).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = find()?;
            if left.is_empty() {
                return Ok(leftovers.len());
            }
            if Instant::now() > deadline {
                bail!(
                    "job steps {} of an earlier controller are still running after scancel",
                    left.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Executor for Slurm {
    fn command(&self, spec: &TrialSpec, slot: &Slot) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("srun");
        let node = slot.host.clone().unwrap_or_else(|| self.allocation.nodes[0].name.clone());
        command.args([
            format!("--jobid={}", self.allocation.job_id),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            format!("--nodelist={node}"),
            format!("--cpus-per-task={}", self.request.cpus_per_trial),
            if self.gpus > 0 { format!("--gres=gpu:{}", self.gpus) } else { "--gres=none".into() },
            format!("--job-name={}.{}", self.tag, spec.number),
        ]);
        if let Some(mem) = &self.request.mem_per_trial {
            command.arg(format!("--mem={mem}"));
        }
        if let Some(time) = &self.request.time_per_trial {
            command.arg(format!("--time={time}"));
        }
        command.args(&self.request.srun_args).arg(&spec.program).args(&spec.args);
        #[cfg(unix)]
        command.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // srun cancels its step on SIGTERM: a controller that dies leaves no step behind.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// SIGTERM to srun alone: it cancels the step (its whole process group
    /// would leave the step's tasks running).
    fn kill(&self, child: &mut tokio::process::Child) {
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on srun's pid; no memory is involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// From srun's lines; and a step of a job that is no longer running
    /// (being requeued, pre-empted, cancelled) was ended with it, whatever
    /// srun managed to print before it went.
    fn failure(&self, status: ExitStatus, stderr: &str) -> Option<Ended> {
        let seen = step_failure(status, stderr, self.request.time_per_trial.is_some());
        if matches!(seen, Some(Ended::Interrupted(_))) || stderr.contains("Exited with exit code") {
            return seen; // or the trial's own exit code
        }
        // The job's state can lag srun's end, and slurmctld answer late while
        // it requeues the job: look for half a second.
        for _ in 0..5 {
            if let Some(state) = self.job_state().filter(|state| state != "RUNNING") {
                return Some(Ended::Interrupted(format!("job {} is {state}", self.allocation.job_id)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        seen
    }
}

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

/// Megabytes of a Slurm memory size (`16G`; a bare number is megabytes).
fn megabytes(size: &str) -> Option<u64> {
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "" | "M" => n,
        "K" => n.div_ceil(1024),
        "G" => n * 1024,
        "T" => n * 1024 * 1024,
        _ => return None,
    })
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

/// What Slurm did to a step, from srun's and slurmstepd's lines on stderr.
/// What ended the whole job (pre-emption, a requeue, its time limit; steps
/// have no time limit of their own without `step_time_limit`) interrupts
/// the trial: it runs again when the study resumes. What ended the step
/// alone (scancel of the step, its own limits, its node) is its failure.
pub fn step_failure(status: ExitStatus, stderr: &str, step_time_limit: bool) -> Option<Ended> {
    let job_ended = |l: &str| {
        l.contains(" CANCELLED AT ")
            && (l.contains("*** JOB ")
                || l.contains("DUE TO JOB REQUEUE")
                || l.contains("DUE TO PREEMPTION")
                || (l.contains("DUE TO TIME LIMIT") && !step_time_limit))
    };
    if let Some(line) = stderr.lines().find(|l| job_ended(l)) {
        return Some(Ended::Interrupted(line.trim().to_owned()));
    }
    // srun itself got a termination signal, and not from this executor (an
    // attempt it ends has its cause already): Slurm signalling the whole job,
    // sometimes before slurmstepd's line above arrives.
    if stderr.contains("srun: forcing job termination") {
        return Some(Ended::Interrupted("srun was signalled to end".to_owned()));
    }
    // A step started while its job is being requeued or ends finds no allocation.
    const ALLOCATION_GONE: [&str; 5] = [
        "Job is pending execution",
        "Duplicate job id",
        "Expired or invalid job",
        "already completing or completed",
        "Job has been cancelled",
    ];
    if let Some(line) = stderr.lines().find(|l| ALLOCATION_GONE.iter().any(|m| l.contains(m))) {
        return Some(Ended::Interrupted(line.trim().to_owned()));
    }
    let node = stderr
        .lines()
        .find_map(|l| l.split(" ON ").nth(1)?.split_whitespace().next().map(str::to_owned))
        .map_or(String::new(), |n| format!(" on {n}"));
    let has = |needle: &str| stderr.contains(needle);
    let code = status.code().map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
    let why = if has("DUE TO TIME LIMIT") {
        format!("Slurm ended the job step{node} at its time limit (resources.slurm.time_per_trial, or the job's --time)")
    } else if has("NODE FAIL") || has("NODE_FAIL") || has("DUE TO NODE FAILURE") {
        format!("Slurm: node failure{node}")
    } else if has("oom-kill")
        || has("OUT_OF_MEMORY")
        || has("out-of-memory")
        || has("Exceeded step memory limit")
    {
        format!("Slurm: the job step ran out of memory{node} (raise resources.slurm.mem_per_trial)")
    } else if has("CANCELLED AT") {
        format!("Slurm cancelled the job step{node} (scancel, or its job was cancelled)")
    } else if let Some(line) = stderr.lines().find(|l| {
        l.starts_with("srun: error:")
            && (l.contains("Unable to") || l.contains("Invalid") || l.contains("unable to"))
    }) {
        format!("Slurm refused the job step: {}", line.trim_start_matches("srun: error:").trim())
    } else {
        return None;
    };
    Some(Ended::Failed(format!("{why}; srun exited with {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn exit(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn reads_an_allocation() {
        let text = "JobId=31 JobName=x\n   NodeList=n[1-2] BatchHost=n1\n     Nodes=n1 CPU_IDs=0-1 Mem=0 GRES=gpu:2(IDX:0-1)\n     Nodes=n2 CPU_IDs=2-3,6 Mem=0 GRES=gpu:a100:1(IDX:1)\n";
        let alloc = Allocation::parse("31", text, |list| Ok(vec![list.to_owned()])).unwrap();
        assert_eq!(
            alloc.nodes,
            [
                NodeShare { name: "n1".into(), cpus: 2, gpus: 2 },
                NodeShare { name: "n2".into(), cpus: 3, gpus: 1 }
            ]
        );
        let cpu_only = "   Nodes=c[1-2] CPU_IDs=0-7 Mem=1000 GRES=\n";
        let alloc = Allocation::parse("5", cpu_only, |_| Ok(vec!["c1".into(), "c2".into()])).unwrap();
        assert_eq!(alloc.nodes.len(), 2);
        assert_eq!(alloc.nodes[1], NodeShare { name: "c2".into(), cpus: 8, gpus: 0 });
        assert!(Allocation::parse("5", "JobId=5 JobState=PENDING\n", |_| Ok(vec![])).is_err());
    }

    #[test]
    fn pools_gpus_and_cpus_per_node() {
        let alloc = Allocation {
            job_id: "7".into(),
            nodes: vec![
                NodeShare { name: "n1".into(), cpus: 4, gpus: 2 },
                NodeShare { name: "n2".into(), cpus: 1, gpus: 2 },
            ],
        };
        let spec = SlurmSpec::default().validate(1).unwrap();
        let slurm = Slurm::new(alloc.clone(), &spec, "s", Path::new("/tmp/s")).unwrap();
        let slots = slurm.slots();
        let hosts: Vec<_> = slots.iter().map(|s| s.host.clone().unwrap()).collect();
        assert_eq!(hosts, ["n1", "n1", "n2"], "n2 has GPUs for two but one CPU");
        let two = SlurmSpec { gpus_per_trial: Some(2), ..Default::default() }.validate(1).unwrap();
        assert_eq!(Slurm::new(alloc.clone(), &two, "s", Path::new("/s")).unwrap().slots().len(), 2);
        let three = SlurmSpec { gpus_per_trial: Some(3), ..Default::default() }.validate(1).unwrap();
        let err = Slurm::new(alloc.clone(), &three, "s", Path::new("/s")).unwrap_err();
        assert!(format!("{err:#}").contains("gpus_per_trial"), "{err:#}");
        let cpus = SlurmSpec { gpus_per_trial: Some(0), cpus_per_trial: Some(2), ..Default::default() };
        let slots = Slurm::new(alloc, &cpus.validate(1).unwrap(), "s", Path::new("/s")).unwrap().slots();
        assert_eq!(slots.len(), 2);
        assert!(slots.iter().all(|s| s.device == Device::Cpu && s.threads == 2));
    }

    #[test]
    fn validates_the_step_request() {
        let bad = |spec: SlurmSpec| spec.validate(1).unwrap_err();
        assert_eq!(
            bad(SlurmSpec { mem_per_trial: Some("16GB".into()), ..Default::default() }).0,
            "resources.slurm.mem_per_trial"
        );
        assert_eq!(
            bad(SlurmSpec { time_per_trial: Some("1h".into()), ..Default::default() }).0,
            "resources.slurm.time_per_trial"
        );
        let (key, problem, hint) = bad(SlurmSpec {
            srun_args: vec!["--exclusive".into(), "--gres=gpu:2".into()],
            ..Default::default()
        });
        assert_eq!(key, "resources.slurm.srun_args[1]");
        assert!(problem.contains("--gres=gpu:2") && hint.contains("gpus_per_trial"));
        let ok = SlurmSpec {
            mem_per_trial: Some("4000M".into()),
            time_per_trial: Some("1-12:00".into()),
            ..Default::default()
        };
        assert_eq!(ok.validate(3).unwrap().cpus_per_trial, 3);
        assert_eq!(parse_time("90"), Some(5400));
        assert_eq!(parse_time("1:30:00"), Some(5400));
        assert_eq!(parse_time("2-0"), Some(172_800));
        assert_eq!(parse_time("1:2:3:4"), None);
    }

    #[cfg(unix)]
    #[test]
    fn names_what_slurm_did() {
        let cancelled = "slurmstepd-n1: error: *** STEP 14.0 ON n1 CANCELLED AT 2026-12-02T01:00:00 ***\nsrun: error: n1: task 0: Killed\n";
        let failed = |status, stderr| match step_failure(status, stderr, true) {
            Some(Ended::Failed(why)) => why,
            other => panic!("{other:?}"),
        };
        let why = failed(exit(137), cancelled);
        assert!(why.starts_with("Slurm cancelled the job step on n1"), "{why}");
        let limit = "slurmstepd-n2: error: *** STEP 3.1 ON n2 CANCELLED AT 2026 DUE TO TIME LIMIT ***\n";
        assert!(failed(exit(0), limit).contains("time limit"));
        let refused =
            "srun: error: Unable to create step for job 5: Invalid generic resource (gres) specification\n";
        assert!(failed(exit(1), refused).starts_with("Slurm refused the job step"));
        assert_eq!(step_failure(exit(3), "srun: error: n2: task 0: Exited with exit code 3\n", false), None);
        let requeued = "slurmstepd-n1: error: *** STEP 29.5 ON n1 CANCELLED AT 2026-12-02T02:04:31 DUE TO JOB REQUEUE ***\n";
        assert!(matches!(step_failure(exit(143), requeued, true), Some(Ended::Interrupted(_))));
        assert!(
            matches!(step_failure(exit(0), limit, false), Some(Ended::Interrupted(_))),
            "the job's limit"
        );
    }
}
