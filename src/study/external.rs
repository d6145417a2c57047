//! Studies whose trials someone else runs (`resources.executor: external`):
//! a workflow engine or a script asks for a trial, runs it as its own job
//! and tells the result, as with Optuna's `ask` and `tell`.
//!
//! There is no controller process. Each `ask` or `tell` opens the study,
//! does its work and closes it, holding the study's [`DriverLock`] the
//! whole time, so any number of drivers, in any number of processes, write
//! one after another and none of their writes is lost. The sampler sees the
//! trials still running (TPE's constant liar), exactly as under `study run`.
//!
//! A trial that is asked for and never told stays RUNNING until it is told
//! FAILED, or until an `ask` with a `stale_after` age finds its heartbeat
//! (its asking, or its last report) older than that and fails it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::file::{DevicesSpec, ExecutorKind};
use super::run::{best_params, launcher, study_dir, Review};
use super::validate::StudyPlan;
use crate::error::InputError;
use crate::exec::constraints::Ending;
use crate::exec::controller::{open_store, trial_seed, Launcher, SharedStore, StudySetup, TrialToRun};
use crate::exec::devices::{parse_device, Device, Slot};
use crate::hpo::{Ask, Outcome, Params, Study, TrialState};
use crate::storage::lock::{lock_holder, DriverLock};
use crate::storage::{Database, Journal};

/// The study attribute that keeps the study file's folder, against which an
/// `ask` by study name resolves the file's relative paths.
const BASE_DIR_ATTR: &str = "external_base_dir";

/// The device label trials of an external study are recorded on.
const EXTERNAL: &str = "external";

/// A trial handed to an outside driver: what to run and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AskedTrial {
    pub study: String,
    pub number: u64,
    pub params: Params,
    /// The trial's own seed (also `{seed}` and `ANISOSTUDY_SEED`).
    pub seed: u64,
    /// The trial's folder, created: its files and checkpoints go here.
    pub trial_dir: PathBuf,
    /// The program and its arguments: the study's `command` with the
    /// placeholders filled in, or `study trial FILE` for the built-in
    /// objective. Either prints the trial protocol's JSON lines, the last
    /// one `{"objective": x}`.
    pub command: Vec<String>,
    /// The folder to run `command` in, where the study sets one.
    pub workdir: Option<PathBuf>,
    /// Environment variables to set for `command`.
    pub env: BTreeMap<String, String>,
}

/// The answer of [`ExternalStudy::ask`].
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    Trial(Box<AskedTrial>),
    /// Nothing to run until running trials are told (a grid around the
    /// best trial waits for every earlier trial).
    Wait,
    /// Every phase has used its budget.
    Finished,
}

/// How a driver ends a trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Told {
    Complete(f64),
    /// COMPLETE with every objective's value, in a study with several.
    Values(Vec<f64>),
    /// Stopped early; its last reported value becomes its value.
    Pruned,
    Failed(Option<String>),
}

/// An external study, open for one driver's writes.
pub struct ExternalStudy {
    plan: StudyPlan,
    dir: PathBuf,
    store: SharedStore,
    study: Study<SharedStore>,
    launcher: Launcher,
    slot: Slot,
    _lock: DriverLock,
}

