//! Behaviour of the study database: round trips, schema versions, refusals,
//! concurrent readers, heartbeats, and agreement with the in-memory store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;
use serde_json::json;

use super::schema::{self, APPLICATION_ID};
use super::*;
use crate::error::{exit_code, InputError};
use crate::hpo::{
    Direction, Distribution, FrozenTrial, MemoryStore, ParamValue, Params, SearchSpace, TrialState,
    TrialStore,
};

fn new_study(name: &str) -> NewStudy {
    NewStudy {
        name: name.to_string(),
        direction: Direction::Minimize,
        objectives: Vec::new(),
        seed: u64::MAX - 7,
        config: "name: lmax_sweep\nseed: 18446744073709551608\n".to_string(),
    }
}

fn fresh_store(dir: &Path) -> SqliteStore {
    Database::open(dir.join("study.db")).unwrap().create_study(&new_study("lmax_sweep")).unwrap()
}

fn params(entries: &[(&str, ParamValue)]) -> Params {
    entries.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

fn space() -> SearchSpace {
    let mut space = SearchSpace::default();
    space.params.insert("lr".into(), Distribution::Float { low: 1e-4, high: 0.5, log: true, step: None });
    space.params.insert("layers".into(), Distribution::Int { low: 1, high: 4, log: false, step: 1 });
    space.params.insert(
        "model".into(),
        Distribution::Categorical {
            choices: vec![ParamValue::Str("equivariant".into()), ParamValue::Str("scalar".into())],
        },
    );
    space
}

fn input_error(err: &anyhow::Error) -> &InputError {
    err.chain().find_map(|cause| cause.downcast_ref::<InputError>()).unwrap_or_else(|| panic!("{err:#}"))
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn metrics(entries: &[(&str, f64)]) -> BTreeMap<String, f64> {
    entries.iter().map(|(name, value)| (name.to_string(), *value)).collect()
}

#[test]
fn every_table_round_trips_with_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let tricky_floats = [-0.0, 0.1 + 0.2, f64::MIN_POSITIVE, 5e-324, -1e300, 3.0];
    let trial_params = params(&[
        ("lr", ParamValue::Float(0.1 + 0.2)),
        ("layers", ParamValue::Int(3)),
        ("big", ParamValue::Int(i64::MIN)),
        ("model", ParamValue::Str("equivariant, \"0e+2e\"".into())),
        ("bias", ParamValue::Bool(true)),
        ("shuffle", ParamValue::Bool(false)),
        ("neg_zero", ParamValue::Float(-0.0)),
        ("whole", ParamValue::Float(3.0)),
    ]);
    let phase =
        Phase { index: 0, name: "tpe".into(), sampler: "tpe".into(), space: space(), budget: Some(100) };
    let final_metrics = metrics(&[("eps_poly_mae", 0.311), ("ar_mae", 0.078), ("ar_mae_cubic", 0.0)]);
    {
        let mut store = fresh_store(dir.path());
        store.set_study_user_attr("paper", &json!({"doi": "10.0/xyz", "table": 2})).unwrap();
        store.set_phase(&phase).unwrap();
        store.set_phase(&Phase { index: 1, budget: None, sampler: "grid".into(), ..phase.clone() }).unwrap();
        let number = store.create_trial(0, &trial_params, TrialState::Waiting).unwrap();
        assert_eq!(number, 0);
        store.set_trial_seed(0, u64::MAX).unwrap();
        store.start_trial(0, "cuda:1", 0).unwrap();
        for step in 0..5 {
            store.report(0, step, 1.0 / (step as f64 + 1.0)).unwrap();
        }
        store.report(0, 5, f64::NAN).unwrap();
        store.report(0, 6, f64::INFINITY).unwrap();
        store.add_artifact(0, "checkpoint", Path::new("runs/0/best.safetensors")).unwrap();
        store.add_artifact(0, "log", Path::new("runs/0/train.log")).unwrap();
        store.add_artifact(0, "log", Path::new("runs/0/train.log")).unwrap();
        store.set_user_attr(0, "note", &json!("first")).unwrap();
        store.set_user_attr(0, "note", &json!(["replaced", 2])).unwrap();
        store.set_metrics(0, &metrics(&[("eps_poly_mae", 9.0)])).unwrap();
        store.finish_trial(0, TrialState::Complete, Some(0.311), &final_metrics).unwrap();
        for (index, x) in tricky_floats.iter().enumerate() {
            let number = store.create_trial(1, &params(&[("x", ParamValue::Float(*x))]), TrialState::Running);
            assert_eq!(number.unwrap(), index as u64 + 1);
        }
    }

    for db in [Database::open(&path).unwrap(), Database::open_read_only(&path).unwrap()] {
        let store = db.open_study("lmax_sweep").unwrap();
        assert_eq!(store.info().name, "lmax_sweep");
        assert_eq!(store.info().direction, Direction::Minimize);
        assert_eq!(store.info().seed, u64::MAX - 7);
        assert_eq!(store.info().config, new_study("x").config);
        assert!(store.info().created.since(Timestamp::now().minus(Duration::from_secs(60))) > Duration::ZERO);
        assert_eq!(store.study_user_attrs().unwrap()["paper"], json!({"doi": "10.0/xyz", "table": 2}));
        let phases = store.phases().unwrap();
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0], phase);
        assert_eq!((phases[1].sampler.as_str(), phases[1].budget), ("grid", None));

        let details = store.trial_details(0).unwrap();
        assert_eq!(details.trial.params, trial_params);
        for (name, value) in &trial_params {
            let stored = &details.trial.params[name];
            match (value, stored) {
                (ParamValue::Float(a), ParamValue::Float(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name}")
                }
                (ParamValue::Int(a), ParamValue::Int(b)) => assert_eq!(a, b),
                (ParamValue::Bool(a), ParamValue::Bool(b)) => assert_eq!(a, b),
                (ParamValue::Str(a), ParamValue::Str(b)) => assert_eq!(a, b),
                _ => panic!("{name} changed type: {value:?} became {stored:?}"),
            }
        }
        assert_eq!(details.distributions.len(), 3, "only parameters of the phase's space have one");
        assert_eq!(details.distributions["lr"], space().params["lr"]);
        assert_eq!(details.trial.state, TrialState::Complete);
        assert_eq!(details.trial.value, Some(0.311));
        assert_eq!(details.trial.intermediate.len(), 7);
        assert_eq!(details.trial.intermediate[&1], 0.5);
        assert!(details.trial.intermediate[&5].is_nan());
        assert_eq!(details.trial.intermediate[&6], f64::INFINITY);
        assert_eq!(details.metrics, final_metrics);
        assert_eq!(details.seed, Some(u64::MAX));
        assert_eq!(details.device.as_deref(), Some("cuda:1"));
        assert_eq!(details.attempt, 0);
        let (started, finished) = (details.started.unwrap(), details.finished.unwrap());
        assert!(details.created <= started && started <= finished);
        assert!(details.heartbeat.is_some());
        assert_eq!(details.fail_reason, None);
        assert_eq!(
            details.artifacts,
            vec![
                Artifact { kind: "checkpoint".into(), path: "runs/0/best.safetensors".into() },
                Artifact { kind: "log".into(), path: "runs/0/train.log".into() },
            ]
        );
        assert_eq!(details.user_attrs["note"], json!(["replaced", 2]));

        let trials = store.load_trials().unwrap();
        assert_eq!(trials.len(), 1 + tricky_floats.len());
        for (trial, x) in trials[1..].iter().zip(tricky_floats) {
            assert_eq!((trial.phase, trial.state), (1, TrialState::Running));
            let ParamValue::Float(stored) = trial.params["x"] else { panic!("{:?}", trial.params) };
            assert_eq!(stored.to_bits(), x.to_bits(), "{x:e}");
        }
        // Debug text, because NaN != NaN.
        assert_eq!(format!("{:?}", store.all_trial_details().unwrap()[0]), format!("{details:?}"));
    }
}

