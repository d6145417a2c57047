//! What the tests of both Slurm executors share: the local cluster, the
//! `study` command, stored tables and the command study they run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anisostudy::hpo::{Params, TrialState};
use anisostudy::storage::{Database, TrialDetails};

pub const STUDY: &str = env!("CARGO_BIN_EXE_study");

/// Whether the local cluster answers with both nodes up.
pub fn cluster_up() -> bool {
    let out = Command::new("sinfo").args(["-h", "-N", "-o", "%N %t"]).output();
    let up = out.is_ok_and(|out| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
            && ["n1", "n2"].iter().all(|n| {
                text.lines().any(|l| {
                    l.starts_with(n) && ["idle", "mix", "alloc", "plnd"].iter().any(|s| l.contains(s))
                })
            })
    });
    if !up {
        eprintln!(
            "note: no Slurm cluster answers (start one with `bash tests/slurm/cluster.sh up`); skipping"
        );
    }
    up
}

/// A job allocation, cancelled on drop.
pub struct Allocation(pub String);

impl Allocation {
    pub fn new(args: &[&str]) -> Allocation {
        let out = Command::new("salloc").arg("--no-shell").args(args).output().expect("salloc runs");
        let text = String::from_utf8_lossy(&out.stderr);
        let id = text
            .split("Granted job allocation ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("salloc {args:?}: {text}"));
        Allocation(id.to_owned())
    }

    /// The study's job steps now running, by name.
    pub fn steps(&self) -> Vec<String> {
        let out = Command::new("squeue").args(["-h", "-s", "-j", &self.0, "-o", "%i %j"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, name)| name.trim().to_owned()))
            .filter(|name| name.starts_with("anisostudy."))
            .collect()
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.0).status();
    }
}

pub fn study(args: &[&str], job: Option<&Allocation>) -> Command {
    let mut command = Command::new(STUDY);
    command.args(args).stdin(Stdio::null()).env_remove("SLURM_JOB_ID");
    if let Some(job) = job {
        command.env("SLURM_JOB_ID", &job.0);
    }
    command
}

pub fn run(file: &Path, results: &Path, job: Option<&Allocation>) -> Output {
    let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()], job)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "study run failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A stored trial without timestamps, devices or attempts.
#[derive(Debug, PartialEq)]
pub struct Row {
    pub number: u64,
    pub state: TrialState,
    pub params: Params,
    pub value: Option<f64>,
    pub intermediate: BTreeMap<u64, f64>,
}

pub fn rows(details: Vec<TrialDetails>) -> Vec<Row> {
    details
        .into_iter()
        .map(|d| Row {
            number: d.trial.number,
            state: d.trial.state,
            params: d.trial.params,
            value: d.trial.value,
            intermediate: d.trial.intermediate,
        })
        .collect()
}

pub fn table(results: &Path, name: &str) -> Vec<Row> {
    let db = Database::open_read_only(results.join(name).join("study.db")).unwrap();
    rows(db.open_study(name).unwrap().all_trial_details().unwrap())
}

/// A TPE study of `n` `command` trials of `secs` seconds whose objective is
/// a fixed function of the parameters, so a deterministic run is exact.
pub fn command_study(name: &str, n: u32, secs: f64, resources: &str) -> String {
    format!(
        r#"
name: {name}
seed: 5
objective:
  command: >-
    sh -c 'echo "$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $(date +%s.%N)" > "$ANISOSTUDY_TRIAL_DIR/where";
    sleep {secs}; date +%s.%N >> "$ANISOSTUDY_TRIAL_DIR/where";
    awk "BEGIN {{ printf \"{{\\\"objective\\\": %.6f}}\\n\", ({{x}} - 0.3)^2 + ({{y}} - 4)^2 / 10 }}"'
phases:
  - name: tpe
    sampler: {{type: tpe, n_startup_trials: 4}}
    n_trials: {n}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
      y: {{type: int, low: 0, high: 8}}
mode: deterministic
resources: {resources}
"#
    )
}

/// Waits until `ready` holds for the stored trials (or `limit` passes).
pub fn wait_for(results: &Path, name: &str, limit: Duration, ready: impl Fn(&[Row]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let db = results.join(name).join("study.db");
        if db.is_file() {
            let rows = Database::open_read_only(&db)
                .ok()
                .and_then(|db| db.open_study(name).ok())
                .and_then(|s| s.all_trial_details().ok());
            if rows.is_some_and(|rows| ready(&self::rows(rows))) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name}: timed out waiting");
}

pub fn complete(rows: &[Row]) -> usize {
    rows.iter().filter(|r| r.state == TrialState::Complete).count()
}

/// The deterministic table of `command_study(name, 12, secs, …)` on 4 local slots.
pub fn local_table(dir: &Path, name: &str, secs: f64) -> Vec<Row> {
    let file =
        write(dir, "local.yaml", &command_study(name, 12, secs, "{devices: cpu, trials_per_device: 4}"));
    run(&file, &dir.join("local"), None);
    table(&dir.join("local"), name)
}

/// Waits until the job of study `name` COMPLETES, releasing it each time a
/// requeue holds it (a requeued job may start again only ~2 minutes later);
/// its `scontrol show job` text then. Panics with the controller's log when
/// it fails, times out or takes longer than `limit`.
pub fn until_completed(job: &Allocation, results: &Path, name: &str, limit: Duration) -> String {
    let id = &job.0;
    let log = || std::fs::read_to_string(results.join(format!("{name}/slurm/controller-{id}.out")));
    let start = Instant::now();
    let mut held_since: Option<Instant> = None;
    loop {
        let out = Command::new("scontrol").args(["show", "job", id]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Released 3 s after the hold is first seen: slurmd refuses to launch
        // a job whose credential is not newer, to the second, than the kill
        // of its earlier run ("already killed, do not launch batch job"),
        // and the job FAILS (the ~2-minute hold exists for this).
        let held = text.contains("Reason=BeginTime");
        if !held {
            held_since = None;
        } else if held_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
            let release = format!("jobid={id}");
            assert!(Command::new("scontrol")
                .args(["update", &release, "StartTime=now"])
                .status()
                .unwrap()
                .success());
        }
        if text.contains("JobState=COMPLETED") {
            return text;
        }
        assert!(
            !text.contains("JobState=TIMEOUT") && !text.contains("JobState=FAILED"),
            "{text}\n{:?}",
            log()
        );
        assert!(start.elapsed() < limit, "the job did not finish: {text}\n{:?}", log());
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Where each of trials `0..n` of study `name` ran, from the `where` file
/// of `command_study`: (node, CUDA_VISIBLE_DEVICES, start, end).
pub fn trial_runs(results: &Path, name: &str, n: u64) -> Vec<(String, String, f64, f64)> {
    (0..n)
        .map(|trial| {
            let path = results.join(name).join("trials").join(trial.to_string()).join("where");
            let text = std::fs::read_to_string(path).unwrap();
            let words: Vec<&str> = text.split_whitespace().collect();
            let [node, gpu, start, end] = words[..] else { panic!("trial {trial}: {text}") };
            (node.to_owned(), gpu.to_owned(), start.parse().unwrap(), end.parse().unwrap())
        })
        .collect()
}

/// Whether all the runs overlapped: the last started before the first ended.
pub fn all_at_once(runs: &[(String, String, f64, f64)]) -> bool {
    let last_start = runs.iter().map(|r| r.2).fold(f64::MIN, f64::max);
    let first_end = runs.iter().map(|r| r.3).fold(f64::MAX, f64::min);
    last_start < first_end
}
