//! `executor: slurm-jobs`: each trial attempt is one batch job of its own,
//! with the trial's resources, submitted and followed by a controller that
//! runs wherever `sbatch` works (a login node, a workstation with the Slurm
//! client, a small long CPU job). Small jobs backfill into the gaps of a
//! busy cluster, where one allocation of whole nodes waits for days.
//!
//! - **Names.** A trial's job is named `<tag>.<trial>` (the tag of
//!   [`super::step_tag`]: the study's name and folder). slurmctld records
//!   the name with the submission, so a controller that starts again finds
//!   the jobs an earlier one left queued or running, or that ended while
//!   none followed them, and follows them instead of submitting again
//!   ([`SlurmJobs::earlier_job`]); a controller
//!   that dies or is stopped leaves its jobs running (its stop is a
//!   detach), and no GPU hour is lost to a login node's reboot.
//! - **Protocol.** The job runs `study job-host` ([`super::host`]), which
//!   runs the trial and writes its lines to a file of the trial's folder;
//!   [`JobProcess`] follows that file, so nothing but the shared file
//!   system connects the nodes.
//! - **Arrays.** Trials that start together (a deterministic batch, the
//!   first `max_jobs` of a study) are gathered for [`GATHER`] and go in
//!   as one job array (`--array=0-<k-1>%<max_jobs>`, named
//!   `<tag>.<t0>,<t1>,…`): one submission instead of k, and one entry in
//!   the queue. Task `i` runs trial `t_i`, and is followed as
//!   `<array>_<i>`, the id Slurm's commands take for it.
//! - **Watching.** One `squeue` for all the study's jobs per interval
//!   ([`JobBoard`]); a job over in Slurm whose exit record has not appeared
//!   is given [`FILE_SYSTEM_LATENCY`] for the file server to show it before
//!   its end is read from its state (out of memory, time limit, node
//!   failure, cancelled).
//! - **Pre-emption.** Jobs are submitted `--requeue`: a pre-empted job
//!   returns to the queue under the same id and its follower keeps
//!   following; the trial resumes from its checkpoint. With a time per
//!   trial, `--signal=B:USR1` asks the trial to checkpoint before the limit
//!   and the job requeues itself, or (where the site refuses) is submitted
//!   again by its follower.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::board::{submission_order, JobBoard, JobView};
use super::host::{read_record, ExitRecord, JobFiles, PREEMPTED};
use super::keys::{megabytes, JobsRequest};
use super::submit::{quote, Partition};
use super::{slurm_command, step_tag};
use crate::error::InputError;
use crate::exec::devices::{Device, Slot};
use crate::exec::launch::{AttemptSetup, Ended, Event, Executor, TrialProcess, TrialSpec};

/// How long a job over in Slurm may lack its exit record before its end is
/// read from its state: what a shared file system may take to show a file
/// written on another node.
pub const FILE_SYSTEM_LATENCY: Duration = Duration::from_secs(10);

/// How often a follower looks at its job's output file.
const FILE_POLL: Duration = Duration::from_millis(300);

/// How long a submission waits for others to go in with it as one array.
pub const GATHER: Duration = Duration::from_millis(300);

/// Seconds before the time limit at which a trial is asked to checkpoint.
const TIME_LIMIT_WARNING_S: u64 = 60;

/// The trial-jobs executor of one study.
#[derive(Debug, Clone)]
pub struct SlurmJobs {
    request: JobsRequest,
    gpus: u32,
    /// A trial's GPU shards (`--gres=shard:n`) when trials share GPUs.
    shards: Option<u32>,
    tag: String,
    /// The program the jobs run: this one (`study job-host`).
    host: PathBuf,
    shared: Arc<Shared>,
}

/// What the followers of one study share.
#[derive(Debug)]
struct Shared {
    board: JobBoard,
    /// Attempts following a job now (for the board's interval).
    following: AtomicUsize,
    /// Submissions waiting to go in together.
    gathering: std::sync::Mutex<Gathering>,
}

/// Where a gathered submission sends its trial's job id, or why it failed.
type JobIdSender = std::sync::mpsc::Sender<Result<String, String>>;

/// Trials waiting to be submitted together; the first to arrive submits
/// them all after [`GATHER`] and hands each its job id.
#[derive(Debug, Default)]
struct Gathering {
    waiting: Vec<(TrialSpec, AttemptSetup, JobIdSender)>,
    leading: bool,
}

impl SlurmJobs {
    /// The executor for study `name` (folder `dir`), its request checked
    /// against the nodes of its partition. Bad input (no Slurm here, a
    /// request no node can meet) is an [`InputError`] naming the key.
    pub fn new(request: &JobsRequest, name: &str, dir: &Path) -> Result<SlurmJobs> {
        let partition = Partition::query(request.partition.as_deref(), "resources.slurm.partition")?;
        SlurmJobs::for_partition(request, name, dir, Some(&partition))
    }

