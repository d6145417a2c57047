//! Cost of the ask/tell core per trial (one `ask` + one `tell`) once a study
//! holds 1,000 COMPLETE trials, on the AnisoNet-like space lr log-float
//! [1e-4, 0.5], layers int [1, 4], mul int [16, 64], l_max {1, 2, 3, 4}.
//! Prints one JSON line per (store, sampler). Reference: Optuna 5.0 takes
//! 7.9 ms per trial in memory and 30 ms with SQLite on this machine.
//!
//!     cargo bench --bench hpo_overhead
//!
//! Each sampler runs twice: in memory, and on an on-disk SQLite database
//! (the store `study run` uses).

use std::time::Instant;

use anisostudy::hpo::samplers::TpeConfig;
use anisostudy::hpo::test_functions::{mixed, mixed_space};
use anisostudy::hpo::{
    Ask, Direction, MemoryStore, Outcome, Phase, SamplerConfig, Study, StudyConfig, TrialStore,
};
use anisostudy::storage::{Database, NewStudy, SqliteStore};

/// Trials completed before timing starts.
const HISTORY: usize = 1_000;
/// Trials timed after that.
const TIMED: usize = 200;

/// Fills `store` with `HISTORY` trials, then times `TIMED` ask + tell pairs.
fn measure<S: TrialStore>(store_label: &str, store: S, sampler_label: &str, sampler: SamplerConfig) {
    let phase = Phase::new("search", mixed_space(), sampler, Some((HISTORY + TIMED) as u64));
    let config = StudyConfig {
        seed: 7,
        direction: Default::default(),
        directions: Vec::new(),
        phases: vec![phase],
        pruner: Default::default(),
    };
    let mut study = Study::new(store, config).expect("valid study");
    let step = |study: &mut Study<S>| {
        let Ask::Trial(trial) = study.ask().expect("ask") else { panic!("the phase ended early") };
        study.tell(trial.number, Outcome::Complete(mixed(&trial.params))).expect("tell");
    };
    let fill_start = Instant::now();
    for _ in 0..HISTORY {
        step(&mut study);
    }
    let fill = fill_start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..TIMED {
        step(&mut study);
    }
    let per_trial_ms = start.elapsed().as_secs_f64() * 1e3 / TIMED as f64;
    let best = study.best_trial().and_then(|t| t.value).unwrap_or(f64::NAN);
    println!(
        "{{\"bench\":\"hpo_overhead\",\"store\":\"{store_label}\",\"sampler\":\"{sampler_label}\",\"completed_trials\":{HISTORY},\"timed_trials\":{TIMED},\"ms_per_trial\":{per_trial_ms:.4},\"fill_seconds\":{fill:.3},\"best_value\":{best:.6},\"optuna_5_ms_per_trial\":{{\"memory\":7.9,\"sqlite\":30}}}}"
    );
}

/// A fresh study in an on-disk SQLite database (WAL, as `study run` uses it).
fn sqlite_store(dir: &std::path::Path, label: &str) -> SqliteStore {
    let new = NewStudy {
        name: format!("bench-{label}"),
        direction: Direction::Minimize,
        objectives: Vec::new(),
        seed: 7,
        config: String::new(),
    };
    let path = dir.join(format!("{label}.db"));
    Database::open(&path).and_then(|db| db.create_study(&new)).expect("create the benchmark database")
}

fn main() {
    let samplers = [
        ("tpe", SamplerConfig::Tpe(TpeConfig::default())),
        ("tpe_multivariate", SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() })),
        ("random", SamplerConfig::Random),
    ];
    let dir = tempfile::tempdir().expect("a temporary directory for the databases");
    for (label, sampler) in samplers {
        measure("memory", MemoryStore::default(), label, sampler.clone());
        measure("sqlite", sqlite_store(dir.path(), label), label, sampler);
    }
}
