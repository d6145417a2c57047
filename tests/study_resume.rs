//! End to end with the real binary and the built-in AnisoNet objective on
//! tiny synthetic data: kill-and-resume gives the uninterrupted result,
//! reruns agree, infeasible and diverging trials fail with their reason,
//! `status` and `export` read a running study, bad input exits with 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anisostudy::hpo::{Params, TrialState};
use anisostudy::storage::Database;

const STUDY: &str = env!("CARGO_BIN_EXE_study");

/// A tiny deterministic search: 6 TPE trials of 4 epochs on 2 slots, pruned
/// by the median rule.
const TINY: &str = r#"
name: tiny
seed: 11
dataset:
  synthetic: {size: 40, seed: 3}
model: {kind: equivariant, em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 4, batch_size: 8, patience: 4}
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 2}
    n_trials: 6
    space:
      lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
      em_dim: {type: int, low: 2, high: 6, step: 2}
pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 1}
resources: {devices: cpu, trials_per_device: 2, cpu_threads_per_trial: 1}
mode: deterministic
"#;

/// What a trial ended as, without timestamps, devices or attempts.
/// Compared through its `Debug` text (see [`text`]).
#[derive(Debug)]
#[allow(dead_code)]
struct Row {
    number: u64,
    state: TrialState,
    params: Params,
    value: Option<f64>,
    intermediate: BTreeMap<u64, f64>,
    metrics: BTreeMap<String, f64>,
    seed: Option<u64>,
    fail_reason: Option<String>,
}

fn table(results: &Path, name: &str) -> Vec<Row> {
    try_table(results, name).expect("the study's database")
}

/// The stored trials, or `None` while the database is not there yet.
fn try_table(results: &Path, name: &str) -> Option<Vec<Row>> {
    let db = Database::open_read_only(results.join(name).join("study.db")).ok()?;
    let store = db.open_study(name).ok()?;
    let rows = store
        .all_trial_details()
        .ok()?
        .into_iter()
        .map(|d| Row {
            number: d.trial.number,
            state: d.trial.state,
            params: d.trial.params,
            value: d.trial.value,
            intermediate: d.trial.intermediate,
            // Costs measured in the run (time, memory) differ from run to run.
            metrics: d
                .metrics
                .into_iter()
                .filter(|(name, _)| !anisostudy::train::metrics::MEASURED_METRICS.contains(&name.as_str()))
                .collect(),
            seed: d.seed,
            fail_reason: d.fail_reason,
        })
        .collect();
    Some(rows)
}

