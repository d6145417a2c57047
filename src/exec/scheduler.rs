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
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::devices::Slot;
use super::launch::{AttemptSetup, Ended, Event, Executor, Local, TrialProcess, TrialSpec};
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

/// Whether the process's signals belong to a host that embeds the tool
/// (the Python interpreter): then [`ctrl_c`] installs no signal handler and
/// the host reports each Ctrl-C with [`interrupt`] instead.
static HOST_OWNS_SIGNALS: AtomicBool = AtomicBool::new(false);

/// Ctrl-C presses reported by the host, counted.
fn host_interrupts() -> &'static watch::Sender<u32> {
    static INTERRUPTS: OnceLock<watch::Sender<u32>> = OnceLock::new();
    INTERRUPTS.get_or_init(|| watch::channel(0).0)
}

/// Leaves SIGINT and SIGTERM to the embedding host, which reports them with
/// [`interrupt`]: its own handlers (Python's KeyboardInterrupt) keep working.
pub fn leave_signals_to_host() {
    HOST_OWNS_SIGNALS.store(true, AtomicOrdering::SeqCst);
}

/// One Ctrl-C, as the embedding host saw it (see [`leave_signals_to_host`]).
pub fn interrupt() {
    host_interrupts().send_modify(|presses| *presses += 1);
}

/// A stop signal fed by Ctrl-C (SIGINT) and, on Unix, SIGTERM (what batch
/// schedulers send before pre-empting a job), or by the embedding host's
/// [`interrupt`]: the first asks for a graceful stop, the second for a
/// kill. Needs a running tokio runtime.
pub fn ctrl_c() -> watch::Receiver<StopLevel> {
    let (tx, rx) = watch::channel(StopLevel::Run);
    let mut host = host_interrupts().subscribe();
    host.mark_unchanged();
    let signals = !HOST_OWNS_SIGNALS.load(AtomicOrdering::SeqCst);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = signals
            .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok())
            .flatten();
        for level in [StopLevel::Graceful, StopLevel::Kill] {
            let os_signal = async {
                if !signals {
                    return std::future::pending::<bool>().await;
                }
                #[cfg(unix)]
                if let Some(term) = term.as_mut() {
                    return tokio::select! {
                        r = tokio::signal::ctrl_c() => r.is_ok(),
                        r = term.recv() => r.is_some(),
                    };
                }
                tokio::signal::ctrl_c().await.is_ok()
            };
            let received = tokio::select! {
                received = os_signal => received,
                changed = host.changed() => changed.is_ok(),
            };
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
                    let outcome = if trial.pruned { pruned(outcome) } else { outcome };
                    if outcome == Outcome::Interrupted && level == StopLevel::Run {
                        // Its executor says the whole run is being ended (a pre-empted batch job).
                        level = StopLevel::Graceful;
                        summary.stopped = true;
                        tell_all(&running, Control::Stop);
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
                    summary.count(&outcome);
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
                    tell_all(&running, if level == StopLevel::Kill { Control::Kill } else { Control::Stop });
                }
            }
        }
    }
    summary.makespan =
        first_launch.map_or(Duration::ZERO, |start| last_finish.saturating_duration_since(start));
    Ok(summary)
}

impl Summary {
    /// Counts a finished trial.
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Complete(_) => self.complete += 1,
            Outcome::Pruned => self.pruned += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Interrupted => self.interrupted += 1,
        }
    }
}

/// The outcome of a trial told to prune: pruned, even where its process
/// finished or failed before the word reached it, so the decision depends
/// on the values reported, never on that race.
fn pruned(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Complete(_) | Outcome::Failed(_) => Outcome::Pruned,
        outcome => outcome,
    }
}

/// Sends `control` to every running attempt.
fn tell_all(running: &BTreeMap<u64, Running>, control: Control) {
    for trial in running.values() {
        let _ = trial.control.send(control);
    }
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
        let outcome = match Attempt::start(&executor, &attempt_spec, &slot, attempt, &dir, timeout, &tx) {
            Ok(running) => running.run(control_rx, &executor).await,
            Err(outcome) => outcome,
        };
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

/// A running attempt: its process, its logs, and what it has reported so
/// far. Each event of the attempt (a line on stdout, a control message, the
/// deadline, a poll while it waits to start) is one method; how it ended
/// is decided afterwards, from the recorded [`Facts`] alone.
struct Attempt<'a> {
    number: u64,
    tx: &'a mpsc::UnboundedSender<TaskMsg>,
    process: Box<dyn TrialProcess>,
    /// Stdout reached its end (or could not be read).
    stdout_done: bool,
    stdout_log: std::fs::File,
    stderr_path: PathBuf,
    /// What this attempt writes to stderr starts here (earlier runs' lines come before).
    stderr_start: u64,
    timeout: Option<Duration>,
    /// Why the attempt still waits to start; `None` once it started.
    waiting: Option<String>,
    /// The start limit while waiting, then the timeout.
    deadline: Pin<Box<tokio::time::Sleep>>,
    facts: Facts,
}

