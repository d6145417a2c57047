//! The Optuna bridge against the real Optuna 5.0 and optuna-dashboard: a
//! study exported with `study export --format optuna` loads in
//! `optuna.load_study` with every trial, state, parameter, value and
//! intermediate value equal to ours, Optuna's plots run on it, and
//! optuna-dashboard lists it with its trials.
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
