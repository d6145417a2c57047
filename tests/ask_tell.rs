//! `study ask` and `study tell`: a study whose trials an outside driver runs,
//! driven through the real binary as a workflow engine would drive it.

use std::path::Path;
use std::process::{Command, Output};

use anisostudy::hpo::TrialState;
use anisostudy::storage::Database;

const STUDY: &str = r#"
name: ext
seed: 7
objective:
  command: echo {x}
  direction: minimize
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 4}
    n_trials: 24
    space:
      x: {type: float, low: -2.0, high: 2.0}
pruner: {type: median, n_startup_trials: 1}
resources: {executor: external, devices: cpu}
"#;

fn study(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_study"))
        .args(args)
        .arg("--results")
        .arg(dir.join("results"))
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status.code());
    String::from_utf8(output.stdout).unwrap()
}

fn refused(output: Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "bad input exits 2: {stderr}");
    assert!(stderr.contains(expected), "{stderr:?} lacks {expected:?}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

fn asked(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ext.yaml"), STUDY).unwrap();
    dir
}

fn states(dir: &Path) -> Vec<TrialState> {
    let db = Database::open_read_only(dir.join("results/ext/study.db")).unwrap();
    db.open_study("ext").unwrap().all_trial_details().unwrap().iter().map(|t| t.trial.state).collect()
}

#[test]
fn a_driver_asks_runs_and_tells_until_the_study_is_done() {
    let dir = setup();
    let first = asked(&ok(study(dir.path(), &["ask", "ext.yaml", "--n", "3"])));
    assert_eq!(first.len(), 3);
    for (k, trial) in first.iter().enumerate() {
        assert_eq!(trial["number"], k as u64);
        assert_eq!(trial["study"], "ext");
        let x = trial["params"]["x"].as_f64().unwrap();
        // The command is the study's, with the trial's parameters filled in.
        assert_eq!(trial["command"], serde_json::json!(["echo", x.to_string()]));
        assert!(Path::new(trial["trial_dir"].as_str().unwrap()).is_dir());
        assert_eq!(trial["env"]["ANISOSTUDY_SEED"], trial["seed"].to_string());
    }
    assert_eq!(states(dir.path()), [TrialState::Running; 3]);
    let status = ok(study(dir.path(), &["status", "ext"]));
    assert!(
        status.contains("drivers: outside (executor: external); 3 trial(s) asked for and not yet told"),
        "{status}"
    );
    // By name from now on, as a driver elsewhere would.
    for trial in &first {
        let (n, x) = (trial["number"].to_string(), trial["params"]["x"].as_f64().unwrap());
        ok(study(dir.path(), &["tell", "ext", "--trial", &n, "--value", &(x * x).to_string()]));
    }
    loop {
        let out = ok(study(dir.path(), &["ask", "ext"]));
        let Some(trial) = asked(&out).pop() else { break };
        let x = trial["params"]["x"].as_f64().unwrap();
        let n = trial["number"].to_string();
        ok(study(
            dir.path(),
            &["tell", "ext", "--trial", &n, "--value", &(x * x).to_string(), "--metric", "size=3"],
        ));
    }
    let states = states(dir.path());
    assert_eq!(states, [TrialState::Complete; 24]);
    // TPE learned from the told values, the constant liar from the running ones.
    let db = Database::open_read_only(dir.path().join("results/ext/study.db")).unwrap();
    let trials = db.open_study("ext").unwrap().all_trial_details().unwrap();
    let best = trials.iter().filter_map(|t| t.trial.value).fold(f64::INFINITY, f64::min);
    assert!(best < 0.05, "best x² after 24 trials: {best}");
    assert_eq!(trials[10].metrics.get("size"), Some(&3.0));
}

#[test]
fn intermediate_values_prune_and_failures_are_recorded() {
    let dir = setup();
    let trials = asked(&ok(study(dir.path(), &["ask", "ext.yaml", "--n", "2"])));
    let (a, b) = (trials[0]["number"].to_string(), trials[1]["number"].to_string());
    ok(study(dir.path(), &["tell", "ext", "--trial", &a, "--step", "1", "--intermediate", "0.1"]));
    ok(study(dir.path(), &["tell", "ext", "--trial", &a, "--value", "0.1"]));
    let answer = ok(study(
        dir.path(),
        &["tell", "ext", "--trial", &b, "--step", "1", "--intermediate", "5.0", "--should-prune"],
    ));
    assert_eq!(answer.trim(), "true", "worse than the median of finished trials at step 1");
    ok(study(dir.path(), &["tell", "ext", "--trial", &b, "--state", "pruned"]));
    let c = asked(&ok(study(dir.path(), &["ask", "ext"])))[0]["number"].to_string();
    ok(study(dir.path(), &["tell", "ext", "--trial", &c, "--state", "fail", "--reason", "out of memory"]));
    assert_eq!(states(dir.path()), [TrialState::Complete, TrialState::Pruned, TrialState::Failed]);
    let db = Database::open_read_only(dir.path().join("results/ext/study.db")).unwrap();
    let pruned = db.open_study("ext").unwrap().trial_details(1).unwrap();
    assert_eq!(pruned.trial.value, Some(5.0), "a pruned trial keeps its last value, as in Optuna");
}

#[test]
fn trials_of_a_gone_driver_fail_once_their_heartbeat_is_stale() {
    let dir = setup();
    ok(study(dir.path(), &["ask", "ext.yaml", "--n", "2"]));
    std::thread::sleep(std::time::Duration::from_millis(2200));
    ok(study(dir.path(), &["tell", "ext", "--trial", "1", "--heartbeat"]));
    let out = study(dir.path(), &["ask", "ext", "--stale-after", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(asked(&ok(out))[0]["number"], 2);
    assert!(stderr.contains("trial 0 FAILED (no heartbeat for 2 s)"), "{stderr}");
    assert_eq!(states(dir.path()), [TrialState::Failed, TrialState::Running, TrialState::Running]);
}

#[test]
fn drivers_in_many_processes_at_once_lose_nothing() {
    let dir = setup();
    ok(study(dir.path(), &["ask", "ext.yaml", "--n", "0"]));
    let drivers: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let mut told = Vec::new();
                loop {
                    let Some(trial) = asked(&ok(study(&path, &["ask", "ext"]))).pop() else { return told };
                    let n = trial["number"].as_u64().unwrap();
                    let x = trial["params"]["x"].as_f64().unwrap();
                    ok(study(&path, &["tell", "ext", "--trial", &n.to_string(), "--value", &x.to_string()]));
                    told.push(n);
                }
            })
        })
        .collect();
    let mut told: Vec<u64> = drivers.into_iter().flat_map(|d| d.join().unwrap()).collect();
    told.sort();
    assert_eq!(told, (0..24).collect::<Vec<_>>(), "every trial handed out once, and told");
    assert_eq!(states(dir.path()), [TrialState::Complete; 24]);
}

