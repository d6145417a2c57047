//! Running a validated study: its folder `<results>/<name>/` holds the
//! database `study.db` and one folder per trial under `trials/`. Running
//! again resumes: finished trials stay, interrupted ones run first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use super::definition::{self, Change, Effect};
use super::file::{ExecutorKind, Mode};
use super::validate::{Objective, StudyPlan, COMMAND_BUILTINS};
use crate::error::InputError;
use crate::exec::controller::{
    DefinitionReview, Launcher, Reviewed, StudyController, StudySetup, TrialToRun,
};
use crate::exec::devices::{build_pool, Machine, Slot};
use crate::exec::launch::{Executor, Local, TrialSpec};
use crate::exec::protocol::Message;
use crate::exec::scheduler::{
    self, Controller, Directive, Dispatch, Next, SchedulerConfig, StopLevel, Summary, TrialReport,
};
use crate::exec::slurm::{Slurm, SlurmJobs};
use crate::hpo::{Direction, FrozenTrial, Params, TrialStore};
use crate::storage::{Database, Journal, RecordedChange};
use crate::study::trial::{DataSource, TrialFile};

/// The program that runs a built-in trial (`<program> trial FILE`): this
/// binary, or `ANISOSTUDY_TRIAL_EXE` (for embedding the controller elsewhere).
fn trial_program() -> anyhow::Result<String> {
    if let Ok(exe) = std::env::var("ANISOSTUDY_TRIAL_EXE") {
        return Ok(exe);
    }
    Ok(std::env::current_exe()?.display().to_string())
}

/// The graph cache shared by every study of a results folder:
/// `<results>/.cache`, next to the studies' folders.
fn graph_cache_dir(trials_dir: &Path) -> PathBuf {
    let results = trials_dir.parent().and_then(Path::parent).unwrap_or(trials_dir);
    results.join(".cache")
}

/// The folder of study `name` in `results`.
pub fn study_dir(results: &Path, name: &str) -> PathBuf {
    results.join(name)
}

/// Runs `work`, which waits on other processes, on a thread of its own, so
/// the controller's thread keeps answering signals meanwhile.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a blocking task of the controller panicked")?
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
    run_plan_observed(plan, results, machine, stop, &mut Quiet).await
}

/// What a run shows while it goes (progress bars, log lines). Calls come
/// from the controller's loop, one at a time.
pub trait Observer {
    /// The run begins on `slots`; `finished` trials are already over, of
    /// `budget` in all when the phases fix it.
    fn begin(&mut self, _slots: &[Slot], _finished: usize, _budget: Option<u64>) {}
    /// The study goes on under a changed definition (all changes that
    /// continue, or accepted ones); already recorded.
    fn definition_changed(&mut self, _changes: &[Change]) {}
    /// The built-in objective's data is loaded (or its graph cache built).
    fn data(&mut self, _about: &str) {}
    /// A choice made for the user, e.g. what a `sampler: auto` phase runs and why.
    fn note(&mut self, _note: &str) {}
    /// `resumed_after`: the last epoch (step) a previous run of the trial reported.
    fn started(&mut self, _number: u64, _slot: &Slot, _params: &Params, _resumed_after: Option<u64>) {}
    fn message(&mut self, _number: u64, _message: &Message) {}
    /// The trial is over; `trial` is its stored state.
    fn finished(&mut self, _number: u64, _report: &TrialReport, _trial: Option<&FrozenTrial>) {}
}

/// Shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// [`run_plan`], telling `observer` what happens.
pub async fn run_plan_observed(
    plan: &StudyPlan,
    results: &Path,
    machine: &Machine,
    stop: watch::Receiver<StopLevel>,
    observer: &mut dyn Observer,
) -> anyhow::Result<Summary> {
    if plan.file.resources.executor == ExecutorKind::External {
        return Err(InputError::new(
            format!("{}: resources.executor", plan.source),
            "this study's trials are run by an external driver, not by `study run`",
        )
        .with_hint(format!(
            "ask for trials with `study ask {}`, and tell their results with `study tell {} --trial N --value X`",
            plan.source, plan.name
        ))
        .into());
    }
    for note in &plan.notes {
        observer.note(note);
    }
    let dir = study_dir(results, &plan.name);
    let base_params = match &plan.sweep_best_of {
        Some(other) => best_params(results, other, plan.config.direction, sweep_pick(plan))?,
        None => Params::new(),
    };
    let trials_dir = std::path::absolute(&dir)?.join("trials");
    let mut data_summary = None;
    if matches!(plan.objective, Objective::Anisonet { .. }) {
        // Build the graph cache once, before trials race to build it, and
        // report data problems before any trial starts.
        let source =
            DataSource::of_plan(plan, plan.hyperparameters.model.cutoff, Some(graph_cache_dir(&trials_dir)))?;
        let (_, about) = source.load().context("cannot load the study's `dataset`")?;
        observer.data(&about.to_string());
        data_summary = Some(about);
    }
    let launcher = launcher(plan, base_params, trials_dir)?;
    // The allocation is read, and the request checked against it, before
    // anything runs; Slurm's commands run off the runtime's thread.
    let slurm = match plan.slurm.clone() {
        Some(request) => {
            let (name, dir) = (plan.name.clone(), dir.clone());
            Some(off_runtime(move || Slurm::in_allocation(&request, &name, &dir)).await?)
        }
        None => None,
    };
    // A batch job per trial: the request is checked against its partition first.
    let slurm_jobs = match plan.slurm_jobs.clone() {
        Some(request) => {
            let (name, dir) = (plan.name.clone(), dir.clone());
            Some(off_runtime(move || SlurmJobs::new(&request, &name, &dir)).await?)
        }
        None => None,
    };
    let review = Review::new(plan);
    let setup = StudySetup {
        name: &plan.name,
        config: plan.config.clone(),
        snapshot: serde_yaml::to_string(&plan.file)?,
        dir: &dir,
        allocation: slurm.as_ref().map(|s| s.allocation().job_id.clone()),
        // The study's folder is on a file system the cluster's nodes share.
        journal: if slurm.is_some() || slurm_jobs.is_some() { Journal::Rollback } else { Journal::Wal },
        definition: &review,
        constraints: plan.constraints.clone(),
        objectives: plan.objectives.clone(),
    };
    // A reproducible run needs batches only where timing could change what
    // a trial samples or whether it is pruned.
    let batches = plan.mode == Mode::Deterministic && plan.config.depends_on_finish_order();
    let controller = StudyController::open(setup, launcher)?.deterministic_batches(batches);
    if let Some(changes) = review.changes.take().filter(|c| !c.is_empty()) {
        observer.definition_changed(&changes);
    }
    if let Some(summary) = &data_summary {
        // Cleaning counts and split sizes, for `study report`.
        controller.set_study_user_attr("dataset", &serde_json::to_value(summary)?)?;
    }
    // Steps an earlier controller left are cancelled once this one holds the lock.
    if let Some(slurm) = slurm.clone() {
        off_runtime(move || slurm.cancel_leftovers()).await?;
    }
    let (slots, executor): (Vec<Slot>, Arc<dyn Executor>) = match (slurm, slurm_jobs) {
        (Some(slurm), _) => (slurm.slots(), Arc::new(slurm)),
        (None, Some(jobs)) => (jobs.slots(), Arc::new(jobs)),
        (None, None) => (build_pool(&plan.pool, machine), Arc::new(Local)),
    };
    let config = SchedulerConfig {
        slots,
        executor,
        dispatch: if batches { Dispatch::Deterministic } else { Dispatch::Async },
        trial_timeout: plan.trial_timeout,
        retries: plan.retries,
        trials_dir: controller.trials_dir().to_path_buf(),
    };
    let trials = controller.study().trials();
    let finished = trials.iter().filter(|t| t.state.is_finished()).count();
    let budget = plan.config.planned(trials).map(|left| (trials.len() + left.len()) as u64);
    observer.begin(&config.slots, finished, budget);
    let mut observed = Observed { inner: controller, observer };
    scheduler::run(&config, &mut observed, stop).await
}

/// Judges the plan's definition against the study's last one: changes that
/// stop need `accept_changes`, else the run is refused with every change named.
pub(super) struct Review<'a> {
    plan: &'a StudyPlan,
    current: serde_json::Value,
    /// The changes of the last review, for the observer.
    changes: std::cell::RefCell<Option<Vec<Change>>>,
}

impl<'a> Review<'a> {
    pub(super) fn new(plan: &'a StudyPlan) -> Self {
        Review { plan, current: definition::of_file(&plan.file), changes: Default::default() }
    }
}

