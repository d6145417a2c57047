//! The Slurm executor against a real Slurm: a local cluster of two emulated
//! nodes with two (fake) GPUs each, started by `bash tests/slurm/cluster.sh
//! up` (CI does). Every test skips with a note when no cluster answers.
//!
//! The tests take the cluster one at a time (a lock), each in an allocation
//! of its own, cancelled when it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anisostudy::hpo::TrialState;
use anisostudy::storage::Database;

#[path = "support/slurm.rs"]
mod support;
use support::*;

static CLUSTER: Mutex<()> = Mutex::new(());

/// Two nodes, two GPUs and two CPUs each.
fn two_by_two() -> Allocation {
    Allocation::new(&["-N2", "--ntasks-per-node=2", "--gres=gpu:2", "-J", "anisostudy-test"])
}

/// Per trial: (node, CUDA_VISIBLE_DEVICES, start, end).
fn placements(results: &Path, name: &str) -> Vec<(String, String, f64, f64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(results.join(name).join("trials")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path().join("where")).unwrap();
        let mut words = text.split_whitespace();
        let node = words.next().unwrap().to_owned();
        let gpu = words.next().unwrap().to_owned();
        let start: f64 = words.next().unwrap().parse().unwrap();
        let end: f64 = words.next().unwrap().parse().unwrap();
        out.push((node, gpu, start, end));
    }
    out
}

/// a. 8 trials on 2 nodes × 2 GPUs: each running trial has its own (node,
/// GPU), all complete, and the makespan is within 10 % of list scheduling.
#[test]
fn trials_spread_over_both_nodes_without_sharing_a_gpu() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = two_by_two();
    let file = write(dir.path(), "a.yaml", &command_study("spread", 8, 2.0, "{executor: slurm}"));
    let results = dir.path().join("results");
    run(&file, &results, Some(&job));
    let rows = table(&results, "spread");
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.state == TrialState::Complete), "{rows:?}");
    let placed = placements(&results, "spread");
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[i + 1..] {
            let overlap = a.2 < b.3 && b.2 < a.3;
            assert!(!(overlap && a.0 == b.0 && a.1 == b.1), "two trials shared {}/{}: {a:?} {b:?}", a.0, a.1);
        }
    }
    let nodes: std::collections::BTreeSet<&str> = placed.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(nodes.len(), 2, "{placed:?}");
    let first = placed.iter().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let last = placed.iter().map(|p| p.3).fold(0.0, f64::max);
    let makespan = last - first;
    let bound = 2.0 * 8.0 / 4.0;
    println!("makespan {makespan:.2} s, list-scheduling bound {bound:.2} s");
    assert!(makespan <= 1.1 * bound, "makespan {makespan:.2} s against {bound:.2} s");
    // The database is written with a rollback journal, readable from other hosts.
    let journal = rusqlite_journal(&results.join("spread/study.db"));
    assert_eq!(journal, "delete");
    assert!(!results.join("spread/study.db-wal").exists() && !results.join("spread/study.db-shm").exists());
    let status = study(&["status", "spread", "--results", results.to_str().unwrap()], None).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("nodes: n1 4 trials, n2 4 trials") || text.contains("nodes: n1"), "{text}");
}

/// The journal mode stored in a database file's header: bytes 18 and 19
/// are 2 for WAL, 1 for a rollback journal.
fn rusqlite_journal(path: &Path) -> &'static str {
    let header = std::fs::read(path).unwrap();
    match (header[18], header[19]) {
        (2, 2) => "wal",
        (1, 1) => "delete",
        other => panic!("journal bytes {other:?}"),
    }
}

