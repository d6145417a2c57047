//! `study status`: where a study stands, read from its database without
//! disturbing a controller that is running it (read-only WAL snapshot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::error::InputError;
use crate::hpo::TrialState;
use crate::storage::{Database, SqliteStore, Timestamp, TrialDetails};

/// Show a study's trials by state, the best trial, an ETA and device use.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The study's name (its folder in the results folder), or the path of
    /// that folder; optional when the results folder holds one study.
    pub study: Option<String>,
    /// Results folder the study ran in.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

/// The study folder's database: `study` names a folder of `results` or is a
/// folder itself; without it, `results` must hold exactly one study.
pub fn open_study(results: &Path, study: Option<&str>) -> Result<SqliteStore> {
    let dir = study_folder(results, study)?;
    Database::open_read_only(dir.join("study.db"))?.open_only_study()
}

/// The folder of a study (it holds `study.db`): `study` names a folder of
/// `results` or is a folder itself; without it, `results` must hold exactly
/// one study. Every miss is an [`InputError`] that says what to give.
pub fn study_folder(results: &Path, study: Option<&str>) -> Result<PathBuf> {
    let named_folder = study.is_some_and(|name| Path::new(name).join("study.db").is_file());
    if !named_folder && !results.is_dir() {
        return Err(InputError::new(results.display().to_string(), "no such results folder")
            .with_hint("give the folder `study run` wrote to with --results DIR (default: results)")
            .into());
    }
    let dir = match study {
        Some(name) if Path::new(name).join("study.db").is_file() => PathBuf::from(name),
        Some(name) => results.join(name),
        None if results.join("study.db").is_file() => results.to_path_buf(),
        None => {
            let mut found: Vec<String> = std::fs::read_dir(results)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().join("study.db").is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.as_slice() {
                [one] => results.join(one),
                [] => {
                    return Err(InputError::new(results.display().to_string(), "holds no study")
                        .with_hint("run one with `study run FILE`, or give --results DIR")
                        .into())
                }
                names => {
                    return Err(InputError::new(results.display().to_string(), "holds several studies")
                        .with_hint(format!("name one of them: {}", names.join(", ")))
                        .into())
                }
            }
        }
    };
    if !dir.join("study.db").is_file() {
        return Err(InputError::new(dir.display().to_string(), "is not a study folder (no study.db)")
            .with_hint("give the study's name as `study run` printed it, and the same --results")
            .into());
    }
    Ok(dir)
}

pub fn run(args: StatusArgs) -> Result<()> {
    let store = open_study(&args.results, args.study.as_deref())?;
    print!("{}", render(&store, Timestamp::now())?);
    Ok(())
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1} s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// The status report as text.
pub fn render(store: &SqliteStore, now: Timestamp) -> Result<String> {
    use std::fmt::Write;
    let info = store.info();
    let trials = store.all_trial_details()?;
    let phases = store.phases()?;
    let mut out = String::new();
    let goal = match info.direction {
        crate::hpo::Direction::Minimize => "minimize",
        crate::hpo::Direction::Maximize => "maximize",
    };
    writeln!(out, "study {} (seed {}, {goal})", info.name, info.seed)?;

    let lock = store.database().path().with_file_name("controller.lock");
    let interrupted = trials.iter().any(|t| t.trial.state == TrialState::Running);
    match (crate::exec::controller::lock_holder(&lock), interrupted) {
        (Some(pid), _) => writeln!(out, "controller: running (pid {pid})")?,
        (None, true) => writeln!(
            out,
            "controller: not running; its RUNNING trials were interrupted and resume on the next `study run`"
        )?,
        (None, false) => writeln!(out, "controller: not running")?,
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &trials {
        *counts.entry(t.trial.state.name()).or_default() += 1;
    }
    let states = ["COMPLETE", "PRUNED", "FAILED", "RUNNING", "WAITING"];
    let line: Vec<String> = states.iter().map(|s| format!("{} {s}", counts.get(s).unwrap_or(&0))).collect();
    let budget = phases.iter().map(|p| p.budget).sum::<Option<u64>>();
    let of = budget.map_or(String::new(), |b| format!(" of {b}"));
    writeln!(out, "trials: {}{of}: {}", trials.len(), line.join(", "))?;

    match TrialDetails::best(&trials, info.direction) {
        Some((t, v)) => writeln!(
            out,
            "best: trial {}  value {v:.6}  {}",
            t.trial.number,
            super::run::format_params(&t.trial.params)
        )?,
        None => writeln!(out, "best: none yet")?,
    }

    // ETA: mean duration of finished trials × remaining, over the slots in use.
    let finished: Vec<Duration> =
        trials.iter().filter(|t| t.trial.state.is_finished()).filter_map(TrialDetails::duration).collect();
    let running: Vec<&TrialDetails> =
        trials.iter().filter(|t| t.trial.state == TrialState::Running).collect();
    let devices_seen: std::collections::BTreeSet<&str> =
        trials.iter().filter_map(|t| t.device.as_deref()).collect();
    let done = trials.iter().filter(|t| t.trial.state.is_finished()).count() as u64;
    match (budget, finished.is_empty()) {
        (Some(total), false) if total > done => {
            let mean = finished.iter().sum::<Duration>() / finished.len() as u32;
            let parallel = running.len().max(devices_seen.len()).max(1) as u32;
            let eta = mean * (total - done) as u32 / parallel;
            writeln!(out, "eta: {} ({} trials left, {} per trial)", human(eta), total - done, human(mean))?
        }
        (Some(total), _) if total <= done => writeln!(out, "eta: done")?,
        _ => writeln!(out, "eta: unknown (no finished trial yet, or an open-ended phase)")?,
    }

    // Device use: busy time over the wall time since the first start.
    // The study's wall time runs to now while trials run, else to the last finish.
    let first = trials.iter().filter_map(|t| t.started).min();
    let end = if running.is_empty() { trials.iter().filter_map(|t| t.finished).max() } else { Some(now) };
    if let (Some(first), Some(end)) = (first, end) {
        let wall = end.since(first).as_secs_f64().max(1e-9);
        writeln!(out, "devices:")?;
        for device in &devices_seen {
            let on: Vec<&TrialDetails> =
                trials.iter().filter(|t| t.device.as_deref() == Some(device)).collect();
            let busy: f64 = on
                .iter()
                .filter_map(|t| match t.trial.state {
                    TrialState::Running => t.started.map(|s| now.since(s)),
                    _ => t.duration(),
                })
                .map(|d| d.as_secs_f64())
                .sum();
            let now_running = on.iter().find(|t| t.trial.state == TrialState::Running).map_or(
                "idle".to_owned(),
                |t| match t.trial.last_step() {
                    Some(step) => format!("trial {} at epoch {step}", t.trial.number),
                    None => format!("trial {} starting", t.trial.number),
                },
            );
            writeln!(
                out,
                "  {device:<8} {:>3.0}% busy  {} trials  {now_running}",
                (100.0 * busy / wall).min(100.0),
                on.len()
            )?;
        }
    }
    for t in trials.iter().filter(|t| t.trial.state == TrialState::Failed) {
        writeln!(
            out,
            "failed: trial {}: {}",
            t.trial.number,
            t.fail_reason.as_deref().unwrap_or("no reason")
        )?;
    }
    Ok(out)
}
