//! Paths as users type them: a study file named without a folder, run from
//! its own folder, with bare `--results` and `--out` names.

use std::path::Path;
use std::process::{Command, Output};

const STUDY: &str = env!("CARGO_BIN_EXE_study");

const STUDY_FILE: &str = r#"
name: bare
seed: 2
objective:
  command: >-
    awk 'BEGIN { x = {x}; printf "{\"objective\": %g}\n", (x - 0.5) ^ 2 }'
phases:
  - name: random
    sampler: {type: random}
    n_trials: 3
    space:
      x: {type: float, low: -2.0, high: 2.0}
resources: {devices: cpu, trials_per_device: 2}
"#;

fn study(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(STUDY).args(args).current_dir(dir).output().expect("the study binary runs");
    assert!(
        output.status.success(),
        "study {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_study_file_named_without_a_folder_runs_from_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), STUDY_FILE).unwrap();

    let run = study(dir.path(), &["run", "s.yaml", "--results", "res"]);
    assert!(String::from_utf8_lossy(&run.stdout).contains("3 complete"), "{run:?}");
    assert!(dir.path().join("res/bare/study.db").is_file());

    study(dir.path(), &["export", "bare", "--results", "res", "--format", "csv", "--out", "bare.csv"]);
    let csv = std::fs::read_to_string(dir.path().join("bare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and three trials:\n{csv}");

    study(dir.path(), &["report", "bare", "--results", "res", "--out", "rep", "--no-figures"]);
    assert!(dir.path().join("rep/report.md").is_file());
}
