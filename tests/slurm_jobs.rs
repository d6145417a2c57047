//! `executor: slurm-jobs` against a real Slurm: the local cluster of
//! `tests/slurm/cluster.sh` (two emulated nodes, two fake GPUs each, a
//! pre-emptible default partition). Each trial is a batch job; the
//! controller runs outside any allocation, as on a login node. Every test
//! skips with a note when no cluster answers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anisostudy::hpo::TrialState;

#[path = "support/slurm.rs"]
mod support;
use support::*;

static CLUSTER: Mutex<()> = Mutex::new(());

/// The study's trial jobs Slurm knows (queued, running or recently over):
/// (job id, trial, state); a task of a job array named `<tag>.<t0>,<t1>,…`
/// is `<array>_<i>`, of trial `t_i`.
fn jobs_of(name: &str) -> Vec<(String, u64, String)> {
    let out = Command::new("squeue").args(["-h", "-r", "-t", "all", "-o", "%i|%j|%T"]).output().unwrap();
    let prefix = format!("anisostudy.{name}.");
    let mut jobs: Vec<(String, u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|');
            let id = fields.next()?.trim().to_owned();
            let trials: Vec<&str> =
                fields.next()?.strip_prefix(&prefix)?.rsplit('.').next()?.split(',').collect();
            let task = id.split_once('_').map_or(Some(0), |(_, task)| task.parse().ok())?;
            let trial = trials.get(task)?.parse().ok()?;
            Some((id, trial, fields.next()?.trim().to_owned()))
        })
        .collect();
    jobs.sort();
    jobs
}

/// `name` and this process's id: Slurm remembers the jobs of earlier runs
/// of the tests for a while (MinJobAge), under the same names.
fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn live(jobs: &[(String, u64, String)]) -> usize {
    jobs.iter().filter(|(_, _, state)| state == "RUNNING" || state == "PENDING").count()
}

