//! The scheduler: runs trials as child processes on the slots of a device
//! pool and reports what they say to a [`Controller`], which decides.
//!
//! The scheduler owns processes, slots, timeouts, retries and logs; the
//! controller owns the study (sampler, pruner, database) and is the single
//! writer of its state. Every controller call happens on the scheduler's
//! loop, one at a time.
//!
//! Per trial `n`, `<trials_dir>/<n>/` holds `stdout.log` and `stderr.log`
//! of the first attempt (`stdout.2.log`, … for retries) and whatever the
//! trial writes there itself (checkpoints): its path is in the environment
//! as `ANISOSTUDY_TRIAL_DIR`, its number as `ANISOSTUDY_TRIAL`.
//!
//! Failures are classified with a reason: a non-zero exit code (with the
//! trial's `error` message or last stderr line), a signal (9 is what the
//! kernel's out-of-memory killer sends), a timeout (the process is killed),
//! a NaN or infinite objective, or an exit without a final objective line.
//! A failed attempt is retried up to `retries` times on the same slot.
//!
//! Stopping (see [`ctrl_c`]; SIGTERM counts as Ctrl-C): each trial runs in its own process group, so
//! a terminal's Ctrl-C reaches only the controller. At the first stop
//! request no trial is launched any more and the stdin of every running
//! trial is closed — the protocol's "checkpoint and exit" request (a
//! `command` objective that ignores its stdin simply runs to its end). At
//! the second, running trials are killed. A trial that ends without a
//! result after a stop request is [`Outcome::Interrupted`], so it can run
//! again when the study resumes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::devices::Slot;
use super::launch::{Ended, Executor, Local, TrialSpec};
use super::protocol::{parse_line, Line, Message};

/// How trials are handed to slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// A free slot gets the next trial at once.
    #[default]
    Async,
    /// Trials are asked for in batches as large as the pool, each batch
    /// after the previous one finished, so what is sampled never depends on
    /// timing.
    Deterministic,
}

/// Settings of a run.
#[derive(Clone)]
pub struct SchedulerConfig {
    pub slots: Vec<Slot>,
    /// What starts and ends the trial processes on their slots.
    pub executor: Arc<dyn Executor>,
    pub dispatch: Dispatch,
    /// Wall-clock limit of one attempt.
    pub trial_timeout: Option<Duration>,
    /// Extra attempts of a failed trial.
    pub retries: u32,
    /// Per-trial folders are created here.
    pub trials_dir: PathBuf,
}

impl SchedulerConfig {
    /// Trials on `slots` of this machine, started at once, no timeout, no retries.
    pub fn local(slots: Vec<Slot>, trials_dir: PathBuf) -> Self {
        Self {
            slots,
            executor: Arc::new(Local),
            dispatch: Dispatch::Async,
            trial_timeout: None,
            retries: 0,
            trials_dir,
        }
    }
}

/// The controller's answer when a slot is free.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Launch(TrialSpec),
    /// Nothing to start until a running trial finishes.
    Wait,
    /// No more trials.
    Finished,
}

/// The controller's answer to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Continue,
    /// Stop the trial now; it ends [`Outcome::Pruned`].
    Prune,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete(f64),
    Pruned,
    /// Failed after every attempt; the reason of the last one.
    Failed(String),
    /// Stopped by a stop request before it finished.
    Interrupted,
}

/// A finished trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialReport {
    pub outcome: Outcome,
    /// Attempts made (1 + retries used).
    pub attempts: u32,
    /// Slot index of the last attempt.
    pub slot: usize,
    /// Wall-clock time of the last attempt.
    pub elapsed: Duration,
}

/// The decision side of a run.
pub trait Controller {
    /// The next trial for `slot`.
    fn next_trial(&mut self, slot: &Slot) -> anyhow::Result<Next>;

    /// Attempt `attempt` (from 1) of trial `number` started on `slot`.
    fn on_start(&mut self, _number: u64, _slot: &Slot, _attempt: u32) -> anyhow::Result<()> {
        Ok(())
    }

    /// The attempt of trial `number` waits for its resources, for `reason`;
    /// `None` once it started (only for executors whose processes queue).
    fn on_waiting(&mut self, _number: u64, _reason: Option<&str>) -> anyhow::Result<()> {
        Ok(())
    }

    /// A protocol message of a running trial (intermediate values: ask the pruner).
    fn on_message(&mut self, number: u64, message: &Message) -> anyhow::Result<Directive>;

    /// An attempt failed for `reason` and the trial runs again.
    fn on_retry(&mut self, _number: u64, _attempt: u32, _reason: &str) -> anyhow::Result<()> {
        Ok(())
    }

