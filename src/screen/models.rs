//! Which trials of a study screen structures, and where their weights are.
//!
//! A screen trusts a study's verdict: in a sweep the best cell (the setting
//! with the best mean validation objective over seeds) with all its seeds,
//! so that the ensemble's spread is the seed-to-seed disagreement of the
//! chosen setting; in a search the K best trials. Each trial's weights are
//! the best-validation parameters of `trials/<n>/checkpoint/`.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Result;

use crate::error::InputError;
use crate::hpo::TrialState;
use crate::report::collect::{setting_label, sweep_cells, StudyData};
use crate::report::sweep::Sweep;
use crate::storage::TrialDetails;
use crate::study::trial::CHECKPOINT_DIR;

/// `--models`: which trials form the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    /// A sweep's best cell with its seeds; a search's [`DEFAULT_TOP`] best trials.
    Auto,
    /// The single best trial.
    Best,
    /// The best trial's setting with every seed it ran (a sweep: its best cell).
    Seeds,
    /// The K best COMPLETE trials.
    Top(usize),
    /// The Pareto set of a study with several objectives: one model from
    /// each trade-off the search found.
    Pareto,
}

/// Trials of a search that `--models auto` takes.
pub const DEFAULT_TOP: usize = 5;

impl FromStr for ModelChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(ModelChoice::Auto),
            "best" => Ok(ModelChoice::Best),
            "seeds" => Ok(ModelChoice::Seeds),
            "pareto" => Ok(ModelChoice::Pareto),
            k => match k.parse::<usize>() {
                Ok(k) if k > 0 => Ok(ModelChoice::Top(k)),
                _ => Err(format!(
                    "{text:?} is none of auto, best, seeds, pareto or a number of trials (1, 2, …)"
                )),
            },
        }
    }
}

/// One trial of the ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub trial: u64,
    /// `trials/<n>/checkpoint` of the study folder.
    pub checkpoint: PathBuf,
    /// Its objective value.
    pub value: f64,
    /// Its parameters, `lmax = 2, seed = 1`.
    pub params: String,
}

/// The chosen trials and, in words, why these.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub members: Vec<Member>,
    pub why: String,
}

/// The trials `choice` picks from the study in `folder` (its `study.db`
/// and trial folders).
pub fn select_in(folder: &std::path::Path, choice: ModelChoice) -> Result<Selection> {
    select(&StudyData::load(folder)?, choice)
}

/// The checkpoint folder of trial `number` of the study in `data`, or an
/// error that says why it has none.
pub fn checkpoint_of(data: &StudyData, number: u64) -> Result<PathBuf> {
    let Some(trial) = data.trials.iter().find(|t| t.trial.number == number) else {
        let last = data.trials.iter().map(|t| t.trial.number).max();
        return Err(InputError::new(format!("study {}", data.info.name), format!("has no trial {number}"))
            .with_hint(match last {
                Some(last) => format!("its trials are numbered 0 to {last} (see `study status`)"),
                None => "it has no trials yet".to_owned(),
            })
            .into());
    };
    if trial.trial.state != TrialState::Complete {
        return Err(InputError::new(
            format!("study {}, trial {number}", data.info.name),
            format!("is {}, not COMPLETE: it has no final weights", trial.trial.state.name()),
        )
        .with_hint("choose a COMPLETE trial (`study status`, `study export`), or --best")
        .into());
    }
    let dir = data.dir.join("trials").join(number.to_string()).join(CHECKPOINT_DIR);
    if !crate::train::checkpoint::exists(&dir) {
        return Err(InputError::new(
            format!("study {}, trial {number}", data.info.name),
            format!("has no checkpoint in {}", dir.display()),
        )
        .with_hint("only trials of the built-in objective (not a `command`) keep model weights")
        .into());
    }
    Ok(dir)
}

