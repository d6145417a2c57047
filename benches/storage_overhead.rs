//! Cost of the study database per trial: the storage operations of one
//! trial's life (create RUNNING, 10 intermediate reports, set metrics, set
//! COMPLETE) on an on-disk database that already holds 1,000 trials, plus
//! the reads the ask/tell core and the reporting commands make.
//!
//! The database runs in WAL mode with `synchronous = NORMAL` (see
//! `storage::Database`): commits do not wait for the disk, so these numbers
//! are CPU and system-call costs; a power loss may undo the last commits but
//! never corrupts the file.
//!
//! Prints one JSON line per measurement. Options: `--existing N` (trials
//! already stored, default 1000), `--measured N` (trial lives timed, default
//! 1000), `--dir PATH` (where the temporary database goes, default the
//! system temp dir).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anisostudy::hpo::{
    Direction, Distribution, MemoryStore, ParamValue, Params, SearchSpace, TrialState, TrialStore,
};
use anisostudy::storage::{export, Database, NewStudy, Phase, SqliteStore};
use serde_json::json;

const REPORTS_PER_TRIAL: u64 = 10;

struct Options {
    existing: u64,
    measured: u64,
    dir: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut options = Options { existing: 1000, measured: 1000, dir: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--existing" => {
                options.existing = value("--existing")?.parse().map_err(|e| format!("--existing: {e}"))?
            }
            "--measured" => {
                options.measured = value("--measured")?.parse().map_err(|e| format!("--measured: {e}"))?
            }
            "--dir" => options.dir = Some(PathBuf::from(value("--dir")?)),
            _ => {} // `cargo bench` passes --bench and filters.
        }
    }
    if options.measured == 0 {
        return Err("--measured must be at least 1".into());
    }
    Ok(options)
}

/// The paper's TPE space: lr, embedding, gate layers, multiplicity, l_max.
fn space() -> SearchSpace {
    let mut space = SearchSpace::default();
    space.params.insert("lr".into(), Distribution::Float { low: 1e-4, high: 0.5, log: true, step: None });
    space.params.insert("em_dim".into(), Distribution::Int { low: 8, high: 96, log: false, step: 1 });
    space.params.insert(
        "layers".into(),
        Distribution::Categorical { choices: (1..=4).map(ParamValue::Int).collect() },
    );
    space.params.insert("mul".into(), Distribution::Int { low: 16, high: 64, log: false, step: 1 });
    space.params.insert("lmax".into(), Distribution::Int { low: 1, high: 4, log: false, step: 1 });
    space
}

fn params(number: u64) -> Params {
    let k = number as i64;
    [
        ("lr".to_string(), ParamValue::Float(1e-4 * (1.0 + number as f64).sqrt())),
        ("em_dim".to_string(), ParamValue::Int(8 + k % 89)),
        ("layers".to_string(), ParamValue::Int(1 + k % 4)),
        ("mul".to_string(), ParamValue::Int(16 + k % 49)),
        ("lmax".to_string(), ParamValue::Int(1 + k % 4)),
    ]
    .into_iter()
    .collect()
}

fn metrics(number: u64) -> BTreeMap<String, f64> {
    let x = number as f64 * 1e-4;
    ["eps_poly_mae", "ar_mae", "eps_poly_mae_cubic", "ar_mae_cubic"]
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), 0.3 + x + i as f64 * 0.01))
        .collect()
}

/// Time spent in each operation over the measured trial lives.
#[derive(Default)]
struct Timings {
    lives: u64,
    create_running: Duration,
    report: Duration,
    set_metrics: Duration,
    set_complete: Duration,
}

fn trial_life(store: &mut SqliteStore, timings: &mut Timings) -> anyhow::Result<()> {
    let params = params(timings.lives);
    timings.lives += 1;
    let t0 = Instant::now();
    let number = store.create_trial(0, &params, TrialState::Running)?;
    let t1 = Instant::now();
    for step in 0..REPORTS_PER_TRIAL {
        store.report(number, step, 1.0 / (step + 1) as f64)?;
    }
    let t2 = Instant::now();
    store.set_metrics(number, &metrics(number))?;
    let t3 = Instant::now();
    store.set_state(number, TrialState::Complete, Some(0.3 + number as f64 * 1e-4))?;
    let t4 = Instant::now();
    timings.create_running += t1 - t0;
    timings.report += t2 - t1;
    timings.set_metrics += t3 - t2;
    timings.set_complete += t4 - t3;
    Ok(())
}