    /// The trial is over.
    fn on_finish(&mut self, number: u64, report: &TrialReport) -> anyhow::Result<()>;
}

/// Stop requests, escalating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum StopLevel {
    #[default]
    Run,
    /// Launch nothing more; running trials checkpoint and exit.
    Graceful,
    /// Kill running trials.
    Kill,
}

/// A stop signal fed by Ctrl-C (SIGINT) and, on Unix, SIGTERM (what batch
/// schedulers send before pre-empting a job): the first signal asks for a
/// graceful stop, the second for a kill. Needs a running tokio runtime.
pub fn ctrl_c() -> watch::Receiver<StopLevel> {
    let (tx, rx) = watch::channel(StopLevel::Run);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for level in [StopLevel::Graceful, StopLevel::Kill] {
            #[cfg(unix)]
            let received = match term.as_mut() {
                Some(term) => tokio::select! {
                    r = tokio::signal::ctrl_c() => r.is_ok(),
                    r = term.recv() => r.is_some(),
                },
                None => tokio::signal::ctrl_c().await.is_ok(),
            };
            #[cfg(not(unix))]
            let received = tokio::signal::ctrl_c().await.is_ok();
            if !received {
                return;
            }
            if level == StopLevel::Graceful {
                eprintln!(
                    "stopping: no new trials; running trials checkpoint and exit (Ctrl-C again to kill them)"
                );
            }
            if tx.send(level).is_err() {
                return;
            }
        }
    });
    rx
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Failed attempts that were retried.
    pub retries: usize,
    /// From the first launch to the last finish.
    pub makespan: Duration,
    /// Whether a stop request ended the run early.
    pub stopped: bool,
}

/// Per-attempt control, from the loop to the attempt's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Prune,
    /// Close stdin: checkpoint and exit.
    Stop,
    Kill,
}

enum TaskMsg {
    Message(u64, Message),
    /// Why the attempt still waits to start (see [`Executor::start_limit`]); `None` once it started.
    Waiting(u64, Option<String>),
    Done(u64, Outcome, Duration),
}

struct Running {
    slot: usize,
    attempt: u32,
    spec: TrialSpec,
    control: watch::Sender<Control>,
    /// Told to prune: its later messages are not passed on.
    pruned: bool,
}