/// The tiny built-in study of `tests/study_resume.rs`, on 2 CPU slots.
fn tiny(resources: &str) -> String {
    format!(
        r#"
name: tiny
seed: 11
dataset:
  synthetic: {{size: 40, seed: 3}}
model: {{kind: equivariant, em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}}
training: {{epochs: 4, batch_size: 8, patience: 4}}
phases:
  - name: tpe
    sampler: {{type: tpe, n_startup_trials: 2}}
    n_trials: 6
    space:
      lr: {{type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
      em_dim: {{type: int, low: 2, high: 6, step: 2}}
pruner: {{type: median, n_startup_trials: 2, n_warmup_steps: 1}}
resources: {resources}
mode: deterministic
"#
    )
}

/// b. The built-in objective over both nodes gives the local executor's table.
#[test]
fn built_in_study_over_two_nodes_equals_the_local_run() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "local.yaml", &tiny("{devices: cpu, trials_per_device: 2}"));
    let on_slurm = write(dir.path(), "slurm.yaml", &tiny("{executor: slurm, slurm: {gpus_per_trial: 0}}"));
    run(&local, &dir.path().join("local"), None);
    let job = Allocation::new(&["-N2", "--ntasks-per-node=1", "-J", "anisostudy-test"]);
    run(&on_slurm, &dir.path().join("slurm"), Some(&job));
    let (want, got) = (table(&dir.path().join("local"), "tiny"), table(&dir.path().join("slurm"), "tiny"));
    assert_eq!(format!("{got:#?}"), format!("{want:#?}"));
    let db = Database::open_read_only(dir.path().join("slurm/tiny/study.db")).unwrap();
    let devices: std::collections::BTreeSet<String> = db
        .open_study("tiny")
        .unwrap()
        .all_trial_details()
        .unwrap()
        .into_iter()
        .filter_map(|d| d.device)
        .collect();
    assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["n1/cpu:0", "n2/cpu:1"]);
}

/// c. scancel of one running step: that attempt fails with a reason naming
/// Slurm, the trial is retried and the study completes.
#[test]
fn a_cancelled_step_fails_with_slurm_named_and_is_retried() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = two_by_two();
    let file = write(dir.path(), "c.yaml", &command_study("cancel", 4, 3.0, "{executor: slurm, retries: 1}"));
    let results = dir.path().join("results");
    let mut child =
        study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], Some(&job))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let start = Instant::now();
    let victim = loop {
        let out = Command::new("squeue").args(["-h", "-s", "-j", &job.0, "-o", "%i %j"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(step) = text.lines().find(|l| l.trim_end().ends_with(".1")) {
            break step.split_whitespace().next().unwrap().to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "trial 1's step never showed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("scancel").arg(&victim).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let rows = table(&results, "cancel");
    assert!(rows.iter().all(|r| r.state == TrialState::Complete), "{rows:?}");
    let db = Database::open_read_only(results.join("cancel/study.db")).unwrap();
    let details = db.open_study("cancel").unwrap().trial_details(1).unwrap();
    let reason =
        details.user_attrs.get("attempt_1_failure").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    assert!(reason.contains("Slurm cancelled the job step"), "{:?}", details.user_attrs);
    assert_eq!(details.attempt, 1, "one retry");
}

/// `study submit FILE --nodes 2 --time TIME [--partition P]`; the job id
/// (cancelled when dropped).
fn submit(file: &Path, results: &Path, time: &str, partition: Option<&str>) -> Allocation {
    let (file, results) = (file.to_str().unwrap(), results.to_str().unwrap());
    let mut args = vec!["submit", file, "--results", results, "--nodes", "2", "--time", time];
    args.extend(partition.iter().flat_map(|p| ["--partition", p]));
    let out = study(&args, None).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Allocation(stdout.split("submitted job ").nth(1).unwrap().split(':').next().unwrap().to_owned())
}

/// d. `study submit` runs a study as a batch job; a requeue in the middle
/// (what pre-emption does) loses nothing: the table equals an uninterrupted
/// deterministic run's.
#[test]
fn a_submitted_study_survives_a_requeue() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let run = MidRun::submit("requeued", None);
    let id = run.job.0.clone();
    assert!(run.results.join("requeued/slurm/controller.sbatch").is_file());
    assert!(Command::new("scontrol").args(["requeue", &id]).status().unwrap().success());
    let text = until_completed(&run.job, &run.results, "requeued", Duration::from_secs(120));
    assert!(text.contains("Restarts=1"), "{text}");
    let status =
        study(&["status", "requeued", "--results", run.results.to_str().unwrap()], None).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("slurm: job {id} COMPLETED")) && text.contains("restarted 1 time"),
        "{text}"
    );
    assert!(run.log().contains("interrupted"), "{}", run.log());
    run.finished_as_uninterrupted();
}

