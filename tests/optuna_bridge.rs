//! The Optuna bridge against the real Optuna 5.0 and optuna-dashboard: a
//! study exported with `study export --format optuna` loads in
//! `optuna.load_study` with every trial, state, parameter, value and
//! intermediate value equal to ours, Optuna's plots run on it, and
//! optuna-dashboard lists it with its trials and its objective's name, and
//! follows a running study through `study export --format optuna --follow`.
//!
//! The Python side lives in `tests/optuna/`; `bash tests/optuna/venv.sh`
//! makes its environment (`.ci/run` does). Without it these tests print a
//! note and pass; `ANISOSTUDY_OPTUNA_PYTHON` names another interpreter.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STUDY: &str = env!("CARGO_BIN_EXE_study");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The interpreter with Optuna 5.0, optuna-dashboard, plotly, scikit-learn
/// and pandas, or `None` (with a printed note) when there is none.
fn optuna_python() -> Option<PathBuf> {
    let python = std::env::var_os("ANISOSTUDY_OPTUNA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/optuna-venv/bin/python"));
    let check =
        "import optuna, optuna_dashboard, plotly, sklearn, pandas; assert optuna.__version__ == '5.0.0'";
    match Command::new(&python).args(["-c", check]).output() {
        Ok(out) if out.status.success() => Some(python),
        _ => {
            eprintln!(
                "note: skipped: no Python with Optuna 5.0 at {} (run `bash tests/optuna/venv.sh`)",
                python.display()
            );
            None
        }
    }
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn study(args: &[&str]) -> Command {
    let mut command = Command::new(STUDY);
    command.args(args);
    command
}

/// Exports study `name` of `results` as an Optuna storage and as our JSON.
fn export(results: &Path, name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let (db, json) = (dir.join(format!("{name}.db")), dir.join(format!("{name}.json")));
    let results = results.to_str().unwrap();
    run(study(&["export", name, "--results", results, "--format", "optuna", "--out"]).arg(&db));
    run(study(&["export", name, "--results", results, "--format", "json", "--out"]).arg(&json));
    (db, json)
}

fn check_export(python: &Path, db: &Path, name: &str, json: &Path) -> String {
    let script = Path::new(ROOT).join("tests/optuna/check_export.py");
    let out = run(Command::new(python).arg(script).arg(db).arg(name).arg(json));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_finished_smoke_study_opens_in_optuna_and_its_dashboard() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let smoke = Path::new(ROOT).join("studies/smoke.yaml");
    run(&mut study(&["run", smoke.to_str().unwrap(), "--results", results.to_str().unwrap()]));
    let (db, json) = export(&results, "smoke", dir.path());

    let summary = check_export(&python, &db, "smoke", &json);
    assert!(summary.contains("\"trials\": 12"), "{summary}");
    assert!(
        summary.contains("\"metric_names\": [\"val_loss\"]"),
        "named as set_metric_names names it: {summary}"
    );
    let dashboard = Path::new(ROOT).join("tests/optuna/check_dashboard.py");
    let out = run(Command::new(&python).arg(dashboard).arg(&db).arg("smoke").arg("12"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"trials\": 12"));
}

#[test]
fn failed_trials_and_every_kind_of_parameter_round_trip() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kinds.yaml");
    std::fs::write(
        &file,
        r#"
name: kinds
seed: 4
objective:
  command: >-
    sh -c 'if [ {n} -gt 7 ]; then echo "n too large" >&2; exit 3; fi;
    echo "{\"step\": 1, \"value\": {x}}"; echo "{\"step\": 2, \"value\": {n}}"; echo "{\"objective\": {x}}"'
  direction: maximize
phases:
  - name: random
    sampler: {type: random}
    n_trials: 12
    space:
      x: {type: float, low: 0.001, high: 10.0, log: true}
      q: {type: float, low: 0.0, high: 1.0, step: 0.25}
      n: {type: int, low: 1, high: 10}
      m: {type: int, low: 1, high: 64, log: true}
      s: {type: int, low: 0, high: 100, step: 5}
      c: {type: categorical, choices: [adam, 2, 0.5, true]}
resources: {devices: cpu, trials_per_device: 2}
"#,
    )
    .unwrap();
    let results = dir.path().join("results");
    run(&mut study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]));
    let (db, json) = export(&results, "kinds", dir.path());
    let summary = check_export(&python, &db, "kinds", &json);
    assert!(summary.contains("\"FAIL\""), "some trials fail: {summary}");
}