/// Rows as text: NaN metrics (an undefined a_r MAE) compare equal.
fn text(rows: &[Row]) -> String {
    format!("{rows:#?}")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn study(args: &[&str]) -> Command {
    let mut command = Command::new(STUDY);
    command.args(args).stdin(Stdio::null());
    command
}

fn run_to_end(file: &Path, results: &Path) -> Output {
    let out =
        study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "study run failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn spawn_run(file: &Path, results: &Path) -> Child {
    study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `ready` holds for the study's stored trials (or the run ends).
fn wait_for(child: &mut Child, results: &Path, name: &str, ready: impl Fn(&[Row]) -> bool) {
    let db = results.join(name).join("study.db");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        if db.is_file() && try_table(results, name).is_some_and(|rows| ready(&rows)) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the study did not get there in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A condition on the stored trials.
type Ready = dyn Fn(&[Row]) -> bool;

fn finished(rows: &[Row]) -> usize {
    rows.iter().filter(|r| r.state.is_finished()).count()
}

#[test]
fn killed_and_resumed_studies_end_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tiny.yaml", TINY);
    let reference = dir.path().join("reference");
    run_to_end(&file, &reference);
    let want = table(&reference, "tiny");
    assert_eq!(want.len(), 6);
    let complete: Vec<&Row> = want.iter().filter(|r| r.state == TrialState::Complete).collect();
    let pruned = want.iter().filter(|r| r.state == TrialState::Pruned).count();
    assert_eq!(complete.len() + pruned, 6, "{want:#?}");
    assert!(complete
        .iter()
        .all(|r| r.intermediate.len() == 4 && r.metrics.contains_key("test_eps_poly_mae")));

    // Kill the controller mid-epoch of the first batch, when one trial of
    // the second batch has finished and the other runs, and in the middle of
    // the third.
    let points: [&Ready; 3] =
        [&|rows| rows.iter().any(|r| !r.intermediate.is_empty()), &|rows| finished(rows) >= 3, &|rows| {
            finished(rows) >= 4 && rows.iter().any(|r| !r.state.is_finished() && !r.intermediate.is_empty())
        }];
    let results = dir.path().join("killed");
    for ready in points {
        let mut child = spawn_run(&file, &results);
        wait_for(&mut child, &results, "tiny", ready);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = run_to_end(&file, &results);
    let summary = format!("study tiny: {} complete, {pruned} pruned, 0 failed", complete.len());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&summary));
    assert_eq!(text(&table(&results, "tiny")), text(&want));
    let db = Database::open_read_only(results.join("tiny/study.db")).unwrap();
    let requeued =
        db.open_study("tiny").unwrap().all_trial_details().unwrap().iter().filter(|d| d.attempt > 0).count();
    assert!(requeued >= 2, "the kills interrupted running trials ({requeued} requeued)");
}

#[test]
fn the_same_study_and_seed_give_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tiny.yaml", TINY);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_to_end(&file, &a);
    run_to_end(&file, &b);
    let (ta, tb) = (table(&a, "tiny"), table(&b, "tiny"));
    assert_eq!(ta.len(), 6);
    assert_eq!(text(&ta), text(&tb));
}

#[test]
fn a_deterministic_sweep_on_two_slots_gives_the_table_of_one_slot() {
    // Nothing a sweep samples depends on finished trials, so its trials start
    // as slots free up; the results must still be those of a sequential run.
    let sweep = r#"
name: ablation
seed: 3
dataset: {synthetic: {size: 40, seed: 2}}
model: {em_dim: 4, layers: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 3, batch_size: 8}
sweep:
  values:
    kind: [equivariant, scalar]
    lmax: [1, 2]
resources: {devices: cpu, trials_per_device: 2, cpu_threads_per_trial: 1}
mode: deterministic
"#;
    let dir = tempfile::tempdir().unwrap();
    let two = write(dir.path(), "two.yaml", sweep);
    let one = write(dir.path(), "one.yaml", &sweep.replace("trials_per_device: 2", "trials_per_device: 1"));
    run_to_end(&two, &dir.path().join("two"));
    run_to_end(&one, &dir.path().join("one"));
    let rows = table(&dir.path().join("two"), "ablation");
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.state == TrialState::Complete), "{rows:#?}");
    assert_eq!(text(&rows), text(&table(&dir.path().join("one"), "ablation")));
}

#[test]
fn infeasible_and_diverging_trials_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "cells.yaml",
        r#"
name: cells
seed: 2
dataset: {synthetic: {size: 30, seed: 1}}
model: {em_dim: 4, layers: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 2, batch_size: 8, weight_decay: 0.0}
sweep:
  values:
    kind: [equivariant]
    lmax: [0, 1]
    lr: [0.01, 1.0e6]
resources: {devices: cpu, trials_per_device: 2}
mode: deterministic
"#,
    );
    let results = dir.path().join("results");
    let out = run_to_end(&file, &results);
    let rows = table(&results, "cells");
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let lmax = row.params["lmax"].as_i64().unwrap();
        let lr = row.params["lr"].as_f64().unwrap();
        let reason = row.fail_reason.as_deref().unwrap_or_default();
        match (lmax, lr > 1.0) {
            (0, _) => {
                assert_eq!(row.state, TrialState::Failed);
                assert!(reason.contains("lmax = 0"), "{reason}");
            }
            (_, true) => {
                assert_eq!(row.state, TrialState::Failed);
                assert!(reason.contains("diverged (NaN loss)"), "{reason}");
            }
            _ => assert_eq!(row.state, TrialState::Complete, "{reason}"),
        }
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("study cells: 1 complete, 0 pruned, 3 failed"));
}