/// e. SIGKILL of the controller mid-study leaves no step running, and
/// `study run` again finishes the study without running a trial twice at
/// once, with the uninterrupted run's table.
#[test]
fn a_killed_controller_leaves_no_orphans_and_resumes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let want = local_table(dir.path(), "killed", 1.5);
    let job = two_by_two();
    let file = write(dir.path(), "e.yaml", &command_study("killed", 12, 1.5, "{executor: slurm}"));
    let results = dir.path().join("results");
    let mut child =
        study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], Some(&job))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    // A trial is RUNNING from its launch, its step a little later (srun
    // asks slurmctld first): wait for both.
    wait_for(&results, "killed", Duration::from_secs(60), |rows| {
        complete(rows) >= 4
            && rows.iter().filter(|r| r.state == TrialState::Running).count() >= 2
            && !job.steps().is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while !job.steps().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(15), "steps run on unsupervised: {:?}", job.steps());
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("no steps left {:.1} s after the controller's SIGKILL", start.elapsed().as_secs_f64());
    let mut again =
        study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], Some(&job))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    while again.try_wait().unwrap().is_none() {
        let steps = job.steps();
        let unique: std::collections::BTreeSet<&String> = steps.iter().collect();
        assert_eq!(unique.len(), steps.len(), "a trial runs twice: {steps:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.wait().unwrap().success());
    assert_eq!(format!("{:#?}", table(&results, "killed")), format!("{want:#?}"));
}

/// f. Impossible requests fail before anything runs or is submitted, with
/// exit 2 and what to change.
#[test]
fn impossible_requests_fail_first_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    let check = |out: Output, needle: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    };
    // Outside any allocation (no cluster needed).
    let file = write(dir.path(), "f.yaml", &command_study("impossible", 4, 0.1, "{executor: slurm}"));
    check(study(&["run", file.to_str().unwrap(), "--results", r], None).output().unwrap(), "study submit");
    // No Slurm reachable from here: sbatch and sinfo are not on the PATH.
    let out =
        study(&["submit", file.to_str().unwrap(), "--results", r], None).env("PATH", "/nonexistent").output();
    check(out.unwrap(), "no Slurm here");
    let typo = write(
        dir.path(),
        "typo.yaml",
        &command_study("typo", 4, 0.1, "{executor: slurm, slurm: {gpu_per_trial: 1}}"),
    );
    check(study(&["run", typo.to_str().unwrap(), "--results", r], None).output().unwrap(), "gpus_per_trial");
    assert!(!results.exists(), "nothing is written for bad input");

    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    // A dry run prints the allocation's script and trial 0's job step, checked against the partition.
    let fine = write(dir.path(), "fine.yaml", &command_study("fine", 4, 0.1, "{executor: slurm}"));
    let dry = study(&["submit", fine.to_str().unwrap(), "--results", r, "--dry-run"], None).output().unwrap();
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("#SBATCH --gres=gpu:2\n"), "{text}");
    assert!(text.contains("\nsrun --jobid=JOBID --nodes=1 --ntasks=1 --nodelist=NODE"), "{text}");
    assert!(text.contains("--gres=gpu:1 ") && text.contains("--job-name=anisostudy.fine."), "{text}");
    let greedy = write(
        dir.path(),
        "g.yaml",
        &command_study("greedy", 4, 0.1, "{executor: slurm, slurm: {gpus_per_trial: 3}}"),
    );
    let job = two_by_two();
    check(
        study(&["run", greedy.to_str().unwrap(), "--results", r], Some(&job)).output().unwrap(),
        "gpus_per_trial",
    );
    check(
        study(&["submit", file.to_str().unwrap(), "--results", r, "--partition", "nope"], None)
            .output()
            .unwrap(),
        "no partition `nope`",
    );
    check(
        study(&["submit", greedy.to_str().unwrap(), "--results", r], None).output().unwrap(),
        "gpus_per_trial",
    );
    check(
        study(&["submit", file.to_str().unwrap(), "--results", r, "--gpus-per-node", "4"], None)
            .output()
            .unwrap(),
        "--gpus-per-node",
    );
    // Checked against the partition's real nodes (2 of 4 CPUs, 4000 MB and
    // 2 GPUs): a third node, or two trials of 2 GB and the controller on one.
    check(
        study(&["submit", file.to_str().unwrap(), "--results", r, "--nodes", "3"], None).output().unwrap(),
        "--nodes: each of 3 node(s)",
    );
    let hungry = write(
        dir.path(),
        "m.yaml",
        &command_study("impossible", 4, 0.1, "{executor: slurm, slurm: {mem_per_trial: 2G}}"),
    );
    check(
        study(&["submit", hungry.to_str().unwrap(), "--results", r], None).output().unwrap(),
        "resources.slurm.mem_per_trial: each of 1 node(s) must hold 2 trial(s): 2 CPUs, 2 GPUs, ",
    );
    assert!(!results.join("impossible").join("slurm").exists(), "nothing was submitted");
}

