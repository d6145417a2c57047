//! How an attempt's process is started on its slot and ended: the seam
//! between the scheduler, which owns attempts (protocol, logs, timeouts,
//! retries), and an executor, which knows where a slot is.
//!
//! [`Local`] runs the trial's program on this machine, in its own process
//! group. An executor for a cluster (see [`super::slurm`]) wraps the same
//! program in whatever runs it on the slot's node; the trial's stdin, stdout
//! and exit status pass through, so the protocol is the same everywhere.

use std::path::PathBuf;
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

/// Starts and ends trial processes.
pub trait Executor: Send + Sync {
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