/// Asserts every trial of the study had exactly one job, and each completed.
fn one_completed_job_per_trial(results: &Path, name: &str, trials: u64) {
    let log = |trial: &u64| {
        let folder = results.join(name).join("trials").join(trial.to_string());
        let mut text = std::fs::read_to_string(folder.join("stderr.log")).unwrap_or_default();
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let file = entry.file_name().into_string().unwrap();
            if file.starts_with("job-") {
                text += &format!("--- {file}\n{}", std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    };
    let jobs = jobs_of(name);
    let mut per_trial: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for (id, trial, state) in jobs {
        per_trial.entry(trial).or_default().push((id, state));
    }
    assert_eq!(per_trial.len() as u64, trials, "{per_trial:?}");
    for (trial, jobs) in &per_trial {
        assert_eq!(jobs.len(), 1, "trial {trial} had several jobs: {jobs:?}\n{}", log(trial));
        assert_eq!(jobs[0].1, "COMPLETED", "trial {trial}: {jobs:?}\n{}", log(trial));
    }
}

/// The deterministic table of `command_study(name, n, secs, …)` on `slots` local slots.
fn local_table(dir: &Path, name: &str, n: u32, secs: f64, slots: u32) -> Vec<Row> {
    let resources = format!("{{devices: cpu, trials_per_device: {slots}}}");
    let file = write(dir, "local.yaml", &command_study(name, n, secs, &resources));
    run(&file, &dir.join("local"), None);
    table(&dir.join("local"), name)
}

fn start(file: &Path, results: &Path) -> Child {
    study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], None)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn status(results: &Path, name: &str) -> String {
    let out = study(&["status", name, "--results", results.to_str().unwrap()], None).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `ready` holds of the study's jobs.
fn wait_jobs(name: &str, limit: Duration, ready: impl Fn(&[(String, u64, String)]) -> bool) {
    let start = Instant::now();
    loop {
        let jobs = jobs_of(name);
        if ready(&jobs) {
            return;
        }
        assert!(start.elapsed() < limit, "{name}: timed out waiting; jobs {jobs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// a. A deterministic study of trial jobs gives the local executor's table,
/// one job per trial, and never more than `max_jobs` queued or running;
/// each batch goes in as one job array.
#[test]
fn trial_jobs_give_the_local_table_within_max_jobs() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-a");
    let want = local_table(dir.path(), name, 6, 1.0, 2);
    // CPU trials: the cluster could run eight at once; max_jobs allows two.
    let resources = "{executor: slurm-jobs, slurm: {max_jobs: 2, gpus_per_trial: 0}}";
    let file = write(dir.path(), "a.yaml", &command_study(name, 6, 1.0, resources));
    let results = dir.path().join("results");
    let mut child = start(&file, &results);
    let mut most = 0;
    while child.try_wait().unwrap().is_none() {
        most = most.max(live(&jobs_of(name)));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.wait().unwrap().success());
    assert!(most <= 2, "{most} trial jobs at once with max_jobs 2");
    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 6);
    // Each deterministic batch of two started together: one job array of two tasks.
    let jobs = jobs_of(name);
    let arrays: std::collections::BTreeSet<&str> =
        jobs.iter().filter_map(|(id, _, _)| Some(id.split_once('_')?.0)).collect();
    assert_eq!(arrays.len(), 3, "{jobs:?}");
    // Each job ran its trial without a GPU, and the trial's folder holds its output.
    for trial in 0..6 {
        let folder = results.join(name).join("trials").join(trial.to_string());
        let where_ = std::fs::read_to_string(folder.join("where")).unwrap();
        assert_eq!(where_.split_whitespace().count(), 3, "CUDA_VISIBLE_DEVICES is empty: {where_}");
        assert!(std::fs::read_dir(&folder).unwrap().any(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.starts_with("job-") && name.ends_with(".exit")
        }));
    }
}

/// b. Jobs that wait show Slurm's reason in `study status`, and run once
/// the GPUs they wait for are free.
#[test]
fn pending_jobs_show_their_reason() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-b");
    // Every GPU of the cluster is taken.
    let blocker = Allocation::new(&["-N2", "--gres=gpu:2", "-J", "anisostudy-test-blocker"]);
    let file = write(
        dir.path(),
        "b.yaml",
        &command_study(name, 2, 0.5, "{executor: slurm-jobs, slurm: {max_jobs: 2}}"),
    );
    let results = dir.path().join("results");
    let mut child = start(&file, &results);
    let start_wait = Instant::now();
    let shown = loop {
        let text = status(&results, name);
        if text.contains("is pending in Slurm: Resources") {
            break text;
        }
        assert!(start_wait.elapsed() < Duration::from_secs(30), "no pending reason shown:\n{text}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(shown.contains("waiting: trial"), "{shown}");
    drop(blocker);
    assert!(child.wait().unwrap().success());
    assert_eq!(table(&results, name).iter().filter(|r| r.state == TrialState::Complete).count(), 2);
    one_completed_job_per_trial(&results, name, 2);
}

/// c. A controller killed with SIGKILL leaves its trial jobs running. A
/// controller started while they run follows them again; one started after
/// they ended reads their results from the trials' folders. No job is
/// cancelled, lost or doubled, and the table is the uninterrupted one's.
#[test]
fn a_killed_controller_re_attaches_to_its_jobs() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-c");
    let want = local_table(dir.path(), name, 6, 3.0, 3);
    let file = write(
        dir.path(),
        "c.yaml",
        &command_study(name, 6, 3.0, "{executor: slurm-jobs, slurm: {max_jobs: 3}}"),
    );
    let results = dir.path().join("results");

    // Killed while the first batch runs, started again once it has ended.
    let mut first = start(&file, &results);
    wait_jobs(name, Duration::from_secs(60), |jobs| jobs.iter().filter(|j| j.2 == "RUNNING").count() == 3);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(live(&jobs_of(name)), 3, "the jobs outlive their controller");
    let shown = status(&results, name);
    assert!(shown.contains("Slurm jobs go on, and the next `study run` follows them"), "{shown}");
    wait_jobs(name, Duration::from_secs(60), |jobs| live(jobs) == 0);

    // Killed while the second batch runs, started again at once.
    let mut second = start(&file, &results);
    wait_jobs(name, Duration::from_secs(60), |jobs| {
        jobs.len() == 6 && jobs.iter().filter(|j| j.2 == "RUNNING").count() == 3
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let mut third = start(&file, &results);
    assert!(third.wait().unwrap().success());

    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 6);
    let log = std::fs::read_to_string(results.join(name).join("trials/4/stderr.log")).unwrap();
    assert!(log.contains("which an earlier run of the study submitted"), "{log}");
}

/// d. `study stop` cancels the jobs a stopped controller left running.
#[test]
fn study_stop_cancels_the_jobs_left_running() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-d");
    let file = write(
        dir.path(),
        "d.yaml",
        &command_study(name, 2, 30.0, "{executor: slurm-jobs, slurm: {max_jobs: 2}}"),
    );
    let results = dir.path().join("results");
    let mut child = start(&file, &results);
    wait_jobs(name, Duration::from_secs(60), |jobs| jobs.iter().filter(|j| j.2 == "RUNNING").count() == 2);
    // SIGTERM: the controller stops and detaches.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert_eq!(live(&jobs_of(name)), 2, "a stopped controller leaves its jobs running");
    let out = study(&["stop", name, "--results", results.to_str().unwrap()], None).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("cancelled 2 trial job(s)"), "{text}");
    wait_jobs(name, Duration::from_secs(30), |jobs| jobs.iter().all(|j| j.2 == "CANCELLED"));
}

/// A study of `n` trials that each wait `secs` seconds for their stdin to
/// close and print their objective then; a trial whose stdin closes
/// before (the protocol's "checkpoint and exit") exits at once without one.
fn stoppable_study(name: &str, n: u32, secs: u32, resources: &str) -> String {
    format!(
        r#"
name: {name}
seed: 5
objective:
  command: >-
    bash -c 'if read -t {secs} _; [ $? -le 128 ]; then exit 0; fi;
    awk "BEGIN {{ printf \"{{\\\"objective\\\": %.6f}}\\n\", ({{x}} - 0.3)^2 }}"'
phases:
  - name: random
    sampler: {{type: random}}
    n_trials: {n}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
mode: deterministic
resources: {resources}
"#
    )
}

/// e. A trial job pre-empted with a grace period: its trial is asked to
/// checkpoint, the job requeues itself and runs the trial again under the
/// same id. No trial is lost or run in a second job, and the table is the
/// uninterrupted one's.
#[test]
fn a_preempted_trial_job_is_requeued_and_finishes() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-e");
    let local =
        write(dir.path(), "local.yaml", &stoppable_study(name, 2, 6, "{devices: cpu, trials_per_device: 2}"));
    run(&local, &dir.path().join("local"), None);
    let want = table(&dir.path().join("local"), name);
    let file = write(
        dir.path(),
        "e.yaml",
        &stoppable_study(name, 2, 6, "{executor: slurm-jobs, slurm: {max_jobs: 2}}"),
    );
    let results = dir.path().join("results");
    let mut child = start(&file, &results);
    wait_jobs(name, Duration::from_secs(60), |jobs| jobs.iter().filter(|j| j.2 == "RUNNING").count() == 2);
    // Both nodes whole, in partition `high`: the trial jobs are pre-empted.
    let high = Command::new("sbatch")
        .args(["--parsable", "-p", "high", "-N2", "--exclusive", "-J", "anisostudy-test-high"])
        .args(["--output", "/dev/null", "--wrap", "sleep 2"])
        .output()
        .unwrap();
    assert!(high.status.success(), "{}", String::from_utf8_lossy(&high.stderr));
    // A requeued job is held ~2 minutes (BeginTime): release it a few seconds after.
    let mut held_since: BTreeMap<String, Instant> = BTreeMap::new();
    while child.try_wait().unwrap().is_none() {
        for (id, _, _) in jobs_of(name) {
            let out = Command::new("scontrol").args(["show", "job", &id.to_string()]).output().unwrap();
            let held = String::from_utf8_lossy(&out.stdout).contains("Reason=BeginTime");
            if held
                && held_since.entry(id.clone()).or_insert_with(Instant::now).elapsed()
                    > Duration::from_secs(3)
            {
                let _ = Command::new("scontrol")
                    .args(["update", &format!("jobid={id}"), "StartTime=now"])
                    .status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(child.wait().unwrap().success());
    assert!(!held_since.is_empty(), "no trial job was requeued");
    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 2);
}

/// f. Requests no node of the partition can meet, and partitions that do
/// not exist, fail before anything is submitted, with exit 2 and the key.
#[test]
fn impossible_trial_jobs_fail_first_with_exit_2() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-f");
    let results = dir.path().join("results");
    for (slurm, key, problem) in [
        ("{gpus_per_trial: 3}", "resources.slurm.gpus_per_trial", "have at most 2"),
        ("{mem_per_trial: 64G}", "resources.slurm.mem_per_trial", "have at most 4000 MB"),
        ("{partition: gpu-a100}", "resources.slurm.partition", "no partition `gpu-a100`"),
        // A job's shards come from one GPU, which has 4 on the test cluster.
        ("{trials_per_gpu: 8}", "resources.slurm.trials_per_gpu", "has 4 shards: at most 4 jobs share it"),
    ] {
        let resources = format!("{{executor: slurm-jobs, slurm: {slurm}}}");
        let file = write(dir.path(), "f.yaml", &command_study(name, 2, 0.1, &resources));
        let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], None)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(key) && stderr.contains(problem), "{stderr}");
    }
    assert!(jobs_of(name).is_empty(), "nothing is submitted: {:?}", jobs_of(name));
}