    /// The executor, its request checked against `partition`'s nodes; with
    /// no partition (a dry run where no Slurm answers) it is not checked,
    /// and a trial asks for `gpus_per_trial`, or no GPU.
    pub fn for_partition(
        request: &JobsRequest,
        name: &str,
        dir: &Path,
        partition: Option<&Partition>,
    ) -> Result<SlurmJobs> {
        let (gpus, shards) = match partition {
            Some(partition) => check_request(request, partition)?,
            // Unchecked: a GPU's share is known only from the nodes.
            None => match request.trial.trials_per_gpu {
                1 => (request.trial.gpus_per_trial.unwrap_or(0), None),
                _ => (1, Some(1)),
            },
        };
        let host = std::env::current_exe().context("cannot find this program, which the trial jobs run")?;
        Ok(SlurmJobs {
            request: request.clone(),
            gpus,
            shards,
            tag: step_tag(name, dir),
            host,
            shared: Arc::new(Shared {
                board: JobBoard::new(&step_tag(name, dir)),
                following: AtomicUsize::new(0),
                gathering: Default::default(),
            }),
        })
    }

    /// The pool: `max_jobs` slots, each a job that may be queued or running.
    /// A job sees its GPUs as `cuda:0`…
    pub fn slots(&self) -> Vec<Slot> {
        let device = if self.gpus > 0 { Device::Cuda("0".into()) } else { Device::Cpu };
        (0..self.request.max_jobs as usize)
            .map(|index| Slot {
                index,
                device: device.clone(),
                threads: self.request.trial.cpus_per_trial,
                host: Some("job".into()),
                seen_as: device.clone(),
            })
            .collect()
    }

    /// The batch script of trial `spec`'s job.
    pub fn job_script(&self, spec: &TrialSpec, dir: &Path) -> String {
        let mut script = String::from("#!/bin/sh\n# A trial of an AnisoStudy study: `study job-host` runs it and writes its\n# output to the trial's folder, where the study's controller follows it.\n");
        for line in self.host_lines(spec, dir) {
            script.push_str(&line);
            script.push('\n');
        }
        script
    }

    /// The lines of a job script that run trial `spec` (folder `dir`).
    fn host_lines(&self, spec: &TrialSpec, dir: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        if self.gpus == 0 {
            // Slurm sets no CUDA_VISIBLE_DEVICES in a job without GPUs; the trial must see none.
            lines.push("export CUDA_VISIBLE_DEVICES=".to_owned());
        }
        let mut words = vec![self.host.display().to_string(), "job-host".into(), "--dir".into()];
        words.push(dir.display().to_string());
        words.push("--".into());
        words.push(spec.program.clone());
        words.extend(spec.args.iter().cloned());
        let line: Vec<String> = words.iter().map(|w| quote(w)).collect();
        lines.push(format!("exec {}", line.join(" ")));
        lines
    }

    /// The script of a job array whose task `i` runs `batch[i]`: each task
    /// goes to its trial's folder, sends its output to the trial's logs,
    /// sets the trial's environment and runs its host.
    pub fn array_script(&self, batch: &[(&TrialSpec, &AttemptSetup)]) -> String {
        let trials: Vec<String> = batch.iter().map(|(spec, _)| spec.number.to_string()).collect();
        let mut script = format!(
            "#!/bin/sh\n# Trials {} of an AnisoStudy study, one per task of this job array: `study\n# job-host` runs each and writes its output to the trial's folder, where the\n# study's controller follows it.\ncase \"$SLURM_ARRAY_TASK_ID\" in\n",
            trials.join(", ")
        );
        for (task, (spec, setup)) in batch.iter().enumerate() {
            let dir = &setup.dir;
            let workdir = spec.workdir.as_deref().unwrap_or(dir);
            let log = quote(&dir.join("job-").display().to_string());
            script.push_str(&format!("{task})\n  cd {} || exit 1\n", quote(&workdir.display().to_string())));
            script.push_str(&format!(
                "  exec >> {log}\"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.log\" 2>> {}\n",
                quote(&setup.stderr.display().to_string())
            ));
            // Slurm sets each task's CUDA_VISIBLE_DEVICES to its own GPUs.
            for (key, value) in setup.env.iter().filter(|(k, _)| k != "CUDA_VISIBLE_DEVICES") {
                script.push_str(&format!("  export {key}={}\n", quote(value)));
            }
            for line in self.host_lines(spec, dir) {
                script.push_str(&format!("  {line}\n"));
            }
            script.push_str("  ;;\n");
        }
        script.push_str("esac\necho \"no trial for task $SLURM_ARRAY_TASK_ID of this array\" >&2\nexit 1\n");
        script
    }

    /// Trial `spec`'s job as one script, its `sbatch` options written as
    /// `#SBATCH` lines (what `study submit --dry-run` shows).
    pub fn preview(&self, spec: &TrialSpec, setup: &AttemptSetup) -> String {
        let script = self.job_script(spec, &setup.dir);
        let (shebang, body) = script.split_once('\n').unwrap_or((&script, ""));
        let options = self.sbatch_args(spec.number, setup, spec.workdir.as_deref());
        let directives: String =
            options.iter().filter(|o| *o != "--parsable").map(|o| format!("#SBATCH {o}\n")).collect();
        format!("{shebang}\n{directives}{body}")
    }

