//! How an attempt's process is started on its slot and ended: the seam
//! between the scheduler, which owns attempts (protocol, logs, timeouts,
//! retries), and an executor, which knows where a slot is.
//!
//! [`Local`] runs the trial's program on this machine, in its own process
//! group. An executor for a cluster (see [`super::slurm`]) wraps the same
//! program in whatever runs it on the slot's node; the trial's stdin, stdout
//! and exit status pass through, so the protocol is the same everywhere.
//! An executor whose trials are not children of the controller at all (a
//! batch job per trial, see [`super::slurm::jobs`]) starts the attempt
//! itself ([`Executor::start`]) and hands the scheduler a [`TrialProcess`]
//! that follows it: lines, the end of its output, its exit.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use super::devices::Slot;

/// A process to run for a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSpec {
    pub number: u64,
    pub program: String,
    pub args: Vec<String>,
    /// Added to the slot's environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
}

/// Where an attempt's files are and what its environment holds, for an
/// executor that starts attempts itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSetup {
    /// The attempt, from 1.
    pub attempt: u32,
    /// The trial's folder.
    pub dir: PathBuf,
    /// The attempt's stderr log (appended to).
    pub stderr: PathBuf,
    /// The slot's variables, the trial's (`ANISOSTUDY_TRIAL`, …) and the spec's, in that order.
    pub env: Vec<(String, String)>,
}

/// What a started attempt did next.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A line the trial wrote on stdout.
    Line(String),
    /// Its stdout ended (or cannot be read any more).
    StdoutDone,
    /// It is over: its exit status (`None`: lost track of it), and how it
    /// ended where the executor already knows better than the status.
    Exited(Option<ExitStatus>, Option<Ended>),
}

/// A started attempt, as the scheduler drives it.
pub trait TrialProcess: Send {
    /// The next event: while `reading`, a line or the end of stdout; after,
    /// the exit.
    fn next(&mut self, reading: bool) -> Pin<Box<dyn Future<Output = Event> + Send + '_>>;
    /// Asks the trial to checkpoint and exit (the protocol's closed stdin).
    fn stop(&mut self);
    /// Ends the attempt now (pruned, timed out, killed).
    fn kill(&mut self);
    /// Why it has not started yet, from what it wrote to stderr so far.
    fn waiting_reason(&self, stderr: &str) -> String;
}

/// Starts and ends trial processes.
pub trait Executor: Send + Sync {
    /// Starts the attempt itself, for an executor whose trials are not
    /// child processes of the controller; `None` (the default): the
    /// scheduler spawns [`Executor::command`]. `Err` is why it cannot start.
    fn start(
        &self,
        _spec: &TrialSpec,
        _slot: &Slot,
        _setup: &AttemptSetup,
    ) -> Option<Result<Box<dyn TrialProcess>, String>> {
        None
    }

    /// The process that runs `spec` on `slot`; the scheduler adds the
    /// slot's environment, the trial's variables and the pipes.
    fn command(&self, spec: &TrialSpec, slot: &Slot) -> tokio::process::Command;

    /// Ends a running attempt now (pruned, timed out, killed).
    fn kill(&self, child: &mut tokio::process::Child);

    /// How an attempt that did not succeed (a failing exit, or an exit
    /// without a result) ended, when the executor can tell better than the
    /// exit status, from what the attempt wrote to stderr and from the
    /// cluster. It may block: it is called off the runtime's threads.
    fn failure(&self, _status: ExitStatus, _stderr: &str) -> Option<Ended> {
        None
    }

    /// How long an attempt may wait for its resources before it starts, for
    /// an executor whose processes queue (`None`: they start when spawned).
    /// Such an executor's process writes one line on stdout the moment it
    /// starts; until then the attempt is waiting and its timeout does not
    /// run, and one still waiting at the limit is killed and fails.
    fn start_limit(&self) -> Option<Duration> {
        None
    }

    /// Why an attempt has not started yet, from what it wrote to stderr so far.
    fn waiting_reason(&self, _stderr: &str) -> String {
        "waiting for its resources".to_owned()
    }
}

/// How an attempt that did not succeed ended, as its executor tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// It failed, for this reason.
    Failed(String),
    /// It was ended from outside together with the whole run (the batch job
    /// was pre-empted, requeued or cancelled): the trial is not at fault,
    /// runs again when the study resumes, and the run stops.
    Interrupted(String),
}

/// This machine: the trial's program itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Executor for Local {
    fn command(&self, spec: &TrialSpec, _slot: &Slot) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&spec.program);
        command.args(&spec.args);
        // Its own process group: a terminal's Ctrl-C reaches only the controller.
        #[cfg(unix)]
        command.process_group(0);
        command
    }

    /// Kills the trial's process group (so its own children go too), then
    /// the trial itself.
    fn kill(&self, child: &mut tokio::process::Child) {
        #[cfg(unix)]
        if let Some(pid) = child.id() {
            // The group id is the trial's pid (process_group(0)).
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
        let _ = child.start_kill();
    }
}