/// g. The time-limit warning: the controller stops and the job requeues
/// itself before `--time` runs out (these trials ignore the stop request,
/// so the requeue interrupts them), and the next run finishes the study.
#[test]
fn a_job_near_its_time_limit_requeues_itself() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 16 trials of 15 s on 4 slots take 60 s: past a 1-minute limit, warned 10 s before.
    let text =
        command_study("limited", 16, 15.0, "{executor: slurm}").replace("mode: deterministic", "mode: async");
    let file = write(dir.path(), "g.yaml", &text);
    let results = dir.path().join("results");
    let job = submit(&file, &results, "1", None);
    let id = job.0.clone();
    let script = std::fs::read_to_string(results.join("limited/slurm/controller.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --signal=B:USR1@10") && script.contains("#SBATCH --time=1"), "{script}");
    let text = until_completed(&job, &results, "limited", Duration::from_secs(180));
    assert!(!text.contains("Restarts=0"), "{text}");
    let log = std::fs::read_to_string(results.join(format!("limited/slurm/controller-{id}.out"))).unwrap();
    assert!(log.contains("time limit near: requeued job"), "{log}");
    let rows = table(&results, "limited");
    assert_eq!(rows.len(), 16, "{log}");
    assert!(rows.iter().all(|r| r.state == TrialState::Complete), "{rows:?}\n{log}");
}