#[test]
fn schema_is_created_in_an_empty_file_and_kept_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    {
        let mut store = Database::open(&path).unwrap().create_study(&new_study("a")).unwrap();
        store.create_trial(0, &Params::new(), TrialState::Waiting).unwrap();
    }
    let header = |path: &Path| {
        let conn = raw(path);
        let version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        let id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0)).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
        (version, id, mode)
    };
    assert_eq!(header(&path), (schema::latest_version(), APPLICATION_ID, "wal".to_string()));
    for _ in 0..2 {
        let store = Database::open(&path).unwrap().open_only_study().unwrap();
        assert_eq!(store.load_trials().unwrap().len(), 1);
    }
    assert_eq!(header(&path).0, schema::latest_version());
    let db = Database::open(&path).unwrap();
    assert_eq!(db.study_names().unwrap(), ["a"]);
    assert!(db.integrity_problems().unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    drop(fresh_store(dir.path()));
    let newer = schema::latest_version() + 1;
    raw(&path).pragma_update(None, "user_version", newer).unwrap();
    let before = std::fs::read(&path).unwrap();
    for err in [Database::open(&path).unwrap_err(), Database::open_read_only(&path).unwrap_err()] {
        let message = input_error(&err).to_string();
        assert!(message.contains(&format!("schema version {newer}")), "{message}");
        assert!(message.contains(&format!("up to {}", schema::latest_version())), "{message}");
        assert!(message.contains("upgrade"), "{message}");
        assert_eq!(exit_code(&err), 2);
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn files_that_are_not_study_databases_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "name: lmax_sweep\nthis is YAML, not SQLite\n").unwrap();
    let foreign = dir.path().join("other.db");
    raw(&foreign).execute_batch("CREATE TABLE things (x); INSERT INTO things VALUES (1);").unwrap();
    for (path, expected) in [(&text, "not an SQLite database"), (&foreign, "not a study database")] {
        let before = std::fs::read(path).unwrap();
        for err in [Database::open(path).unwrap_err(), Database::open_read_only(path).unwrap_err()] {
            let error = input_error(&err);
            assert_eq!(error.location, path.display().to_string());
            assert!(error.problem.contains(expected), "{error}");
        }
        assert_eq!(std::fs::read(path).unwrap(), before);
        assert!(!wal_of(path).exists());
    }
}

