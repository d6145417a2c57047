//! The tables of a search (TPE, random, grid phases): the top trials with
//! their parameters, objective and test metrics, the phases, and the best
//! trial's errors per crystal system.

use std::collections::BTreeSet;

use super::collect::StudyData;
use super::tables::{Cell, Column, Table};
use crate::crystal::symmetry::CrystalSystem;
use crate::hpo::{Direction, ParamValue, TrialState};
use crate::storage::TrialDetails;

/// Trials in the top-trials table.
pub const TOP: usize = 10;

/// Test metrics shown next to a trial's objective, when recorded.
const TEST_METRICS: [(&str, &str); 3] = [
    ("test_eps_poly_mae", "test ε_poly MAE"),
    ("test_anisotropy_mae", "test a_r MAE"),
    ("test_unphysical", "unphysical"),
];

/// Feasible COMPLETE trials from best to worst objective (every COMPLETE
/// trial of a study without constraints).
pub fn ranked(data: &StudyData) -> Vec<&TrialDetails> {
    let mut trials: Vec<&TrialDetails> =
        data.complete().filter(|t| t.trial.value.is_some() && t.trial.is_feasible()).collect();
    let sign = if data.direction() == Direction::Maximize { -1.0 } else { 1.0 };
    trials.sort_by(|a, b| {
        let key = |t: &TrialDetails| sign * t.trial.value.unwrap_or(f64::NAN);
        key(a).total_cmp(&key(b)).then(a.trial.number.cmp(&b.trial.number))
    });
    trials
}

/// The `TOP` best trials: number, phase, parameters, objective, test metrics.
pub fn top_trials_table(data: &StudyData) -> Table {
    let ranked = ranked(data);
    let top = &ranked[..ranked.len().min(TOP)];
    let params: BTreeSet<&str> = top.iter().flat_map(|t| t.trial.params.keys().map(String::as_str)).collect();
    let metrics: Vec<(&str, &str)> =
        TEST_METRICS.into_iter().filter(|(m, _)| top.iter().any(|t| t.metrics.contains_key(*m))).collect();
    let mut columns = vec![Column::new("trial", "trial"), Column::new("phase", "phase")];
    columns.extend(params.iter().map(|p| Column::new(format!("param_{p}"), *p)));
    columns.push(Column::new("objective", data.objective_name()));
    columns.extend(metrics.iter().map(|(m, title)| Column::new(*m, *title)));
    let infeasible = data.complete().filter(|t| !t.trial.is_feasible()).count();
    let title = match infeasible {
        0 => format!("Top {} of {} COMPLETE trials", top.len(), ranked.len()),
        _ => format!("Top {} of {} feasible COMPLETE trials", top.len(), ranked.len()),
    };
    let mut table = Table::new("top_trials", &title, columns);
    for t in top {
        let mut row = trial_cells(data, t, &params);
        row.push(Cell::number_or(t.trial.value, "no value"));
        row.extend(metrics.iter().map(|(m, _)| match t.metrics.get(*m) {
            Some(v) => Cell::number(*v),
            None if m.contains("anisotropy") && t.metrics.contains_key("test_eps_poly_mae") => {
                Cell::missing("a_r undefined: a test prediction has an eigenvalue ≤ 0")
            }
            None => Cell::missing("not recorded"),
        }));
        table.rows.push(row);
    }
    let objective = 2 + params.len();
    table.bold_best(&[objective], data.direction() == Direction::Maximize);
    for c in objective + 1..objective + 1 + metrics.len() {
        table.bold_best(&[c], false);
    }
    table.notes.push("objective: validation; metrics: test split of each trial's best epoch".to_owned());
    if infeasible > 0 {
        table.notes.push(format!("{infeasible} COMPLETE trial(s) broke a constraint and are left out"));
    }
    table
}

/// The Pareto set of a study with several objectives: number, phase,
/// parameters, each objective, test metrics; sorted by the first objective.
pub fn pareto_table(data: &StudyData) -> Table {
    let set = data.pareto_set();
    let objectives = data.objectives();
    let params: BTreeSet<&str> = set.iter().flat_map(|t| t.trial.params.keys().map(String::as_str)).collect();
    let metrics: Vec<(&str, &str)> =
        TEST_METRICS.into_iter().filter(|(m, _)| set.iter().any(|t| t.metrics.contains_key(*m))).collect();
    let mut columns = vec![Column::new("trial", "trial"), Column::new("phase", "phase")];
    columns.extend(params.iter().map(|p| Column::new(format!("param_{p}"), *p)));
    columns.extend(objectives.iter().map(|o| Column::new(format!("objective_{}", o.name), o.name.as_str())));
    columns.extend(metrics.iter().map(|(m, title)| Column::new(*m, *title)));
    let complete = data.complete().count();
    let title =
        format!("Pareto set: {} of {complete} COMPLETE trials, none beaten in every objective", set.len());
    let mut table = Table::new("pareto_set", &title, columns);
    for t in &set {
        let mut row = trial_cells(data, t, &params);
        row.extend(t.trial.values.iter().map(|v| Cell::number(*v)));
        row.extend(metrics.iter().map(|(m, _)| match t.metrics.get(*m) {
            Some(v) => Cell::number(*v),
            None => Cell::missing("not recorded"),
        }));
        table.rows.push(row);
    }
    let first = 2 + params.len();
    for (i, o) in objectives.iter().enumerate() {
        table.bold_best(&[first + i], o.direction == Direction::Maximize);
    }
    let directions: Vec<String> =
        objectives.iter().map(|o| format!("{} {}", o.name, direction_word(o.direction))).collect();
    table.notes.push(format!("objectives: {}; bold: the best of the set in each", directions.join(", ")));
    let infeasible = data.complete().filter(|t| !t.trial.is_feasible()).count();
    if infeasible > 0 {
        table.notes.push(format!("{infeasible} COMPLETE trial(s) broke a constraint and are left out"));
    }
    table
}