    /// `sbatch`'s arguments for trial `number`'s job.
    pub fn sbatch_args(&self, number: u64, setup: &AttemptSetup, workdir: Option<&Path>) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}.{number}", self.tag),
            format!("--output={}", setup.dir.join("job-%j.log").display()),
            format!("--error={}", setup.stderr.display()),
            format!("--chdir={}", workdir.unwrap_or(&setup.dir).display()),
        ];
        args.extend(self.shared_args());
        args
    }

    /// `sbatch`'s arguments for a job array of `batch`, whose task `i`
    /// runs `batch[i]` (see [`SlurmJobs::array_script`]); at most
    /// `max_jobs` of its tasks run at once. Slurm's own output of a task
    /// (nothing, unless its script fails before it runs the trial's host)
    /// goes to the study's `slurm/` folder.
    pub fn array_args(&self, batch: &[(&TrialSpec, &AttemptSetup)]) -> Vec<String> {
        let trials: Vec<String> = batch.iter().map(|(spec, _)| spec.number.to_string()).collect();
        let study = study_folder(batch[0].1);
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}.{}", self.tag, trials.join(",")),
            format!("--array=0-{}%{}", batch.len() - 1, self.request.max_jobs),
            format!("--output={}", study.join("slurm").join("array-%A_%a.log").display()),
            format!("--chdir={}", study.display()),
        ];
        args.extend(self.shared_args());
        args
    }

    /// Creates the folder of an array's own logs (Slurm does not).
    fn array_log_folder(&self, batch: &[(&TrialSpec, &AttemptSetup)]) -> Result<()> {
        let folder = study_folder(batch[0].1).join("slurm");
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))
    }

    /// The options every trial job has: its resources, requeue, and the
    /// site's options last.
    fn shared_args(&self) -> Vec<String> {
        let trial = &self.request.trial;
        let mut args = vec![
            "--nodes=1".to_owned(),
            "--ntasks=1".into(),
            format!("--cpus-per-task={}", trial.cpus_per_trial),
            "--open-mode=append".into(),
            "--export=ALL".into(),
            "--requeue".into(),
        ];
        match self.shards {
            Some(shards) => args.push(format!("--gres=shard:{shards}")),
            None if self.gpus > 0 => args.push(format!("--gres=gpu:{}", self.gpus)),
            None => {}
        }
        if let Some(mem) = &trial.mem_per_trial {
            args.push(format!("--mem={mem}"));
        }
        if let Some(time) = &trial.time_per_trial {
            args.push(format!("--time={time}"));
            args.push(format!("--signal=B:USR1@{TIME_LIMIT_WARNING_S}"));
        }
        let named = [
            ("partition", &self.request.partition),
            ("account", &self.request.account),
            ("qos", &self.request.qos),
            ("constraint", &self.request.constraint),
        ];
        for (option, value) in named {
            if let Some(value) = value {
                args.push(format!("--{option}={value}"));
            }
        }
        args.extend(self.request.sbatch_args.iter().cloned());
        args
    }

    /// The job an earlier controller left for trial `number` (folder
    /// `dir`), to follow instead of submitting another: the trial's newest
    /// job, if Slurm still has it queued or running, or if it started (its
    /// output file is in the folder) and ended while no controller
    /// followed it; its exit record, or Slurm's word on its end, is then
    /// read as if it had been followed all along. A job only Slurm
    /// remembers as ended never started for this folder (cancelled while
    /// pending, or of a study whose folder was deleted): it is not taken.
    /// A controller's first attempt of a trial is either new or left by an
    /// earlier controller, so only first attempts look. It blocks.
    fn earlier_job(&self, number: u64, dir: &Path) -> Result<Option<String>> {
        let in_slurm = self.shared.board.jobs_of(number)?;
        let newest = in_slurm
            .into_iter()
            .filter(JobView::is_live)
            .map(|j| j.id)
            .chain(std::fs::read_dir(dir).into_iter().flatten().filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let id = name.strip_prefix("job-")?.strip_suffix(".stdout")?;
                id.chars().all(|c| c.is_ascii_digit() || c == '_').then(|| id.to_owned())
            }))
            .max_by_key(|id| submission_order(id));
        Ok(newest)
    }

    /// Submits trial `spec`'s job, with the trials whose submissions
    /// arrive within [`GATHER`] of it as one job array; its id (for a task
    /// of an array, `<array>_<task>`). It blocks.
    fn submit_gathered(&self, spec: &TrialSpec, setup: &AttemptSetup) -> Result<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let lead = {
            let mut gathering =
                self.shared.gathering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            gathering.waiting.push((spec.clone(), setup.clone(), tx));
            !std::mem::replace(&mut gathering.leading, true)
        };
        if lead {
            std::thread::sleep(GATHER);
            let batch = {
                let mut gathering =
                    self.shared.gathering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                gathering.leading = false;
                std::mem::take(&mut gathering.waiting)
            };
            let trials: Vec<(&TrialSpec, &AttemptSetup)> = batch.iter().map(|(s, a, _)| (s, a)).collect();
            let ids: Result<Vec<String>> = match trials[..] {
                [(spec, setup)] => self
                    .sbatch(
                        self.sbatch_args(spec.number, setup, spec.workdir.as_deref()),
                        &setup.env,
                        &self.job_script(spec, &setup.dir),
                    )
                    .map(|id| vec![id]),
                _ => self
                    .array_log_folder(&trials)
                    .and_then(|()| self.sbatch(self.array_args(&trials), &[], &self.array_script(&trials)))
                    .map(|id| (0..trials.len()).map(|task| format!("{id}_{task}")).collect()),
            };
            for (task, (_, _, tx)) in batch.iter().enumerate() {
                let _ = tx.send(match &ids {
                    Ok(ids) => Ok(ids[task].clone()),
                    Err(err) => Err(format!("{err:#}")),
                });
            }
        }
        match rx.recv() {
            Ok(answer) => answer.map_err(anyhow::Error::msg),
            Err(_) => bail!("the submission of this trial's job was lost"),
        }
    }

    /// Runs `sbatch args` on `script`, with `env` added to the environment
    /// the job inherits; the job id. It blocks.
    fn sbatch(&self, args: Vec<String>, env: &[(String, String)], script: &str) -> Result<String> {
        let mut sbatch = Command::new("sbatch");
        sbatch
            .args(args)
            .envs(env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Job-level options sbatch would read from a controller that itself runs in a job.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SBATCH_")) {
            sbatch.env_remove(key);
        }
        let mut child = sbatch.spawn().context("cannot run `sbatch`: is this a machine of the cluster?")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("Slurm refused the trial's job: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        // `--parsable` prints `id` or `id;cluster`.
        let id = text.trim().split(';').next().unwrap_or_default().to_owned();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            bail!("sbatch answered `{}`, not a job id", text.trim());
        }
        Ok(id)
    }
}

