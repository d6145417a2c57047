//! Which figures a study's report draws, from its data: for a sweep, MAE
//! against the swept parameter (both models, error bars), MAE per crystal
//! system (grouped bars), and parity heatmaps of the best trial's test
//! predictions; for a search, the optimisation history, fANOVA importances
//! and parallel coordinates. A figure that cannot be drawn is kept with
//! the reason.

use std::path::Path;

use super::collect::StudyData;
use super::document::FigureEntry;
use super::figures::{self, AxisKind, BarSeries, ErrorPoint, HistoryPoint, LineSeries, ParallelAxis};
use super::importance::{fanova_importances, ForestOptions};
use super::search::ranked;
use super::stats::Estimate;
use super::sweep::{Sweep, METRICS};
use crate::crystal::symmetry::CrystalSystem;
use crate::hpo::{Direction, Distribution, ParamValue, Params, SearchSpace, TrialState};
use crate::storage::TrialDetails;

/// Bins per axis of the parity heatmaps.
const PARITY_BINS: usize = 40;

/// Draws every figure that applies to `data` into `dir`.
pub fn draw(data: &StudyData, dir: &Path) -> Vec<FigureEntry> {
    let mut out = Vec::new();
    let mut add = |title: &str, drawn: anyhow::Result<figures::FigureFiles>| {
        out.push(FigureEntry {
            title: title.to_owned(),
            drawn: drawn.map(|f| (f.png, f.svg)).map_err(|e| format!("{e:#}")),
        });
    };
    if data.is_sweep() {
        let sweep = Sweep::new(data);
        let axis = sweep.axis().map(str::to_owned);
        let x_label = match axis.as_deref() {
            Some("lmax") => "l_max".to_owned(),
            Some(name) => name.to_owned(),
            None => String::new(),
        };
        for (metric, title) in METRICS {
            let stem = format!("sweep_{}", metric.trim_start_matches("test_"));
            let figure_title = format!("Test {title} by {x_label}");
            let drawn = match &axis {
                None => {
                    Err(anyhow::anyhow!("the sweep varies more than one parameter besides kind and seed"))
                }
                Some(_) => {
                    let series: Vec<LineSeries> = sweep
                        .line_points(metric)
                        .into_iter()
                        .map(|(label, points)| LineSeries {
                            label,
                            points: points.into_iter().map(|(x, e)| point(x, e)).collect(),
                        })
                        .collect();
                    figures::sweep_lines(
                        dir,
                        &stem,
                        &figure_title,
                        &x_label,
                        &format!("test {title}"),
                        &series,
                    )
                }
            };
            add(&figure_title, drawn);
        }
        let systems: Vec<String> = CrystalSystem::ALL.iter().map(|c| c.name().to_owned()).collect();
        // Labels are the kinds alone, so each model keeps its colour; the
        // title says which setting each shows.
        let best: Vec<_> =
            sweep.kinds.iter().filter_map(|kind| Some((kind, sweep.best_cell(kind)?.0))).collect();
        let chosen: Vec<String> =
            best.iter().map(|(kind, cell)| format!("{kind} {}", cell.setting_label())).collect();
        for (metric, title) in METRICS {
            let series: Vec<BarSeries> = best
                .iter()
                .map(|(kind, cell)| {
                    let values = systems
                        .iter()
                        .map(|s| {
                            Estimate::at_95(&cell.metric_values(&format!("{metric}_{s}")))
                                .map(|e| point(0.0, e))
                        })
                        .collect();
                    BarSeries { label: kind.to_string(), values }
                })
                .collect();
            let figure_title = format!("Test {title} per crystal system ({})", chosen.join("; "));
            let stem = format!("systems_{}", metric.trim_start_matches("test_"));
            add(
                &figure_title,
                figures::grouped_bars(dir, &stem, &figure_title, &format!("test {title}"), &systems, &series),
            );
        }
    } else if !data.objectives().is_empty() {
        pareto_front(data, dir, &mut add);
        hypervolume(data, dir, &mut add);
        importance(data, dir, &mut add);
        parallel(data, dir, &mut add);
    } else {
        history(data, dir, &mut add);
        importance(data, dir, &mut add);
        parallel(data, dir, &mut add);
    }
    parity(data, dir, &mut add);
    out
}