/// A job of partition `high` that takes both nodes whole: it pre-empts the
/// jobs of `debug` (REQUEUE) and `cancel` (CANCEL), after their GraceTime.
fn preemptor() -> Allocation {
    let out = Command::new("sbatch")
        .args([
            "--parsable",
            "-p",
            "high",
            "-N2",
            "--exclusive",
            "-J",
            "anisostudy-test-high",
            "--output",
            "/dev/null",
            "--wrap",
            "sleep 4",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Allocation(String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_owned())
}

/// A deterministic study of 12 one-second `command` trials submitted over
/// both nodes (of `partition`, else the default one), once 4 trials are
/// complete and one runs; with the uninterrupted local run's table.
struct MidRun {
    name: &'static str,
    results: PathBuf,
    job: Allocation,
    want: Vec<Row>,
    _dir: tempfile::TempDir,
}

impl MidRun {
    fn submit(name: &'static str, partition: Option<&str>) -> MidRun {
        let dir = tempfile::tempdir().unwrap();
        let want = local_table(dir.path(), name, 1.0);
        let file = write(dir.path(), "study.yaml", &command_study(name, 12, 1.0, "{executor: slurm}"));
        let results = dir.path().join("results");
        let job = submit(&file, &results, "10", partition);
        wait_for(&results, name, Duration::from_secs(60), |rows| {
            complete(rows) >= 4 && rows.iter().any(|r| r.state == TrialState::Running)
        });
        MidRun { name, results, job, want, _dir: dir }
    }

    /// The controller's log of the first job.
    fn log(&self) -> String {
        let path = self.results.join(format!("{}/slurm/controller-{}.out", self.name, self.job.0));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Waits for the first line of the controller's log that starts with `prefix`.
    fn log_line(&self, prefix: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.starts_with(prefix)) {
                return line.to_owned();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no `{prefix}` line:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// No trial failed, and the table equals the uninterrupted run's.
    fn finished_as_uninterrupted(&self) {
        let rows = table(&self.results, self.name);
        let log = self.log();
        assert!(rows.iter().all(|r| r.state != TrialState::Failed), "{rows:?}\n{log}");
        assert_eq!(format!("{rows:#?}"), format!("{:#?}", self.want), "{log}");
    }
}

/// g. Pre-emption by REQUEUE at once (partition `now`, no GraceTime): Slurm
/// ends the steps and the controller together and requeues the job; the
/// trials were interrupted, and the requeued job finishes the study with the
/// uninterrupted run's table.
#[test]
fn a_study_preempted_at_once_requeues_and_finishes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let run = MidRun::submit("instant", Some("now"));
    let _high = preemptor();
    let text = until_completed(&run.job, &run.results, run.name, Duration::from_secs(150));
    assert!(text.contains("Restarts=1"), "{text}");
    run.finished_as_uninterrupted();
}

/// g'. Pre-emption with a grace period: Slurm sends SIGTERM to the job's
/// steps only, not to the controller. The trials end interrupted (never
/// failed), the controller launches nothing more, the job requeues itself,
/// and the study finishes with the uninterrupted run's table.
#[test]
fn a_study_preempted_with_a_grace_period_requeues_and_finishes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let run = MidRun::submit("graced", None);
    let _high = preemptor();
    let text = until_completed(&run.job, &run.results, run.name, Duration::from_secs(150));
    assert!(text.contains("Restarts=1"), "{text}");
    assert!(run.log().contains("pre-empted: requeued job"), "{}", run.log());
    run.finished_as_uninterrupted();
}

/// g''. Pre-emption by cancelling, after a GraceTime (partition `cancel`):
/// the steps get SIGTERM, the trials end interrupted, and the job goes on
/// (it requeues itself before the grace period ends, or where that is
/// refused submits itself again), so the study finishes with the
/// uninterrupted run's table.
#[test]
fn a_study_preempted_by_cancelling_with_a_grace_period_finishes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let run = MidRun::submit("cancelled", Some("cancel"));
    let _high = preemptor();
    let went_on = run.log_line("pre-empted: ");
    eprintln!("the controller: {went_on}");
    let next = went_on.split("submitted job ").nth(1).map(|rest| rest.split_whitespace().next().unwrap());
    match next {
        Some(id) => {
            until_completed(&Allocation(id.to_owned()), &run.results, run.name, Duration::from_secs(150));
        }
        None => {
            assert!(went_on.contains("requeued job"), "{went_on}");
            until_completed(&run.job, &run.results, run.name, Duration::from_secs(150));
        }
    }
    assert!(run.log().contains("interrupted"), "{}", run.log());
    run.finished_as_uninterrupted();
}

/// h. A requeue that is refused (here the job made non-requeueable after
/// submission, as a site's submit filter or `JobRequeue=0` leaves it): the
/// script submits itself again, to start after the old job, records the new
/// job, and that one finishes the study.
#[test]
fn a_refused_requeue_submits_the_study_again() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let run = MidRun::submit("refused", None);
    let update = format!("jobid={}", run.job.0);
    assert!(Command::new("scontrol").args(["update", &update, "Requeue=0"]).status().unwrap().success());
    let _high = preemptor();
    let jobs = run.results.join("refused/slurm/jobs");
    let start = Instant::now();
    let next = loop {
        let text = std::fs::read_to_string(&jobs).unwrap_or_default();
        if let Some(line) = text.lines().nth(1) {
            break Allocation(line.split_whitespace().next().unwrap().to_owned());
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no second job in {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(run.log_line("pre-empted: ").contains("requeue refused; submitted job"), "{}", run.log());
    until_completed(&next, &run.results, run.name, Duration::from_secs(150));
    run.finished_as_uninterrupted();
}

/// i. Inside a job whose environment says `--mem`, `--ntasks-per-node` and
/// `--export=NONE` (what `sbatch --mem=1000 --export=NONE` exports), the
/// steps still share the job's memory (two run at once on one node), get the
/// trial's variables, see their GPU as `cuda:0`, and CPU steps see no GPU.
#[test]
fn steps_share_the_jobs_memory_and_see_only_their_own_devices() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = Allocation::new(&[
        "-N1",
        "--ntasks-per-node=2",
        "--gres=gpu:2",
        "--mem=1000",
        "-J",
        "anisostudy-test",
    ]);
    let study_file = |name: &str, gpus: u32| {
        format!(
            r#"
name: {name}
seed: 2
objective:
  command: >-
    sh -c 'echo "{{device}} [${{CUDA_VISIBLE_DEVICES-unset}}] $ANISOSTUDY_TRIAL $(date +%s.%N)" > "$ANISOSTUDY_TRIAL_DIR/where";
    sleep 1.5; date +%s.%N >> "$ANISOSTUDY_TRIAL_DIR/where"; echo "{{\"objective\": {{x}}}}"'
phases:
  - name: random
    sampler: {{type: random}}
    n_trials: 4
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
mode: deterministic
resources: {{executor: slurm, slurm: {{gpus_per_trial: {gpus}}}}}
"#
        )
    };
    let results = dir.path().join("results");
    for (name, gpus) in [("gpu_steps", 1), ("cpu_steps", 0)] {
        let file = write(dir.path(), &format!("{name}.yaml"), &study_file(name, gpus));
        let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], Some(&job))
            .env("SLURM_MEM_PER_NODE", "1000")
            .env("SLURM_NTASKS_PER_NODE", "2")
            .env("SLURM_EXPORT_ENV", "NONE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut spans = Vec::new();
        for n in 0..4 {
            let text = std::fs::read_to_string(results.join(format!("{name}/trials/{n}/where"))).unwrap();
            let words: Vec<&str> = text.split_whitespace().collect();
            let (device, visible, trial) = (words[0], words[1], words[2]);
            assert_eq!(trial, n.to_string(), "the trial's variables reach the step: {text}");
            if gpus > 0 {
                assert_eq!(device, "cuda:0", "{text}");
                assert!(visible == "[0]" || visible == "[1]", "{text}");
            } else {
                assert_eq!((device, visible), ("cpu", "[]"), "{text}");
            }
            spans.push((words[3].parse::<f64>().unwrap(), words[4].parse::<f64>().unwrap()));
        }
        let overlapping =
            spans.iter().enumerate().any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
        assert!(overlapping, "{name}: no two steps ran at once: {spans:?}");
    }
}

/// j. A trial whose job step waits for its node (another step holds the
/// node's GPUs): `study status` shows it waiting, and
/// its timeout runs from the step's start, so it completes.
#[test]
fn a_waiting_step_is_shown_and_its_timeout_runs_from_its_start() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = Allocation::new(&["-N1", "--ntasks-per-node=2", "--gres=gpu:2", "-J", "anisostudy-test"]);
    let mut blocker = Command::new("srun")
        .args([&format!("--jobid={}", job.0), "-n1", "--gres=gpu:2", "--mem=0", "sleep", "7"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let resources = "{executor: slurm, trial_timeout: 4s}";
    let file = write(dir.path(), "j.yaml", &command_study("waits", 1, 1.0, resources));
    let results = dir.path().join("results");
    let args = ["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()];
    let mut run = study(&args, Some(&job)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    let shown = loop {
        let out = study(&["status", "waits", "--results", results.to_str().unwrap()], None).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("waiting: trial 0") || start.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // srun names its reason (`Requested nodes are busy`) only when it retries;
    // until then the step is "being created".
    assert!(shown.contains("waiting: trial 0 on n1/cuda:0") && shown.contains("job step"), "{shown}");
    let status = run.wait().unwrap();
    let _ = blocker.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let rows = table(&results, "waits");
    assert_eq!(rows[0].state, TrialState::Complete, "{rows:?}\n{stderr}");
}

/// Four trials share the one GPU of an allocation (`trials_per_gpu: 4`):
/// the executor gives the four slots that GPU, each step overlaps the
/// others and keeps it; they run at once, and the table is the local one's.
#[test]
fn four_steps_share_one_gpu() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = command_study("shared", 4, 3.0, "{devices: cpu, trials_per_device: 4}");
    run(&write(dir.path(), "local.yaml", &local), &dir.path().join("local"), None);
    let want = table(&dir.path().join("local"), "shared");
    let job = Allocation::new(&["-N1", "--ntasks-per-node=4", "--gres=gpu:1", "-J", "anisostudy-test"]);
    let resources = "{executor: slurm, slurm: {trials_per_gpu: 4, cpus_per_trial: 1}}";
    let file = write(dir.path(), "shared.yaml", &command_study("shared", 4, 3.0, resources));
    let results = dir.path().join("results");
    run(&file, &results, Some(&job));
    assert_eq!(format!("{:#?}", table(&results, "shared")), format!("{want:#?}"));
    let runs = trial_runs(&results, "shared", 4);
    assert!(runs.iter().all(|r| r.1 == runs[0].1 && r.1.len() == 1), "one GPU each, the same: {runs:?}");
    assert!(all_at_once(&runs), "the four trials did not run at once: {runs:?}");
}
