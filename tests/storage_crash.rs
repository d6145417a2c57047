//! A writer process killed (SIGKILL) at random points leaves a study database
//! that opens, passes `PRAGMA integrity_check`, and holds every trial in a
//! state it really had: each state change is atomic.
//!
//! The writer is this test binary itself, started again with an environment
//! variable that makes [`writer_process`] write trials until it is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anisostudy::hpo::{Direction, ParamValue, Params, TrialState, TrialStore};
use anisostudy::storage::{Database, NewStudy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Set to a database path, it turns [`writer_process`] into the writer.
const WRITER_DB_ENV: &str = "ANISOSTUDY_CRASH_WRITER_DB";
const STEPS: u64 = 10;
const METRICS: [&str; 3] = ["ar_mae", "eps_poly_mae", "eps_poly_mae_cubic"];

fn study() -> NewStudy {
    NewStudy {
        name: "crash".into(),
        direction: Direction::Minimize,
        objectives: Vec::new(),
        seed: 11,
        config: "name: crash\n".into(),
    }
}

/// The writer's life; does nothing in an ordinary test run.
#[test]
fn writer_process() {
    let Some(path) = std::env::var_os(WRITER_DB_ENV) else { return };
    let mut store = Database::open(Path::new(&path)).unwrap().open_or_create_study(&study()).unwrap();
    // Like a controller starting again: trials of the dead process go back
    // to the queue, and run first.
    let mut queue = Vec::new();
    for trial in store.load_trials().unwrap() {
        if trial.state == TrialState::Running {
            store.requeue(trial.number).unwrap();
        }
        if matches!(trial.state, TrialState::Running | TrialState::Waiting) {
            queue.push(trial.number);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(std::process::id()));
    loop {
        let (number, attempt) = match queue.pop() {
            Some(number) => (number, store.trial_details(number).unwrap().attempt),
            None => {
                let params: Params = [
                    ("lr".to_string(), ParamValue::Float(rng.gen_range(1e-4..0.5))),
                    ("mul".to_string(), ParamValue::Int(rng.gen_range(16..=64))),
                    ("model".to_string(), ParamValue::Str("equivariant".into())),
                    ("bias".to_string(), ParamValue::Bool(rng.gen())),
                ]
                .into_iter()
                .collect();
                (store.create_trial(0, &params, TrialState::Running).unwrap(), 0)
            }
        };
        store.start_trial(number, "cpu:0", attempt).unwrap();
        for step in 0..STEPS {
            store.report(number, step, 1.0 / (step + 1) as f64).unwrap();
            store.heartbeat(number).unwrap();
        }
        store
            .add_artifact(number, "checkpoint", Path::new(&format!("runs/{number}/best.safetensors")))
            .unwrap();
        match rng.gen_range(0..10) {
            0 => store.fail_trial(number, "NaN loss").unwrap(),
            1 => {
                let metrics = BTreeMap::from([("eps_poly_mae".to_string(), 0.4)]);
                store.finish_trial(number, TrialState::Pruned, Some(0.4), &metrics).unwrap();
            }
            _ => {
                let metrics = METRICS.iter().map(|name| (name.to_string(), rng.gen::<f64>())).collect();
                store.finish_trial(number, TrialState::Complete, Some(rng.gen()), &metrics).unwrap();
            }
        }
    }
}

#[test]
fn killed_writers_leave_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let log = dir.path().join("writer.log");
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut finished_before = 0;
    let mut rounds_cut_short = 0;
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args(["writer_process", "--exact", "--test-threads=1", "--nocapture"])
            .env(WRITER_DB_ENV, &path)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Let the writer get going (watched by a concurrent reader), then kill it at a random point.
        let deadline = Instant::now() + Duration::from_secs(30);
        while count_finished(&path) <= finished_before {
            assert!(
                child.try_wait().unwrap().is_none(),
                "writer died: {}",
                std::fs::read_to_string(&log).unwrap()
            );
            assert!(Instant::now() < deadline, "writer made no progress in round {round}");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..100_000)));
        child.kill().unwrap();
        child.wait().unwrap();

        let (finished, unfinished) = check_consistent(&path);
        eprintln!("round {round}: {finished} finished trials, {unfinished} cut short");
        assert!(finished > finished_before, "round {round}: finished trials were lost");
        finished_before = finished;
        rounds_cut_short += usize::from(unfinished > 0);
    }
    assert!(rounds_cut_short > 0, "some kills should land inside a trial's life");
}

/// Finished trials as a concurrent reader sees them; 0 while the file is
/// missing or being created.
fn count_finished(path: &Path) -> usize {
    let Ok(db) = Database::open_read_only(path) else { return 0 };
    let Ok(store) = db.open_study("crash") else { return 0 };
    store.load_trials().unwrap().iter().filter(|trial| trial.state.is_finished()).count()
}

/// Opens as the next writer would, checks every page and every trial;
/// returns the numbers of finished and of unfinished trials.
fn check_consistent(path: &Path) -> (usize, usize) {
    let db = Database::open(path).unwrap();
    assert_eq!(db.integrity_problems().unwrap(), Vec::<String>::new());
    let store = db.open_study("crash").unwrap();
    let trials = store.all_trial_details().unwrap();
    let param_names: BTreeSet<&str> = ["bias", "lr", "model", "mul"].into();
    let metric_names: BTreeSet<&str> = METRICS.into();
    for (index, details) in trials.iter().enumerate() {
        let trial = &details.trial;
        let context = format!("{details:#?}");
        assert_eq!(trial.number, index as u64, "numbers have no gaps");
        assert_eq!(
            trial.params.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            param_names,
            "{context}"
        );
        assert!(matches!(trial.params["mul"], ParamValue::Int(16..=64)), "{context}");
        assert!(matches!(trial.params["bias"], ParamValue::Bool(_)), "{context}");
        let metrics: BTreeSet<&str> = details.metrics.keys().map(String::as_str).collect();
        assert_eq!(trial.state.is_finished(), details.finished.is_some(), "{context}");
        match trial.state {
            TrialState::Complete => {
                assert!(trial.value.is_some(), "{context}");
                assert_eq!(metrics, metric_names, "{context}");
                assert_eq!(trial.intermediate.len() as u64, STEPS, "{context}");
                assert_eq!(details.artifacts.len(), 1, "{context}");
            }
            TrialState::Pruned => {
                assert_eq!(trial.value, Some(0.4), "{context}");
                assert_eq!(metrics, BTreeSet::from(["eps_poly_mae"]), "{context}");
            }
            TrialState::Failed => assert_eq!(details.fail_reason.as_deref(), Some("NaN loss"), "{context}"),
            TrialState::Running => {
                assert!(trial.value.is_none() && metrics.is_empty(), "{context}");
                assert!(details.started.is_some(), "{context}");
            }
            TrialState::Waiting => {
                assert!(trial.value.is_none() && metrics.is_empty(), "{context}");
                assert!(details.attempt >= 1 && details.device.is_none(), "requeued: {context}");
            }
        }
    }
    let finished = trials.iter().filter(|details| details.trial.state.is_finished()).count();
    (finished, trials.len() - finished)
}