fn point(x: f64, e: Estimate) -> ErrorPoint {
    ErrorPoint { x, mean: e.mean, half_width: e.half_width }
}

type Add<'a> = dyn FnMut(&str, anyhow::Result<figures::FigureFiles>) + 'a;

/// Parity heatmaps of ε_poly and a_r for the best trial's test predictions.
fn parity(data: &StudyData, dir: &Path, add: &mut Add) {
    let best: Option<&TrialDetails> = ranked(data).first().copied();
    let rows = match best {
        None => Err(anyhow::anyhow!("no COMPLETE trial")),
        Some(trial) => data.test_predictions(trial),
    };
    let number = best.map_or(String::new(), |t| format!(" (trial {})", t.trial.number));
    let eps_title = format!("ε_poly parity, best trial{number}");
    let ar_title = format!("a_r parity, best trial{number}");
    match rows {
        Err(e) => {
            let why = format!("{e:#}");
            add(&eps_title, Err(anyhow::anyhow!("{why}")));
            add(&ar_title, Err(anyhow::anyhow!("{why}")));
        }
        Ok(rows) => {
            let reference: Vec<f64> = rows.iter().map(|r| r.eps_poly_reference()).collect();
            let predicted: Vec<f64> = rows.iter().map(|r| r.eps_poly_predicted()).collect();
            add(
                &eps_title,
                figures::parity_heatmap(
                    dir,
                    "parity_eps_poly",
                    &eps_title,
                    "ε_poly",
                    &reference,
                    &predicted,
                    PARITY_BINS,
                ),
            );
            // a_r exists only where both tensors have positive eigenvalues.
            let (reference, predicted): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|r| Some((r.anisotropy_reference()?, r.anisotropy_predicted()?)))
                .unzip();
            add(
                &ar_title,
                figures::parity_heatmap(
                    dir,
                    "parity_anisotropy",
                    &ar_title,
                    "a_r",
                    &reference,
                    &predicted,
                    PARITY_BINS,
                ),
            );
        }
    }
}

/// Each pair of objectives (the first three): every feasible COMPLETE
/// trial, the Pareto set marked.
fn pareto_front(data: &StudyData, dir: &Path, add: &mut Add) {
    let objectives = data.objectives();
    let set: Vec<u64> = data.pareto_set().iter().map(|t| t.trial.number).collect();
    let shown = objectives.len().min(3);
    for i in 0..shown {
        for j in i + 1..shown {
            let points: Vec<(f64, f64, bool)> = data
                .complete()
                .filter(|t| t.trial.is_feasible() && t.trial.values.len() == objectives.len())
                .map(|t| (t.trial.values[i], t.trial.values[j], set.contains(&t.trial.number)))
                .collect();
            let (x, y) = (&objectives[i].name, &objectives[j].name);
            let title = format!("Pareto front: {y} against {x}");
            let stem = if shown == 2 { "pareto_front".to_owned() } else { format!("pareto_front_{i}_{j}") };
            add(&title, figures::scatter(dir, &stem, &title, x, y, &points, ("trials", "Pareto set")));
        }
    }
}

/// The hypervolume of the Pareto set after each finished trial.
fn hypervolume(data: &StudyData, dir: &Path, add: &mut Add) {
    let points: Vec<HistoryPoint> = super::search::hypervolume_history(data)
        .into_iter()
        .map(|(trial, value)| {
            let phase = data.trials.iter().find(|t| t.trial.number == trial).map_or(0, |t| t.trial.phase);
            let phase = data
                .phases
                .iter()
                .find(|p| p.index == phase)
                .map_or_else(|| phase.to_string(), |p| p.name.clone());
            HistoryPoint { trial, value, phase }
        })
        .collect();
    let title = "Hypervolume of the Pareto set";
    add(
        title,
        figures::optimisation_history(dir, "hypervolume", title, "hypervolume", Direction::Maximize, &points),
    );
}

