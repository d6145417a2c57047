//! One view of a study's trial jobs, shared by every attempt that follows
//! one: a single `squeue` call lists them all, however many there are, at
//! an interval that grows with their number, so a study of a hundred
//! trial jobs costs slurmctld one query every few seconds, not a hundred.
//!
//! Jobs are found by name (`<tag>.<trial>`, or `<tag>.<t0>,<t1>,…` for a
//! job array whose task `i` runs trial `t_i`; see [`super::jobs`]), which
//! slurmctld records with the submission itself: a controller that starts
//! again finds the jobs an earlier one submitted, even one killed between
//! `sbatch` and its next write to the database (see
//! [`super::jobs::SlurmJobs`] for the jobs that ended meanwhile).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::slurm_command;

/// A trial job as `squeue` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: String,
    pub trial: u64,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `OUT_OF_MEMORY`, …
    pub state: String,
    /// Why it pends (`Priority`, `Resources`, `QOSMaxGRESPerUser`…) or ended.
    pub reason: String,
    /// Where it runs (empty while pending).
    pub node: String,
    /// Slurm is pre-empting it (`PreemptTime` set): its grace period runs.
    pub preempted: bool,
}

impl JobView {
    /// Still queued or running, or on its way back (requeued): not over.
    pub fn is_live(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "OUT_OF_MEMORY"
                | "NODE_FAIL"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "PREEMPTED"
                | "REVOKED"
                | "SPECIAL_EXIT"
        )
    }

    pub fn is_pending(&self) -> bool {
        matches!(self.state.as_str(), "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED")
    }
}

/// What the board last saw.
#[derive(Debug, Default)]
struct Seen {
    at: Option<Instant>,
    jobs: HashMap<String, JobView>,
}

/// The trial jobs of one study (names starting `<tag>.`) of this user.
#[derive(Debug)]
pub struct JobBoard {
    tag: String,
    user: String,
    seen: Mutex<Seen>,
}

impl JobBoard {
    pub fn new(tag: &str) -> JobBoard {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        JobBoard { tag: tag.to_owned(), user, seen: Mutex::default() }
    }

    /// How long an answer stands while `jobs` are followed: a second, and
    /// 50 ms more per job, at most 30 s.
    pub fn interval(jobs: usize) -> Duration {
        Duration::from_millis(1000 + 50 * jobs as u64).min(Duration::from_secs(30))
    }

    /// The job's state as last seen, without asking Slurm.
    pub fn cached(&self, id: &str) -> Option<JobView> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).jobs.get(id).cloned()
    }

    /// Job `id` as seen within [`JobBoard::interval`] of `following` jobs,
    /// asking Slurm when the last answer is older (one caller asks, the
    /// others wait for its answer); `None` when squeue no longer lists it.
    /// It blocks: call it off the runtime's threads.
    pub fn look(&self, id: &str, following: usize) -> Result<Option<JobView>> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.at.is_none_or(|at| at.elapsed() >= Self::interval(following)) {
            *seen = Seen { at: Some(Instant::now()), jobs: self.query()? };
        }
        Ok(seen.jobs.get(id).cloned())
    }

    /// Asks Slurm now; the jobs of trial `number` it still knows, queued,
    /// running or recently over. It blocks.
    pub fn jobs_of(&self, number: u64) -> Result<Vec<JobView>> {
        let jobs = self.query()?;
        let of_trial = jobs.values().filter(|j| j.trial == number).cloned().collect();
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Seen { at: Some(Instant::now()), jobs };
        Ok(of_trial)
    }

    /// Every live job of the study, asking Slurm now.
    pub fn live_jobs(&self) -> Result<Vec<JobView>> {
        let mut live: Vec<JobView> = self.query()?.into_values().filter(JobView::is_live).collect();
        live.sort_by_key(|j| submission_order(&j.id));
        Ok(live)
    }

    /// One `squeue` for every job of the user, finished ones included (as
    /// long as slurmctld keeps them, `MinJobAge`); the study's by name.
    fn query(&self) -> Result<HashMap<String, JobView>> {
        let out = slurm_command("squeue", &["-h", "-r", "-t", "all", "-u", &self.user, "-O", SQUEUE_FIELDS])?;
        Ok(parse_squeue(&out, &self.tag).into_iter().map(|j| (j.id.clone(), j)).collect())
    }
}

