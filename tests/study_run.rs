//! End to end: a study file with a `command` objective, run by the real
//! controller (TPE/random/grid over the SQLite database) on CPU slots.

use std::path::Path;
use std::time::Duration;

use anisostudy::exec::devices::Machine;
use anisostudy::exec::scheduler::StopLevel;
use anisostudy::hpo::{ParamValue, TrialState};
use anisostudy::storage::{Database, TrialDetails};
use anisostudy::study::{self, run_plan};
use tokio::sync::watch;

#[path = "support/constrained.rs"]
mod constrained;

fn machine() -> Machine {
    Machine { cpu_cores: 4, gpus: Vec::new(), cuda_build: false }
}

fn never_stop() -> watch::Receiver<StopLevel> {
    let (tx, rx) = watch::channel(StopLevel::Run);
    std::mem::forget(tx);
    rx
}

fn write_study(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("study.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn trials(results: &Path, name: &str) -> Vec<TrialDetails> {
    let db = Database::open_read_only(results.join(name).join("study.db")).unwrap();
    db.open_study(name).unwrap().all_trial_details().unwrap()
}

fn x(trial: &TrialDetails) -> f64 {
    trial.trial.params["x"].as_f64().unwrap()
}

const QUADRATIC: &str = r#"
name: quad
seed: 5
objective:
  command: >-
    sh -c 'if awk "BEGIN { exit !({x} > 1.5) }"; then echo "too large" >&2; exit 3; fi;
    echo "{\"step\": 1, \"value\": {x}}"; echo "{\"objective\": {x}}"'
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 3}
    n_trials: 8
    space:
      x: {type: float, low: 0.0, high: 2.0}
  - name: grid
    sampler:
      type: grid_around_best
      axes:
        x: {count: 3, spacing: linear, step: 0.1}
resources:
  devices: cpu
  trials_per_device: 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_study_runs_its_phases_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let plan = study::load(&write_study(dir.path(), QUADRATIC), &[]).unwrap();
    let results = dir.path().join("results");
    let summary = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();

    let trials = trials(&results, "quad");
    assert_eq!(trials.len(), 11, "8 TPE trials and a 3-point grid");
    assert_eq!(summary.complete + summary.failed, 11);
    for t in &trials {
        match t.trial.state {
            TrialState::Complete => {
                // serde_json reads decimals to within one ulp.
                let close = |v: f64| (v - x(t)).abs() <= 1e-15 * x(t).abs();
                assert!(close(t.trial.value.unwrap()), "the objective is the command's output");
                assert!(close(t.trial.intermediate[&1]), "the intermediate value is recorded");
                assert!(t.seed.is_some() && t.device.as_deref().unwrap().starts_with("cpu:"));
            }
            TrialState::Failed => {
                assert!(x(t) > 1.5);
                assert_eq!(t.fail_reason.as_deref(), Some("exited with code 3; stderr: too large"));
            }
            other => panic!("trial {} ended {other:?}", t.trial.number),
        }
        assert!(t.artifacts.iter().any(|a| a.kind == "stdout"));
    }
    // The grid is centred on the best TPE trial.
    let best =
        trials[..8].iter().filter(|t| t.trial.state == TrialState::Complete).map(x).fold(f64::MAX, f64::min);
    let grid: Vec<f64> = trials[8..].iter().map(x).collect();
    assert!(grid.iter().any(|v| (v - best).abs() < 1e-12), "grid {grid:?} around {best}");
}

const SLEEPY: &str = r#"
name: sleepy
seed: 9
objective:
  # Sleeps a random time (seeded by the pid), so every run has other timings.
  command: >-
    sh -c 'sleep $(awk "BEGIN { srand($$); print rand() / 5 }"); echo "{\"objective\": {t}}"'
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 2}
    n_trials: 8
    space:
      t: {type: float, low: 0.05, high: 0.3, step: 0.01}
resources:
  devices: cpu
  trials_per_device: 2
mode: deterministic
"#;