impl DefinitionReview for Review<'_> {
    fn current(&self) -> &serde_json::Value {
        &self.current
    }

    fn of_snapshot(&self, snapshot: &str) -> Option<serde_json::Value> {
        definition::of_snapshot(snapshot)
    }

    fn review(&self, stored: &serde_json::Value) -> anyhow::Result<Reviewed> {
        let changes = definition::diff(stored, &self.current);
        let stops = changes.iter().filter(|c| c.effect == Effect::Stops).count();
        if stops > 0 && !self.plan.accept_changes {
            let list = |effect: Effect| -> String {
                changes.iter().filter(|c| c.effect == effect).map(|c| format!("\n    {c}")).collect()
            };
            let continuing = list(Effect::Continues);
            let mut problem = format!(
                "the study file changed since study `{}` last ran, and {stops} change(s) alter what its \
                 earlier trials mean:{}",
                self.plan.name,
                list(Effect::Stops)
            );
            if !continuing.is_empty() {
                problem.push_str(&format!("\n  and these would go on as they are:{continuing}"));
            }
            return Err(InputError::new(&self.plan.source, problem)
                .with_hint(
                    "to start afresh, give the study a new `name` (or `--set name=NEW`); to go on with the \
                     earlier trials, run again with `--accept-changes`, which records the changes in the study",
                )
                .into());
        }
        // Each change also as text, so readers of the study need not know the keys.
        let recorded: Vec<RecordedChange> = changes.iter().map(RecordedChange::from).collect();
        let changes_json = serde_json::to_value(recorded).expect("changes serialise");
        let reviewed = Reviewed { changes: changes_json, accepted: stops > 0 };
        *self.changes.borrow_mut() = Some(changes);
        Ok(reviewed)
    }
}

/// The study controller with an observer looking on.
struct Observed<'a> {
    inner: StudyController,
    observer: &'a mut dyn Observer,
}

impl Controller for Observed<'_> {
    fn next_trial(&mut self, slot: &Slot) -> anyhow::Result<Next> {
        self.inner.next_trial(slot)
    }

    fn on_start(&mut self, number: u64, slot: &Slot, attempt: u32) -> anyhow::Result<()> {
        self.inner.on_start(number, slot, attempt)?;
        let trial = self.inner.study().trial(number);
        let params = trial.map(|t| t.params.clone()).unwrap_or_default();
        self.observer.started(number, slot, &params, trial.and_then(FrozenTrial::last_step));
        Ok(())
    }

    fn on_message(&mut self, number: u64, message: &Message) -> anyhow::Result<Directive> {
        self.observer.message(number, message);
        self.inner.on_message(number, message)
    }

    fn on_retry(&mut self, number: u64, attempt: u32, reason: &str) -> anyhow::Result<()> {
        self.inner.on_retry(number, attempt, reason)
    }

    fn on_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.inner.on_waiting(number, reason)
    }

    fn on_finish(&mut self, number: u64, report: &TrialReport) -> anyhow::Result<()> {
        self.inner.on_finish(number, report)?;
        self.observer.finished(number, report, self.inner.study().trial(number));
        Ok(())
    }
}

/// The parameters of the best feasible COMPLETE trial of the finished study
/// `name`; of a study with several objectives, of the Pareto trial `pick`
/// names (`sweep.pick`).
pub(super) fn best_params(
    results: &Path,
    name: &str,
    direction: Direction,
    pick: Option<&crate::study::file::PickSpec>,
) -> anyhow::Result<Params> {
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
    let objectives = &store.info().objectives;
    let trials = store.load_trials()?;
    let best = match (pick, objectives.is_empty()) {
        (None, true) => crate::hpo::best_trial(&trials, direction),
        (Some(_), true) => {
            return Err(InputError::new(
                "sweep.pick",
                format!("chooses a trial of a Pareto set, but study `{name}` has one objective"),
            )
            .with_hint("remove `pick`: the sweep takes that study's best trial")
            .into())
        }
        (None, false) => {
            return Err(InputError::new(
                "sweep.best_of",
                format!("study `{name}` has several objectives, so a Pareto set and no single best trial"),
            )
            .with_hint(format!(
                "say which of its Pareto trials to take: `pick: {{objective: {}}}` or `pick: knee` \
                 (`study status {name}` lists them)",
                objectives[0].name
            ))
            .into())
        }
        (Some(pick), false) => {
            use crate::hpo::pareto::Pick;
            let pick = match pick {
                crate::study::file::PickSpec::Knee => Pick::Knee,
                crate::study::file::PickSpec::Objective(objective) => {
                    match objectives.iter().position(|o| &o.name == objective) {
                        Some(i) => Pick::Objective(i),
                        None => {
                            let names: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
                            return Err(InputError::new(
                                "sweep.pick",
                                format!("study `{name}` has no objective `{objective}`"),
                            )
                            .with_hint(format!("its objectives: {}", names.join(", ")))
                            .into());
                        }
                    }
                }
            };
            let directions: Vec<Direction> = objectives.iter().map(|o| o.direction).collect();
            crate::hpo::pareto::pick(&trials, &directions, &pick)
        }
    };
    match best {
        Some(trial) => Ok(trial.params.clone()),
        None => Err(InputError::new(
            path.display().to_string(),
            format!("study `{name}` has no feasible COMPLETE trial"),
        )
        .with_hint("finish that study first, or remove `sweep.best_of`")
        .into()),
    }
}