/// The study's folder, above the attempt's trial folder (`<study>/trials/<n>`).
fn study_folder(setup: &AttemptSetup) -> &Path {
    let dir = &setup.dir;
    dir.parent().and_then(Path::parent).unwrap_or(dir)
}

/// Cancels every trial job of study `name` (folder `dir`) still queued or
/// running (`study stop`); returns them. It blocks.
pub fn cancel_study_jobs(name: &str, dir: &Path) -> Result<Vec<JobView>> {
    let live = JobBoard::new(&step_tag(name, dir)).live_jobs()?;
    if !live.is_empty() {
        let mut args = vec!["--quiet"];
        args.extend(live.iter().map(|j| j.id.as_str()));
        slurm_command("scancel", &args)?;
    }
    Ok(live)
}

/// Checks a trial's request against the partition's nodes; the GPUs per
/// trial, and its GPU shards when trials share GPUs.
fn check_request(request: &JobsRequest, partition: &Partition) -> Result<(u32, Option<u32>)> {
    let trial = &request.trial;
    let most = |f: fn(&super::submit::PartitionNode) -> u64| partition.nodes.iter().map(f).max().unwrap_or(0);
    let most_gpus = most(|n| u64::from(n.gpus)) as u32;
    let gpus = trial.gpus_per_trial.unwrap_or(u32::from(most_gpus > 0));
    let refuse = |key: &str, problem: String, hint: &str| -> Result<(u32, Option<u32>)> {
        Err(InputError::new(format!("resources.slurm.{key}"), problem).with_hint(hint).into())
    };
    if gpus > most_gpus {
        return refuse(
            "gpus_per_trial",
            format!(
                "{gpus} GPUs per trial, but the nodes of partition `{}` have at most {most_gpus}",
                partition.name
            ),
            "ask for fewer GPUs per trial, or choose a partition with GPU nodes (`partition`)",
        );
    }
    let most_cpus = most(|n| u64::from(n.cpus));
    if u64::from(trial.cpus_per_trial) > most_cpus {
        return refuse(
            "cpus_per_trial",
            format!(
                "{} CPUs per trial, but the nodes of partition `{}` have at most {most_cpus}",
                trial.cpus_per_trial, partition.name
            ),
            "ask for fewer CPUs per trial",
        );
    }
    partition.check_time("resources.slurm.time_per_trial", trial.time_per_trial.as_deref())?;
    let most_mem = most(|n| n.mem_mb);
    if let Some(mem) = trial.mem_per_trial.as_deref().and_then(megabytes) {
        if most_mem > 0 && mem > most_mem {
            return refuse(
                "mem_per_trial",
                format!(
                    "{mem} MB per trial, but the nodes of partition `{}` have at most {most_mem} MB",
                    partition.name
                ),
                "ask for less memory per trial",
            );
        }
    }
    if trial.trials_per_gpu > 1 {
        return share_of_a_gpu(trial.trials_per_gpu, partition).map(|shards| (1, Some(shards)));
    }
    Ok((gpus, None))
}