fn history(data: &StudyData, dir: &Path, add: &mut Add) {
    let points: Vec<HistoryPoint> = data
        .complete()
        .filter_map(|t| {
            let phase = data
                .phases
                .iter()
                .find(|p| p.index == t.trial.phase)
                .map_or_else(|| t.trial.phase.to_string(), |p| p.name.clone());
            Some(HistoryPoint { trial: t.trial.number, value: t.trial.value?, phase })
        })
        .collect();
    let objective = data.objective_name();
    let title = "Optimisation history";
    add(title, figures::optimisation_history(dir, "history", title, &objective, data.direction(), &points));
}

/// The searched parameters every trial has: every phase's space, the first
/// phase that defines a parameter giving its distribution, without the
/// conditional parameters (as Optuna's importance uses the intersection of
/// the trials' spaces: a parameter only some trials have cannot be weighed
/// against the others over all of them).
fn search_space(data: &StudyData) -> SearchSpace {
    let mut space = SearchSpace::default();
    let conditional = |name: &String| data.phases.iter().any(|p| p.space.conditions.contains_key(name));
    for phase in &data.phases {
        for (name, dist) in phase.space.params.iter().filter(|(name, _)| !conditional(name)) {
            space.params.entry(name.clone()).or_insert_with(|| dist.clone());
        }
    }
    space
}

/// fANOVA importance of the parameters for the objective, or for each of
/// several objectives.
fn importance(data: &StudyData, dir: &Path, add: &mut Add) {
    let space = search_space(data);
    let objectives = data.objectives();
    let each: Vec<(String, String, Option<usize>)> = match objectives {
        [] => vec![("Hyperparameter importance (fANOVA)".to_owned(), "importance".to_owned(), None)],
        several => several
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    format!("Hyperparameter importance for {} (fANOVA)", o.name),
                    format!("importance_{i}"),
                    Some(i),
                )
            })
            .collect(),
    };
    for (title, stem, objective) in each {
        let trials: Vec<(Params, f64)> = data
            .complete()
            .filter_map(|t| {
                let value = match objective {
                    None => t.trial.value?,
                    Some(i) => *t.trial.values.get(i)?,
                };
                Some((t.trial.params.clone(), value))
            })
            .collect();
        let drawn = fanova_importances(&space, &trials, &ForestOptions::default()).and_then(|importances| {
            let pairs: Vec<(String, f64)> = importances.into_iter().map(|p| (p.name, p.importance)).collect();
            figures::importance_bars(dir, &stem, &title, &pairs)
        });
        add(&title, drawn);
    }
}

fn parallel(data: &StudyData, dir: &Path, add: &mut Add) {
    let title = "Parallel coordinates";
    let space = search_space(data);
    let trials: Vec<&TrialDetails> = data
        .trials
        .iter()
        .filter(|t| t.trial.state == TrialState::Complete && t.trial.value.is_some())
        .filter(|t| space.params.keys().all(|name| t.trial.params.contains_key(name)))
        .collect();
    let axes: Vec<ParallelAxis> = space
        .params
        .iter()
        .map(|(name, dist)| {
            let value = |t: &TrialDetails| t.trial.params.get(name).cloned();
            match dist {
                Distribution::Categorical { choices } => {
                    let labels: Vec<String> = choices.iter().map(ParamValue::to_string).collect();
                    let values = trials
                        .iter()
                        .map(|t| {
                            let v = value(t).map(|v| v.to_string()).unwrap_or_default();
                            labels.iter().position(|l| *l == v).unwrap_or(0) as f64
                        })
                        .collect();
                    ParallelAxis { name: name.clone(), kind: AxisKind::Categorical(labels), values }
                }
                Distribution::Float { log, .. } | Distribution::Int { log, .. } => ParallelAxis {
                    name: name.clone(),
                    kind: if *log { AxisKind::Log } else { AxisKind::Linear },
                    values: trials
                        .iter()
                        .map(|t| value(t).and_then(|v| v.as_f64()).unwrap_or(f64::NAN))
                        .collect(),
                },
            }
        })
        .collect();
    let objective_values: Vec<f64> = trials.iter().map(|t| t.trial.value.unwrap_or(f64::NAN)).collect();
    let objective = data.objective_name();
    add(
        title,
        figures::parallel_coordinates(
            dir,
            "parallel",
            title,
            &axes,
            &objective,
            &objective_values,
            data.direction(),
        ),
    );
}
