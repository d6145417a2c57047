//! Continuing an Optuna study here: its trials become the first trials of a
//! study file's study, so `study run` goes on from them. TPE then proposes
//! from the imported history exactly as if those trials had run here.
//!
//! The imported trials join the first phase (they count against its
//! `n_trials`), keep their order, parameters, values and intermediate
//! values; FAILED trials stay failed, and Optuna trials still RUNNING or
//! WAITING are queued to run here. Optuna's trial number and times are kept
//! as user attributes (`optuna_number`, `optuna_datetime_start`,
//! `optuna_datetime_complete`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::run::study_dir;
use super::StudyPlan;
use crate::error::InputError;
use crate::hpo::TrialState;
use crate::storage::lock::StudyLock;
use crate::storage::optuna::OptunaStudy;
use crate::storage::{Database, NewStudy};

/// Trials imported, by state.
pub type Imported = BTreeMap<&'static str, usize>;

/// Writes the trials of `optuna` (read from `source`) into the new study of
/// `plan` (read from `study_file`) in `results`. Refused, with nothing
/// written, when the plan's direction or first phase's space does not fit a
/// trial, or the study already has trials.
pub fn import_optuna(
    plan: &StudyPlan,
    study_file: &Path,
    results: &Path,
    optuna: &OptunaStudy,
    source: &Path,
) -> anyhow::Result<Imported> {
    let phase = &plan.config.phases[0];
    if optuna.directions != plan.config.directions {
        let name = |d: &crate::hpo::Direction| format!("{d:?}").to_lowercase();
        let describe = |directions: &[crate::hpo::Direction]| match directions {
            [] => "one objective".to_owned(),
            several => format!(
                "{} objectives ({})",
                several.len(),
                several.iter().map(name).collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(InputError::new(
            format!("{}, objective", study_file.display()),
            format!(
                "the study file has {}, but Optuna study {:?} has {}",
                describe(&plan.config.directions),
                optuna.name,
                describe(&optuna.directions)
            ),
        )
        .with_hint("give the study file the Optuna study's objectives, in the same order and directions")
        .into());
    }
    if optuna.direction != plan.config.direction {
        let name = |d: crate::hpo::Direction| format!("{d:?}").to_lowercase();
        return Err(InputError::new(
            format!("{}, objective.direction", study_file.display()),
            format!(
                "the study file says {}, but Optuna study {:?} was run to {}",
                name(plan.config.direction),
                optuna.name,
                name(optuna.direction)
            ),
        )
        .with_hint(format!("set `direction: {}` in the study file", name(optuna.direction)))
        .into());
    }
    // Misfits by parameter: the trials whose value lies outside the space.
    let mut misfits: BTreeMap<&str, Vec<(u64, String)>> = BTreeMap::new();
    for trial in &optuna.trials {
        for (name, value) in &trial.params {
            if !phase.space.params.get(name).is_some_and(|dist| dist.admits(value)) {
                misfits.entry(name).or_default().push((trial.number, value.to_string()));
            }
        }
    }
    if !misfits.is_empty() {
        let described: Vec<String> = misfits
            .iter()
            .map(|(name, trials)| {
                let examples: Vec<String> =
                    trials.iter().take(3).map(|(n, v)| format!("trial {n}: {v}")).collect();
                let more = if trials.len() > 3 { ", …" } else { "" };
                let domain = match phase.space.params.get(*name) {
                    Some(dist) => format!("outside {dist}"),
                    None => "not in the space".to_owned(),
                };
                format!(
                    "parameter `{name}` of {} trials is {domain} ({}{more})",
                    trials.len(),
                    examples.join(", ")
                )
            })
            .collect();
        return Err(InputError::new(
            format!("{}, {}", study_file.display(), phase.location()),
            format!("does not fit Optuna study {:?}: {}", optuna.name, described.join("; ")),
        )
        .with_hint(
            "widen the first phase's space (or add the parameters) so that every imported trial lies in it",
        )
        .into());
    }

    let dir = study_dir(results, &plan.name);
    std::fs::create_dir_all(&dir).map_err(|err| {
        InputError::new(dir.display().to_string(), format!("cannot create the study folder: {err}"))
            .with_hint("choose a writable --results folder")
    })?;
    let _lock = StudyLock::acquire(&dir, None)?;
    let db = Database::open(dir.join("study.db"))?;
    let new = NewStudy {
        name: plan.name.clone(),
        direction: plan.config.direction,
        objectives: plan.objectives.stored(),
        seed: plan.config.seed,
        config: serde_yaml::to_string(&plan.file)?,
    };
    let mut store = db.open_or_create_study(&new)?;
    let existing = store.all_trial_details()?.len();
    if existing > 0 {
        return Err(InputError::new(
            dir.display().to_string(),
            format!("study {:?} already has {existing} trials", plan.name),
        )
        .with_hint("import into a new study: another `name`, or another --results folder")
        .into());
    }
    let mut imported = Imported::new();
    let source_name = source.display().to_string();
    for trial in &optuna.trials {
        let waiting = matches!(trial.state, TrialState::Running | TrialState::Waiting);
        let state = if waiting { TrialState::Waiting } else { TrialState::Running };
        let number = store.create_trial_with_seed(0, &trial.params, state, None)?;
        let attrs = [
            ("imported_from", json!(source_name)),
            ("optuna_number", json!(trial.number)),
            ("optuna_datetime_start", json!(trial.datetime_start)),
            ("optuna_datetime_complete", json!(trial.datetime_complete)),
        ];
        for (key, value) in attrs {
            store.set_user_attr(number, key, &value)?;
        }
        for (&step, &value) in &trial.intermediate {
            crate::hpo::TrialStore::report(&mut store, number, step, value)?;
        }
        if let Some(constraints) = &trial.constraints {
            crate::hpo::TrialStore::set_constraints(&mut store, number, constraints)?;
        }
        if !trial.values.is_empty() {
            crate::hpo::TrialStore::set_values(&mut store, number, &trial.values)?;
        }
        match trial.state {
            TrialState::Complete | TrialState::Pruned => {
                store.finish_trial(number, trial.state, trial.value, &BTreeMap::new())?
            }
            TrialState::Failed => store.fail_trial(number, "failed in Optuna (imported)")?,
            TrialState::Running | TrialState::Waiting => {}
        }
        *imported.entry(if waiting { "WAITING" } else { trial.state.name() }).or_default() += 1;
    }
    Ok(imported)
}