/// A trial that is a child process of the controller: [`Executor::command`]
/// spawned, its stdout read line by line, ended by its executor.
struct ChildProcess {
    executor: Arc<dyn Executor>,
    child: tokio::process::Child,
    /// Closed (dropped) to ask the trial to checkpoint and exit.
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl TrialProcess for ChildProcess {
    fn next(&mut self, reading: bool) -> Pin<Box<dyn std::future::Future<Output = Event> + Send + '_>> {
        Box::pin(async move {
            if reading {
                match self.lines.next_line().await {
                    Ok(Some(line)) => Event::Line(line),
                    Ok(None) | Err(_) => Event::StdoutDone,
                }
            } else {
                Event::Exited(self.child.wait().await.ok(), None)
            }
        })
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
    }

    fn kill(&mut self) {
        self.executor.kill(&mut self.child);
    }

    fn waiting_reason(&self, stderr: &str) -> String {
        self.executor.waiting_reason(stderr)
    }
}

/// Spawns `executor`'s command for an attempt, its stderr into `stderr_log`.
fn spawn_child(
    executor: Arc<dyn Executor>,
    spec: &TrialSpec,
    slot: &Slot,
    setup: &AttemptSetup,
    stderr_log: std::fs::File,
) -> Result<Box<dyn TrialProcess>, String> {
    let mut command = executor.command(spec, slot);
    command
        .envs(setup.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_log))
        .kill_on_drop(true);
    if let Some(workdir) = &spec.workdir {
        command.current_dir(workdir);
    }
    let mut child = command.spawn().map_err(|err| format!("cannot start `{}`: {err}", spec.program))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    Ok(Box::new(ChildProcess { executor, child, stdin, lines: BufReader::new(stdout).lines() }))
}

/// Far enough to never come: the deadline of an attempt without a limit.
fn far() -> Duration {
    Duration::MAX / 4
}

impl<'a> Attempt<'a> {
    /// Opens the logs and spawns the process; the outcome instead where
    /// either fails.
    fn start(
        executor: &Arc<dyn Executor>,
        spec: &TrialSpec,
        slot: &Slot,
        attempt: u32,
        dir: &Path,
        timeout: Option<Duration>,
        tx: &'a mpsc::UnboundedSender<TaskMsg>,
    ) -> Result<Self, Outcome> {
        let (stdout_path, stderr_path) = log_paths(dir, attempt);
        let files =
            std::fs::create_dir_all(dir).and_then(|()| Ok((append(&stdout_path)?, append(&stderr_path)?)));
        let stderr_start = std::fs::metadata(&stderr_path).map_or(0, |m| m.len());
        let (stdout_log, stderr_log) = files.map_err(|err| {
            Outcome::Failed(format!("cannot create the trial's logs in {}: {err}", dir.display()))
        })?;
        let mut env = slot.env();
        env.extend([
            ("ANISOSTUDY_TRIAL".to_owned(), spec.number.to_string()),
            ("ANISOSTUDY_TRIAL_DIR".to_owned(), dir.display().to_string()),
            ("ANISOSTUDY_ATTEMPT".to_owned(), attempt.to_string()),
        ]);
        env.extend(spec.env.iter().cloned());
        let setup = AttemptSetup { attempt, dir: dir.to_path_buf(), stderr: stderr_path.clone(), env };
        let process = match executor.start(spec, slot, &setup) {
            Some(started) => started,
            None => spawn_child(executor.clone(), spec, slot, &setup, stderr_log),
        }
        .map_err(Outcome::Failed)?;
        // An attempt whose executor queues it waits (up to the start limit) until
        // its first line; the trial's timeout runs from then.
        let start_limit = executor.start_limit();
        let waiting = start_limit.map(|_| process.waiting_reason(""));
        if let Some(reason) = &waiting {
            let _ = tx.send(TaskMsg::Waiting(spec.number, Some(reason.clone())));
        }
        let deadline = Box::pin(tokio::time::sleep(start_limit.or(timeout).unwrap_or(far())));
        Ok(Self {
            number: spec.number,
            tx,
            process,
            stdout_done: false,
            stdout_log,
            stderr_path,
            stderr_start,
            timeout,
            waiting,
            deadline,
            facts: Facts { timeout, start_limit, ..Facts::default() },
        })
    }