fn sampled(results: &Path, name: &str) -> Vec<(u64, ParamValue)> {
    trials(results, name).iter().map(|t| (t.trial.number, t.trial.params["t"].clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_mode_samples_the_same_trials_whatever_the_timing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), SLEEPY);
    let plan = study::load(&path, &[]).unwrap();
    run_plan(&plan, &dir.path().join("a"), &machine(), never_stop()).await.unwrap();
    run_plan(&plan, &dir.path().join("b"), &machine(), never_stop()).await.unwrap();
    let a = sampled(&dir.path().join("a"), "sleepy");
    assert_eq!(a.len(), 8);
    assert_eq!(a, sampled(&dir.path().join("b"), "sleepy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_study_resumes_with_its_interrupted_trials_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), SLEEPY);
    let plan = study::load(&path, &["mode=async".into()]).unwrap();
    let results = dir.path().join("results");

    let (tx, rx) = watch::channel(StopLevel::Run);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tx.send(StopLevel::Kill).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let first = run_plan(&plan, &results, &machine(), rx).await.unwrap();
    stopper.abort();
    assert!(first.stopped && first.interrupted > 0, "{first:?}");
    let after_stop = trials(&results, "sleepy");
    let waiting: Vec<u64> =
        after_stop.iter().filter(|t| t.trial.state == TrialState::Waiting).map(|t| t.trial.number).collect();
    assert_eq!(waiting.len(), first.interrupted);
    assert!(after_stop.iter().all(|t| t.trial.state != TrialState::Running));

    let second = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    assert!(!second.stopped);
    let done = trials(&results, "sleepy");
    assert_eq!(done.len(), 8, "the budget counts the interrupted trials once");
    assert!(done.iter().all(|t| t.trial.state == TrialState::Complete));
    for number in waiting {
        let t = &done[number as usize];
        assert_eq!(t.trial.params, after_stop[number as usize].trial.params);
        assert_eq!(t.attempt, 1, "a requeue counts one more attempt");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_controller_on_the_same_study_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = study::load(&write_study(dir.path(), SLEEPY), &[]).unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("sleepy")).unwrap();
    std::fs::write(results.join("sleepy/controller.lock"), format!("{}\n", std::process::id())).unwrap();
    let err = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap_err();
    assert!(err.to_string().contains("another controller"), "{err}");
    // A lock left by a process that is gone is taken over.
    std::fs::write(results.join("sleepy/controller.lock"), "999999999\n").unwrap();
    run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    assert!(!results.join("sleepy/controller.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_takes_the_other_parameters_from_the_best_trial_of_a_finished_study() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let search = r#"
name: search
objective:
  command: >-
    sh -c 'echo "{\"objective\": {x}}"'
phases:
  - name: grid
    sampler: {type: grid, values: {x: [3, 1, 2]}}
resources: {devices: cpu, trials_per_device: 2}
"#;
    let sweep = r#"
name: ablation
objective:
  command: >-
    sh -c 'echo "{\"objective\": {x}{y}}"'
sweep:
  values: {y: [5, 6]}
  best_of: search
resources: {devices: cpu, trials_per_device: 2}
"#;
    let plan = study::load(&write_study(dir.path(), search), &[]).unwrap();
    run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let plan = study::load(&write_study(dir.path(), sweep), &[]).unwrap();
    run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let mut values: Vec<f64> = trials(&results, "ablation").iter().map(|t| t.trial.value.unwrap()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [15.0, 16.0], "x = 1 comes from the best trial of `search`");

    // Without a finished study to take them from, the sweep is refused.
    let orphan =
        sweep.replace("best_of: search", "best_of: missing").replace("name: ablation", "name: orphan");
    let plan = study::load(&write_study(dir.path(), &orphan), &[]).unwrap();
    let err = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap_err();
    assert!(err.to_string().contains("there is no study `missing`"), "{err}");
}

/// A sweep whose first cell (in the seed's order) sleeps 2 s and the others
/// 0.1 s; nothing it samples depends on finished trials.
const UNEVEN_SWEEP: &str = r#"
name: uneven
seed: 4
objective:
  command: >-
    sh -c 'sleep {t}; echo "{\"objective\": {t}}"'
sweep:
  values: {t: [2.0, 0.1, 0.11, 0.12, 0.13]}
resources:
  devices: cpu
  trials_per_device: 2
mode: deterministic
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deterministic_sweep_starts_each_trial_as_soon_as_a_slot_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let plan = study::load(&write_study(dir.path(), UNEVEN_SWEEP), &[]).unwrap();
    assert!(!plan.config.depends_on_finish_order());
    let results = dir.path().join("results");
    run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let trials = trials(&results, "uneven");
    assert_eq!(trials.len(), 5);
    let slow = trials.iter().find(|t| t.trial.params["t"].as_f64() == Some(2.0)).unwrap();
    let during_slow = trials
        .iter()
        .filter(|t| t.trial.number != slow.trial.number && t.started.unwrap() < slow.finished.unwrap())
        .count();
    // In batches of two, one short trial would run beside the slow one and
    // the next batch would wait for it; free slots take the next cell now.
    assert_eq!(during_slow, 4, "every short trial ran while the slow one did");
}

#[test]
fn only_studies_that_read_finished_trials_need_batches() {
    let load =
        |text: &str| study::load(&write_study(tempfile::tempdir().unwrap().path(), text), &[]).unwrap();
    assert!(!load(UNEVEN_SWEEP).config.depends_on_finish_order(), "a sweep");
    assert!(load(SLEEPY).config.depends_on_finish_order(), "TPE learns from results");
    let pruned = format!("{UNEVEN_SWEEP}pruner: {{type: median}}\n");
    assert!(load(&pruned).config.depends_on_finish_order(), "a pruner compares trials");
    let retried = UNEVEN_SWEEP.replace(
        "sweep:\n  values: {t: [2.0, 0.1, 0.11, 0.12, 0.13]}",
        "phases:\n  - name: g\n    sampler: {type: grid, values: {t: [1, 2]}, retry_failed: true}",
    );
    assert!(load(&retried).config.depends_on_finish_order(), "a grid that reuses failed cells");
}

/// The GP sampler in deterministic mode: two runs with other timings ask the
/// same trials bit for bit, the later ones of each batch by the batch
/// acquisition over the earlier ones still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deterministic_gp_study_samples_the_same_trials_whatever_the_timing() {
    let dir = tempfile::tempdir().unwrap();
    let text = SLEEPY
        .replace("sampler: {type: tpe, n_startup_trials: 2}", "sampler: {type: gp, n_startup_trials: 3}")
        .replace(
            "t: {type: float, low: 0.05, high: 0.3, step: 0.01}",
            "t: {type: float, low: 0.05, high: 0.3}",
        );
    let plan = study::load(&write_study(dir.path(), &text), &[]).unwrap();
    run_plan(&plan, &dir.path().join("a"), &machine(), never_stop()).await.unwrap();
    run_plan(&plan, &dir.path().join("b"), &machine(), never_stop()).await.unwrap();
    let a = sampled(&dir.path().join("a"), "sleepy");
    assert_eq!(a.len(), 8);
    assert_eq!(a, sampled(&dir.path().join("b"), "sleepy"));
}

#[test]
fn sampler_auto_says_what_it_chose_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let text = QUADRATIC.replace("sampler: {type: tpe, n_startup_trials: 3}", "sampler: {type: auto}");
    let plan = study::load(&write_study(dir.path(), &text), &[]).unwrap();
    assert!(matches!(plan.config.phases[0].sampler, anisostudy::hpo::SamplerConfig::Gp(_)));
    assert_eq!(plan.notes.len(), 1);
    assert!(
        plan.notes[0]
            .starts_with("phase `tpe`: sampler auto chose gp: 8 trials over 1 parameter, 0 categorical"),
        "{}",
        plan.notes[0]
    );
}

/// A conditional space through a whole study: TPE then a grid around the
/// best; `momentum` exists only with sgd, and its placeholder is an empty
/// word in the other trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_space_runs_with_empty_placeholders_and_a_conditional_grid() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name: cond
seed: 3
objective:
  command: >-
    sh -c 'if [ "$1" = sgd ]; then v=$(awk "BEGIN { print ($2 - 0.9)^2 }"); else [ -z "$2" ] || exit 7; v=0.5; fi;
    echo "{\"objective\": $v}"' cond {optimizer} {momentum}
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 4, multivariate: true}
    n_trials: 12
    space:
      optimizer: {type: categorical, choices: [adamw, sgd]}
      momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
  - name: grid
    sampler:
      type: grid_around_best
      axes:
        optimizer: [adamw, sgd]
        momentum: [0.85, 0.9]