/// g. `study submit` runs the controller of trial jobs as a small batch
/// job of its own. Requeued while its trial jobs run (what pre-emption or a
/// time limit does to it), it leaves them running; the controller that
/// starts again follows them, and the study ends with the local table, one
/// job per trial.
#[test]
fn a_submitted_controller_is_requeued_and_re_attaches() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-g");
    let want = local_table(dir.path(), name, 4, 4.0, 2);
    let resources = "{executor: slurm-jobs, slurm: {max_jobs: 2, gpus_per_trial: 0}}";
    let file = write(dir.path(), "g.yaml", &command_study(name, 4, 4.0, resources));
    let results = dir.path().join("results");
    let (f, r) = (file.to_str().unwrap(), results.to_str().unwrap());
    // The controller's job is one CPU: --nodes belongs to the allocation executor.
    let refused = study(&["submit", f, "--results", r, "--nodes", "2"], None).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--nodes: with `executor: slurm-jobs`"));
    let dry = study(&["submit", f, "--results", r, "--dry-run"], None).output().unwrap();
    let script = String::from_utf8_lossy(&dry.stdout);
    assert!(script.contains("#SBATCH --cpus-per-task=1\n") && !script.contains("--gres"), "{script}");
    assert!(script.contains(&format!("#SBATCH --job-name=anisostudy.{name}.")), "{script}");
    let out = study(&["submit", f, "--results", r, "--time", "10"], None).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let job =
        Allocation(stdout.split("submitted job ").nth(1).unwrap().split(':').next().unwrap().to_owned());
    wait_jobs(name, Duration::from_secs(60), |jobs| jobs.iter().filter(|j| j.2 == "RUNNING").count() == 2);
    let running: Vec<String> = jobs_of(name).into_iter().filter(|j| j.2 == "RUNNING").map(|j| j.0).collect();
    assert!(Command::new("scontrol").args(["requeue", &job.0]).status().unwrap().success());
    let text = until_completed(&job, &results, name, Duration::from_secs(150));
    assert!(text.contains("Restarts=1"), "{text}");
    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 4);
    // The jobs running at the requeue were followed again, not submitted again.
    let followed = (0..4)
        .filter(|trial| {
            let log = results.join(name).join("trials").join(trial.to_string()).join("stderr.log");
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("which an earlier run of the study submitted")
        })
        .count();
    assert!(followed >= 1, "no trial job was followed again (running at the requeue: {running:?})");
}