    /// Reads stdout until its end or until the attempt is ended, waits for
    /// the exit (still bounded by the deadline and the controls), and
    /// classifies how it ended.
    async fn run(mut self, mut control: watch::Receiver<Control>, executor: &Arc<dyn Executor>) -> Outcome {
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        self.on_control(*control.borrow_and_update());
        let (status, ended) = loop {
            let reading = self.reading();
            tokio::select! {
                event = self.process.next(reading) => match event {
                    Event::Line(line) => self.on_line(line),
                    Event::StdoutDone => self.stdout_done = true,
                    Event::Exited(status, ended) => break (status, ended),
                },
                _ = poll.tick(), if reading && self.waiting.is_some() => self.on_poll(),
                () = &mut self.deadline, if self.deadline_armed() => self.on_deadline(),
                changed = control.changed(), if control_open => match changed {
                    Ok(()) => self.on_control(*control.borrow_and_update()),
                    Err(_) => control_open = false,
                },
            }
        };
        use std::io::Write;
        let _ = self.stdout_log.flush();
        self.facts.status = status;
        match classify(&self.facts) {
            Classified::Decided(outcome) => outcome,
            Classified::AskExecutor(status) => {
                let stderr = self.stderr();
                let ended = match ended {
                    Some(ended) => Some(ended),
                    None => ended_by(executor, status, stderr.clone()).await,
                };
                classify_exit(&self.facts, status, &stderr, ended)
            }
        }
    }

    /// Stdout is still read: it has not ended and nothing ended the attempt.
    fn reading(&self) -> bool {
        !self.stdout_done && self.facts.cause.is_none()
    }

    /// The start limit or the timeout may still end the attempt.
    fn deadline_armed(&self) -> bool {
        (self.timeout.is_some() || self.waiting.is_some()) && self.facts.cause.is_none()
    }

    /// A line on stdout: logged, and passed on where it is a protocol message.
    fn on_line(&mut self, line: String) {
        use std::io::Write;
        if self.waiting.take().is_some() {
            let _ = self.tx.send(TaskMsg::Waiting(self.number, None));
            self.deadline.as_mut().reset(tokio::time::Instant::now() + self.timeout.unwrap_or(far()));
        }
        let _ = writeln!(self.stdout_log, "{line}");
        match parse_line(&line) {
            Line::Message(message) => {
                self.facts.record(&message);
                let _ = self.tx.send(TaskMsg::Message(self.number, message));
            }
            Line::Other(why) => {
                if self.facts.malformed.is_none() {
                    self.facts.malformed = why.map(|why| format!("{why} in `{}`", shorten(&line)));
                }
            }
        }
        if !line.trim().is_empty() {
            self.facts.last_line = line;
        }
    }

    /// While waiting to start: tells the loop when the reason changes.
    fn on_poll(&mut self) {
        let reason = self.process.waiting_reason(&self.stderr());
        if self.waiting.as_ref() != Some(&reason) {
            let _ = self.tx.send(TaskMsg::Waiting(self.number, Some(reason.clone())));
            self.waiting = Some(reason);
        }
    }

    /// The start limit or the timeout passed: the attempt is killed.
    fn on_deadline(&mut self) {
        self.facts.cause = Some(match self.waiting.take() {
            Some(reason) => Cause::NotStarted(reason),
            None => Cause::Timeout,
        });
        self.process.kill();
    }

    /// A control message from the loop.
    fn on_control(&mut self, control: Control) {
        match control {
            Control::Run => {}
            Control::Stop => {
                self.facts.stop_requested = true;
                self.process.stop();
            }
            Control::Prune => self.end(Cause::Pruned),
            Control::Kill => self.end(Cause::Killed),
        }
    }

    fn end(&mut self, cause: Cause) {
        self.facts.cause = Some(cause);
        self.process.kill();
    }

    /// What this attempt wrote to stderr so far.
    fn stderr(&self) -> String {
        attempt_stderr(&self.stderr_path, self.stderr_start)
    }
}

/// What is known of an attempt once its process is over: everything its
/// outcome is decided from.
#[derive(Debug, Clone, Default, PartialEq)]
struct Facts {
    /// Why the scheduler ended it, if it did.
    cause: Option<Cause>,
    /// `None` where waiting for the process failed.
    status: Option<ExitStatus>,
    /// Asked to checkpoint and exit.
    stop_requested: bool,
    /// The last final objective it reported.
    objective: Option<f64>,
    /// The last error it reported.
    reported_error: Option<String>,
    /// Why its first unreadable protocol line was unreadable.
    malformed: Option<String>,
    /// Its last non-empty stdout line.
    last_line: String,
    timeout: Option<Duration>,
    start_limit: Option<Duration>,
}