impl ExternalStudy {
    /// Opens the study `target` names: a study file (the study is created
    /// on first use, and a changed file is reviewed as `study run` reviews
    /// it), or the name of a study already in `results`.
    pub fn open(
        target: &str,
        results: &Path,
        overrides: &[String],
        accept_changes: bool,
    ) -> anyhow::Result<Self> {
        let from_file = Path::new(target).is_file();
        let mut plan = if from_file {
            super::load(Path::new(target), overrides)?
        } else {
            stored_plan(target, results, overrides)?
        };
        plan.accept_changes = accept_changes;
        if plan.file.resources.executor != ExecutorKind::External {
            return Err(InputError::new(
                format!("{}: resources.executor", plan.source),
                "this study's trials are run by `study run`, not by an outside driver",
            )
            .with_hint(
                "set `resources: {executor: external}` in the study file to ask for trials and tell results",
            )
            .into());
        }
        let dir = std::path::absolute(study_dir(results, &plan.name))?;
        std::fs::create_dir_all(&dir).map_err(|err| cannot_write(&dir, err))?;
        let lock = DriverLock::acquire(&dir)?;
        if let Some(holder) = lock_holder(&dir) {
            return Err(InputError::new(
                dir.display().to_string(),
                format!("a controller ({holder}) is running this study with `study run`"),
            )
            .with_hint("wait for it to end; an external study is only asked and told")
            .into());
        }
        let review = Review::new(&plan);
        let setup = StudySetup {
            name: &plan.name,
            config: plan.config.clone(),
            snapshot: serde_yaml::to_string(&plan.file)?,
            dir: &dir,
            allocation: None,
            // Drivers may write from several hosts of a shared file system.
            journal: Journal::Rollback,
            definition: &review,
            constraints: plan.constraints.clone(),
            objectives: plan.objectives.clone(),
        };
        let sqlite = open_store(&setup)?;
        let store = SharedStore::new(sqlite);
        if from_file {
            let base_dir = std::path::absolute(&plan.base_dir)?;
            store.sqlite().set_study_user_attr(BASE_DIR_ATTR, &serde_json::json!(base_dir))?;
        }
        let study = Study::new(store.clone(), plan.config.clone())?;
        let base_params = match &plan.sweep_best_of {
            Some(other) => best_params(results, other, plan.config.direction, super::run::sweep_pick(&plan))?,
            None => Params::new(),
        };
        let launcher = launcher(&plan, base_params, dir.join("trials"))?;
        let slot = driver_slot(&plan)?;
        Ok(Self { plan, dir, store, study, launcher, slot, _lock: lock })
    }

    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The study's folder (its database and `trials/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn study(&self) -> &Study<SharedStore> {
        &self.study
    }

    /// Fails the RUNNING trials whose last heartbeat is older than
    /// `max_age`; returns their numbers.
    pub fn fail_stale(&mut self, max_age: Duration) -> anyhow::Result<Vec<u64>> {
        let stale = self.store.sqlite().stale_running_trials(max_age)?;
        for &number in &stale {
            let reason = format!("no heartbeat for {} s: its driver is presumed gone", max_age.as_secs());
            self.study.tell(number, Outcome::Failed(Some(reason)))?;
        }
        Ok(stale)
    }

    /// The next trial to run, RUNNING from now; a trial that was put back
    /// in the queue (WAITING) comes first, with its parameters and number.
    pub fn ask(&mut self) -> anyhow::Result<Asked> {
        loop {
            let waiting = self.study.trials().iter().find(|t| t.state == TrialState::Waiting).cloned();
            let (number, params, seed) = match waiting {
                Some(trial) => {
                    let seed = self.store.sqlite().trial_details(trial.number)?.seed;
                    (
                        trial.number,
                        trial.params,
                        seed.unwrap_or_else(|| trial_seed(self.plan.config.seed, trial.number)),
                    )
                }
                None => match self.study.ask()? {
                    Ask::Trial(trial) => {
                        let seed = trial_seed(self.plan.config.seed, trial.number);
                        self.store.sqlite().set_trial_seed(trial.number, seed)?;
                        (trial.number, trial.params, seed)
                    }
                    Ask::Wait => return Ok(Asked::Wait),
                    Ask::Finished => return Ok(Asked::Finished),
                },
            };
            let attempt = self.store.sqlite().trial_details(number)?.attempt;
            self.store.sqlite().start_trial(number, EXTERNAL, attempt)?;
            let to_run = TrialToRun { number, params, seed };
            match (self.launcher)(&to_run, &self.slot) {
                Ok(spec) => {
                    let trial_dir = self.dir.join("trials").join(number.to_string());
                    std::fs::create_dir_all(&trial_dir).map_err(|err| cannot_write(&trial_dir, err))?;
                    let command = std::iter::once(spec.program).chain(spec.args).collect();
                    return Ok(Asked::Trial(Box::new(AskedTrial {
                        study: self.plan.name.clone(),
                        number,
                        params: to_run.params,
                        seed,
                        trial_dir,
                        command,
                        workdir: spec.workdir.map(std::path::absolute).transpose()?,
                        env: spec.env.into_iter().collect(),
                    })));
                }
                // The trial cannot even be built: it fails, and the next one is asked for.
                Err(err) => {
                    self.study.tell(number, Outcome::Failed(Some(format!("cannot launch: {err:#}"))))?
                }
            }
        }
    }

    /// Records an intermediate value of a RUNNING trial (also a heartbeat).
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        self.running(number)?;
        self.study.report(number, step, value)?;
        self.store.sqlite().heartbeat(number)
    }

    /// Shows that a RUNNING trial's driver is alive.
    pub fn heartbeat(&mut self, number: u64) -> anyhow::Result<()> {
        self.running(number)?;
        self.store.sqlite().heartbeat(number)
    }

    /// Whether the study's pruner stops a RUNNING trial after its last
    /// reported value.
    pub fn should_prune(&self, number: u64) -> anyhow::Result<bool> {
        self.running(number)?;
        self.study.should_prune(number)
    }

    /// Ends a RUNNING trial, with its final metrics (recorded with it) and
    /// the constraint values it reports itself. Where the study has
    /// constraints, a COMPLETE trial must give what they need (the metrics
    /// they bound, its reported values): otherwise the call is refused as
    /// bad input and the trial stays RUNNING, to be told again.
    pub fn tell(
        &mut self,
        number: u64,
        told: Told,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> anyhow::Result<()> {
        if let Told::Values(values) = &told {
            if let Err(why) = self.plan.objectives.check_reported(values) {
                let hint = match self.plan.objectives.is_multi() {
                    true => "tell one value per objective with --values A,B",
                    false => "tell one value with --value X",
                };
                return Err(InputError::new(format!("study {}, trial {number}", self.plan.name), why)
                    .with_hint(hint)
                    .into());
            }
        }
        self.running(number)?;
        let constraints = &self.plan.constraints;
        if !constraints.is_active() && reported.is_some_and(|r| !r.is_empty()) {
            return Err(InputError::new(
                format!("study {}, trial {number}", self.plan.name),
                "constraint values were told, but the study declares no constraints",
            )
            .with_hint("add `constraints: [{name: …}]` entries to the study file, or leave --constraints out")
            .into());
        }
        let location = || format!("study {}, trial {number}", self.plan.name);
        let mut all = self.store.sqlite().trial_details(number)?.metrics;
        all.extend(metrics.iter().map(|(k, v)| (k.clone(), *v)));
        let objectives = &self.plan.objectives;
        let outcome = match &told {
            Told::Complete(value) => Some(objectives.of_complete(*value, &all, None)),
            Told::Values(values) => {
                Some(objectives.of_complete(values.first().copied().unwrap_or(f64::NAN), &all, Some(values)))
            }
            Told::Pruned | Told::Failed(_) => None,
        };
        let outcome = match outcome {
            Some(result) => result.map_err(|why| {
                InputError::new(location(), why).with_hint(match objectives.is_multi() {
                    true => "tell every objective's value (--values A,B) or the metrics the objectives name (--metric NAME=X)",
                    false => "tell one value with --value X",
                })
            })?,
            None => match told.clone() {
                Told::Pruned => Outcome::Pruned,
                Told::Failed(reason) => Outcome::Failed(reason),
                _ => unreachable!("COMPLETE outcomes are decided above"),
            },
        };
        let values = if constraints.is_active() {
            let ending = match &told {
                Told::Complete(_) | Told::Values(_) => Ending::Complete,
                Told::Pruned => Ending::Pruned,
                Told::Failed(reason) => Ending::Failed(reason.as_deref().unwrap_or_default()),
            };
            constraints.of_ending(ending, &all, reported).map_err(|why| {
                InputError::new(location(), why).with_hint(
                    "tell it again with the metrics its constraints bound (--metric NAME=X) and its \
                     own constraint values (--constraints C1,C2)",
                )
            })?
        } else {
            None
        };
        if !metrics.is_empty() {
            self.store.sqlite().set_metrics(number, metrics)?;
        }
        if let Some(values) = values {
            self.study.set_constraints(number, &values)?;
        }
        self.study.tell(number, outcome)
    }

    /// Refuses (as bad input) a trial that does not exist or is not RUNNING.
    fn running(&self, number: u64) -> anyhow::Result<()> {
        let location = format!("study {}, trial {number}", self.plan.name);
        match self.study.trial(number) {
            None => {
                let last = self.study.trials().last().map(|t| t.number);
                let hint = match last {
                    Some(last) => format!("its trials are numbered 0 to {last}"),
                    None => "ask for a trial first with `study ask`".to_owned(),
                };
                Err(InputError::new(location, "no such trial").with_hint(hint).into())
            }
            Some(trial) if trial.state != TrialState::Running => {
                Err(InputError::new(location, format!("the trial is {}, not RUNNING", trial.state.name()))
                    .with_hint("only a trial that was asked for and not yet told can be told or reported")
                    .into())
            }
            Some(_) => Ok(()),
        }
    }
}