/// Runs trials until the controller has no more, or a stop request ends
/// the run; returns once every launched trial is over and reported.
pub async fn run(
    config: &SchedulerConfig,
    controller: &mut dyn Controller,
    mut stop: watch::Receiver<StopLevel>,
) -> anyhow::Result<Summary> {
    anyhow::ensure!(!config.slots.is_empty(), "the device pool has no slots");
    let (tx, mut rx) = mpsc::unbounded_channel::<TaskMsg>();
    let mut tasks = JoinSet::new();
    let mut free: VecDeque<usize> = (0..config.slots.len()).collect();
    let mut running: BTreeMap<u64, Running> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut exhausted = false;
    let mut blocked = false;
    let mut level = *stop.borrow();
    let mut stop_open = true;
    let mut first_launch: Option<Instant> = None;
    let mut last_finish = Instant::now();

    loop {
        let may_launch = level == StopLevel::Run && !exhausted && !blocked;
        let batch_start = config.dispatch == Dispatch::Async || running.is_empty();
        if may_launch && batch_start {
            while let Some(&slot_index) = free.front() {
                let slot = &config.slots[slot_index];
                match controller.next_trial(slot)? {
                    Next::Launch(spec) => {
                        free.pop_front();
                        first_launch.get_or_insert_with(Instant::now);
                        let attempt =
                            launch(config, controller, &mut tasks, &tx, spec, slot_index, 1, level)?;
                        running.insert(attempt.spec.number, attempt);
                    }
                    Next::Wait => {
                        blocked = true;
                        break;
                    }
                    Next::Finished => {
                        exhausted = true;
                        break;
                    }
                }
            }
        }
        if running.is_empty() {
            if exhausted || level != StopLevel::Run {
                break;
            }
            anyhow::ensure!(!blocked, "the controller waits for running trials, but none is running");
        }
        tokio::select! {
            msg = rx.recv() => match msg.expect("the loop holds a sender") {
                TaskMsg::Message(number, message) => {
                    // A pruned trial's last message is the one that pruned it,
                    // however long its process takes to end.
                    if let Some(trial) = running.get_mut(&number).filter(|t| !t.pruned) {
                        if controller.on_message(number, &message)? == Directive::Prune {
                            trial.pruned = true;
                            let _ = trial.control.send(Control::Prune);
                        }
                    }
                }
                TaskMsg::Waiting(number, reason) => {
                    if running.contains_key(&number) {
                        controller.on_waiting(number, reason.as_deref())?;
                    }
                }
                TaskMsg::Done(number, outcome, elapsed) => {
                    let trial = running.remove(&number).expect("a finished trial was running");
                    // A trial told to prune ends pruned, even where its process
                    // finished or failed before the word reached it: the decision
                    // depends on the values reported, never on that race.
                    let outcome = match outcome {
                        Outcome::Complete(_) | Outcome::Failed(_) if trial.pruned => Outcome::Pruned,
                        outcome => outcome,
                    };
                    if outcome == Outcome::Interrupted && level == StopLevel::Run {
                        // Its executor says the whole run is being ended (a pre-empted batch job).
                        level = StopLevel::Graceful;
                        summary.stopped = true;
                        for other in running.values() {
                            let _ = other.control.send(Control::Stop);
                        }
                    }
                    last_finish = Instant::now();
                    let retry = matches!(outcome, Outcome::Failed(_))
                        && trial.attempt <= config.retries
                        && level == StopLevel::Run;
                    if let (true, Outcome::Failed(reason)) = (retry, &outcome) {
                        summary.retries += 1;
                        controller.on_retry(number, trial.attempt, reason)?;
                        let next = trial.attempt + 1;
                        let again =
                            launch(config, controller, &mut tasks, &tx, trial.spec, trial.slot, next, level)?;
                        running.insert(number, again);
                        continue;
                    }
                    match &outcome {
                        Outcome::Complete(_) => summary.complete += 1,
                        Outcome::Pruned => summary.pruned += 1,
                        Outcome::Failed(_) => summary.failed += 1,
                        Outcome::Interrupted => summary.interrupted += 1,
                    }
                    let report = TrialReport { outcome, attempts: trial.attempt, slot: trial.slot, elapsed };
                    controller.on_finish(number, &report)?;
                    free.push_back(trial.slot);
                    if config.dispatch == Dispatch::Deterministic {
                        // Keep slots in pool order so batch k always uses the same slots.
                        free.make_contiguous().sort_unstable();
                    }
                    blocked = false;
                }
            },
            changed = stop.changed(), if stop_open => {
                if changed.is_err() {
                    stop_open = false;
                    continue;
                }
                let requested = *stop.borrow_and_update();
                if requested > level {
                    level = requested;
                    summary.stopped = true;
                    let control = if level == StopLevel::Kill { Control::Kill } else { Control::Stop };
                    for trial in running.values() {
                        let _ = trial.control.send(control);
                    }
                }
            }
        }
    }
    summary.makespan =
        first_launch.map_or(Duration::ZERO, |start| last_finish.saturating_duration_since(start));
    Ok(summary)
}

/// Starts attempt `attempt` of `spec` on slot `slot_index`.
#[allow(clippy::too_many_arguments)]
fn launch(
    config: &SchedulerConfig,
    controller: &mut dyn Controller,
    tasks: &mut JoinSet<()>,
    tx: &mpsc::UnboundedSender<TaskMsg>,
    spec: TrialSpec,
    slot_index: usize,
    attempt: u32,
    level: StopLevel,
) -> anyhow::Result<Running> {
    let slot = config.slots[slot_index].clone();
    controller.on_start(spec.number, &slot, attempt)?;
    let initial = match level {
        StopLevel::Run => Control::Run,
        StopLevel::Graceful => Control::Stop,
        StopLevel::Kill => Control::Kill,
    };
    let (control, control_rx) = watch::channel(initial);
    let dir = config.trials_dir.join(spec.number.to_string());
    let attempt_spec = spec.clone();
    let timeout = config.trial_timeout;
    let executor = config.executor.clone();
    let tx = tx.clone();
    tasks.spawn(async move {
        let started = Instant::now();
        let number = attempt_spec.number;
        let outcome =
            run_attempt(executor, &attempt_spec, &slot, attempt, &dir, timeout, &tx, control_rx).await;
        let _ = tx.send(TaskMsg::Done(number, outcome, started.elapsed()));
    });
    Ok(Running { slot: slot_index, attempt, spec, control, pruned: false })
}

/// What the executor tells of an attempt that did not succeed, asked off
/// the runtime's threads (it may query a cluster and wait).
async fn ended_by(executor: &Arc<dyn Executor>, status: ExitStatus, stderr: String) -> Option<Ended> {
    let executor = executor.clone();
    tokio::task::spawn_blocking(move || executor.failure(status, &stderr)).await.ok().flatten()
}