/// h. `trials_per_gpu: 4`: each trial job asks for a quarter of a GPU's
/// shards (`--gres=shard:1` of the test cluster's 4 per GPU), and the four
/// trials run at once on one GPU (the other node is held by another job),
/// with the local executor's table.
#[test]
fn four_trial_jobs_share_one_gpu() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-h");
    let want = local_table(dir.path(), name, 4, 3.0, 4);
    let other = Command::new("sbatch")
        .args(["--parsable", "-w", "n2", "--exclusive", "-J", "anisostudy-test-other"])
        .args(["--output", "/dev/null", "--wrap", "sleep 120"])
        .output()
        .unwrap();
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    let _other = Allocation(String::from_utf8_lossy(&other.stdout).trim().to_owned());
    let resources = "{executor: slurm-jobs, slurm: {max_jobs: 4, trials_per_gpu: 4, cpus_per_trial: 1}}";
    let file = write(dir.path(), "h.yaml", &command_study(name, 4, 3.0, resources));
    let results = dir.path().join("results");
    let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], None)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 4);
    // Where each trial ran: node, CUDA_VISIBLE_DEVICES, start; and its end.
    let runs = trial_runs(&results, name, 4);
    assert!(runs.iter().all(|r| r.0 == "n1" && r.1 == runs[0].1 && !r.1.contains(',')), "{runs:?}");
    assert!(all_at_once(&runs), "the four trials did not run at once: {runs:?}");
    let gres = Command::new("squeue").args(["-h", "-r", "-t", "all", "-o", "%j %b"]).output().unwrap();
    let gres = String::from_utf8_lossy(&gres.stdout).into_owned();
    let ours: Vec<&str> = gres.lines().filter(|l| l.contains(&format!("anisostudy.{name}."))).collect();
    assert!(ours.len() == 4 && ours.iter().all(|l| l.ends_with("gres:shard:1")), "{gres}");
}