fn wal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

#[test]
fn a_corrupted_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    {
        let mut store = fresh_store(dir.path());
        for _ in 0..200 {
            let number =
                store.create_trial(0, &params(&[("lr", ParamValue::Float(0.003))]), TrialState::Running);
            store.set_state(number.unwrap(), TrialState::Complete, Some(0.3)).unwrap();
        }
    }
    assert!(!wal_of(&path).exists(), "closing the last connection checkpoints the log");
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() >= 6 * page_size);
    // Scribble over pages 3 to 5 (tables and their indexes).
    bytes[2 * page_size..5 * page_size].fill(0x5A);
    std::fs::write(&path, &bytes).unwrap();

    let err = Database::open(&path).unwrap_err();
    let error = input_error(&err);
    assert_eq!(error.location, path.display().to_string());
    assert!(error.problem.contains("corrupted"), "{error}");
    assert!(error.hint.contains("left untouched"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(!wal_of(&path).exists());
}

#[test]
fn a_missing_directory_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/study.db");
    let err = Database::open(&path).unwrap_err();
    let error = input_error(&err);
    assert_eq!(error.location, path.display().to_string());
    assert!(error.problem.contains("does not exist"), "{error}");
    assert!(
        error.hint.contains(&format!("mkdir -p {}", dir.path().join("no/such/dir").display())),
        "{error}"
    );
    assert!(!dir.path().join("no").exists());

    let missing = dir.path().join("missing.db");
    let err = Database::open_read_only(&missing).unwrap_err();
    assert!(input_error(&err).problem.contains("no study database"), "{err:#}");
    assert!(!missing.exists(), "reading never creates the file");
}

#[test]
fn an_unwritable_location_is_reported_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"").is_ok() {
        eprintln!("note: permissions are not enforced for this user (root?); skipping the unwritable case");
        return;
    }
    let err = Database::open(locked.join("study.db")).unwrap_err();
    let error = input_error(&err);
    assert!(error.location.ends_with("locked/study.db"), "{error}");
    assert!(error.hint.contains("writable"), "{error}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn readers_see_snapshots_while_the_writer_holds_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let mut writer = fresh_store(dir.path());
    for _ in 0..2 {
        writer.create_trial(0, &params(&[("layers", ParamValue::Int(2))]), TrialState::Waiting).unwrap();
    }
    writer
        .database()
        .conn
        .execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO trials (study, number, phase, state, created_ms) VALUES (1, 2, 0, 'WAITING', 0);",
        )
        .unwrap();

    let started = Instant::now();
    let reader = Database::open_read_only(&path).unwrap().open_study("lmax_sweep").unwrap();
    assert_eq!(reader.load_trials().unwrap().len(), 2, "uncommitted rows are invisible");
    assert_eq!(reader.all_trial_details().unwrap().len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2), "the reader must not wait for the writer");

    writer.database().conn.execute_batch("COMMIT").unwrap();
    assert_eq!(reader.load_trials().unwrap().len(), 3, "the reader's cache follows other connections");

    let mut reader = reader;
    let err = reader.create_trial(0, &Params::new(), TrialState::Waiting).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err:#}");
    assert!(reader.heartbeat(0).is_err());
    assert_eq!(writer.load_trials().unwrap().len(), 3, "the writer's cache sees its own raw commit too");
}