/// The plan of the study `name` in `results`, from the study file stored
/// with it.
fn stored_plan(name: &str, results: &Path, overrides: &[String]) -> anyhow::Result<StudyPlan> {
    let db = study_dir(results, name).join("study.db");
    if !db.is_file() {
        return Err(InputError::new(name, format!("is neither a study file nor a study in {}", results.display()))
            .with_hint("give the study file (its first `study ask` creates the study), or the results folder with --results")
            .into());
    }
    let store = Database::open_read_only(&db)?.open_study(name)?;
    let base_dir = match store.study_user_attrs()?.get(BASE_DIR_ATTR) {
        Some(serde_json::Value::String(dir)) => PathBuf::from(dir),
        _ => std::env::current_dir()?,
    };
    let label = format!("{name} (the study file stored in {})", db.display());
    Ok(super::load_str(&store.info().config, &label, &base_dir, overrides)?)
}

/// The slot a driver's trial is described with: its device as the trial's
/// own job sees it (`cpu`, or the one device `resources.devices` names) and
/// its threads.
fn driver_slot(plan: &StudyPlan) -> anyhow::Result<Slot> {
    let device = match &plan.file.resources.devices {
        DevicesSpec::List(list) if list.len() == 1 => parse_device(&list[0]).map_err(anyhow::Error::msg)?,
        _ => Device::Cpu,
    };
    Ok(Slot {
        index: 0,
        device: device.clone(),
        threads: plan.file.resources.cpu_threads_per_trial,
        host: Some(EXTERNAL.to_owned()),
        seen_as: device,
    })
}

fn cannot_write(dir: &Path, err: std::io::Error) -> anyhow::Error {
    InputError::new(dir.display().to_string(), format!("cannot be created: {err}"))
        .with_hint("choose a results folder you can write to with --results")
        .into()
}