/// The GPU shards of one trial when `k` trials share a GPU: a GPU's shards
/// on the partition's nodes (the fewest, where nodes differ) over `k`. A
/// partition without shards cannot share its GPUs between jobs.
fn share_of_a_gpu(k: u32, partition: &Partition) -> Result<u32> {
    let per_gpu =
        partition.nodes.iter().filter(|n| n.gpus > 0 && n.shards > 0).map(|n| n.shards / n.gpus).min();
    let problem = match per_gpu {
        Some(per_gpu) if per_gpu >= k => return Ok(per_gpu / k),
        Some(per_gpu) => format!(
            "{k} trials per GPU, but a GPU of partition `{}` has {per_gpu} shards: at most {per_gpu} jobs share it",
            partition.name
        ),
        None => format!(
            "{k} trials per GPU, but partition `{}` offers no GPU shards (`gres/shard`), which let jobs share a GPU",
            partition.name
        ),
    };
    Err(InputError::new("resources.slurm.trials_per_gpu", problem)
        .with_hint(
            "ask for fewer trials per GPU, or choose a partition whose nodes offer shards \
             (`sinfo -o \"%P %G\"` shows `shard:N`; sites configure them in gres.conf)",
        )
        .into())
}

impl Executor for SlurmJobs {
    /// Never spawned: [`Executor::start`] starts every attempt of this
    /// executor. It is what the job runs, for the record.
    fn command(&self, spec: &TrialSpec, _slot: &Slot) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&spec.program);
        command.args(&spec.args);
        command
    }

    fn kill(&self, _child: &mut tokio::process::Child) {}

    fn start(
        &self,
        spec: &TrialSpec,
        _slot: &Slot,
        setup: &AttemptSetup,
    ) -> Option<Result<Box<dyn TrialProcess>, String>> {
        Some(Ok(Box::new(JobProcess::new(self.clone(), spec.clone(), setup.clone()))))
    }

    /// A job waits in the queue for as long as `start_limit`, by default
    /// as long as the queue keeps it.
    fn start_limit(&self) -> Option<Duration> {
        Some(self.request.start_limit.map_or(Duration::from_secs(100 * 365 * 86_400), Duration::from_secs))
    }
}

/// Where an attempt's follower is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Its job is yet to be submitted (or found, after a restart).
    Submitting,
    /// Following job `id`.
    Following(String),
    /// Over.
    Over(Option<ExitStatus>, Option<Ended>),
}

/// One attempt as a batch job: submits it (or finds it queued or running
/// after a restart), follows its output file and its state, and ends it
/// with `scancel` when the scheduler ends the attempt.
pub struct JobProcess {
    jobs: SlurmJobs,
    spec: TrialSpec,
    setup: AttemptSetup,
    phase: Phase,
    /// Read so far of the job's output file.
    offset: u64,
    partial: String,
    lines: VecDeque<String>,
    /// When the job was first seen over in Slurm without its exit record.
    over_since: Option<Instant>,
    /// The submission under way (see [`JobProcess::submit`]).
    submission: Option<tokio::task::JoinHandle<Result<(String, bool)>>>,
    /// Submit a new job even for a first attempt: its job was pre-empted
    /// for good or reached its time limit (see [`SlurmJobs::earlier_job`]).
    again: bool,
    stop: bool,
    kill: bool,
    counted: bool,
}

fn exit_status(raw: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(raw)
}

impl JobProcess {
    fn new(jobs: SlurmJobs, spec: TrialSpec, setup: AttemptSetup) -> JobProcess {
        JobProcess {
            jobs,
            spec,
            setup,
            phase: Phase::Submitting,
            offset: 0,
            partial: String::new(),
            lines: VecDeque::new(),
            over_since: None,
            submission: None,
            again: false,
            stop: false,
            kill: false,
            counted: false,
        }
    }

