//! `study status`: where a study stands, read from its database without
//! disturbing a controller that is running it (read-only WAL snapshot).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::hpo::{FrozenTrial, Params, StudyConfig, TrialState};
use crate::storage::{Definition, Phase, SqliteStore, Timestamp, TrialDetails};
use crate::study::open_study;

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
    let goal = |direction| match direction {
        crate::hpo::Direction::Minimize => "minimize",
        crate::hpo::Direction::Maximize => "maximize",
    };
    let goal = match info.objectives.as_slice() {
        [] => goal(info.direction).to_owned(),
        several => {
            several.iter().map(|o| format!("{} {}", goal(o.direction), o.name)).collect::<Vec<_>>().join(", ")
        }
    };
    writeln!(out, "study {} (seed {}, {goal})", info.name, info.seed)?;

    let dir = crate::paths::folder_of(store.database().path());
    let running = trials.iter().filter(|t| t.trial.state == TrialState::Running).count();
    let config: serde_yaml::Value = serde_yaml::from_str(&info.config).unwrap_or_default();
    let external = config["resources"]["executor"].as_str() == Some("external");
    let trial_jobs = config["resources"]["executor"].as_str() == Some("slurm-jobs");
    match (crate::storage::lock::lock_holder(dir), running > 0) {
        _ if external => writeln!(
            out,
            "drivers: outside (executor: external); {running} trial(s) asked for and not yet told \
             (`study ask --stale-after AGE` fails those whose driver went silent)"
        )?,
        (Some(holder), _) => writeln!(out, "controller: running ({holder})")?,
        (None, true) if trial_jobs => writeln!(
            out,
            "controller: not running; its RUNNING trials' Slurm jobs go on, and the next `study run` \
             follows them (`study stop` cancels them)"
        )?,
        (None, true) => writeln!(
            out,
            "controller: not running; its RUNNING trials were interrupted and resume on the next `study run`"
        )?,
        (None, false) => writeln!(out, "controller: not running")?,
    }
    if let Some(job) = crate::exec::slurm::job_status(dir) {
        writeln!(out, "slurm: {job}")?;
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &trials {
        *counts.entry(t.trial.state.name()).or_default() += 1;
    }
    let line: Vec<String> = TrialState::REPORT_ORDER
        .iter()
        .map(|s| format!("{} {}", counts.get(s.name()).unwrap_or(&0), s.name()))
        .collect();
    let frozen: Vec<FrozenTrial> = trials.iter().map(|t| t.trial.clone()).collect();
    let planned = plan_of(store, &phases).and_then(|config| config.planned(&frozen));
    let budget = planned.as_ref().map(|p| (trials.len() + p.len()) as u64);
    let of = budget.map_or(String::new(), |b| format!(" of {b}"));
    writeln!(out, "trials: {}{of}: {}", trials.len(), line.join(", "))?;
    let definitions = store.definitions()?;
    let next = trials.last().map_or(0, |t| t.trial.number + 1);
    write_definitions(&mut out, &definitions, next)?;

    let constrained: Vec<&FrozenTrial> =
        trials.iter().map(|t| &t.trial).filter(|t| t.constraints.is_some()).collect();
    if !constrained.is_empty() {
        let feasible = constrained.iter().filter(|t| t.is_feasible()).count();
        writeln!(
            out,
            "constraints: {feasible} of {} measured trials feasible (the best is the best feasible one)",
            constrained.len()
        )?;
    }
    if !info.objectives.is_empty() {
        write_pareto_set(&mut out, &frozen, &info.objectives, !constrained.is_empty())?;
    } else {
        match TrialDetails::best(&trials, info.direction) {
            Some((t, v)) => writeln!(
                out,
                "best: trial {}  value {v:.6}  {}",
                t.trial.number,
                super::run::format_params(&t.trial.params)
            )?,
            None if !constrained.is_empty() => writeln!(out, "best: no feasible trial yet")?,
            None => writeln!(out, "best: none yet")?,
        }
    }

    let running: Vec<&TrialDetails> =
        trials.iter().filter(|t| t.trial.state == TrialState::Running).collect();
    let devices_seen: std::collections::BTreeSet<&str> =
        trials.iter().filter_map(|t| t.device.as_deref()).collect();
    let slots = running.len().max(devices_seen.len()).max(1);
    match planned {
        Some(planned) => match Eta::estimate(&trials, &planned, slots, now) {
            Some(eta) if eta.left == 0 => writeln!(out, "eta: done")?,
            Some(eta) => writeln!(
                out,
                "eta: {} ({} trials left, {} per trial)",
                human(eta.remaining),
                eta.left,
                human(eta.per_trial)
            )?,
            None => writeln!(out, "eta: unknown (no finished trial yet)")?,
        },
        None => writeln!(out, "eta: unknown (an open-ended phase)")?,
    }

    write_device_use(&mut out, &trials, &devices_seen, !running.is_empty(), now)?;
    for t in &running {
        if let Some(reason) = &t.waiting_for {
            let since = t.started.map_or(String::new(), |s| format!(" for {}", human(now.since(s))));
            let on = t.device.as_deref().map_or(String::new(), |d| format!(" on {d}"));
            writeln!(out, "waiting: trial {}{on}{since}: {reason}", t.trial.number)?;
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

/// The report's device use: per device, busy time over the wall time since
/// the first start; then the trials per node where slots are on other nodes.
/// The Pareto set of a study with several objectives: each trial's values
/// under the objectives' names, sorted by the first objective.
pub(super) fn write_pareto_set(
    out: &mut String,
    trials: &[FrozenTrial],
    objectives: &[crate::storage::StoredObjective],
    constrained: bool,
) -> std::fmt::Result {
    use std::fmt::Write;
    let directions: Vec<_> = objectives.iter().map(|o| o.direction).collect();
    let mut front = crate::hpo::pareto::pareto_front(trials, &directions);
    let feasible = if constrained { " feasible" } else { "" };
    if front.is_empty() {
        return writeln!(out, "pareto set: no{feasible} COMPLETE trial yet");
    }
    front.sort_by(|a, b| {
        let (a, b) = (directions[0].as_loss(a.values[0]), directions[0].as_loss(b.values[0]));
        a.total_cmp(&b)
    });
    writeln!(out, "pareto set: {} trial(s), no{feasible} trial better in every objective", front.len())?;
    for t in front {
        let values: Vec<String> =
            objectives.iter().zip(&t.values).map(|(o, v)| format!("{} {v:.6}", o.name)).collect();
        writeln!(
            out,
            "  trial {}  {}  {}",
            t.number,
            values.join("  "),
            super::run::format_params(&t.params)
        )?;
    }
    Ok(())
}

fn write_device_use(
    out: &mut String,
    trials: &[TrialDetails],
    devices_seen: &std::collections::BTreeSet<&str>,
    any_running: bool,
    now: Timestamp,
) -> std::fmt::Result {
    use std::fmt::Write;
    // The study's wall time runs to now while trials run, else to the last finish.
    let first = trials.iter().filter_map(|t| t.started).min();
    let end = if any_running { Some(now) } else { trials.iter().filter_map(|t| t.finished).max() };
    if let (Some(first), Some(end)) = (first, end) {
        let wall = end.since(first).as_secs_f64().max(1e-9);
        writeln!(out, "devices:")?;
        for device in devices_seen {
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
                |t| match (t.trial.last_step(), &t.waiting_for) {
                    (_, Some(_)) => format!("trial {} waiting to start", t.trial.number),
                    (Some(step), None) => format!("trial {} at epoch {step}", t.trial.number),
                    (None, None) => format!("trial {} starting", t.trial.number),
                },
            );
            writeln!(
                out,
                "  {device:<8} {:>3.0}% busy  {} trials  {now_running}",
                (100.0 * busy / wall).min(100.0),
                on.len()
            )?;
        }
        // Slots on other nodes are labelled `node/device`: trials per node.
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for t in trials {
            if let Some((node, _)) = t.device.as_deref().and_then(|d| d.split_once('/')) {
                *per_node.entry(node).or_default() += 1;
            }
        }
        if !per_node.is_empty() {
            let nodes: Vec<String> = per_node.iter().map(|(node, n)| format!("{node} {n} trials")).collect();
            writeln!(out, "nodes: {}", nodes.join(", "))?;
        }
    }
    Ok(())
}

/// The report's study-file definitions, each with the trials run under it.
fn write_definitions(out: &mut String, definitions: &[Definition], next: u64) -> std::fmt::Result {
    use std::fmt::Write;
    match definitions {
        [] => {}
        [only] => writeln!(out, "definition: as first run ({}, version {})", only.created, only.version)?,
        all => {
            writeln!(out, "definitions: {} (the study file changed {} time(s))", all.len(), all.len() - 1)?;
            for (d, range) in all.iter().zip(Definition::trial_ranges(all, next)) {
                let changes = d.change_texts().join("; ");
                let line = format!("  {}  {}  {range:<12}  {changes}", d.revision, d.created);
                writeln!(out, "{}", line.trim_end())?;
            }
        }
    }
    Ok(())
}

/// The study's plan as stored with it, enough to know the trials still to
/// come; `None` if a phase's sampler cannot be read back.
fn plan_of(store: &SqliteStore, phases: &[Phase]) -> Option<StudyConfig> {
    let info = store.info();
    let phases = phases
        .iter()
        .map(|p| {
            let sampler = serde_json::from_str(&p.sampler).ok()?;
            Some(crate::hpo::Phase::new(&p.name, p.space.clone(), sampler, p.budget))
        })
        .collect::<Option<Vec<_>>>()?;
    let directions = info.objectives.iter().map(|o| o.direction).collect();
    Some(StudyConfig {
        seed: info.seed,
        direction: info.direction,
        directions,
        phases,
        pruner: Default::default(),
    })
}

/// When the trials still to run will be done.
#[derive(Debug, PartialEq)]
struct Eta {
    /// Trials not finished: running, waiting and still to be created.
    left: usize,
    /// Time until the last of them finishes.
    remaining: Duration,
    /// Their mean expected duration.
    per_trial: Duration,
}

impl Eta {
    /// Each unfinished trial is expected to take as long as the finished
    /// trials most like it: those sharing the most parameter values (in a
    /// sweep, the same model and l_max, whose cost differs most), or all
    /// finished trials when its parameters are still to be sampled. The
    /// trials are then handed to `slots` slots in order, each to the slot
    /// free first, after what the running trials still need. `None` before
    /// any trial has finished.
    fn estimate(
        trials: &[TrialDetails],
        planned: &[Option<Params>],
        slots: usize,
        now: Timestamp,
    ) -> Option<Self> {
        let finished: Vec<(&Params, Duration)> = trials
            .iter()
            .filter(|t| t.trial.state.is_finished())
            .filter_map(|t| Some((&t.trial.params, t.duration()?)))
            .collect();
        let running = trials.iter().filter(|t| t.trial.state == TrialState::Running);
        let waiting =
            trials.iter().filter(|t| t.trial.state == TrialState::Waiting).map(|t| Some(&t.trial.params));
        let queued: Vec<Option<&Params>> = waiting.chain(planned.iter().map(Option::as_ref)).collect();
        let left = running.clone().count() + queued.len();
        if left == 0 {
            return Some(Self { left, remaining: Duration::ZERO, per_trial: Duration::ZERO });
        }
        if finished.is_empty() {
            return None;
        }
        let expected = |params: Option<&Params>| -> Duration {
            let shared = |p: &Params| {
                params.map_or(0, |q| q.iter().filter(|(k, v)| p.get(*k).is_some_and(|w| w.same(v))).count())
            };
            let most = finished.iter().map(|(p, _)| shared(p)).max().unwrap_or(0);
            let like: Vec<Duration> =
                finished.iter().filter(|(p, _)| shared(p) == most).map(|(_, d)| *d).collect();
            like.iter().sum::<Duration>() / like.len() as u32
        };
        let mut total = Duration::ZERO;
        let mut free_at: Vec<Duration> = running
            .map(|t| {
                let duration = expected(Some(&t.trial.params));
                total += duration;
                duration.saturating_sub(t.started.map_or(Duration::ZERO, |s| now.since(s)))
            })
            .collect();
        free_at.resize(free_at.len().max(slots), Duration::ZERO);
        for params in queued {
            let duration = expected(params);
            total += duration;
            *free_at.iter_mut().min().expect("at least one slot") += duration;
        }
        let per_trial = total / left as u32;
        Some(Self { left, remaining: free_at.into_iter().max().unwrap_or_default(), per_trial })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpo::ParamValue;

    fn at(s: i64) -> Timestamp {
        Timestamp { unix_ms: s * 1000 }
    }

    /// A trial of l_max `lmax` that ran from `start` to `end` seconds.
    fn trial(
        number: u64,
        lmax: i64,
        state: TrialState,
        start: Option<i64>,
        end: Option<i64>,
    ) -> TrialDetails {
        let params: Params = [("lmax".to_owned(), ParamValue::Int(lmax))].into();
        TrialDetails {
            trial: FrozenTrial {
                number,
                phase: 0,
                state,
                params,
                value: None,
                intermediate: Default::default(),
                values: Vec::new(),
                constraints: None,
            },
            distributions: Default::default(),
            seed: None,
            device: Some(format!("cpu:{}", number % 2)),
            attempt: 0,
            created: at(0),
            started: start.map(at),
            finished: end.map(at),
            heartbeat: None,
            fail_reason: None,
            waiting_for: None,
            metrics: Default::default(),
            artifacts: Vec::new(),
            user_attrs: Default::default(),
        }
    }

    fn lmax(l: i64) -> Option<Params> {
        Some([("lmax".to_owned(), ParamValue::Int(l))].into())
    }

    #[test]
    fn a_sweep_eta_prices_each_cell_like_its_finished_kin() {
        // l_max 0 took 10 s, l_max 3 took 100 s; one l_max 3 trial has run
        // 40 s; left: one l_max 0 and one l_max 3, on two slots.
        let trials = [
            trial(0, 0, TrialState::Complete, Some(0), Some(10)),
            trial(1, 3, TrialState::Complete, Some(0), Some(100)),
            trial(2, 3, TrialState::Running, Some(100), None),
        ];
        let eta = Eta::estimate(&trials, &[lmax(0), lmax(3)], 2, at(140)).unwrap();
        assert_eq!(eta.left, 3);
        // Slot A: the running trial, 60 s to go, then nothing; slot B: 10 s,
        // then 100 s. The last to finish ends 110 s from now.
        assert_eq!(eta.remaining, Duration::from_secs(110));
        assert_eq!(eta.per_trial, Duration::from_secs(70));
    }

    #[test]
    fn sampled_trials_take_the_mean_and_nothing_finished_means_unknown() {
        let done = [
            trial(0, 1, TrialState::Complete, Some(0), Some(20)),
            trial(1, 2, TrialState::Pruned, Some(0), Some(40)),
        ];
        let eta = Eta::estimate(&done, &[None, None], 1, at(40)).unwrap();
        assert_eq!((eta.left, eta.remaining), (2, Duration::from_secs(60)));
        assert_eq!(Eta::estimate(&done, &[], 1, at(40)).unwrap().left, 0);
        let none_finished = [trial(0, 1, TrialState::Running, Some(0), None)];
        assert_eq!(Eta::estimate(&none_finished, &[None], 1, at(5)), None);
    }
}
