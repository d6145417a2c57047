//! Slurm: a study's trials as job steps on the nodes of an allocation
//! (`executor: slurm`, this module), or as batch jobs of their own
//! (`executor: slurm-jobs`, [`jobs`]). Both share the keys of what a trial
//! asks for ([`keys`]), the names that find a study's steps and jobs again
//! ([`step_tag`]) and the partition check of [`submit`].
//!
//! The controller runs inside an allocation (`SLURM_JOB_ID` is set: an
//! `sbatch` script, `salloc`, or the batch job `study submit` writes). The
//! pool is the allocation's nodes × their GPUs (or CPUs), read from
//! `scontrol show job -d`; each attempt is one `srun` job step pinned to one
//! node (`--nodelist`) and its share (`--gres=gpu:G`, `--cpus-per-task`,
//! `--mem`, `--time`). Slurm, not the slot, picks the step's GPUs and sets
//! its `CUDA_VISIBLE_DEVICES`, so two steps never share one; with
//! `trials_per_gpu: k` the executor chooses instead: k slots per GPU, each
//! step `--overlap`ping the others with the node's GPUs and keeping the
//! one of its slot ([`Slurm::share_gpus`]). srun streams
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

mod allocation;
mod board;
pub mod host;
pub mod jobs;
mod keys;
mod step;
mod submit;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

pub use allocation::{expand_nodelist, Allocation, NodeShare};
pub use board::JobView;
pub use jobs::SlurmJobs;
pub use keys::{parse_time, JobsRequest, SlurmSpec, StepRequest};
pub use step::step_failure;
pub use submit::{
    controller_script, job_status, jobs_file, shell_word, submit, Controller, JobRequest, Partition, Trials,
};

use super::devices::{Device, Slot};
use crate::error::InputError;

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

/// Why job `id` is ending, from its `scontrol show job` text.
pub fn job_ending(id: &str, text: &str) -> Option<String> {
    let get = |key: &str| text.split_whitespace().find_map(|f| f.strip_prefix(key)?.strip_prefix('='));
    match (get("JobState"), get("PreemptTime")) {
        (Some(state), _) if state != "RUNNING" => Some(format!("job {id} is {state}")),
        (_, Some(at)) if at.starts_with(|c: char| c.is_ascii_digit()) => {
            Some(format!("job {id} is being pre-empted (PreemptTime={at})"))
        }
        _ => None,
    }
}

/// Whether the allocation is ending, as the endings of its steps ask. A
/// job-wide event (pre-emption, a requeue) ends every step at once, and
/// their questions share one answer instead of querying slurmctld once each,
/// while it is busy requeueing: an answer younger than [`JobWatch::FRESH`]
/// is reused, a caller waits while another's query runs, and a job seen
/// ending stays ending (the allocation does not come back).
#[derive(Debug, Default)]
pub struct JobWatch {
    last: Mutex<Option<(Instant, Option<String>)>>,
}

impl JobWatch {
    /// How long an answer stands: the interval at which a step's ending
    /// looks again while the job's state lags srun.
    pub const FRESH: Duration = Duration::from_millis(100);