    /// Appends `line` to the attempt's stderr log (what happened to its job).
    fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(&self.setup.stderr) {
            let _ = writeln!(log, "anisostudy: {line}");
        }
    }

    fn set_following(&mut self, on: bool) {
        if on != self.counted {
            let following = &self.jobs.shared.following;
            if on {
                following.fetch_add(1, Ordering::SeqCst);
            } else {
                following.fetch_sub(1, Ordering::SeqCst);
            }
            self.counted = on;
        }
    }

    /// Finds the trial's job left by an earlier controller, or submits one.
    /// The scheduler may drop [`TrialProcess::next`]'s future at any await
    /// (another event came first): the submission runs on as a task of its
    /// own, whose handle stays here to be awaited again, so a trial is never
    /// submitted twice.
    async fn submit(&mut self) {
        let submission = self.submission.get_or_insert_with(|| {
            let (jobs, spec, setup) = (self.jobs.clone(), self.spec.clone(), self.setup.clone());
            let again = self.again;
            tokio::task::spawn_blocking(move || -> Result<(String, bool)> {
                if setup.attempt == 1 && !again {
                    if let Some(id) = jobs.earlier_job(spec.number, &setup.dir)? {
                        return Ok((id, true));
                    }
                }
                Ok((jobs.submit_gathered(&spec, &setup)?, false))
            })
        });
        let found = submission.await;
        self.submission = None;
        match found {
            Ok(Ok((id, attached))) => {
                if attached {
                    self.note(&format!("following job {id}, which an earlier run of the study submitted"));
                } else {
                    self.note(&format!("submitted job {id}"));
                }
                self.set_following(true);
                self.offset = 0;
                self.partial.clear();
                self.phase = Phase::Following(id);
            }
            Ok(Err(err)) => {
                self.phase = Phase::Over(Some(exit_status(1 << 8)), Some(Ended::Failed(format!("{err:#}"))));
            }
            Err(err) => {
                self.phase =
                    Phase::Over(None, Some(Ended::Failed(format!("submitting the job panicked: {err}"))));
            }
        }
    }

    /// Reads the complete lines the job's output file has gained.
    fn read_lines(&mut self, files: &JobFiles) {
        let Ok(mut file) = std::fs::File::open(&files.stdout) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return;
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.lines.push_back(line.trim_end_matches(['\n', '\r']).to_owned());
        }
    }

    /// The end of what Slurm wrote about job `id` into its error log: the
    /// trial's stderr log, and for a task of an array its own log in the
    /// study's `slurm/` folder.
    fn slurm_said(&self, id: &str) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read(path).unwrap_or_default();
            String::from_utf8_lossy(&text[text.len().saturating_sub(4096)..]).into_owned()
        };
        let mut said = tail(&self.setup.stderr);
        if id.contains('_') {
            said += &tail(&study_folder(&self.setup).join("slurm").join(format!("array-{id}.log")));
        }
        said
    }

    /// One look at job `id`: new lines, its exit record, its state.
    async fn look(&mut self, id: &str) {
        let files = JobFiles::of(&self.setup.dir, id);
        self.read_lines(&files);
        if !self.lines.is_empty() {
            return;
        }
        if self.kill {
            let id = id.to_owned();
            let _ = tokio::task::spawn_blocking(move || slurm_command("scancel", &["--quiet", &id])).await;
            self.phase = Phase::Over(Some(exit_status(libc::SIGKILL)), None);
            return;
        }
        if self.stop {
            // The controller stops; the job goes on, and a later controller follows it again.
            self.note(&format!("the controller stopped following job {id}, which keeps running"));
            self.phase = Phase::Over(Some(exit_status(0)), None);
            return;
        }
        if let Some(record) = read_record(&files) {
            // Written after the last line: the lines are all there now.
            self.read_lines(&files);
            if !self.lines.is_empty() {
                return;
            }
            self.phase = match record {
                ExitRecord::Code(code) => Phase::Over(Some(exit_status((code & 0xff) << 8)), None),
                ExitRecord::Signal(signal) => Phase::Over(Some(exit_status(signal)), None),
                ExitRecord::Resubmit => {
                    self.note(&format!(
                        "job {id} reached its time limit after a checkpoint; submitting it again"
                    ));
                    self.set_following(false);
                    self.again = true;
                    Phase::Submitting
                }
            };
            return;
        }
        let board = Arc::clone(&self.jobs.shared);
        let (job, following) = (id.to_owned(), self.jobs.shared.following.load(Ordering::SeqCst));
        let seen = tokio::task::spawn_blocking(move || board.board.look(&job, following)).await;
        let view = match seen {
            Ok(Ok(view)) => view,
            // Slurm did not answer this time: look again later.
            _ => {
                tokio::time::sleep(FILE_POLL).await;
                return;
            }
        };
        if let Some(job) = view.as_ref().filter(|j| j.is_live()) {
            self.over_since = None;
            if job.preempted && !files.stop.exists() {
                // Its grace period runs: ask the trial to checkpoint; the job then requeues itself.
                self.note(&format!("Slurm pre-empts job {id}; the trial is asked to checkpoint"));
                let _ = std::fs::write(&files.stop, PREEMPTED);
            }
            tokio::time::sleep(FILE_POLL).await;
            return;
        }
        let since = *self.over_since.get_or_insert_with(Instant::now);
        if since.elapsed() < FILE_SYSTEM_LATENCY {
            tokio::time::sleep(FILE_POLL).await;
            return;
        }
        let said = self.slurm_said(id);
        let why = ended_in_slurm(id, view.as_ref(), &said, self.jobs.request.trial.mem_per_trial.is_some());
        self.note(&why);
        if view.as_ref().is_some_and(|j| j.preempted) {
            // Pre-empted and not requeued (the trial did not stop in its grace period, or
            // the site refuses requeues): the trial is not at fault and runs again.
            self.note("submitting the trial again");
            self.set_following(false);
            self.over_since = None;
            self.again = true;
            self.phase = Phase::Submitting;
            return;
        }
        self.phase = Phase::Over(Some(exit_status(1 << 8)), Some(Ended::Failed(why)));
    }
}

/// What slurmstepd writes into a job's error log when it kills the job for
/// memory: with cgroups (`oom_kill event`, `OOM Killed`) or by its
/// accounting poll (`Exceeded job memory limit`), where the job's state
/// may say only FAILED.
const OUT_OF_MEMORY_WORDS: &[&str] = &["Exceeded job memory limit", "oom_kill event", "OOM Killed"];