#[test]
fn stale_running_trials_are_found_by_heartbeat_and_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh_store(dir.path());
    for _ in 0..4 {
        store.create_trial(0, &Params::new(), TrialState::Waiting).unwrap();
    }
    for number in 0..3 {
        store.start_trial(number, &format!("cuda:{number}"), 0).unwrap();
    }
    store.set_state(2, TrialState::Complete, Some(1.0)).unwrap();
    let ten_minutes_ago = Timestamp::now().minus(Duration::from_secs(600)).unix_ms;
    store.database().conn.execute("UPDATE trials SET heartbeat_ms = ?1", [ten_minutes_ago]).unwrap();
    store.heartbeat(1).unwrap();

    assert_eq!(store.stale_running_trials(Duration::from_secs(300)).unwrap(), [0]);
    assert_eq!(store.stale_running_trials(Duration::from_secs(3600)).unwrap(), Vec::<u64>::new());

    store.requeue(0).unwrap();
    let details = store.trial_details(0).unwrap();
    assert_eq!((details.trial.state, details.attempt), (TrialState::Waiting, 1));
    assert_eq!((details.device, details.started, details.heartbeat), (None, None, None));
    assert!(store.stale_running_trials(Duration::from_secs(300)).unwrap().is_empty());
    store.start_trial(0, "cuda:3", details.attempt).unwrap();
    let details = store.trial_details(0).unwrap();
    assert_eq!((details.device.as_deref(), details.attempt), (Some("cuda:3"), 1));
}

#[test]
fn state_changes_follow_the_life_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh_store(dir.path());
    let empty = BTreeMap::new();
    assert!(store.create_trial(0, &Params::new(), TrialState::Complete).is_err());
    assert!(store
        .create_trial(0, &params(&[("x", ParamValue::Float(f64::NAN))]), TrialState::Waiting)
        .is_err());
    let a = store.create_trial(0, &Params::new(), TrialState::Running).unwrap();
    assert!(store.set_state(a, TrialState::Complete, None).is_err(), "COMPLETE needs a value");
    assert!(store.set_state(a, TrialState::Complete, Some(f64::NAN)).is_err());
    assert!(store.set_state(a, TrialState::Waiting, None).is_err(), "only requeue goes back");
    store.set_state(a, TrialState::Pruned, Some(0.7)).unwrap();
    for change in [
        store.set_state(a, TrialState::Running, None),
        store.finish_trial(a, TrialState::Complete, Some(1.0), &empty),
        store.fail_trial(a, "late"),
        store.requeue(a),
        store.heartbeat(a),
        store.report(a, 3, 0.5),
        store.start_trial(a, "cpu:0", 0),
    ] {
        let err = change.unwrap_err().to_string();
        assert!(err.contains("PRUNED"), "{err}");
    }
    assert!(store.finish_trial(a, TrialState::Running, None, &empty).is_err());
    let b = store.create_trial(0, &Params::new(), TrialState::Waiting).unwrap();
    store.fail_trial(b, "CUDA out of memory\nat epoch 3").unwrap();
    let details = store.trial_details(b).unwrap();
    assert_eq!(details.trial.state, TrialState::Failed);
    assert_eq!(details.fail_reason.as_deref(), Some("CUDA out of memory\nat epoch 3"));
    assert!(details.finished.is_some());
    assert!(store.report(99, 0, 1.0).unwrap_err().to_string().contains("trial 99 does not exist"));
    assert!(store.trial_details(99).is_err());
    assert_eq!(store.load_trials().unwrap()[a as usize].value, Some(0.7));
}

#[test]
fn studies_are_created_resumed_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    drop(fresh_store(dir.path()));
    let err = Database::open(&path).unwrap().create_study(&new_study("lmax_sweep")).unwrap_err();
    assert!(input_error(&err).problem.contains("already holds"), "{err:#}");
    let resumed = Database::open(&path).unwrap().open_or_create_study(&new_study("lmax_sweep")).unwrap();
    assert_eq!(resumed.info().seed, u64::MAX - 7);
    drop(resumed);
    let other_seed = NewStudy { seed: 1, ..new_study("lmax_sweep") };
    let err = Database::open(&path).unwrap().open_or_create_study(&other_seed).unwrap_err();
    assert!(input_error(&err).problem.contains("seed"), "{err:#}");
    let mut grid = Database::open(&path).unwrap().open_or_create_study(&new_study("grid")).unwrap();
    grid.set_config("changed").unwrap();
    assert_eq!(Database::open_read_only(&path).unwrap().open_study("grid").unwrap().info().config, "changed");
    let err = Database::open(&path).unwrap().open_only_study().unwrap_err();
    assert!(input_error(&err).hint.contains("grid, lmax_sweep"), "{err:#}");
    let err = Database::open(&path).unwrap().open_study("nope").unwrap_err();
    assert!(input_error(&err).hint.contains("grid, lmax_sweep"), "{err:#}");
}