#[test]
fn an_optuna_export_never_overwrites_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.yaml");
    std::fs::write(
        &file,
        "name: tiny\nobjective:\n  command: >-\n    echo '{\"objective\": {x}}'\nphases:\n  - name: g\n    sampler: {type: grid, values: {x: [1, 2]}}\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    run(&mut study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]));
    let db = dir.path().join("tiny.db");
    let export = |extra: &[&str]| {
        study(&["export", "tiny", "--results", results.to_str().unwrap(), "--format", "optuna"])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(export(&[]).status.code(), Some(2), "no --out");
    assert!(export(&["--out", db.to_str().unwrap()]).status.success());
    let again = export(&["--out", db.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(export(&["--out", db.to_str().unwrap(), "--force"]).status.success());

    // Optuna 5.0's storage: its schema version and alembic revision.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: (i64, String) = conn
        .query_row("SELECT schema_version, library_version FROM version_info", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(version, (12, "5.0.0".to_owned()));
    let revision: String =
        conn.query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0)).unwrap();
    assert_eq!(revision, "v3.2.0.a");
    let states: Vec<String> = conn
        .prepare("SELECT state FROM trials ORDER BY number")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(states, ["COMPLETE", "COMPLETE"]);
}

/// A study file that continues `make_study.py`'s search to 50 trials with
/// the same objective, as a command.
const CONTINUED: &str = r#"
name: continued
seed: 3
objective:
  command: >-
    awk 'BEGIN { l = log({lr}) / log(10) + 2.5; k = ("{kind}" == "scalar") ? 0.2 : 0;
    printf "{\"objective\": %.17g}\n", l * l + 0.3 * ({layers} - 2) ^ 2 + (({mul} - 48) / 16) ^ 2 + k }'
phases:
  - name: tpe
    sampler: {type: tpe}
    n_trials: 50
    space:
      lr: {type: float, low: 1.0e-4, high: 0.5, log: true}
      layers: {type: int, low: 1, high: 4}
      mul: {type: int, low: 16, high: 64, step: 8}
      kind: {type: categorical, choices: [equivariant, scalar]}
resources: {devices: cpu, trials_per_device: 1}
mode: deterministic
"#;

/// `make_study.py`'s Optuna study in `dir`, and [`CONTINUED`] beside it.
fn optuna_study_and_its_continuation(python: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let optuna_db = dir.join("optuna.db");
    run(Command::new(python).arg(Path::new(ROOT).join("tests/optuna/make_study.py")).arg(&optuna_db));
    let file = dir.join("continued.yaml");
    std::fs::write(&file, CONTINUED).unwrap();
    (optuna_db, file)
}

fn stored(results: &Path, name: &str) -> Vec<anisostudy::storage::TrialDetails> {
    let db = anisostudy::storage::Database::open_read_only(results.join(name).join("study.db")).unwrap();
    db.open_study(name).unwrap().all_trial_details().unwrap()
}

#[test]
fn an_optuna_study_continues_here_from_its_trials() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (optuna_db, file) = optuna_study_and_its_continuation(&python, dir.path());
    let theirs = anisostudy::storage::optuna::read_study(&optuna_db, None).unwrap();
    assert_eq!(theirs.trials.len(), 30);

    let mut continued = Vec::new();
    for results in [dir.path().join("a"), dir.path().join("b")] {
        let r = results.to_str().unwrap();
        let out = run(&mut study(&[
            "import",
            optuna_db.to_str().unwrap(),
            "--into",
            file.to_str().unwrap(),
            "--results",
            r,
        ]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("imported 30 trials"));
        run(&mut study(&["run", file.to_str().unwrap(), "--results", r]));
        let ours = stored(&results, "continued");
        assert_eq!(ours.len(), 50, "30 imported and 20 new");
        for (mine, optuna) in ours.iter().zip(&theirs.trials) {
            let where_ = format!("trial {}", optuna.number);
            assert_eq!(mine.trial.number, optuna.number, "{where_}");
            assert_eq!(mine.trial.state, optuna.state, "{where_}");
            assert_eq!(mine.trial.params, optuna.params, "{where_}");
            assert_eq!(mine.trial.value, optuna.value, "{where_}");
            assert_eq!(mine.trial.intermediate, optuna.intermediate, "{where_}");
        }
        assert!(ours[30..].iter().all(|t| t.trial.state == anisostudy::hpo::TrialState::Complete));
        continued
            .push(ours[30..].iter().map(|t| (t.trial.params.clone(), t.trial.value)).collect::<Vec<_>>());
    }
    assert_eq!(continued[0], continued[1], "continuing is deterministic for a seed");

    // What does not fit is refused before anything is written, with exit 2.
    let narrow = dir.path().join("narrow.yaml");
    std::fs::write(&narrow, CONTINUED.replace("high: 0.5, log: true", "high: 0.01, log: true")).unwrap();
    let refused =
        study(&["import", optuna_db.to_str().unwrap(), "--into", narrow.to_str().unwrap(), "--results"])
            .arg(dir.path().join("c"))
            .output()
            .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("parameter `lr`"), "{refused:?}");
    assert!(!dir.path().join("c/continued/study.db").exists());
}