/// Why job `id` ended without its trial's exit record, from its last state
/// and what Slurm wrote into its error log (`said`).
pub fn ended_in_slurm(id: &str, view: Option<&JobView>, said: &str, mem_set: bool) -> String {
    let out_of_memory = OUT_OF_MEMORY_WORDS.iter().any(|w| said.contains(w));
    let Some(view) = view else {
        return format!(
            "job {id} is no longer known to Slurm and left no exit record (cancelled and forgotten, or the \
             file system lost the record)"
        );
    };
    let on = if view.node.is_empty() { String::new() } else { format!(" on {}", view.node) };
    let memory_hint =
        if mem_set { "raise resources.slurm.mem_per_trial" } else { "set resources.slurm.mem_per_trial" };
    match view.state.as_str() {
        "OUT_OF_MEMORY" => format!("Slurm: job {id} ran out of memory{on} ({memory_hint})"),
        _ if out_of_memory => format!("Slurm: job {id} ran out of memory{on} ({memory_hint})"),
        "TIMEOUT" => format!("Slurm ended job {id}{on} at its time limit (resources.slurm.time_per_trial)"),
        "NODE_FAIL" | "BOOT_FAIL" => format!("Slurm: node failure{on} (job {id}, {})", view.state),
        "CANCELLED" => format!("Slurm cancelled job {id}{on} (scancel, or an administrator)"),
        "PREEMPTED" => format!("Slurm pre-empted job {id}{on} and did not requeue it"),
        "DEADLINE" => format!("Slurm ended job {id}: its deadline passed"),
        state => format!("job {id} ended {state}{on} ({}) without its trial's exit record", view.reason),
    }
}

impl TrialProcess for JobProcess {
    fn next(&mut self, reading: bool) -> Pin<Box<dyn std::future::Future<Output = Event> + Send + '_>> {
        Box::pin(async move {
            loop {
                if let Some(line) = self.lines.pop_front() {
                    return Event::Line(line);
                }
                match self.phase.clone() {
                    Phase::Over(status, ended) => {
                        self.set_following(false);
                        return if reading { Event::StdoutDone } else { Event::Exited(status, ended) };
                    }
                    Phase::Submitting if (self.kill || self.stop) && self.submission.is_none() => {
                        self.phase =
                            Phase::Over(Some(exit_status(if self.kill { libc::SIGKILL } else { 0 })), None);
                    }
                    Phase::Submitting => self.submit().await,
                    Phase::Following(id) => self.look(&id).await,
                }
            }
        })
    }

    fn stop(&mut self) {
        self.stop = true;
    }

    fn kill(&mut self) {
        self.kill = true;
    }

    fn waiting_reason(&self, _stderr: &str) -> String {
        match &self.phase {
            Phase::Following(id) => match self.jobs.shared.board.cached(id) {
                Some(job) if job.is_pending() => format!("job {id} is pending in Slurm: {}", job.reason),
                Some(job) => format!("job {id} is {}", job.state.to_lowercase()),
                None => format!("job {id} is queued"),
            },
            _ => "its job is being submitted".to_owned(),
        }
    }
}