/// Random operation sequences leave the SQLite store, a fresh reader of
/// the file and the in-memory store with the same trials.
#[test]
fn agrees_with_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let mut sqlite = fresh_store(dir.path());
    let mut memory = MemoryStore::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    sqlite.load_trials().unwrap();
    for _ in 0..300 {
        let trials: Vec<FrozenTrial> = memory.load_trials().unwrap();
        let open: Vec<u64> =
            trials.iter().filter(|trial| !trial.state.is_finished()).map(|trial| trial.number).collect();
        let choice = rng.gen_range(0..10);
        if open.is_empty() || choice < 3 {
            let state = if rng.gen() { TrialState::Waiting } else { TrialState::Running };
            let p = params(&[
                ("lr", ParamValue::Float(rng.gen())),
                ("layers", ParamValue::Int(rng.gen_range(1..5))),
                ("bias", ParamValue::Bool(rng.gen())),
            ]);
            let phase = rng.gen_range(0..2);
            assert_eq!(
                sqlite.create_trial(phase, &p, state).unwrap(),
                memory.create_trial(phase, &p, state).unwrap()
            );
            continue;
        }
        let number = open[rng.gen_range(0..open.len())];
        match choice {
            3..=6 => {
                let (step, value) = (rng.gen_range(0..20), rng.gen::<f64>());
                sqlite.report(number, step, value).unwrap();
                memory.report(number, step, value).unwrap();
            }
            7 => {
                sqlite.set_state(number, TrialState::Running, None).unwrap();
                memory.set_state(number, TrialState::Running, None).unwrap();
            }
            _ => {
                let state =
                    [TrialState::Complete, TrialState::Pruned, TrialState::Failed][rng.gen_range(0..3)];
                let value = (state != TrialState::Failed).then(|| rng.gen::<f64>());
                sqlite.set_state(number, state, value).unwrap();
                memory.set_state(number, state, value).unwrap();
            }
        }
        if rng.gen_range(0..20) == 0 {
            let fresh = Database::open_read_only(&path).unwrap().open_only_study().unwrap();
            assert_eq!(fresh.load_trials().unwrap(), memory.load_trials().unwrap());
        }
    }
    assert_eq!(sqlite.load_trials().unwrap(), memory.load_trials().unwrap());
    let fresh = Database::open_read_only(&path).unwrap().open_only_study().unwrap();
    assert_eq!(fresh.load_trials().unwrap(), memory.load_trials().unwrap());
}

#[test]
fn reading_a_closed_database_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    {
        let mut store = fresh_store(dir.path());
        store.create_trial(0, &params(&[("lr", ParamValue::Float(0.003))]), TrialState::Running).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    {
        let reader = Database::open_read_only(&path).unwrap().open_only_study().unwrap();
        assert!(reader.database().is_read_only());
        assert_eq!(reader.load_trials().unwrap().len(), 1);
        assert_eq!(reader.all_trial_details().unwrap()[0].trial.state, TrialState::Running);
        export::to_csv(&reader, std::io::sink()).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // SQLite may leave the (empty) sidecar files that shared reading needs.
    let wal = std::fs::metadata(wal_of(&path)).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(wal, 0, "a reader never writes to the log");
}

#[test]
fn stores_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<SqliteStore>();
    assert_send::<Database>();
}

#[test]
fn a_failed_or_panicking_change_is_rolled_back() {
    use super::database::Lock;
    let dir = tempfile::tempdir().unwrap();
    let mut store = fresh_store(dir.path());
    store.create_trial(0, &Params::new(), TrialState::Running).unwrap();
    let db = store.database();
    let set_device = |conn: &Connection| conn.execute("UPDATE trials SET device = 'cuda:9'", []);
    let err = db.transaction(Lock::Write, |conn| -> anyhow::Result<()> {
        set_device(conn)?;
        anyhow::bail!("stop after the first statement")
    });
    assert!(err.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.transaction(Lock::Write, |conn| -> anyhow::Result<()> {
            set_device(conn)?;
            panic!("a bug in the middle of a change")
        })
    }));
    assert!(panicked.is_err());
    assert!(db.conn.is_autocommit(), "no transaction is left open");
    assert_eq!(store.trial_details(0).unwrap().device, None);
    store.heartbeat(0).unwrap();
}
