//! A trial's job step: the `srun` command that starts it, how it is ended,
//! and what Slurm did to it when it failed.

use std::process::ExitStatus;
use std::time::Duration;

use super::{JobWatch, Slurm};
use crate::exec::devices::Slot;
use crate::exec::launch::{Ended, Executor, TrialSpec};

/// Variables of the job's environment that srun reads as options of its
/// own, by prefix: inherited from `sbatch` or `salloc`, they would reshape
/// every step (`SLURM_MEM_PER_NODE` would make each step hold the node's
/// whole share of the job's memory, an `SLURM_NTASKS_PER_GPU` makes srun
/// exit, `SLURM_EXPORT_ENV=NONE` drops the trial's variables) or break the
/// line protocol (`SLURM_LABELIO`, the `SLURM_STD*MODE`s). The step's own
/// values are set by slurmstepd inside it.
pub const INHERITED_STEP_OPTIONS: &[&str] = &[
    "SLURM_MEM_PER_",
    "SLURM_NTASKS",
    "SLURM_NPROCS",
    "SLURM_GPUS",
    "SLURM_GPU_",
    "SLURM_CPUS_PER_",
    "SRUN_CPUS_PER_TASK",
    "SLURM_TRES_PER_",
    "SLURM_GRES",
    "SLURM_STEP_GRES",
    "SLURM_EXPORT_ENV",
    "SRUN_EXPORT_ENV",
    "SLURM_EXACT",
    "SLURM_EXCLUSIVE",
    "SLURM_OVERLAP",
    "SLURM_OVERCOMMIT",
    "SLURM_DISTRIBUTION",
    "SLURM_CPU_BIND",
    "SLURM_MEM_BIND",
    "SLURM_HINT",
    "SLURM_THREADS_PER_CORE",
    "SLURM_CORE_SPEC",
    "SLURM_THREAD_SPEC",
    "SLURM_SPREAD_JOB",
    "SLURM_TIMELIMIT",
    "SLURM_LABELIO",
    "SLURM_UNBUFFEREDIO",
    "SLURM_STDINMODE",
    "SLURM_STDOUTMODE",
    "SLURM_STDERRMODE",
    "SLURM_KILL_BAD_EXIT",
    "SLURM_NO_KILL",
    "SLURM_WAIT",
    "SLURM_IMMEDIATE",
];

/// The variables of `env` that [`INHERITED_STEP_OPTIONS`] names.
pub fn inherited_step_options(env: impl Iterator<Item = (String, String)>) -> Vec<String> {
    env.map(|(key, _)| key).filter(|key| INHERITED_STEP_OPTIONS.iter().any(|p| key.starts_with(p))).collect()
}

impl Executor for Slurm {
    /// `srun` pinned to the slot's node with the trial's share, every option
    /// explicit: `--export=ALL` (the trial's variables reach it whatever
    /// `SBATCH_EXPORT` was), `--mem` (`mem_per_trial`, or `0`: the step may
    /// use the job's memory on its node but reserves none, so steps share
    /// it), and no inherited job-level option. A CPU step runs its program
    /// under `env CUDA_VISIBLE_DEVICES=`, since slurmstepd removes the
    /// variable from a step without GPUs and, where devices are not
    /// constrained, the trial would see every GPU of the node. Inside the
    /// step, a shell first writes [`STEP_STARTED`] on stdout: the step
    /// exists and its trial starts (see [`Executor::start_limit`]).
    fn command(&self, spec: &TrialSpec, slot: &Slot) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("srun");
        for key in inherited_step_options(std::env::vars()) {
            command.env_remove(key);
        }
        let node = slot.host.clone().unwrap_or_else(|| self.allocation.nodes[0].name.clone());
        command.args([
            format!("--jobid={}", self.allocation.job_id),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            format!("--nodelist={node}"),
            format!("--cpus-per-task={}", self.request.cpus_per_trial),
            match (self.gpus, self.share_gpus()) {
                // Every GPU of the node, shared with the other steps; the step keeps its slot's.
                (_, true) => format!("--gres=gpu:{}", self.node_gpus(&node)),
                (0, false) => "--gres=none".into(),
                (gpus, false) => format!("--gres=gpu:{gpus}"),
            },
            format!("--mem={}", self.request.mem_per_trial.as_deref().unwrap_or("0")),
            "--export=ALL".into(),
            format!("--job-name={}.{}", self.tag, spec.number),
        ]);
        if let Some(time) = &self.request.time_per_trial {
            command.arg(format!("--time={time}"));
        }
        if self.share_gpus() {
            command.arg("--overlap");
            command.env(SHARED_GPU, slot.device.to_string().trim_start_matches("cuda:"));
        }
        command.args(&self.request.srun_args);
        let keep_gpu = if self.share_gpus() { KEEP_SLOT_GPU } else { "" };
        command.args([
            "sh",
            "-c",
            &format!("{keep_gpu}echo '{STEP_STARTED}' && exec \"$@\""),
            "anisostudy-step",
        ]);
        if self.gpus == 0 {
            command.args(["env", "CUDA_VISIBLE_DEVICES="]);
        }
        command.arg(&spec.program).args(&spec.args);
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