    /// Why the job is ending, from the last answer if it is still fresh
    /// (or says ending), else from `query`.
    pub fn ending(&self, query: impl FnOnce() -> Option<String>) -> Option<String> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some((_, Some(why))) => return Some(why.clone()),
            Some((at, None)) if at.elapsed() < Self::FRESH => return None,
            _ => {}
        }
        let answer = query();
        *last = Some((Instant::now(), answer.clone()));
        answer
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
    watch: Arc<JobWatch>,
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
        if request.trials_per_gpu > 1 && most_gpus == 0 {
            return Err(InputError::new(
                "resources.slurm.trials_per_gpu",
                format!("trials share GPUs, but allocation {} has none", allocation.job_id),
            )
            .with_hint("allocate GPUs (`--gres=gpu:N`), or remove trials_per_gpu")
            .into());
        }
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
        let most_mem = allocation.nodes.iter().map(|n| n.mem_mb).max().unwrap_or(0);
        if let Some(mem) = request.mem_per_trial.as_deref().and_then(keys::megabytes) {
            if most_mem > 0 && mem > most_mem {
                return Err(InputError::new(
                    "resources.slurm.mem_per_trial",
                    format!(
                        "{mem} MB per trial, but allocation {} has at most {most_mem} MB on a node",
                        allocation.job_id
                    ),
                )
                .with_hint("ask for less memory per trial, or allocate more per node (`--mem`)")
                .into());
            }
        }
        let slurm = Slurm {
            allocation,
            request: request.clone(),
            gpus,
            tag: step_tag(name, dir),
            watch: Arc::default(),
        };
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

    /// Whether steps share GPUs (`trials_per_gpu` above 1).
    fn share_gpus(&self) -> bool {
        self.request.trials_per_gpu > 1
    }

    /// The allocation's GPUs on node `name`.
    fn node_gpus(&self, name: &str) -> u32 {
        self.allocation.nodes.iter().find(|n| n.name == name).map_or(0, |n| n.gpus)
    }

    /// The pool: per node, as many slots as its GPUs, CPUs and (with
    /// `mem_per_trial`, where Slurm allocates memory) memory allow. Slurm
    /// gives each job step GPUs of its own, so a GPU runs one trial at a
    /// time, or `trials_per_gpu` of them, filled GPU by GPU, when steps
    /// share them; the step sees its GPU as `cuda:0`…, the label keeps the
    /// node's slot (`n2/cuda:1`).
    pub fn slots(&self) -> Vec<Slot> {
        let cpus = self.request.cpus_per_trial.max(1);
        let mem = self.request.mem_per_trial.as_deref().and_then(keys::megabytes).filter(|&m| m > 0);
        let mut slots = Vec::new();
        for node in &self.allocation.nodes {
            let mut count = node.cpus / cpus;
            if let (Some(mem), true) = (mem, node.mem_mb > 0) {
                count = count.min(u32::try_from(node.mem_mb / mem).unwrap_or(u32::MAX));
            }
            let share = self.request.trials_per_gpu;
            if let Some(by_gpus) = node.gpus.checked_div(self.gpus) {
                count = count.min(by_gpus * share);
            }
            for k in 0..count {
                let (device, seen_as) = match self.gpus {
                    0 => (Device::Cpu, Device::Cpu),
                    _ => (Device::Cuda((k / share).to_string()), Device::Cuda("0".into())),
                };
                slots.push(Slot {
                    index: slots.len(),
                    device,
                    threads: cpus,
                    host: Some(node.name.clone()),
                    seen_as,
                });
            }
        }
        slots
    }

    /// Why the allocation is ending, when it is: not RUNNING (requeued,
    /// cancelled, completing), or being pre-empted (`PreemptTime` set).
    /// Steps that end together share one query ([`JobWatch`]).
    fn job_ending(&self) -> Option<String> {
        let id = &self.allocation.job_id;
        self.watch.ending(|| job_ending(id, &slurm_command("scontrol", &["show", "job", id]).ok()?))
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_job_that_is_ending() {
        let running = "JobId=9 JobName=x\n   JobState=RUNNING Reason=None\n   PreemptEligibleTime=2026-12-02T10:00:00 PreemptTime=None\n";
        assert_eq!(job_ending("9", running), None);
        let preempted = running.replace("PreemptTime=None", "PreemptTime=2026-12-02T10:05:00");
        assert!(job_ending("9", &preempted).unwrap().contains("pre-empted"));
        let requeued = running.replace("RUNNING", "REQUEUED");
        assert_eq!(job_ending("9", &requeued).unwrap(), "job 9 is REQUEUED");
    }

    #[test]
    fn steps_that_end_together_share_one_query_of_the_job() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let watch = JobWatch::default();
        let queries = AtomicUsize::new(0);
        let slow_query = |answer: Option<&str>| {
            queries.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            answer.map(str::to_owned)
        };
        // Eight steps ended by one event ask at once: one query answers all.
        std::thread::scope(|scope| {
            let asks: Vec<_> = (0..8).map(|_| scope.spawn(|| watch.ending(|| slow_query(None)))).collect();
            assert!(asks.into_iter().all(|ask| ask.join().unwrap().is_none()));
        });
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        // A stale answer is asked again; one that says ending stands.
        std::thread::sleep(JobWatch::FRESH);
        assert_eq!(
            watch.ending(|| slow_query(Some("job 9 is REQUEUED"))).as_deref(),
            Some("job 9 is REQUEUED")
        );
        std::thread::sleep(JobWatch::FRESH);
        assert_eq!(watch.ending(|| slow_query(None)).as_deref(), Some("job 9 is REQUEUED"));
        assert_eq!(queries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn pools_gpus_and_cpus_per_node() {
        let alloc = Allocation {
            job_id: "7".into(),
            nodes: vec![
                NodeShare { name: "n1".into(), cpus: 4, gpus: 2, mem_mb: 4000 },
                NodeShare { name: "n2".into(), cpus: 1, gpus: 2, mem_mb: 4000 },
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
        let slots =
            Slurm::new(alloc.clone(), &cpus.validate(1).unwrap(), "s", Path::new("/s")).unwrap().slots();
        assert_eq!(slots.len(), 2);
        assert!(slots.iter().all(|s| s.device == Device::Cpu && s.threads == 2));
        // A step sees its own GPU as cuda:0; the label keeps the node's slot.
        let gpu_slots = Slurm::new(alloc.clone(), &spec, "s", Path::new("/s")).unwrap().slots();
        assert_eq!(gpu_slots[1].label(), "n1/cuda:1");
        assert!(gpu_slots.iter().all(|s| s.seen_as == Device::Cuda("0".into())));
        // Memory caps each node's slots where Slurm allocates it.
        let mem = SlurmSpec { mem_per_trial: Some("3G".into()), ..Default::default() }.validate(1).unwrap();
        let slots = Slurm::new(alloc.clone(), &mem, "s", Path::new("/s")).unwrap().slots();
        assert_eq!(slots.iter().map(Slot::label).collect::<Vec<_>>(), ["n1/cuda:0", "n2/cuda:0"]);
        let greedy =
            SlurmSpec { mem_per_trial: Some("5G".into()), ..Default::default() }.validate(1).unwrap();
        let err = Slurm::new(alloc.clone(), &greedy, "s", Path::new("/s")).unwrap_err();
        assert!(format!("{err:#}").contains("mem_per_trial"), "{err:#}");
        // Two trials per GPU: n1's four CPUs hold both GPUs' two slots, filled GPU by GPU.
        let shared = SlurmSpec { trials_per_gpu: Some(2), ..Default::default() }.validate(1).unwrap();
        let slots = Slurm::new(alloc, &shared, "s", Path::new("/s")).unwrap().slots();
        let labels: Vec<String> = slots.iter().map(Slot::label).collect();
        assert_eq!(labels, ["n1/cuda:0", "n1/cuda:0", "n1/cuda:1", "n1/cuda:1", "n2/cuda:0"]);
        let cpu_only = Allocation {
            job_id: "8".into(),
            nodes: vec![NodeShare { name: "c1".into(), cpus: 8, gpus: 0, mem_mb: 0 }],
        };
        let err = Slurm::new(cpu_only, &shared, "s", Path::new("/s")).unwrap_err();
        assert!(format!("{err:#}").contains("trials_per_gpu"), "{err:#}");
    }
}
