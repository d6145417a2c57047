//! Inside a trial's batch job: runs the trial and speaks its side of the
//! protocol over the shared file system (`study job-host`, which the job's
//! script runs). No pipe or connection between nodes is needed:
//!
//! - the trial's stdout lines are appended to `job-<id>.stdout` in its
//!   folder (`<id>` is `<array>_<task>` for a task of a job array), each
//!   flushed to the file server as it comes (so a controller on another
//!   host sees it), after a first `start` line;
//! - a `job-<id>.stop` file appearing there, or SIGTERM or SIGUSR1 from
//!   Slurm, closes the trial's stdin: the protocol's "checkpoint and exit";
//!   a stop file that says `preempted` is the controller's word that Slurm
//!   pre-empts the job (its grace period runs; the batch script itself is
//!   not signalled then);
//! - when the trial ends by itself, or has reported its result whatever
//!   then ended the job, its exit is written to `job-<id>.exit`
//!   (written aside and renamed, so it is whole when it appears), after the
//!   last line. A job ended from outside writes no record: Slurm's state
//!   says what happened (pre-empted and requeued, cancelled). Pre-empted,
//!   or near its time limit (SIGUSR1, from `--signal`), the job requeues
//!   itself once the trial has checkpointed; where the site refuses, the
//!   record asks the controller to submit it again.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::step::STEP_STARTED;
use crate::exec::protocol::{parse_line, Line, Message};

/// How a trial job's trial ended, as its host records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitRecord {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It checkpointed before the job's time limit and the job could not
    /// requeue itself: submit it again.
    Resubmit,
}

/// The files of job `id` in a trial folder.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFiles {
    pub stdout: PathBuf,
    pub exit: PathBuf,
    pub stop: PathBuf,
}

impl JobFiles {
    pub fn of(dir: &Path, id: &str) -> JobFiles {
        JobFiles {
            stdout: dir.join(format!("job-{id}.stdout")),
            exit: dir.join(format!("job-{id}.exit")),
            stop: dir.join(format!("job-{id}.stop")),
        }
    }
}

/// What a stop file says when the job is being pre-empted.
pub const PREEMPTED: &str = "preempted";

/// The signal Slurm last sent the host (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNALLED.store(signal, Ordering::SeqCst);
}

/// Runs `program args` as the trial of this job in `dir`; returns the exit
/// code the job should end with.
pub fn host_trial(dir: &Path, program: &str, args: &[String]) -> Result<i32> {
    let id = job_id()?;
    let files = JobFiles::of(dir, &id);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.stdout)
        .with_context(|| format!("cannot write the trial's output {}", files.stdout.display()))?;
    // A requeued job starts over: an old stop request is not for this run.
    let _ = std::fs::remove_file(&files.stop);
    writeln!(out, "{STEP_STARTED}")?;
    out.sync_data()?;
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let mut child =
        match Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(err) => {
                eprintln!("cannot start `{program}`: {err}");
                write_record(&files.exit, &ExitRecord::Code(127))?;
                return Ok(127);
            }
        };
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    // Whether the trial reported its result: then it is over, whatever ends the job.
    let copier = std::thread::spawn(move || -> std::io::Result<bool> {
        let mut finished = false;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            finished |= matches!(parse_line(&line), Line::Message(Message::Final { .. }));
            writeln!(out, "{line}")?;
            out.sync_data()?;
        }
        Ok(finished)
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stdin.is_some() && (SIGNALLED.load(Ordering::SeqCst) != 0 || files.stop.exists()) {
            drop(stdin.take());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let finished = match copier.join() {
        Ok(Ok(finished)) => finished,
        Ok(Err(err)) => {
            eprintln!("cannot copy the trial's output to {}: {err}", files.stdout.display());
            false
        }
        Err(_) => false,
    };
    let preempted = std::fs::read_to_string(&files.stop).is_ok_and(|text| text.trim() == PREEMPTED);
    match SIGNALLED.load(Ordering::SeqCst) {
        _ if finished => write_exit(&files, status),
        signal if signal == libc::SIGUSR1 || (preempted && signal != libc::SIGTERM) => {
            // Pre-empted or near the time limit: the trial has checkpointed; run again.
            let requeued =
                Command::new("scontrol").args(["requeue", &id]).status().is_ok_and(|s| s.success());
            if !requeued {
                write_record(&files.exit, &ExitRecord::Resubmit)?;
            }
            Ok(0)
        }
        // Ended from outside (pre-empted, cancelled): Slurm's state tells.
        libc::SIGTERM => Ok(143),
        _ => write_exit(&files, status),
    }
}

/// This job's id as the controller knows it: `SLURM_JOB_ID`, or
/// `<array>_<task>` for a task of a job array (its job id of its own is
/// given only when it starts).
fn job_id() -> Result<String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    if let (Some(array), Some(task)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Ok(format!("{array}_{task}"));
    }
    std::env::var("SLURM_JOB_ID").context("`study job-host` runs inside a trial's Slurm job")
}

/// Records how the trial exited; the job's exit code.
fn write_exit(files: &JobFiles, status: std::process::ExitStatus) -> Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let record = match (status.code(), status.signal()) {
        (Some(code), _) => ExitRecord::Code(code),
        (None, Some(signal)) => ExitRecord::Signal(signal),
        (None, None) => ExitRecord::Code(1),
    };
    write_record(&files.exit, &record)?;
    Ok(status.code().unwrap_or(128 + status.signal().unwrap_or(0)))
}

/// Writes the record aside, flushed, then renames it into place.
fn write_record(path: &Path, record: &ExitRecord) -> Result<()> {
    let aside = path.with_extension("exit.part");
    let mut file = std::fs::File::create(&aside)?;
    serde_json::to_writer(&mut file, record)?;
    file.sync_all()?;
    std::fs::rename(&aside, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The record of job `files`, once it is there and whole.
pub fn read_record(files: &JobFiles) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(&files.exit).ok()?).ok()
}