#[test]
fn status_and_export_read_a_running_study() {
    let dir = tempfile::tempdir().unwrap();
    let slow = TINY.replace("epochs: 4", "epochs: 40").replace("patience: 4", "patience: 40");
    let file = write(dir.path(), "tiny.yaml", &slow);
    let results = dir.path().join("results");
    let mut child = spawn_run(&file, &results);
    wait_for(&mut child, &results, "tiny", |rows| rows.iter().any(|r| r.intermediate.len() >= 2));
    assert!(child.try_wait().unwrap().is_none(), "the study should still run");

    let r = results.to_str().unwrap();
    let status = study(&["status", "--results", r]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("study tiny") && text.contains("RUNNING"), "{text}");
    assert!(text.contains("controller: running (pid"), "{text}");
    assert!(text.contains("cpu:0") && text.contains("at epoch"), "{text}");

    let json = study(&["export", "tiny", "--results", r, "--format", "json"]).output().unwrap();
    assert!(json.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["study"]["name"], "tiny");
    assert!(!doc["trials"].as_array().unwrap().is_empty());

    let csv_path = dir.path().join("trials.csv");
    let csv = study(&["export", "--results", r, "--format", "csv", "--out", csv_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(csv.status.success());
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    // Optuna's trials_dataframe() columns.
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("number,value,datetime_start,datetime_complete,duration,params_em_dim,params_lr"),
        "{csv}"
    );
    assert!(header.contains(",user_attrs_attempt,") && header.ends_with(",state"), "{header}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_input_exits_with_code_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", &TINY.replace("em_dim: {type: int", "em_dimm: {type: int"));
    let out =
        study(&["run", file.to_str().unwrap(), "--results", dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("em_dimm") && err.contains("em_dim"), "{err}");

    let missing = study(&["status", "nothing", "--results", dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no study.db"));
}

/// Four trials sharing one GPU, on the engine's emulation: four trial
/// processes on the one device at once, each training its run on the
/// device, to the CPU's results within f32 rounding.
#[test]
fn four_trials_share_one_gpu() {
    let shared = r#"
name: shared
seed: 2
dataset:
  synthetic: {size: 24, seed: 3}
model: {kind: equivariant, em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 2, batch_size: 8, patience: 4}
phases:
  - name: grid
    sampler: {type: grid, values: {lr: [0.001, 0.002, 0.003, 0.004]}}
resources: {devices: [gpu-emulated], trials_per_device: 4, cpu_threads_per_trial: 1}
"#;
    let dir = tempfile::tempdir().unwrap();
    let on_gpu = dir.path().join("gpu");
    run_to_end(&write(dir.path(), "gpu.yaml", shared), &on_gpu);
    let db = Database::open_read_only(on_gpu.join("shared").join("study.db")).unwrap();
    let details = db.open_study("shared").unwrap().all_trial_details().unwrap();
    assert_eq!(details.len(), 4);
    assert!(details
        .iter()
        .all(|d| d.trial.state == TrialState::Complete && d.device.as_deref() == Some("gpu-emulated")));
    let first_end = details.iter().map(|d| d.finished.unwrap()).min().unwrap();
    assert!(details.iter().all(|d| d.started.unwrap() < first_end), "the four ran on the device at once");

    let on_cpu = dir.path().join("cpu");
    let cpu =
        shared.replace("devices: [gpu-emulated], trials_per_device: 4", "devices: cpu, trials_per_device: 2");
    run_to_end(&write(dir.path(), "cpu.yaml", &cpu), &on_cpu);
    for (g, c) in table(&on_gpu, "shared").iter().zip(table(&on_cpu, "shared")) {
        let (a, b) = (g.value.unwrap(), c.value.unwrap());
        assert!((a - b).abs() <= 1e-4 * b.abs(), "trial {}: {a} on the GPU, {b} on the CPU", g.number);
    }
}