    /// A step waits in srun until its node has the resources it asks for:
    /// `start_limit`.
    fn start_limit(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.request.start_limit))
    }

    fn waiting_reason(&self, stderr: &str) -> String {
        step_waiting_reason(stderr)
    }

    /// From srun's lines; and a step of a job that is no longer running
    /// (being requeued, cancelled) or is being pre-empted (`PreemptTime`
    /// set: its steps got SIGTERM at the start of a grace period) was ended
    /// with it, whatever the trial or srun managed to print before it went:
    /// the trial is interrupted, never failed.
    fn failure(&self, status: ExitStatus, stderr: &str) -> Option<Ended> {
        let seen = step_failure(status, stderr, self.request.time_per_trial.is_some());
        if matches!(seen, Some(Ended::Interrupted(_))) {
            return seen;
        }
        // The job's state can lag srun's end, and slurmctld answer late while
        // it requeues the job: look for half a second, unless the trial ended
        // by its own exit (then the job's state is current).
        let own_exit = status.success() || stderr.contains("Exited with exit code");
        for look in 0..if own_exit { 1 } else { 5 } {
            if look > 0 {
                std::thread::sleep(JobWatch::FRESH);
            }
            if let Some(why) = self.job_ending() {
                return Some(Ended::Interrupted(why));
            }
        }
        seen
    }
}

/// The variable that tells a step sharing its node's GPUs which of them is
/// its slot's: an index into the step's `CUDA_VISIBLE_DEVICES`.
const SHARED_GPU: &str = "ANISOSTUDY_SLOT_GPU";

/// Shell run first in a step that shares the node's GPUs: it keeps, of the
/// GPUs Slurm lists in `CUDA_VISIBLE_DEVICES` (all of the node's), the one
/// of its slot, and fails, naming both, where there is no such GPU.
const KEEP_SLOT_GPU: &str = r#"gpu=; i=0; for d in $(echo "$CUDA_VISIBLE_DEVICES" | tr , ' '); do [ "$i" = "$ANISOSTUDY_SLOT_GPU" ] && gpu=$d; i=$((i + 1)); done; [ -n "$gpu" ] || { echo "anisostudy: this step sees GPUs [$CUDA_VISIBLE_DEVICES], without its slot's GPU $ANISOSTUDY_SLOT_GPU" >&2; exit 1; }; export CUDA_VISIBLE_DEVICES="$gpu"; "#;

/// The line a step writes first, in the trial protocol: a `start` message
/// without fields.
pub const STEP_STARTED: &str = r#"{"v": 1, "type": "start"}"#;

/// Why srun still waits to create a step, from its stderr: the reason of
/// its last "step creation temporarily disabled" (or "still disabled")
/// line, e.g. `Requested nodes are busy`.
pub fn step_waiting_reason(stderr: &str) -> String {
    let reason = stderr
        .lines()
        .rev()
        .filter(|l| l.contains("step creation") && l.contains("disabled"))
        .find_map(|l| Some(l.rsplit_once('(')?.1.trim_end().trim_end_matches(')').to_owned()));
    match reason {
        Some(reason) => format!("Slurm has not created its job step: {reason}"),
        None => "its job step is being created".to_owned(),
    }
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

    #[cfg(unix)]
    #[test]
    fn drops_the_job_options_srun_would_inherit() {
        let env = [
            "SLURM_MEM_PER_NODE",
            "SLURM_NTASKS_PER_GPU",
            "SLURM_GPUS_ON_NODE",
            "SLURM_TRES_PER_TASK",
            "SLURM_EXPORT_ENV",
            "SLURM_JOB_ID",
            "SLURM_CPUS_ON_NODE",
            "ANISOSTUDY_TRIAL",
        ]
        .map(|k| (k.to_owned(), "1".to_owned()));
        let dropped = inherited_step_options(env.into_iter());
        assert_eq!(
            dropped,
            [
                "SLURM_MEM_PER_NODE",
                "SLURM_NTASKS_PER_GPU",
                "SLURM_GPUS_ON_NODE",
                "SLURM_TRES_PER_TASK",
                "SLURM_EXPORT_ENV"
            ]
        );
    }

    #[test]
    fn reads_why_a_step_waits() {
        assert_eq!(step_waiting_reason(""), "its job step is being created");
        let stderr = "srun: Job 12 step creation temporarily disabled, retrying (Requested nodes are busy)\n\
                      srun: Job 12 step creation still disabled, retrying (Requested nodes are busy)\n";
        assert_eq!(
            step_waiting_reason(stderr),
            "Slurm has not created its job step: Requested nodes are busy"
        );
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