#[test]
fn other_schema_versions_and_several_objectives_are_refused() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (optuna_db, file) = optuna_study_and_its_continuation(&python, dir.path());
    let import = |db: &Path| {
        study(&["import", db.to_str().unwrap(), "--into", file.to_str().unwrap(), "--results"])
            .arg(dir.path().join("results"))
            .output()
            .unwrap()
    };
    let old = dir.path().join("old.db");
    std::fs::copy(&optuna_db, &old).unwrap();
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'", [])
        .unwrap();
    let out = import(&old);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("v3.0.0.d") && message.contains("optuna storage upgrade"), "{message}");

    // A study of several objectives goes into a study file of one only
    // when their objectives agree.
    let multi = dir.path().join("multi.db");
    std::fs::copy(&optuna_db, &multi).unwrap();
    rusqlite::Connection::open(&multi)
        .unwrap()
        .execute_batch(
            "INSERT INTO study_directions (direction, study_id, objective) VALUES ('MAXIMIZE', 1, 1);
             INSERT INTO trial_values (trial_id, objective, value, value_type)
                 SELECT trial_id, 1, value, value_type FROM trial_values WHERE objective = 0;",
        )
        .unwrap();
    let out = import(&multi);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("2 objectives (minimize, maximize)") && message.contains("one objective"),
        "{message}"
    );
}

/// A study of two objectives from a command (with a constraint), run
/// here by multi-objective TPE.
fn pareto_study(name: &str, n_trials: usize) -> String {
    format!(
        r#"name: {name}
seed: 2
objective:
  command: >-
    awk 'BEGIN {{ x = {{x}}; y = {{y}}; printf "{{\"objectives\": [%.17g, %.17g], \"constraints\": [%.17g]}}\n", x^2 + y, (x - 1)^2 - y, y - 0.8 }}'
  directions: [minimize, maximize]
  names: [cost, gain]
constraints:
  - {{name: y_margin}}
phases:
  - name: motpe
    sampler: {{type: tpe, n_startup_trials: 5}}
    n_trials: {n_trials}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
      y: {{type: float, low: 0.0, high: 1.0}}
resources: {{devices: cpu, trials_per_device: 2}}
"#
    )
}

/// Several objectives round-trip through Optuna 5.0: the export has Optuna's
/// directions, metric names and values, its `best_trials` is our Pareto set;
/// imported into a study file of the same objectives, the trials keep their
/// values, and `study run` goes on from them.
#[test]
fn several_objectives_round_trip_through_optuna() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pareto.yaml");
    std::fs::write(&file, pareto_study("pareto", 14)).unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    run(&mut study(&["run", file.to_str().unwrap(), "--results", r]));
    let (db, json) = export(&results, "pareto", dir.path());
    let report = check_export(&python, &db, "pareto", &json);
    assert!(report.contains("\"metric_names\": [\"cost\", \"gain\"]"), "{report}");
    let dashboard = Path::new(ROOT).join("tests/optuna/check_dashboard.py");
    let out = run(Command::new(&python).arg(dashboard).arg(&db).arg("pareto").arg("14"));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\"directions\": [\"minimize\", \"maximize\"]"),
        "optuna-dashboard shows both: {shown}"
    );

    let again = dir.path().join("again.yaml");
    std::fs::write(&again, pareto_study("again", 20)).unwrap();
    run(&mut study(&["import", db.to_str().unwrap(), "--into", again.to_str().unwrap(), "--results", r]));
    let ours = stored(&results, "pareto");
    let imported = stored(&results, "again");
    for (a, b) in imported.iter().zip(&ours) {
        assert_eq!(a.trial.values, b.trial.values, "trial {}", b.trial.number);
        assert_eq!(a.trial.constraints, b.trial.constraints, "trial {}", b.trial.number);
    }
    run(&mut study(&["run", again.to_str().unwrap(), "--results", r]));
    let continued = stored(&results, "again");
    assert_eq!(continued.len(), 20);
    assert!(continued[14..].iter().all(|t| t.trial.values.len() == 2), "the continuation has both values");
}