/// Builds each trial's process from the objective.
pub(super) fn launcher(
    plan: &StudyPlan,
    base_params: Params,
    trials_dir: PathBuf,
) -> anyhow::Result<Launcher> {
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
            // A conditional parameter absent from a trial fills its
            // placeholder with nothing (an empty word).
            let conditional: Vec<String> =
                plan.config.phases.iter().flat_map(|p| p.space.conditions.keys().cloned()).collect();
            Ok(Box::new(move |trial: &TrialToRun, slot: &Slot| {
                let mut values: BTreeMap<String, String> =
                    conditional.iter().map(|name| (name.clone(), String::new())).collect();
                values.extend(base_params.iter().map(|(k, v)| (k.clone(), v.to_string())));
                values.extend(trial.params.iter().map(|(k, v)| (k.clone(), v.to_string())));
                values.insert("trial".into(), trial.number.to_string());
                values.insert("device".into(), slot.seen_as.to_string());
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
        Objective::Anisonet { metric } => {
            let metric = *metric;
            let plan = plan.clone();
            let program = trial_program()?;
            let cache_dir = Some(graph_cache_dir(&trials_dir));
            Ok(Box::new(move |trial: &TrialToRun, _slot: &Slot| {
                let mut params = base_params.clone();
                params.extend(trial.params.iter().map(|(k, v)| (k.clone(), v.clone())));
                let file =
                    TrialFile::new(&plan, metric, &params, trial.number, trial.seed, cache_dir.clone())?;
                file.model.validate()?;
                let path = file.write(&trials_dir.join(trial.number.to_string()))?;
                Ok(TrialSpec {
                    number: trial.number,
                    program: program.clone(),
                    args: vec!["trial".to_owned(), path.display().to_string()],
                    env: vec![("ANISOSTUDY_SEED".to_owned(), trial.seed.to_string())],
                    workdir: None,
                })
            }))
        }
    }
}

/// Trial `number`'s command before anything is sampled, as `study submit
/// --dry-run` shows a trial job: the parameters and the seed stay as their
/// placeholders (`{lr}`), and the built-in trainer's trial file is named,
/// not written.
pub fn preview_trial(plan: &StudyPlan, dir: &Path, number: u64, slot: &Slot) -> anyhow::Result<TrialSpec> {
    let trial_dir = dir.join("trials").join(number.to_string());
    match &plan.objective {
        Objective::Command { template, workdir } => {
            let mut values: BTreeMap<String, String> =
                template.placeholders().into_iter().map(|p| (p.to_owned(), format!("{{{p}}}"))).collect();
            values.insert("trial".into(), number.to_string());
            values.insert("device".into(), slot.seen_as.to_string());
            values.insert("threads".into(), slot.threads.to_string());
            values.insert("trial_dir".into(), trial_dir.display().to_string());
            let (program, args) = template.render(&values).map_err(anyhow::Error::msg)?;
            Ok(TrialSpec { number, program, args, env: Vec::new(), workdir: Some(workdir.clone()) })
        }
        Objective::Anisonet { .. } => Ok(TrialSpec {
            number,
            program: trial_program()?,
            args: vec![
                "trial".to_owned(),
                trial_dir.join(crate::study::trial::TRIAL_FILE).display().to_string(),
            ],
            env: Vec::new(),
            workdir: None,
        }),
    }
}

/// The `pick` of a sweep's `best_of`.
pub(super) fn sweep_pick(plan: &StudyPlan) -> Option<&crate::study::file::PickSpec> {
    plan.file.sweep.as_ref().and_then(|s| s.pick.as_ref())
}