fn line(op: &str, existing: u64, count: u64, total: Duration) {
    line_with_cpu(op, existing, count, total, None)
}

/// A JSON line: wall time per operation, and on-CPU time where measured
/// (on a busy machine the difference is time spent waiting for a core).
fn line_with_cpu(op: &str, existing: u64, count: u64, wall: Duration, cpu: Option<Duration>) {
    let per_op_us = |total: Duration| (total.as_secs_f64() * 1e8 / count as f64).round() / 100.0;
    let mut record = json!({"bench": "storage_overhead", "op": op, "existing_trials": existing, "count": count,
                            "per_op_us": per_op_us(wall)});
    if let Some(cpu) = cpu {
        record["cpu_per_op_us"] = json!(per_op_us(cpu));
    }
    println!("{record}");
}

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(text.split_whitespace().next()?.parse().ok()?))
}

/// Mean time of `repeats` calls of `f`.
fn time_repeated(repeats: u64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..repeats {
        f()?;
    }
    Ok(start.elapsed())
}

fn main() -> anyhow::Result<()> {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("storage_overhead: {message}");
            std::process::exit(2);
        }
    };
    let dir = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let path = dir.path().join("study.db");
    let study = NewStudy {
        name: "bench".into(),
        direction: Direction::Minimize,
        objectives: Vec::new(),
        seed: 1,
        config: String::new(),
    };
    let mut store = Database::open(&path)?.create_study(&study)?;
    store.set_phase(&Phase {
        index: 0,
        name: "tpe".into(),
        sampler: "tpe".into(),
        space: space(),
        budget: None,
    })?;

    let mut untimed = Timings::default();
    for _ in 0..options.existing {
        trial_life(&mut store, &mut untimed)?;
    }

    let existing = options.existing;
    let mut timings = Timings { lives: untimed.lives, ..Timings::default() };
    let cpu_start = cpu_time();
    for _ in 0..options.measured {
        trial_life(&mut store, &mut timings)?;
    }
    let cpu = cpu_time().zip(cpu_start).map(|(end, start)| end.saturating_sub(start));
    let n = options.measured;
    line("create_trial_running", existing, n, timings.create_running);
    line("report", existing, n * REPORTS_PER_TRIAL, timings.report);
    line("set_metrics", existing, n, timings.set_metrics);
    line("set_state_complete", existing, n, timings.set_complete);
    let total = timings.create_running + timings.report + timings.set_metrics + timings.set_complete;
    line_with_cpu("trial_life_total", existing, n, total, cpu);

    // The same life with the atomic finish (metrics + COMPLETE in one commit).
    let start = Instant::now();
    for _ in 0..n {
        let number = store.create_trial(0, &params(0), TrialState::Running)?;
        for step in 0..REPORTS_PER_TRIAL {
            store.report(number, step, 1.0 / (step + 1) as f64)?;
        }
        store.finish_trial(number, TrialState::Complete, Some(0.5), &metrics(number))?;
    }
    line("trial_life_total_with_finish_trial", existing + n, n, start.elapsed());

    let stored = existing + 2 * n;
    let repeats = 20;
    line("load_trials_cached", stored, repeats, time_repeated(repeats, || store.load_trials().map(drop))?);
    let mut memory = MemoryStore::default();
    for trial in store.load_trials()? {
        memory.create_trial(trial.phase, &trial.params, TrialState::Running)?;
        for (step, value) in &trial.intermediate {
            memory.report(trial.number, *step, *value)?;
        }
        memory.set_state(trial.number, trial.state, trial.value)?;
    }
    line(
        "memory_store_load_trials",
        stored,
        repeats,
        time_repeated(repeats, || memory.load_trials().map(drop))?,
    );
    let reader = Database::open_read_only(&path)?.open_study("bench")?;
    // Each read follows a commit of the writer, so the reader's cache is
    // invalid every time: a full load from SQLite.
    let mut uncached = Duration::ZERO;
    for i in 0..repeats {
        store.set_study_user_attr("touch", &json!(i))?;
        let start = Instant::now();
        reader.load_trials()?;
        uncached += start.elapsed();
    }
    line("load_trials_reader_uncached", stored, repeats, uncached);
    line(
        "all_trial_details",
        stored,
        repeats,
        time_repeated(repeats, || reader.all_trial_details().map(drop))?,
    );
    line("export_csv", stored, repeats, time_repeated(repeats, || export::to_csv(&reader, std::io::sink()))?);
    let open = time_repeated(repeats, || Database::open(&path).map(drop))?;
    line("open_writer_with_quick_check", stored, repeats, open);
    Ok(())
}