/// A study of `n` seeds of a small model, each trial a few seconds, one at a time.
fn running_study(n: usize) -> String {
    let seeds: Vec<String> = (0..n).map(|s| s.to_string()).collect();
    format!(
        "name: live
seed: 5
dataset:
  synthetic: {{size: 300, seed: 1}}
model: {{em_dim: 8, layers: 1, lmax: 2, mul: 8, num_basis: 8, radial_neurons: 16}}
training: {{epochs: 25, batch_size: 8, patience: 30}}
objective: {{metric: val_loss, direction: minimize}}
sweep:
  values:
    seed: [{}]
resources: {{devices: cpu, cpu_threads_per_trial: 2}}
",
        seeds.join(", ")
    )
}

fn wait_for(path: &Path, what: &str) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(start.elapsed().as_secs() < 60, "{what} ({}) did not appear within 60 s", path.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process that is killed when the test ends, pass or fail.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn optuna_dashboard_follows_a_running_study() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (results, mirror) = (dir.path().join("results"), dir.path().join("live.db"));
    let trials = 4;
    std::fs::write(dir.path().join("live.yaml"), running_study(trials)).unwrap();
    let started = std::time::Instant::now();
    let mut running = Killed(
        study(&["run", "live.yaml", "--results", results.to_str().unwrap()])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let db = results.join("live/study.db");
    wait_for(&db, "the study database");
    let _follower = Killed(
        study(&["export", "live", "--results", results.to_str().unwrap(), "--format", "optuna", "--follow"])
            .args(["--interval", "0.5", "--out"])
            .arg(&mirror)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&mirror, "the mirror");
    let script = Path::new(ROOT).join("tests/optuna/follow_dashboard.py");
    let out =
        run(Command::new(&python).arg(script).arg(&mirror).arg(&db).arg("live").arg(trials.to_string()));
    let status = running.0.wait().unwrap();
    assert!(status.success(), "the study ended with {status}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{report} (study {:.1} s)", started.elapsed().as_secs_f64());
    assert_eq!(report["objective_names"], serde_json::json!(["val_loss"]), "{report}");
    assert_eq!(report["finished"], trials, "every trial shown finished: {report}");
    assert!(report["seen_running"].as_u64().unwrap() >= 1, "a trial shown while it ran: {report}");
    assert!(
        report["most_intermediate_values_while_running"].as_u64().unwrap() >= 1,
        "a running trial's epochs shown as they come: {report}"
    );
    let delay = report["max_delay_s"].as_f64().unwrap();
    assert!(delay < 5.0, "a finished trial shown within a few seconds: {report}");
}

const CONDITIONAL: &str = r#"
name: cond
seed: 2
objective:
  command: >-
    sh -c 'if [ "$1" = sgd ]; then awk "BEGIN { print \"{\\\"objective\\\": \" $2 + ($3 - 0.9)^2 \"}\" }";
    else awk "BEGIN { print \"{\\\"objective\\\": \" $2 + 0.3 \"}\" }"; fi' cond {optimizer} {lr} {momentum}
phases:
  - name: tpe
    sampler: {type: tpe, multivariate: true}
    n_trials: 24
    space:
      optimizer: {type: categorical, choices: [adamw, sgd]}
      lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
resources: {devices: cpu, trials_per_device: 1}
"#;

/// A define-by-run Optuna study (momentum only for sgd) continues here
/// under a conditional space, and goes back to Optuna with its absent values.
#[test]
fn a_define_by_run_optuna_study_continues_under_a_conditional_space_and_goes_back() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let optuna_db = dir.path().join("optuna.db");
    run(Command::new(&python)
        .arg(Path::new(ROOT).join("tests/optuna/make_conditional_study.py"))
        .arg(&optuna_db));
    let file = dir.path().join("cond.yaml");
    std::fs::write(&file, CONDITIONAL).unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    run(&mut study(&[
        "import",
        optuna_db.to_str().unwrap(),
        "--into",
        file.to_str().unwrap(),
        "--results",
        r,
    ]));
    run(&mut study(&["run", file.to_str().unwrap(), "--results", r]));
    let ours = stored(&results, "cond");
    assert_eq!(ours.len(), 24);
    for t in &ours {
        let sgd = t.trial.params["optimizer"].as_str() == Some("sgd");
        assert_eq!(t.trial.params.contains_key("momentum"), sgd, "{:?}", t.trial);
        assert_eq!(t.trial.state, anisostudy::hpo::TrialState::Complete, "{:?}", t.trial);
    }
    let back = dir.path().join("back.db");
    run(study(&["export", "cond", "--results", r, "--format", "optuna", "--out"]).arg(&back));
    let check = "import optuna, sys; s = optuna.load_study(study_name='cond', storage='sqlite:///' + sys.argv[1]); \
                 bad = [t.number for t in s.trials if ('momentum' in t.params) != (t.params['optimizer'] == 'sgd')]; \
                 print(len(s.trials), bad)";
    let out = run(Command::new(&python).args(["-c", check]).arg(&back));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "24 []");
}

