//! Running a validated study: its folder `<results>/<name>/` holds the
//! database `study.db` and one folder per trial under `trials/`. Running
//! again resumes: finished trials stay, interrupted ones run first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

use super::file::Mode;
use super::validate::{Objective, StudyPlan, COMMAND_BUILTINS};
use crate::error::InputError;
use crate::exec::controller::{Launcher, StudyController, StudySetup, TrialToRun};
use crate::exec::devices::{build_pool, Machine, Slot};
use crate::exec::scheduler::{self, Dispatch, SchedulerConfig, StopLevel, Summary, TrialSpec};
use crate::hpo::{Direction, Params, TrialState, TrialStore};
use crate::storage::Database;

/// The folder of study `name` in `results`.
pub fn study_dir(results: &Path, name: &str) -> PathBuf {
    results.join(name)
}

/// Runs (or resumes) `plan` with its results in `<results>/<name>/` on
/// `machine`, until its phases are done or `stop` ends it (e.g.
/// [`crate::exec::ctrl_c`]). The controller is single-threaded (it owns the
/// database connection), so drive this future with `block_on` rather than
/// spawning it.
pub async fn run_plan(
    plan: &StudyPlan,
    results: &Path,
    machine: &Machine,
    stop: watch::Receiver<StopLevel>,
) -> anyhow::Result<Summary> {
    let dir = study_dir(results, &plan.name);
    let base_params = match &plan.sweep_best_of {
        Some(other) => best_params(results, other, plan.config.direction)?,
        None => Params::new(),
    };
    let trials_dir = std::path::absolute(&dir)?.join("trials");
    let launcher = launcher(plan, base_params, trials_dir)?;
    let setup = StudySetup {
        name: &plan.name,
        config: plan.config.clone(),
        snapshot: serde_yaml::to_string(&plan.file)?,
        dir: &dir,
    };
    let mut controller = StudyController::open(setup, launcher)?;
    let config = SchedulerConfig {
        slots: build_pool(&plan.pool, machine),
        dispatch: match plan.mode {
            Mode::Async => Dispatch::Async,
            Mode::Deterministic => Dispatch::Deterministic,
        },
        trial_timeout: plan.trial_timeout,
        retries: plan.retries,
        trials_dir: controller.trials_dir().to_path_buf(),
    };
    scheduler::run(&config, &mut controller, stop).await
}

/// The parameters of the best COMPLETE trial of the finished study `name`.
fn best_params(results: &Path, name: &str, direction: Direction) -> anyhow::Result<Params> {
    let path = study_dir(results, name).join("study.db");
    if !path.is_file() {
        return Err(InputError::new(
            "sweep.best_of",
            format!("there is no study `{name}` in {}", results.display()),
        )
        .with_hint("run that study first with the same results folder, or fix `best_of`")
        .into());
    }
    let store = Database::open_read_only(&path)?.open_study(name)?;
    let trials = store.load_trials()?;
    let best = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.value.map(|v| (t, v)))
        .reduce(|a, b| if direction.better(b.1, a.1) { b } else { a });
    match best {
        Some((trial, _)) => Ok(trial.params.clone()),
        None => {
            Err(InputError::new(path.display().to_string(), format!("study `{name}` has no COMPLETE trial"))
                .with_hint("finish that study first, or remove `sweep.best_of`")
                .into())
        }
    }
}

/// Builds each trial's process from the objective.
fn launcher(plan: &StudyPlan, base_params: Params, trials_dir: PathBuf) -> anyhow::Result<Launcher> {
    match &plan.objective {
        Objective::Command { template, workdir } => {
            if !workdir.is_dir() {
                return Err(InputError::new(
                    "objective.workdir",
                    format!("the command's folder {} does not exist", workdir.display()),
                )
                .with_hint("create it, or set `workdir` relative to the study file's folder")
                .into());
            }
            let mut known: Vec<&str> = base_params.keys().map(String::as_str).collect();
            known.extend(COMMAND_BUILTINS);
            known.extend(plan.config.phases.iter().flat_map(|p| p.space.params.keys().map(String::as_str)));
            let unknown: Vec<String> = template
                .placeholders()
                .into_iter()
                .filter(|p| !known.contains(p))
                .map(|p| format!("{{{p}}}"))
                .collect();
            if !unknown.is_empty() {
                return Err(InputError::new(
                    "objective.command",
                    format!("no value for placeholder(s) {}", unknown.join(", ")),
                )
                .with_hint(format!("known: {}", known.join(", ")))
                .into());
            }
            let template = template.clone();
            let workdir = workdir.clone();
            Ok(Box::new(move |trial: &TrialToRun, slot: &Slot| {
                let mut values: BTreeMap<String, String> =
                    base_params.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                values.extend(trial.params.iter().map(|(k, v)| (k.clone(), v.to_string())));
                values.insert("trial".into(), trial.number.to_string());
                values.insert("device".into(), slot.device.to_string());
                values.insert("threads".into(), slot.threads.to_string());
                values.insert("seed".into(), trial.seed.to_string());
                let trial_dir = trials_dir.join(trial.number.to_string());
                values.insert("trial_dir".into(), trial_dir.display().to_string());
                let (program, args) = template.render(&values).map_err(anyhow::Error::msg)?;
                Ok(TrialSpec {
                    number: trial.number,
                    program,
                    args,
                    env: vec![("ANISOSTUDY_SEED".to_owned(), trial.seed.to_string())],
                    workdir: Some(workdir.clone()),
                })
            }))
        }
        Objective::Anisonet { .. } => Err(InputError::new(
            "objective",
            "the built-in anisonet objective needs the trainer, which this build does not include yet",
        )
        .with_hint("use a `command` objective meanwhile")
        .into()),
    }
}