/// i. A trial job that uses more memory than `mem_per_trial` is killed by
/// Slurm (the test cluster's accounting poll, `OverMemoryKill`), and its
/// trial fails with the cause named and the key to raise.
#[test]
fn a_trial_job_out_of_memory_is_named_so() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-i");
    let study_text = format!(
        r#"
name: {name}
seed: 1
objective:
  command: >-
    python3 -c "import time; b = bytearray(600 * 2**20); b[::4096] = b'1' * len(b[::4096]); time.sleep(20); print('{{\"objective\": {{x}}}}')"
phases:
  - name: random
    sampler: {{type: random}}
    n_trials: 1
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
resources: {{executor: slurm-jobs, slurm: {{mem_per_trial: 200M, gpus_per_trial: 0}}}}
"#
    );
    let file = write(dir.path(), "i.yaml", &study_text);
    let results = dir.path().join("results");
    let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], None)
        .output()
        .unwrap();
    let rows = table(&results, name);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, TrialState::Failed, "{}", String::from_utf8_lossy(&out.stderr));
    let db = anisostudy::storage::Database::open_read_only(results.join(name).join("study.db")).unwrap();
    let details = db.open_study(name).unwrap().trial_details(0).unwrap();
    let said = details.fail_reason.clone().unwrap_or_default();
    assert!(
        said.contains("ran out of memory") && said.contains("raise resources.slurm.mem_per_trial"),
        "{said}"
    );
}

/// j. A sweep of six points with `max_jobs: 3`: its first three trials
/// start together and go in as one job array of three tasks, each task the
/// point of its trial; the rest follow as slots free up (together or not),
/// and the table is the local one's.
#[test]
fn a_sweep_goes_in_as_job_arrays() {
    let _cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !cluster_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = &unique("jobs-j");
    let sweep = |resources: &str| {
        format!(
            r#"
name: {name}
objective:
  command: >-
    sh -c 'sleep 1; echo "{{\"objective\": $(({{a}} * 10 + {{b}}))}}"'
sweep:
  values:
    a: [1, 2, 3]
    b: [0, 1]
mode: deterministic
resources: {resources}
"#
        )
    };
    run(
        &write(dir.path(), "local.yaml", &sweep("{devices: cpu, trials_per_device: 3}")),
        &dir.path().join("local"),
        None,
    );
    let want = table(&dir.path().join("local"), name);
    let file = write(
        dir.path(),
        "j.yaml",
        &sweep("{executor: slurm-jobs, slurm: {max_jobs: 3, gpus_per_trial: 0}}"),
    );
    let results = dir.path().join("results");
    run(&file, &results, None);
    assert_eq!(format!("{:#?}", table(&results, name)), format!("{want:#?}"));
    one_completed_job_per_trial(&results, name, 6);
    let jobs = jobs_of(name);
    let mut first: Vec<u64> = jobs
        .iter()
        .filter(|j| j.0.starts_with(&format!("{}_", jobs[0].0.split('_').next().unwrap())))
        .map(|j| j.1)
        .collect();
    first.sort();
    assert_eq!(first, [0, 1, 2], "the first three trials are one array's tasks: {jobs:?}");
}