#[path = "support/constrained.rs"]
mod constrained;

/// A constrained study: 12 TPE trials, some timing out.
fn constrained_study(name: &str) -> String {
    format!(
        "name: {name}\nseed: 4\n{}{}",
        constrained::OBJECTIVE_AND_CONSTRAINTS,
        "phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 4}
    n_trials: 12
    space:
      x: {type: float, low: 0.0, high: 2.0}
      y: {type: float, low: 0.0, high: 1.0}
resources: {devices: cpu, trials_per_device: 2, trial_timeout: 2s}
mode: deterministic
"
    )
}

/// Constraint values go to Optuna where it keeps them (the trial system
/// attribute `constraints`), so Optuna's best trial is our best feasible
/// one; an import brings them back.
#[test]
fn constraints_round_trip_through_optuna() {
    let Some(python) = optuna_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cons.yaml");
    std::fs::write(&file, constrained_study("cons")).unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    run(&mut study(&["run", file.to_str().unwrap(), "--results", r]));
    let ours = stored(&results, "cons");
    assert!(ours.iter().any(|t| !t.trial.is_feasible()), "some trials are infeasible");
    let (db, json) = export(&results, "cons", dir.path());
    check_export(&python, &db, "cons", &json);

    let again = dir.path().join("again.yaml");
    std::fs::write(&again, constrained_study("again")).unwrap();
    run(&mut study(&["import", db.to_str().unwrap(), "--into", again.to_str().unwrap(), "--results", r]));
    let imported = stored(&results, "again");
    assert_eq!(imported.len(), ours.len());
    for (a, b) in imported.iter().zip(&ours) {
        assert_eq!(a.trial.constraints, b.trial.constraints, "trial {}", b.trial.number);
    }

    // Optuna 5's own form, one `Trial.set_constraint` per constraint.
    let native = dir.path().join("native.db");
    let make = "import optuna, sys; optuna.logging.set_verbosity(optuna.logging.ERROR)\n\
                s = optuna.create_study(study_name='native', storage='sqlite:///' + sys.argv[1])\n\
                for i in range(6):\n\
                \x20   t = s.ask(); x = t.suggest_float('x', 0, 2); y = t.suggest_float('y', 0, 1)\n\
                \x20   t.set_constraint('cost', 10 * x - 15); t.set_constraint('y_margin', y - 0.5)\n\
                \x20   s.tell(t, -x)\n\
                print(s.best_trial.number if s.best_trials else -1)";
    let optuna_best = run(Command::new(&python).args(["-c", make]).arg(&native));
    let native_file = dir.path().join("native.yaml");
    std::fs::write(&native_file, constrained_study("native")).unwrap();
    run(&mut study(&[
        "import",
        native.to_str().unwrap(),
        "--into",
        native_file.to_str().unwrap(),
        "--results",
        r,
    ]));
    let imported = stored(&results, "native");
    assert_eq!(imported.len(), 6);
    for t in &imported {
        let (x, y) = (t.trial.params["x"].as_f64().unwrap(), t.trial.params["y"].as_f64().unwrap());
        let c = t.trial.constraints.as_deref().expect("constraints imported");
        assert!((c[0] - (10.0 * x - 15.0)).abs() < 1e-9 && (c[1] - (y - 0.5)).abs() < 1e-9, "{c:?}");
    }
    let best = anisostudy::storage::TrialDetails::best(&imported, anisostudy::hpo::Direction::Minimize)
        .map_or(-1, |(t, _)| t.trial.number as i64);
    assert_eq!(String::from_utf8_lossy(&optuna_best.stdout).trim(), best.to_string(), "the same best trial");
}