impl Facts {
    /// Keeps what a protocol message tells of the outcome.
    fn record(&mut self, message: &Message) {
        match message {
            Message::Final { objective, .. } => self.objective = Some(objective.0),
            Message::Error { kind, message } => {
                self.reported_error = Some(match kind {
                    Some(kind) => format!("{kind}: {message}"),
                    None => message.clone(),
                })
            }
            _ => {}
        }
    }
}

/// How far the facts alone decide an attempt's outcome.
#[derive(Debug, Clone, PartialEq)]
enum Classified {
    Decided(Outcome),
    /// It depends on what the executor tells of this exit (see [`classify_exit`]).
    AskExecutor(ExitStatus),
}

/// The outcome of an attempt from its facts, unless it needs the
/// executor's word on the exit.
fn classify(facts: &Facts) -> Classified {
    use Classified::{AskExecutor, Decided};
    match &facts.cause {
        Some(Cause::Pruned) => return Decided(Outcome::Pruned),
        Some(Cause::Killed) => return Decided(Outcome::Interrupted),
        Some(Cause::Timeout) => {
            let limit = facts.timeout.unwrap_or_default().as_secs_f64();
            return Decided(Outcome::Failed(format!("timed out after {limit:.1} s (killed)")));
        }
        Some(Cause::NotStarted(reason)) => {
            let limit = facts.start_limit.unwrap_or_default().as_secs_f64();
            return Decided(Outcome::Failed(format!(
                "did not start within {limit:.0} s ({reason}); cancelled"
            )));
        }
        None => {}
    }
    let Some(status) = facts.status else {
        return Decided(Outcome::Failed("lost track of the trial process".to_owned()));
    };
    if status.success() {
        return match (facts.objective, &facts.reported_error) {
            (_, Some(error)) => Decided(Outcome::Failed(format!("the trial reported {error}"))),
            (Some(value), None) if value.is_finite() => Decided(Outcome::Complete(value)),
            (Some(_), None) => Decided(Outcome::Failed(
                "the objective is not a finite number (NaN or infinite): the training diverged".to_owned(),
            )),
            (None, None) if facts.stop_requested => Decided(Outcome::Interrupted),
            // Unless it stopped early when signalled from outside.
            (None, None) => AskExecutor(status),
        };
    }
    if facts.stop_requested && facts.objective.is_none() {
        return Decided(Outcome::Interrupted);
    }
    AskExecutor(status)
}

