//! `study trial`, the built-in objective's child process, speaking the
//! protocol: a closed stdin stops it after the running epoch with its
//! checkpoint; run again it resumes and ends as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anisostudy::exec::protocol::{parse_line, Line, Message};
use anisostudy::hpo::{ParamValue, Params};
use anisostudy::study::file::Metric;
use anisostudy::study::trial::{TrialFile, TRIAL_FILE_VERSION};

const STUDY: &str = env!("CARGO_BIN_EXE_study");

const PLAN: &str = r#"
name: one
seed: 4
dataset: {synthetic: {size: 30, seed: 2}}
model: {em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 3, batch_size: 8, patience: 3}
phases:
  - name: random
    sampler: {type: random}
    n_trials: 1
    space:
      lr: {type: float, low: 1.0e-3, high: 1.0e-2}
"#;

fn trial_file(dir: &Path) -> PathBuf {
    let plan = anisostudy::study::load_str(PLAN, "one.yaml", dir, &[]).unwrap();
    let params: Params = [("lr".to_owned(), ParamValue::Float(0.005))].into();
    let file = TrialFile::new(&plan, Metric::ValLoss, &params, 0, 77, Some(dir.join("cache"))).unwrap();
    assert_eq!(file.version, TRIAL_FILE_VERSION);
    assert_eq!((file.training.seed, file.training.lr), (77, 0.005));
    file.write(&dir.join("trials/0")).unwrap()
}

/// Runs the trial; `keep_stdin_open` lets it run to its end.
fn run(file: &Path, keep_stdin_open: bool) -> (Output, Vec<Message>) {
    let mut child = Command::new(STUDY)
        .args(["trial", file.to_str().unwrap()])
        .env("ANISOSTUDY_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let held = keep_stdin_open.then_some(stdin);
    let out = child.wait_with_output().unwrap();
    drop(held);
    let messages = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match parse_line(l) {
            Line::Message(m) => Some(m),
            Line::Other(_) => None,
        })
        .collect();
    (out, messages)
}

fn objective(messages: &[Message]) -> Option<f64> {
    messages.iter().find_map(|m| match m {
        Message::Final { objective, .. } => Some(objective.0),
        _ => None,
    })
}

#[test]
fn a_stopped_trial_resumes_to_the_uninterrupted_result() {
    let whole_dir = tempfile::tempdir().unwrap();
    let (out, whole) = run(&trial_file(whole_dir.path()), true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(matches!(whole[0], Message::Start { trial: Some(0), .. }));
    let epochs = whole.iter().filter(|m| matches!(m, Message::Epoch { .. })).count();
    let steps = whole.iter().filter(|m| matches!(m, Message::Intermediate { .. })).count();
    assert_eq!((epochs, steps), (3, 3));
    let metrics = whole.iter().find_map(|m| match m {
        Message::Metrics { metrics } => Some(metrics.clone()),
        _ => None,
    });
    let metrics = metrics.expect("final metrics");
    for key in ["val_loss", "test_loss", "test_eps_poly_mae", "test_unphysical", "epochs_run"] {
        assert!(metrics.contains_key(key), "{key} missing from {metrics:?}");
    }
    assert!(metrics.keys().any(|k| k.starts_with("test_count_")), "per crystal system");
    assert!(
        whole.iter().any(|m| matches!(m, Message::Artifact { kind, path }
            if kind == "test_predictions" && path == "test_predictions.csv")),
        "the test predictions are announced"
    );
    let predictions = whole_dir.path().join("trials/0/test_predictions.csv");
    let rows = anisostudy::train::predictions::read_csv(&predictions).unwrap();
    let test_count: f64 =
        metrics.iter().filter(|(k, _)| k.starts_with("test_count_")).map(|(_, v)| v.0).sum();
    assert_eq!(rows.len() as f64, test_count, "one row per test structure");
    let want = objective(&whole).expect("a final line");

    // stdin closed at once: one epoch, a checkpoint, no result.
    let dir = tempfile::tempdir().unwrap();
    let file = trial_file(dir.path());
    let (out, first) = run(&file, false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(first.iter().filter(|m| matches!(m, Message::Epoch { .. })).count(), 1);
    assert_eq!(objective(&first), None);
    assert!(dir.path().join("trials/0/checkpoint/model.safetensors").is_file());

    let (out, second) = run(&file, true);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from epoch 1"));
    assert_eq!(second.iter().filter(|m| matches!(m, Message::Epoch { .. })).count(), 2);
    assert_eq!(objective(&second), Some(want), "resumed and uninterrupted runs agree exactly");
}

#[test]
fn a_model_that_cannot_be_built_reports_why_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let plan = anisostudy::study::load_str(PLAN, "one.yaml", dir.path(), &[]).unwrap();
    let params: Params = [("lmax".to_owned(), ParamValue::Int(0))].into();
    let file = TrialFile::new(&plan, Metric::ValLoss, &params, 0, 1, None).unwrap();
    let path = file.write(&dir.path().join("trials/0")).unwrap();
    let (out, messages) = run(&path, true);
    assert!(!out.status.success());
    let error = messages.iter().find_map(|m| match m {
        Message::Error { kind, message } => Some((kind.clone(), message.clone())),
        _ => None,
    });
    let (kind, message) = error.expect("an error line");
    assert_eq!(kind.as_deref(), Some("model"));
    assert!(message.contains("lmax = 0"), "{message}");
}

#[test]
fn a_trial_file_of_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = trial_file(dir.path());
    let text = std::fs::read_to_string(&path).unwrap().replacen("\"version\": 1", "\"version\": 99", 1);
    std::fs::write(&path, text).unwrap();
    let (out, _) = run(&path, true);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trial file version"));
}