resources: {devices: cpu, trials_per_device: 2}
"#;
    let plan = study::load(&write_study(dir.path(), text), &[]).unwrap();
    let results = dir.path().join("results");
    let summary = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let all = trials(&results, "cond");
    assert_eq!(all.len(), 12 + 3, "{summary:?}");
    for t in &all {
        assert_eq!(t.trial.state, anisostudy::hpo::TrialState::Complete, "{:?}", t.trial);
        let sgd = t.trial.params["optimizer"].as_str() == Some("sgd");
        assert_eq!(t.trial.params.contains_key("momentum"), sgd, "{:?}", t.trial.params);
    }
    let grid: Vec<_> = all.iter().filter(|t| t.trial.phase == 1).collect();
    assert_eq!(grid.iter().filter(|t| !t.trial.params.contains_key("momentum")).count(), 1);
}

/// Constraints through a whole study: a bound on a metric the command
/// prints, a value it reports itself, and trials that time out counted as
/// infeasible. The best trial, and so the grid around it, is the best
/// feasible one, though infeasible trials have better values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_decide_the_best_trial_and_timeouts_count_as_infeasible() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name: cons\nseed: 4\n{}{}",
        constrained::OBJECTIVE_AND_CONSTRAINTS,
        r#"phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 6}
    n_trials: 20
    space:
      x: {type: float, low: 0.0, high: 2.0}
      y: {type: float, low: 0.0, high: 1.0}
  - name: grid
    sampler:
      type: grid_around_best
      axes:
        x: best
        y: {count: 3, spacing: linear, step: 0.01}