/// What the board asks `squeue -r -O` for, `|` after each. `JobArrayID`
/// is a job's id, or `<array>_<task>` for a task of a job array: the id
/// Slurm's commands take for it, stable from submission on (a task gets a
/// job id of its own only when it starts).
const SQUEUE_FIELDS: &str = "JobArrayID:|,Name:|,State:|,Reason:|,NodeList:|,PreemptTime:|";

/// Orders job ids (`412`, or `409_2` for a task of an array) by submission.
pub fn submission_order(id: &str) -> (u64, u64) {
    match id.split_once('_') {
        Some((array, task)) => (array.parse().unwrap_or(0), task.parse::<u64>().map_or(0, |t| t + 1)),
        None => (id.parse().unwrap_or(0), 0),
    }
}

/// The study's jobs in `squeue -O` output of [`SQUEUE_FIELDS`].
pub fn parse_squeue(out: &str, tag: &str) -> Vec<JobView> {
    let prefix = format!("{tag}.");
    out.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let [id, name, state, reason, node, preempt_time, ..] = fields[..] else { return None };
            let trials = name.strip_prefix(&prefix)?;
            let trial = match id.split_once('_') {
                Some((_, task)) => trials.split(',').nth(task.parse().ok()?)?.parse().ok()?,
                None => trials.parse().ok()?,
            };
            Some(JobView {
                id: id.to_owned(),
                trial,
                state: state.to_owned(),
                reason: reason.to_owned(),
                node: node.to_owned(),
                preempted: preempt_time.starts_with(|c: char| c.is_ascii_digit()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_studys_jobs_from_one_listing() {
        let out = "41|anisostudy.s.0a0b0c0d.3|PENDING|Priority||N/A|\n\
                   42|anisostudy.s.0a0b0c0d.4|RUNNING|None|n1|2026-12-05T19:40:01|\n\
                   43|anisostudy.other.01020304.4|RUNNING|None|n2|N/A|\n\
                   44|anisostudy.s.0a0b0c0d.5|OUT_OF_MEMORY|OutOfMemory|n2|N/A|\n\
                   45|interactive|RUNNING|None|n1|N/A|\n\
                   46_1|anisostudy.s.0a0b0c0d.8,9,10|PENDING|JobArrayTaskLimit||N/A|\n\
                   46_0|anisostudy.s.0a0b0c0d.8,9,10|RUNNING|None|n2|N/A|\n";
        let jobs = parse_squeue(out, "anisostudy.s.0a0b0c0d");
        assert_eq!(
            jobs.iter().map(|j| (j.id.as_str(), j.trial)).collect::<Vec<_>>(),
            [("41", 3), ("42", 4), ("44", 5), ("46_1", 9), ("46_0", 8)]
        );
        let mut ids = ["46_1", "47", "46_0", "45"];
        ids.sort_by_key(|id| submission_order(id));
        assert_eq!(ids, ["45", "46_0", "46_1", "47"]);
        assert!(jobs[0].is_pending() && jobs[0].is_live() && jobs[0].reason == "Priority");
        assert!(jobs[1].is_live() && !jobs[1].is_pending() && jobs[1].node == "n1");
        assert!(jobs[1].preempted && !jobs[0].preempted);
        assert!(!jobs[2].is_live());
    }

    #[test]
    fn polls_less_often_the_more_jobs_it_follows() {
        assert_eq!(JobBoard::interval(0), Duration::from_secs(1));
        assert_eq!(JobBoard::interval(20), Duration::from_secs(2));
        assert_eq!(JobBoard::interval(10_000), Duration::from_secs(30));
    }
}