impl Drop for JobProcess {
    fn drop(&mut self) {
        self.set_following(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::slurm::SlurmSpec;

    fn jobs(spec: SlurmSpec, gpus: u32) -> SlurmJobs {
        let tag = "anisostudy.s.01020304";
        SlurmJobs {
            request: spec.validate_jobs(4).unwrap(),
            gpus,
            shards: None,
            tag: tag.into(),
            host: PathBuf::from("/opt/bin/study"),
            shared: Arc::new(Shared {
                board: JobBoard::new(tag),
                following: AtomicUsize::new(0),
                gathering: Default::default(),
            }),
        }
    }

    #[test]
    fn a_trial_job_asks_for_the_trials_resources_and_runs_its_host() {
        let spec = SlurmSpec {
            time_per_trial: Some("2:00:00".into()),
            mem_per_trial: Some("8G".into()),
            partition: Some("gpu".into()),
            account: Some("chem".into()),
            sbatch_args: vec!["--mail-type=END".into()],
            ..Default::default()
        };
        let setup = AttemptSetup {
            attempt: 1,
            dir: PathBuf::from("/r/s/trials/7"),
            stderr: PathBuf::from("/r/s/trials/7/stderr.log"),
            env: Vec::new(),
        };
        let args = jobs(spec, 1).sbatch_args(7, &setup, None);
        for want in [
            "--job-name=anisostudy.s.01020304.7",
            "--cpus-per-task=4",
            "--gres=gpu:1",
            "--mem=8G",
            "--time=2:00:00",
            "--signal=B:USR1@60",
            "--partition=gpu",
            "--account=chem",
            "--requeue",
            "--error=/r/s/trials/7/stderr.log",
            "--open-mode=append",
            "--chdir=/r/s/trials/7",
            "--mail-type=END",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
        }
        let cpu = jobs(SlurmSpec::default(), 0).sbatch_args(7, &setup, None);
        assert!(!cpu.iter().any(|a| a.starts_with("--gres") || a.starts_with("--signal")), "{cpu:?}");
        let spec = TrialSpec {
            number: 7,
            program: "sh".into(),
            args: vec!["-c".into(), "echo it's {x}".into()],
            env: Vec::new(),
            workdir: None,
        };
        let script = jobs(SlurmSpec::default(), 0).job_script(&spec, &setup.dir);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains("export CUDA_VISIBLE_DEVICES=\n"), "{script}");
        let last =
            r#"exec '/opt/bin/study' 'job-host' '--dir' '/r/s/trials/7' '--' 'sh' '-c' 'echo it'\''s {x}'"#;
        assert!(script.ends_with(&format!("{last}\n")), "{script}");
    }

    #[test]
    fn trials_that_start_together_go_in_as_one_array() {
        let trial = |number: u64| {
            let dir = PathBuf::from(format!("/r/s/trials/{number}"));
            let spec = TrialSpec {
                number,
                program: "sh".into(),
                args: vec!["-c".into(), format!("echo {number}")],
                env: Vec::new(),
                workdir: None,
            };
            let env = vec![
                ("CUDA_VISIBLE_DEVICES".to_owned(), "0".to_owned()),
                ("ANISOSTUDY_TRIAL".to_owned(), number.to_string()),
            ];
            let setup = AttemptSetup { attempt: 1, stderr: dir.join("stderr.log"), dir, env };
            (spec, setup)
        };
        let (seven, eight) = (trial(7), trial(8));
        let batch = [(&seven.0, &seven.1), (&eight.0, &eight.1)];
        let gpu = jobs(SlurmSpec::default(), 1);
        let args = gpu.array_args(&batch);
        for want in [
            "--job-name=anisostudy.s.01020304.7,8",
            "--array=0-1%4",
            "--output=/r/s/slurm/array-%A_%a.log",
            "--gres=gpu:1",
            "--requeue",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
        }
        let script = gpu.array_script(&batch);
        let task = |i: usize| script.split(&format!("\n{i})\n")).nth(1).unwrap().split(";;").next().unwrap();
        assert!(task(1).contains("cd '/r/s/trials/8' || exit 1"), "{script}");
        assert!(task(1).contains("2>> '/r/s/trials/8/stderr.log'"), "{script}");
        assert!(task(1).contains("export ANISOSTUDY_TRIAL='8'"), "{script}");
        assert!(task(0).contains("'job-host' '--dir' '/r/s/trials/7' '--' 'sh' '-c' 'echo 7'"), "{script}");
        // Slurm gives each task its GPU: the controller's slot view is not exported.
        assert!(!script.contains("CUDA_VISIBLE_DEVICES"), "{script}");
    }

    #[test]
    fn a_trial_sharing_a_gpu_asks_for_its_share_of_the_shards() {
        let node = |gpus, shards| super::super::submit::PartitionNode {
            name: "n".into(),
            cpus: 64,
            gpus,
            mem_mb: 0,
            shards,
        };
        let partition = |nodes| Partition { name: "gpu".into(), nodes, max_time: None };
        // Nodes of 4 GPUs with 8 shards each, and one with 4 GPUs of 4: the fewest count.
        assert_eq!(share_of_a_gpu(4, &partition(vec![node(4, 32), node(0, 0)])).unwrap(), 2);
        assert_eq!(share_of_a_gpu(3, &partition(vec![node(4, 32), node(4, 16)])).unwrap(), 1);
        let few = format!("{:#}", share_of_a_gpu(8, &partition(vec![node(4, 16)])).unwrap_err());
        assert!(
            few.starts_with("resources.slurm.trials_per_gpu: 8 trials per GPU")
                && few.contains("has 4 shards")
        );
        let none = format!("{:#}", share_of_a_gpu(2, &partition(vec![node(4, 0)])).unwrap_err());
        assert!(none.contains("offers no GPU shards"), "{none}");
        let spec = SlurmSpec { trials_per_gpu: Some(4), ..Default::default() };
        let mut shared = jobs(spec, 1);
        shared.shards = Some(2);
        let setup = AttemptSetup {
            attempt: 1,
            dir: PathBuf::from("/r/s/trials/7"),
            stderr: PathBuf::from("/r/s/trials/7/stderr.log"),
            env: Vec::new(),
        };
        let args = shared.sbatch_args(7, &setup, None);
        assert!(args.iter().any(|a| a == "--gres=shard:2"), "{args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--gres=gpu")), "{args:?}");
    }

    #[test]
    fn names_how_a_job_ended_without_its_record() {
        let view = |state: &str| JobView {
            id: "9".into(),
            trial: 1,
            state: state.into(),
            reason: "None".into(),
            node: "n2".into(),
            preempted: false,
        };
        let why = ended_in_slurm("9", Some(&view("OUT_OF_MEMORY")), "", true);
        assert_eq!(why, "Slurm: job 9 ran out of memory on n2 (raise resources.slurm.mem_per_trial)");
        assert!(ended_in_slurm("9", Some(&view("TIMEOUT")), "", false).contains("time limit"));
        assert!(ended_in_slurm("9", Some(&view("NODE_FAIL")), "", false).contains("node failure on n2"));
        assert!(ended_in_slurm("9", Some(&view("CANCELLED")), "", false).contains("cancelled"));
        assert!(ended_in_slurm("9", None, "", false).contains("no longer known to Slurm"));
        // Killed by slurmstepd's accounting poll, the job may be only FAILED: its log tells.
        let said = "slurmstepd-n2: error: Exceeded job memory limit\n";
        assert!(ended_in_slurm("9", Some(&view("FAILED")), said, false).contains("ran out of memory"));
        assert!(!ended_in_slurm("9", Some(&view("FAILED")), "", false).contains("memory"));
    }
}