resources: {devices: cpu, trials_per_device: 2, trial_timeout: 2s}
mode: deterministic
"#
    );
    let plan = study::load(&write_study(dir.path(), &text), &[]).unwrap();
    let results = dir.path().join("results");
    let summary = run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let all = trials(&results, "cons");
    assert!(all.iter().any(|t| t.trial.state == TrialState::Failed), "a trial timed out");
    assert_eq!(all.len(), 23, "{summary:?}");
    let y = |t: &TrialDetails| t.trial.params["y"].as_f64().unwrap();
    for t in &all {
        let constraints = t.trial.constraints.as_deref().unwrap_or_else(|| panic!("{:?}", t.trial));
        match t.trial.state {
            TrialState::Complete => {
                assert!((constraints[0] - (10.0 * x(t) - 15.0)).abs() < 1e-9, "{constraints:?}");
                assert!((constraints[1] - (y(t) - 0.5)).abs() < 1e-9, "{constraints:?}");
                assert!((t.metrics["cost"] - 10.0 * x(t)).abs() < 1e-9, "{:?}", t.metrics);
            }
            TrialState::Failed => {
                assert!(x(t) > 1.8, "{:?}", t.trial);
                assert!(t.fail_reason.as_deref().unwrap().starts_with("timed out"), "{:?}", t.fail_reason);
                assert_eq!(constraints, [1e300, 1e300]);
            }
            other => panic!("trial {} ended {other:?}", t.trial.number),
        }
    }
    let infeasible_better = all.iter().filter(|t| !t.trial.is_feasible() && t.trial.value.is_some()).count();
    assert!(infeasible_better > 0, "some trials broke a bound");
    let (best, value) = TrialDetails::best(&all, plan.config.direction).expect("a feasible trial");
    assert!(best.trial.is_feasible() && x(best) <= 1.5 && y(best) <= 0.5, "{:?}", best.trial);
    assert!(value < -1.0, "TPE found a good feasible x: {value}");
    let tpe_best = TrialDetails::best(&all[..20], plan.config.direction).unwrap().0;
    assert!(all[20..].iter().all(|t| x(t) == x(tpe_best)), "the grid is centred on the best feasible trial");
}

/// Two objectives from a command's result line, searched by NSGA-II then
/// multi-objective TPE: every COMPLETE trial carries both values, a line
/// with the wrong count fails its trial with the reason, and `status`
/// shows the Pareto set, which no other trial dominates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_objectives_from_a_command_make_a_pareto_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name: pareto
seed: 3
objective:
  command: >-
    sh -c 'if awk "BEGIN { exit !({x} > 1.9) }"; then echo "{\"objectives\": [{x}]}"; exit 0; fi;
    awk "BEGIN { printf \"{\\\"objectives\\\": [%.17g, %.17g]}\n\", {x}, (2 - {x}) ^ 2 + {y} }"'
  directions: [minimize, minimize]
  names: [size, error]