/// The hypervolume of the Pareto set after each finished trial (in number
/// order), up to a reference 10 % beyond the worst value of each objective
/// among all feasible COMPLETE trials: the progress of a search with
/// several objectives, as the best value is with one.
pub fn hypervolume_history(data: &StudyData) -> Vec<(u64, f64)> {
    use crate::hpo::pareto;
    let directions: Vec<Direction> = data.objectives().iter().map(|o| o.direction).collect();
    let finished: Vec<&crate::hpo::FrozenTrial> =
        data.trials.iter().map(|t| &t.trial).filter(|t| t.state.is_finished()).collect();
    let all: Vec<Vec<f64>> = finished
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.is_feasible())
        .filter_map(|t| pareto::losses(t, &directions))
        .filter(|l| l.iter().all(|x| x.is_finite()))
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    let reference = pareto::reference_point(&all);
    (0..finished.len())
        .map(|i| {
            let front: Vec<Vec<f64>> = pareto::pareto_front(finished[..=i].iter().copied(), &directions)
                .into_iter()
                .filter_map(|t| pareto::losses(t, &directions))
                .collect();
            (finished[i].number, pareto::hypervolume(&front, &reference))
        })
        .collect()
}

/// A trial's number, phase and the values of `params` (the first cells of
/// a row of trials).
fn trial_cells(data: &StudyData, t: &TrialDetails, params: &BTreeSet<&str>) -> Vec<Cell> {
    let mut row = vec![Cell::number(t.trial.number as f64), Cell::text(phase_name(data, t.trial.phase))];
    row.extend(params.iter().map(|p| match t.trial.params.get(*p) {
        Some(ParamValue::Float(x)) => Cell::number(*x),
        Some(ParamValue::Int(i)) => Cell::number(*i as f64),
        Some(v) => Cell::text(v.to_string()),
        None => Cell::missing("not a parameter of this trial's phase"),
    }));
    row
}

fn phase_name(data: &StudyData, index: usize) -> String {
    data.phases.iter().find(|p| p.index == index).map_or_else(|| index.to_string(), |p| p.name.clone())
}

/// Each phase: its sampler, budget and trials by state.
pub fn phases_table(data: &StudyData) -> Table {
    let states = TrialState::REPORT_ORDER;
    let mut columns = vec![
        Column::new("phase", "phase"),
        Column::new("sampler", "sampler"),
        Column::new("budget", "budget"),
    ];
    columns.extend(states.iter().map(|s| Column::new(s.name().to_lowercase(), s.name())));
    let mut table = Table::new("phases", "Phases and their trials", columns);
    for phase in &data.phases {
        // Stored as `{"tpe": {options}}` (or a bare name): show the name.
        let sampler = match serde_json::from_str::<serde_json::Value>(&phase.sampler) {
            Ok(serde_json::Value::Object(map)) if map.len() == 1 => map.keys().next().cloned(),
            Ok(serde_json::Value::String(name)) => Some(name),
            _ => None,
        }
        .unwrap_or_else(|| phase.sampler.clone());
        let mut row = vec![
            Cell::text(&phase.name),
            Cell::text(sampler),
            phase.budget.map_or_else(|| Cell::text("until exhausted"), |b| Cell::number(b as f64)),
        ];
        for state in states {
            let n =
                data.trials.iter().filter(|t| t.trial.phase == phase.index && t.trial.state == state).count();
            row.push(Cell::number(n as f64));
        }
        table.rows.push(row);
    }
    table
}

/// The best trial's test errors per crystal system (one trial: no intervals).
pub fn best_systems_table(data: &StudyData) -> Option<Table> {
    let best = *ranked(data).first()?;
    if !best.metrics.keys().any(|k| k.starts_with("test_count_")) {
        return None;
    }
    let columns = vec![
        Column::new("crystal_system", "crystal system"),
        Column::new("count", "test structures"),
        Column::new("test_eps_poly_mae", "ε_poly MAE"),
        Column::new("test_anisotropy_mae", "a_r MAE"),
        Column::new("test_unphysical", "unphysical"),
    ];
    let title = format!("Test MAE per crystal system of the best trial ({})", best.trial.number);
    let mut table = Table::new("crystal_systems", &title, columns);
    for system in CrystalSystem::ALL.map(CrystalSystem::name) {
        let get = |m: &str| best.metrics.get(&format!("{m}_{system}")).copied();
        let count = get("test_count").unwrap_or(0.0);
        let none = "no test structure of this crystal system";
        let ar_none =
            if count > 0.0 { "a_r undefined: a test prediction has an eigenvalue ≤ 0" } else { none };
        table.rows.push(vec![
            Cell::text(system),
            Cell::number(count),
            Cell::number_or(get("test_eps_poly_mae"), none),
            Cell::number_or(get("test_anisotropy_mae"), ar_none),
            Cell::number_or(get("test_unphysical"), none),
        ]);
    }
    table.notes.push("a single trial: no confidence intervals".to_owned());
    Some(table)
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Minimize => "minimised",
        Direction::Maximize => "maximised",
    }
}