/// The outcome of an attempt [`classify`] could not decide, given what it
/// wrote to stderr and what its executor tells of the exit.
fn classify_exit(facts: &Facts, status: ExitStatus, stderr: &str, ended: Option<Ended>) -> Outcome {
    if let Some(Ended::Interrupted(_)) = ended {
        return Outcome::Interrupted;
    }
    if status.success() {
        return Outcome::Failed(match &facts.malformed {
            Some(why) => format!("exited without a final objective line; {why}"),
            None if facts.last_line.is_empty() => {
                "exited without any output (no final objective line)".to_owned()
            }
            None => {
                format!("exited without a final objective line; last line: `{}`", shorten(&facts.last_line))
            }
        });
    }
    let detail =
        facts.reported_error.clone().or_else(|| last_nonempty_line(stderr).map(|l| format!("stderr: {l}")));
    let what = match ended {
        Some(Ended::Failed(what)) => what,
        _ => describe_exit(status),
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

#[cfg(all(test, unix))]
mod tests {
    //! How an attempt's outcome follows from its facts, without processes.

    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn signalled(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    fn facts(status: ExitStatus) -> Facts {
        Facts { status: Some(status), ..Facts::default() }
    }

    fn failed(reason: &str) -> Classified {
        Classified::Decided(Outcome::Failed(reason.to_owned()))
    }

    #[test]
    fn a_cause_decides_whatever_the_process_reported() {
        let reported = Facts { objective: Some(1.0), ..facts(exited(0)) };
        let pruned = Facts { cause: Some(Cause::Pruned), ..reported.clone() };
        assert_eq!(classify(&pruned), Classified::Decided(Outcome::Pruned));
        let killed = Facts { cause: Some(Cause::Killed), status: None, ..reported.clone() };
        assert_eq!(classify(&killed), Classified::Decided(Outcome::Interrupted));
        let timeout = Facts {
            cause: Some(Cause::Timeout),
            timeout: Some(Duration::from_millis(2500)),
            ..reported.clone()
        };
        assert_eq!(classify(&timeout), failed("timed out after 2.5 s (killed)"));
        let queued = Facts {
            cause: Some(Cause::NotStarted("Priority".to_owned())),
            start_limit: Some(Duration::from_secs(600)),
            ..reported
        };
        assert_eq!(classify(&queued), failed("did not start within 600 s (Priority); cancelled"));
    }

    #[test]
    fn a_lost_process_fails() {
        assert_eq!(classify(&Facts::default()), failed("lost track of the trial process"));
    }

    #[test]
    fn a_clean_exit_completes_with_a_finite_objective() {
        let done = Facts { objective: Some(0.25), ..facts(exited(0)) };
        assert_eq!(classify(&done), Classified::Decided(Outcome::Complete(0.25)));
        let diverged = Facts { objective: Some(f64::NAN), ..facts(exited(0)) };
        assert_eq!(
            classify(&diverged),
            failed("the objective is not a finite number (NaN or infinite): the training diverged")
        );
    }

    #[test]
    fn a_reported_error_fails_even_after_an_objective() {
        let facts = Facts {
            objective: Some(0.25),
            reported_error: Some("OOM: out of memory".to_owned()),
            ..facts(exited(0))
        };
        assert_eq!(classify(&facts), failed("the trial reported OOM: out of memory"));
    }

    #[test]
    fn a_stopped_attempt_without_objective_is_interrupted() {
        for status in [exited(0), exited(1), signalled(9)] {
            let stopped = Facts { stop_requested: true, ..facts(status) };
            assert_eq!(classify(&stopped), Classified::Decided(Outcome::Interrupted));
        }
        // A failing exit after a final objective is still a failure.
        let late = Facts { stop_requested: true, objective: Some(1.0), ..facts(exited(1)) };
        assert_eq!(classify(&late), Classified::AskExecutor(exited(1)));
    }

    #[test]
    fn the_executor_is_asked_about_exits_without_a_result() {
        assert_eq!(classify(&facts(exited(0))), Classified::AskExecutor(exited(0)));
        assert_eq!(classify(&facts(exited(3))), Classified::AskExecutor(exited(3)));
        assert_eq!(classify(&facts(signalled(9))), Classified::AskExecutor(signalled(9)));
    }

    #[test]
    fn a_clean_exit_without_objective_says_what_it_printed() {
        let quiet = facts(exited(0));
        assert_eq!(
            classify_exit(&quiet, exited(0), "", None),
            Outcome::Failed("exited without any output (no final objective line)".to_owned())
        );
        let chatty = Facts { last_line: "epoch 3".to_owned(), ..quiet.clone() };
        assert_eq!(
            classify_exit(&chatty, exited(0), "", None),
            Outcome::Failed("exited without a final objective line; last line: `epoch 3`".to_owned())
        );
        let malformed = Facts { malformed: Some("bad JSON in `{`".to_owned()), ..chatty };
        assert_eq!(
            classify_exit(&malformed, exited(0), "", None),
            Outcome::Failed("exited without a final objective line; bad JSON in `{`".to_owned())
        );
        assert_eq!(
            classify_exit(&quiet, exited(0), "", Some(Ended::Interrupted("requeued".to_owned()))),
            Outcome::Interrupted
        );
    }

    #[test]
    fn a_failing_exit_names_the_exit_and_the_last_words() {
        let plain = facts(exited(3));
        assert_eq!(
            classify_exit(&plain, exited(3), "warming up\nValueError: bad\n\n", None),
            Outcome::Failed("exited with code 3; stderr: ValueError: bad".to_owned())
        );
        assert_eq!(
            classify_exit(&plain, exited(3), "", None),
            Outcome::Failed("exited with code 3".to_owned())
        );
        let reported = Facts { reported_error: Some("config: no data".to_owned()), ..plain.clone() };
        assert_eq!(
            classify_exit(&reported, exited(3), "noise", None),
            Outcome::Failed("exited with code 3; config: no data".to_owned())
        );
        assert_eq!(
            classify_exit(&plain, signalled(9), "", None),
            Outcome::Failed("killed by signal 9 (SIGKILL; out of memory?)".to_owned())
        );
        let node = Some(Ended::Failed("the node failed".to_owned()));
        assert_eq!(
            classify_exit(&plain, signalled(9), "last", node),
            Outcome::Failed("the node failed; stderr: last".to_owned())
        );
        assert_eq!(
            classify_exit(&plain, exited(1), "", Some(Ended::Interrupted("pre-empted".to_owned()))),
            Outcome::Interrupted
        );
    }
}