phases:
  - name: evolve
    sampler: {type: nsga2, population_size: 4}
    n_trials: 12
    space:
      x: {type: float, low: 0.0, high: 2.0}
      y: {type: float, low: 0.0, high: 1.0}
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 4}
    n_trials: 10
    space:
      x: {type: float, low: 0.0, high: 2.0}
      y: {type: float, low: 0.0, high: 1.0}
  - name: around
    sampler:
      type: grid_around_best
      pick: {objective: error}
      axes:
        x: best
        y: {count: 3, spacing: linear, step: 0.01}
resources: {devices: cpu, trials_per_device: 2}
mode: deterministic
"#;
    let plan = study::load(&write_study(dir.path(), text), &[]).unwrap();
    assert_eq!(plan.config.directions.len(), 2);
    let results = dir.path().join("results");
    run_plan(&plan, &results, &machine(), never_stop()).await.unwrap();
    let all = trials(&results, "pareto");
    assert_eq!(all.len(), 25);
    // The grid centres on the Pareto trial with the least error.
    let searched: Vec<_> = all[..22].iter().map(|t| t.trial.clone()).collect();
    let least_error = anisostudy::hpo::pareto::pareto_front(&searched, &plan.config.directions)
        .into_iter()
        .min_by(|a, b| a.values[1].total_cmp(&b.values[1]))
        .unwrap()
        .params["x"]
        .as_f64()
        .unwrap();
    assert!(all[22..].iter().all(|t| x(t) == least_error), "the grid is centred on the least error");

    // A sweep over another study's knee point.
    let sweep = r#"
name: knee_sweep
seed: 3
objective:
  command: >-
    sh -c 'echo "{\"objective\": {x}}"'
sweep:
  best_of: pareto
  pick: knee
  values:
    y: [0.1, 0.2]
resources: {devices: cpu, trials_per_device: 2}
"#;
    let sweep_dir = dir.path().join("sweep");
    std::fs::create_dir_all(&sweep_dir).unwrap();
    let sweep_plan = study::load(&write_study(&sweep_dir, sweep), &[]).unwrap();
    run_plan(&sweep_plan, &results, &machine(), never_stop()).await.unwrap();
    let all_trials: Vec<_> = all.iter().map(|t| t.trial.clone()).collect();
    let knee = anisostudy::hpo::pareto::pick(
        &all_trials,
        &plan.config.directions,
        &anisostudy::hpo::pareto::Pick::Knee,
    )
    .unwrap();
    let swept = trials(&results, "knee_sweep");
    assert_eq!(swept.len(), 2);
    let knee_x = knee.params["x"].as_f64().unwrap();
    assert!(swept.iter().all(|t| t.trial.value == Some(knee_x)), "x comes from the knee, {:?}", knee.params);
    let y = |t: &TrialDetails| t.trial.params["y"].as_f64().unwrap();
    for t in &all[..22] {
        match t.trial.state {
            TrialState::Complete => {
                let expected = [x(t), (2.0 - x(t)).powi(2) + y(t)];
                assert!(
                    t.trial.values.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-9),
                    "{:?}",
                    t.trial
                );
                assert_eq!(t.trial.value, Some(t.trial.values[0]));
            }
            TrialState::Failed => {
                assert!(x(t) > 1.9, "{:?}", t.trial);
                assert!(t.fail_reason.as_deref().unwrap().contains("gave 1 values"), "{:?}", t.fail_reason);
            }
            other => panic!("trial {} ended {other:?}", t.trial.number),
        }
    }
    let store = Database::open_read_only(results.join("pareto").join("study.db"))
        .unwrap()
        .open_study("pareto")
        .unwrap();
    assert_eq!(
        store.info().objectives.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["size", "error"]
    );
    let frozen: Vec<_> = all.iter().map(|t| t.trial.clone()).collect();
    let front = anisostudy::hpo::pareto::pareto_front(&frozen, &plan.config.directions);
    assert!(front.len() >= 2, "{front:?}");
    let dominated = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| q <= p) && a != b;
    for t in &front {
        assert!(!frozen.iter().any(|o| o.state == TrialState::Complete && dominated(&t.values, &o.values)));
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_study"))
        .args(["status", "pareto", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let status = String::from_utf8(output.stdout).unwrap();
    assert!(status.contains("minimize size, minimize error"), "{status}");
    assert!(status.contains(&format!("pareto set: {} trial(s)", front.len())), "{status}");
    for t in &front {
        assert!(status.contains(&format!("  trial {}  size ", t.number)), "{status}");
    }
}