/// Opens a log for appending: a trial requeued by a later run of the study
/// continues its log instead of replacing it.
fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Log file names of an attempt: `stdout.log` for the first, `stdout.2.log` …
pub fn log_paths(dir: &Path, attempt: u32) -> (PathBuf, PathBuf) {
    if attempt <= 1 {
        (dir.join("stdout.log"), dir.join("stderr.log"))
    } else {
        (dir.join(format!("stdout.{attempt}.log")), dir.join(format!("stderr.{attempt}.log")))
    }
}

/// Why the scheduler ended an attempt itself.
#[derive(Debug, Clone, PartialEq)]
enum Cause {
    Timeout,
    /// Still waiting to start at the executor's start limit, for this reason.
    NotStarted(String),
    Pruned,
    Killed,
}

/// Runs one attempt to its end and classifies it.
#[allow(clippy::too_many_arguments)]
async fn run_attempt(
    executor: Arc<dyn Executor>,
    spec: &TrialSpec,
    slot: &Slot,
    attempt: u32,
    dir: &Path,
    timeout: Option<Duration>,
    tx: &mpsc::UnboundedSender<TaskMsg>,
    mut control: watch::Receiver<Control>,
) -> Outcome {
    let (stdout_path, stderr_path) = log_paths(dir, attempt);
    let files =
        std::fs::create_dir_all(dir).and_then(|()| Ok((append(&stdout_path)?, append(&stderr_path)?)));
    // What this attempt writes to stderr starts here (earlier runs' lines come before).
    let stderr_start = std::fs::metadata(&stderr_path).map_or(0, |m| m.len());
    let (mut stdout_log, stderr_log) = match files {
        Ok(files) => files,
        Err(err) => {
            return Outcome::Failed(format!("cannot create the trial's logs in {}: {err}", dir.display()))
        }
    };
    let mut command = executor.command(spec, slot);
    command
        .envs(slot.env())
        .env("ANISOSTUDY_TRIAL", spec.number.to_string())
        .env("ANISOSTUDY_TRIAL_DIR", dir)
        .env("ANISOSTUDY_ATTEMPT", attempt.to_string())
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_log))
        .kill_on_drop(true);
    if let Some(workdir) = &spec.workdir {
        command.current_dir(workdir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return Outcome::Failed(format!("cannot start `{}`: {err}", spec.program)),
    };
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    // An attempt whose executor queues it waits (up to the start limit) until
    // its first line; the trial's timeout runs from then.
    let start_limit = executor.start_limit();
    let mut waiting: Option<String> = start_limit.map(|_| executor.waiting_reason(""));
    if let Some(reason) = &waiting {
        let _ = tx.send(TaskMsg::Waiting(spec.number, Some(reason.clone())));
    }
    let far = Duration::MAX / 4;
    let deadline = tokio::time::sleep(start_limit.or(timeout).unwrap_or(far));
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut objective: Option<f64> = None;
    let mut reported_error: Option<String> = None;
    let mut malformed: Option<String> = None;
    let mut last_line = String::new();
    let mut cause: Option<Cause> = None;
    let mut stop_requested = false;
    let mut control_open = true;

    // Applies a control change; returns whether the attempt must end now.
    let mut apply = |control: Control,
                     stdin: &mut Option<tokio::process::ChildStdin>,
                     cause: &mut Option<Cause>|
     -> bool {
        match control {
            Control::Run => false,
            Control::Stop => {
                stop_requested = true;
                drop(stdin.take());
                false
            }
            Control::Prune => {
                *cause = Some(Cause::Pruned);
                true
            }
            Control::Kill => {
                *cause = Some(Cause::Killed);
                true
            }
        }
    };
    if apply(*control.borrow_and_update(), &mut stdin, &mut cause) {
        executor.kill(&mut child);
    }

    // Read stdout until EOF or until the attempt is ended.
    while cause.is_none() {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    use std::io::Write;
                    if waiting.take().is_some() {
                        let _ = tx.send(TaskMsg::Waiting(spec.number, None));
                        deadline.as_mut().reset(tokio::time::Instant::now() + timeout.unwrap_or(far));
                    }
                    let _ = writeln!(stdout_log, "{line}");
                    match parse_line(&line) {
                        Line::Message(message) => {
                            match &message {
                                Message::Final { objective: value } => objective = Some(value.0),
                                Message::Error { kind, message } => {
                                    reported_error = Some(match kind {
                                        Some(kind) => format!("{kind}: {message}"),
                                        None => message.clone(),
                                    })
                                }
                                _ => {}
                            }
                            let _ = tx.send(TaskMsg::Message(spec.number, message));
                        }
                        Line::Other(why) => {
                            if malformed.is_none() {
                                malformed = why.map(|why| format!("{why} in `{}`", shorten(&line)));
                            }
                        }
                    }
                    if !line.trim().is_empty() {
                        last_line = line;
                    }
                }
                Ok(None) | Err(_) => break,
            },
            _ = poll.tick(), if waiting.is_some() => {
                let reason = executor.waiting_reason(&attempt_stderr(&stderr_path, stderr_start));
                if waiting.as_ref() != Some(&reason) {
                    let _ = tx.send(TaskMsg::Waiting(spec.number, Some(reason.clone())));
                    waiting = Some(reason);
                }
            }
            () = &mut deadline, if timeout.is_some() || waiting.is_some() => {
                cause = Some(match waiting.take() {
                    Some(reason) => Cause::NotStarted(reason),
                    None => Cause::Timeout,
                });
                executor.kill(&mut child);
            }
            changed = control.changed(), if control_open => {
                if changed.is_err() {
                    control_open = false;
                } else if apply(*control.borrow_and_update(), &mut stdin, &mut cause) {
                    executor.kill(&mut child);
                }
            }
        }
    }
    // Wait for the exit, still bounded by the deadline and the controls.
    let status: Option<ExitStatus> = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            () = &mut deadline, if (timeout.is_some() || waiting.is_some()) && cause.is_none() => {
                cause = Some(match waiting.take() {
                    Some(reason) => Cause::NotStarted(reason),
                    None => Cause::Timeout,
                });
                executor.kill(&mut child);
            }
            changed = control.changed(), if control_open => {
                if changed.is_err() {
                    control_open = false;
                } else if apply(*control.borrow_and_update(), &mut stdin, &mut cause) {
                    executor.kill(&mut child);
                }
            }
        }
    };
    use std::io::Write;
    let _ = stdout_log.flush();

    match cause {
        Some(Cause::Pruned) => return Outcome::Pruned,
        Some(Cause::Killed) => return Outcome::Interrupted,
        Some(Cause::Timeout) => {
            let limit = timeout.unwrap_or_default().as_secs_f64();
            return Outcome::Failed(format!("timed out after {limit:.1} s (killed)"));
        }
        Some(Cause::NotStarted(reason)) => {
            let limit = start_limit.unwrap_or_default().as_secs_f64();
            return Outcome::Failed(format!("did not start within {limit:.0} s ({reason}); cancelled"));
        }
        None => {}
    }
    let status = match status {
        Some(status) => status,
        None => return Outcome::Failed("lost track of the trial process".to_owned()),
    };
    if status.success() {
        return match (objective, reported_error) {
            (_, Some(error)) => Outcome::Failed(format!("the trial reported {error}")),
            (Some(value), None) if value.is_finite() => Outcome::Complete(value),
            (Some(_), None) => Outcome::Failed(
                "the objective is not a finite number (NaN or infinite): the training diverged".to_owned(),
            ),
            (None, None) if stop_requested => Outcome::Interrupted,
            // A trial that stopped early when signalled from outside.
            (None, None)
                if matches!(
                    ended_by(&executor, status, attempt_stderr(&stderr_path, stderr_start)).await,
                    Some(Ended::Interrupted(_))
                ) =>
            {
                Outcome::Interrupted
            }
            (None, None) => Outcome::Failed(match malformed {
                Some(why) => format!("exited without a final objective line; {why}"),
                None if last_line.is_empty() => {
                    "exited without any output (no final objective line)".to_owned()
                }
                None => {
                    format!("exited without a final objective line; last line: `{}`", shorten(&last_line))
                }
            }),
        };
    }
    if stop_requested && objective.is_none() {
        return Outcome::Interrupted;
    }
    let stderr = attempt_stderr(&stderr_path, stderr_start);
    let detail = reported_error.or_else(|| last_nonempty_line(&stderr).map(|l| format!("stderr: {l}")));
    let what = match ended_by(&executor, status, stderr).await {
        Some(Ended::Interrupted(_)) => return Outcome::Interrupted,
        Some(Ended::Failed(what)) => what,
        None => describe_exit(status),
    };
    Outcome::Failed(match detail {
        Some(detail) => format!("{what}; {detail}"),
        None => what,
    })
}

/// "exited with code 3" or "killed by signal 9 (SIGKILL; out of memory?)".
fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL; out of memory?)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    format!("ended abnormally ({status})")
}

/// What this attempt wrote to its stderr log (from byte `from` on).
fn attempt_stderr(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default()).into_owned()
}

fn last_nonempty_line(text: &str) -> Option<String> {
    text.lines().rev().find(|l| !l.trim().is_empty()).map(shorten)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 200;
    let line = line.trim();
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}