fn member(data: &StudyData, trial: &TrialDetails) -> Result<Member> {
    let params: Vec<(String, crate::hpo::ParamValue)> =
        trial.trial.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Member {
        trial: trial.trial.number,
        checkpoint: checkpoint_of(data, trial.trial.number)?,
        value: trial.trial.value.unwrap_or(f64::NAN),
        params: setting_label(&params),
    })
}

/// The feasible COMPLETE trials, best first.
fn ranked(data: &StudyData) -> Vec<&TrialDetails> {
    let direction = data.direction();
    let mut trials: Vec<&TrialDetails> =
        data.complete().filter(|t| t.trial.value.is_some() && t.trial.is_feasible()).collect();
    trials.sort_by(|a, b| {
        let (x, y) = (a.trial.value.unwrap_or(f64::NAN), b.trial.value.unwrap_or(f64::NAN));
        let order = if direction.better(x, y) {
            std::cmp::Ordering::Less
        } else if direction.better(y, x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        };
        order.then(a.trial.number.cmp(&b.trial.number))
    });
    trials
}

fn complete_of<'a>(trials: &[&'a TrialDetails]) -> Vec<&'a TrialDetails> {
    trials.iter().filter(|t| t.trial.state == TrialState::Complete).copied().collect()
}

/// The trials `choice` names in the study of `data`.
pub fn select(data: &StudyData, choice: ModelChoice) -> Result<Selection> {
    let objective = data.objective_name();
    let best = ranked(data);
    if best.is_empty() {
        return Err(InputError::new(format!("study {}", data.info.name), "has no COMPLETE trial yet")
            .with_hint("screen once a trial has finished (`study status` shows them)")
            .into());
    }
    let choice = match choice {
        ModelChoice::Auto if data.is_sweep() => ModelChoice::Seeds,
        ModelChoice::Auto => ModelChoice::Top(DEFAULT_TOP),
        other => other,
    };
    let (trials, why): (Vec<&TrialDetails>, String) = match choice {
        ModelChoice::Pareto => {
            let set = data.pareto_set();
            if data.objectives().is_empty() {
                return Err(InputError::new(
                    "--models pareto",
                    "the study has one objective, so no Pareto set",
                )
                .with_hint("use --models best, seeds or a number of trials")
                .into());
            }
            let why = format!("the Pareto set's {} trials (several objectives)", set.len());
            (set, why)
        }
        ModelChoice::Best => (vec![best[0]], format!("the best trial by {objective}")),
        ModelChoice::Top(k) => {
            let taken: Vec<&TrialDetails> = best.iter().take(k).copied().collect();
            let why = format!("the {} best COMPLETE trials by {objective}", taken.len());
            (taken, why)
        }
        ModelChoice::Seeds | ModelChoice::Auto => {
            if data.is_sweep() {
                let sweep = Sweep::new(data);
                let direction = data.direction();
                let cell = sweep.kinds.iter().filter_map(|kind| sweep.best_cell(kind)).reduce(|a, b| {
                    if direction.better(b.1.mean, a.1.mean) {
                        b
                    } else {
                        a
                    }
                });
                match cell {
                    Some((cell, estimate)) => (
                        complete_of(&cell.trials),
                        format!(
                            "the sweep's best cell ({}, {}) by its mean {objective} {:.6} over {} seed(s)",
                            cell.kind,
                            cell.setting_label(),
                            estimate.mean,
                            estimate.n
                        ),
                    ),
                    None => (vec![best[0]], format!("the best trial by {objective}")),
                }
            } else {
                let cells = sweep_cells(data);
                let number = best[0].trial.number;
                let cell = cells.iter().find(|c| c.trials.iter().any(|t| t.trial.number == number));
                let trials: Vec<&TrialDetails> = match cell {
                    Some(cell) => complete_of(&cell.trials),
                    None => vec![best[0]],
                };
                (trials, format!("the best trial by {objective} and the other seeds of its parameters"))
            }
        }
    };
    let members = trials.iter().map(|t| member(data, t)).collect::<Result<Vec<_>>>()?;
    Ok(Selection { members, why })
}