#[test]
fn bad_requests_exit_2_with_what_to_do() {
    let dir = setup();
    ok(study(dir.path(), &["ask", "ext.yaml"]));
    ok(study(dir.path(), &["tell", "ext", "--trial", "0", "--value", "1"]));
    refused(
        study(dir.path(), &["tell", "ext", "--trial", "0", "--value", "1"]),
        "the trial is COMPLETE, not RUNNING",
    );
    refused(study(dir.path(), &["tell", "ext", "--trial", "9", "--value", "1"]), "no such trial");
    refused(study(dir.path(), &["tell", "ext", "--trial", "0"]), "nothing to tell");
    refused(study(dir.path(), &["tell", "ext", "--trial", "0", "--values", "1,2"]), "one objective");
    refused(study(dir.path(), &["ask", "nope"]), "neither a study file nor a study");
    refused(study(dir.path(), &["ask", "ext", "--stale-after", "soon"]), "--stale-after soon");
    // `study run` does not run an external study's trials …
    refused(study(dir.path(), &["run", "ext.yaml"]), "run by an external driver");
    // … nor is a study run by `study run` asked for trials.
    std::fs::write(dir.path().join("local.yaml"), STUDY.replace("executor: external", "executor: local"))
        .unwrap();
    refused(study(dir.path(), &["ask", "local.yaml"]), "run by `study run`");
    // A deterministic study needs its controller.
    std::fs::write(dir.path().join("det.yaml"), format!("{STUDY}mode: deterministic\n")).unwrap();
    refused(study(dir.path(), &["ask", "det.yaml"]), "cannot have its trials run by an external driver");
}

/// Constraints told by a driver: a bound on a told metric and a value of
/// its own; a COMPLETE tell without them is refused and the trial stays
/// RUNNING; a timeout it reports counts as infeasible.
#[test]
fn constraints_are_told_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let text = STUDY.replace("pruner: {type: median, n_startup_trials: 1}\n", "")
        + "constraints:\n  - {metric: size, max: 4}\n  - {name: memory}\nfailures: infeasible\n";
    std::fs::write(dir.path().join("ext.yaml"), text).unwrap();
    let trials = asked(&ok(study(dir.path(), &["ask", "ext.yaml", "--n", "3"])));
    refused(
        study(dir.path(), &["tell", "ext", "--trial", "0", "--value", "1", "--constraints", "-1"]),
        "needs metric `size`, which the trial did not report",
    );
    refused(
        study(dir.path(), &["tell", "ext", "--trial", "0", "--value", "1", "--metric", "size=3"]),
        "the study declares 1 reported constraint(s), but the trial's result line gave 0",
    );
    assert_eq!(states(dir.path()), [TrialState::Running; 3], "refused tells change nothing");
    ok(study(
        dir.path(),
        &["tell", "ext", "--trial", "0", "--value", "1", "--metric", "size=3", "--constraints", "-1"],
    ));
    ok(study(
        dir.path(),
        &["tell", "ext", "--trial", "1", "--value", "0.5", "--metric", "size=5", "--constraints", "-1"],
    ));
    ok(study(
        dir.path(),
        &["tell", "ext", "--trial", "2", "--state", "fail", "--reason", "CUDA out of memory"],
    ));
    let db = Database::open_read_only(dir.path().join("results/ext/study.db")).unwrap();
    let stored = db.open_study("ext").unwrap().all_trial_details().unwrap();
    let constraints: Vec<Option<Vec<f64>>> = stored.iter().map(|t| t.trial.constraints.clone()).collect();
    assert_eq!(constraints, [Some(vec![-1.0, -1.0]), Some(vec![1.0, -1.0]), Some(vec![1e300, 1e300])]);
    let status = ok(study(dir.path(), &["status", "ext"]));
    assert!(status.contains("constraints: 1 of 3 measured trials feasible"), "{status}");
    assert!(status.contains("best: trial 0  value 1.000000"), "the better value 0.5 is infeasible: {status}");
    assert_eq!(trials.len(), 3);
}
