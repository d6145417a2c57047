//! The study controller: the ask/tell core ([`Study`]) over the study's
//! SQLite database, driven by the scheduler. It is the single writer of the
//! database (a lock file keeps a second controller out).
//!
//! On opening, trials left RUNNING by a controller that died are requeued,
//! and every WAITING trial (requeued now or after a stop) runs again first,
//! with its parameters and number, before new trials are asked for.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::constraints::{Constraints, Ending};
use super::devices::Slot;
use super::launch::TrialSpec;
use super::objectives::Objectives;
use super::protocol::Message;
use super::scheduler::{Controller, Directive, Next, Outcome, TrialReport};
use crate::hpo::{Ask, FrozenTrial, Params, Study, StudyConfig, TrialState, TrialStore};
use crate::storage::lock::StudyLock;
use crate::storage::{self, Database, Journal, NewStudy, SqliteStore};

/// The seed of trial `number`'s own randomness (initialisation, shuffling):
/// ChaCha20 keyed by (study seed, trial number) on its own stream, so it is
/// independent of the sampler's draws.
pub fn trial_seed(study_seed: u64, number: u64) -> u64 {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&study_seed.to_le_bytes());
    key[8..16].copy_from_slice(&number.to_le_bytes());
    key[16..24].copy_from_slice(b"trialrng");
    ChaCha20Rng::from_seed(key).next_u64()
}

/// A trial about to be launched, as the launcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialToRun {
    pub number: u64,
    pub params: Params,
    pub seed: u64,
}

/// Builds the process of a trial for a slot.
pub type Launcher = Box<dyn FnMut(&TrialToRun, &Slot) -> anyhow::Result<TrialSpec>>;

/// The SQLite store shared by the ask/tell core and the controller's own
/// writes (start times, metrics, requeues).
#[derive(Clone)]
pub struct SharedStore {
    inner: Rc<RefCell<SqliteStore>>,
}

impl SharedStore {
    pub fn new(store: SqliteStore) -> Self {
        SharedStore { inner: Rc::new(RefCell::new(store)) }
    }

    /// The store, for writes beside the ask/tell core's.
    pub fn sqlite(&self) -> std::cell::RefMut<'_, SqliteStore> {
        self.inner.borrow_mut()
    }
}

impl TrialStore for SharedStore {
    fn load_trials(&self) -> anyhow::Result<Vec<FrozenTrial>> {
        self.inner.borrow().load_trials()
    }

    fn create_trial(&mut self, phase: usize, params: &Params, state: TrialState) -> anyhow::Result<u64> {
        self.inner.borrow_mut().create_trial(phase, params, state)
    }

    fn set_state(&mut self, number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<()> {
        self.inner.borrow_mut().set_state(number, state, value)
    }

    fn fail(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.inner.borrow_mut().fail(number, reason)
    }

    fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        self.inner.borrow_mut().report(number, step, value)
    }

    fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.inner.borrow_mut().set_constraints(number, values)
    }

    fn set_values(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.inner.borrow_mut().set_values(number, values)
    }
}

/// Judges a study's definition against the one it last ran under: the
/// study layer knows what its keys mean, the controller records the outcome.
pub trait DefinitionReview {
    /// The definition this run goes by.
    fn current(&self) -> &serde_json::Value;
    /// The definition of a study recorded before definitions were kept,
    /// read from its stored study-file snapshot; `None` if it does not parse.
    fn of_snapshot(&self, snapshot: &str) -> Option<serde_json::Value>;
    /// What changed from `stored` to [`Self::current`] (a JSON list, empty
    /// when nothing did) and whether changes that alter earlier trials were
    /// accepted; an error refuses to go on.
    fn review(&self, stored: &serde_json::Value) -> anyhow::Result<Reviewed>;
}

/// The verdict of [`DefinitionReview::review`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub changes: serde_json::Value,
    pub accepted: bool,
}

/// What a study controller needs to open its study.
pub struct StudySetup<'a> {
    pub name: &'a str,
    pub config: StudyConfig,
    /// The study file as run (stored for `status` and reproducibility).
    pub snapshot: String,
    /// The study's folder: `study.db`, the lock and `trials/` live here.
    pub dir: &'a Path,
    /// The batch allocation the controller runs in, recorded in its lock.
    pub allocation: Option<String>,
    /// How the database keeps its journal: [`Journal::Rollback`] when the
    /// study is read from other hosts of a shared file system.
    pub journal: Journal,
    /// Checks the definition against the stored one before anything runs.
    pub definition: &'a dyn DefinitionReview,
    /// What each finished trial's constraint values are made of.
    pub constraints: Constraints,
    /// Where each objective's value comes from, with several objectives.
    pub objectives: Objectives,
}

/// Asks, tells and records: the [`Controller`] of a real study.
pub struct StudyController {
    study: Study<SharedStore>,
    store: SharedStore,
    launcher: Launcher,
    seed: u64,
    trials_dir: PathBuf,
    /// WAITING trials to run again first.
    requeued: VecDeque<TrialToRun>,
    /// Stored attempt count of each trial at launch (requeues add one).
    base_attempt: HashMap<u64, u32>,
    /// Final metrics reported before the trial ends.
    metrics: HashMap<u64, BTreeMap<String, f64>>,
    /// The study's constraints, and the values each trial reported itself.
    constraints: Constraints,
    reported_constraints: HashMap<u64, Vec<f64>>,
    /// The study's objectives when it has several, and the values each
    /// trial reported on its result line.
    objectives: Objectives,
    reported_objectives: HashMap<u64, Vec<f64>>,
    /// Requeued trials launched and not yet finished.
    requeued_running: HashSet<u64>,
    /// Deterministic batches (see [`Self::deterministic_batches`]).
    batch_requeued: bool,
    /// Trials launched and not finished.
    running: HashSet<u64>,
    /// First trial number of each trial's batch (stored as the user
    /// attribute `batch`): the pruner sees only trials numbered below it.
    batch_of: HashMap<u64, u64>,
    /// The batch being launched.
    current_batch: Option<u64>,
    _lock: StudyLock,
}

impl StudyController {
    /// Opens (or creates) the study in `<dir>/study.db`, requeues what a
    /// dead controller left RUNNING, and checks the stored trials fit `config`.
    pub fn open(setup: StudySetup<'_>, launcher: Launcher) -> anyhow::Result<Self> {
        std::fs::create_dir_all(setup.dir)
            .with_context(|| format!("cannot create the results folder {}", setup.dir.display()))?;
        let lock = StudyLock::acquire(setup.dir, setup.allocation.as_deref())?;
        let mut sqlite = open_store(&setup)?;
        let mut requeued = VecDeque::new();
        let mut base_attempt = HashMap::new();
        let mut batch_of = HashMap::new();
        for trial in sqlite.load_trials()? {
            if trial.state == TrialState::Running {
                sqlite.requeue(trial.number)?;
            }
            if matches!(trial.state, TrialState::Running | TrialState::Waiting) {
                let details = sqlite.trial_details(trial.number)?;
                base_attempt.insert(trial.number, details.attempt);
                if let Some(batch) = details.user_attrs.get("batch").and_then(|b| b.as_u64()) {
                    batch_of.insert(trial.number, batch);
                }
                let seed = details.seed.unwrap_or_else(|| trial_seed(setup.config.seed, trial.number));
                requeued.push_back(TrialToRun { number: trial.number, params: trial.params, seed });
            }
        }
        let store = SharedStore { inner: Rc::new(RefCell::new(sqlite)) };
        let seed = setup.config.seed;
        let constraints = setup.constraints.clone();
        let objectives = setup.objectives.clone();
        let study = Study::new(store.clone(), setup.config)?;
        Ok(Self {
            study,
            store,
            launcher,
            seed,
            trials_dir: setup.dir.join("trials"),
            requeued,
            base_attempt,
            metrics: HashMap::new(),
            constraints,
            reported_constraints: HashMap::new(),
            objectives,
            reported_objectives: HashMap::new(),
            requeued_running: HashSet::new(),
            batch_requeued: false,
            running: HashSet::new(),
            batch_of,
            current_batch: None,
            _lock: lock,
        })
    }

    /// For deterministic dispatch: requeued trials run as a batch of their
    /// own (no new trial is asked for until they have all finished), and the
    /// pruner judges a trial only against the trials numbered below its
    /// batch's first, which had all finished when the batch began. So
    /// neither the samples nor the pruning depend on timing, and a resumed
    /// study does what an uninterrupted one does: the requeued trials are
    /// the rest of the batch the interruption cut short.
    pub fn deterministic_batches(mut self, on: bool) -> Self {
        self.batch_requeued = on;
        self
    }

    /// Where trial folders go (for the scheduler's configuration).
    pub fn trials_dir(&self) -> &Path {
        &self.trials_dir
    }

    pub fn study(&self) -> &Study<SharedStore> {
        &self.study
    }

    /// Records a study-level fact (e.g. its data's cleaning counts).
    pub fn set_study_user_attr(&self, key: &str, value: &serde_json::Value) -> anyhow::Result<()> {
        self.sqlite().set_study_user_attr(key, value)
    }

    fn sqlite(&self) -> std::cell::RefMut<'_, SqliteStore> {
        self.store.inner.borrow_mut()
    }
}

impl Controller for StudyController {
    fn next_trial(&mut self, slot: &Slot) -> anyhow::Result<Next> {
        let trial = match self.requeued.pop_front() {
            Some(trial) => {
                self.requeued_running.insert(trial.number);
                trial
            }
            None if self.batch_requeued && !self.requeued_running.is_empty() => return Ok(Next::Wait),
            None => match self.study.ask()? {
                Ask::Trial(trial) => {
                    let seed = trial_seed(self.seed, trial.number);
                    self.sqlite().set_trial_seed(trial.number, seed)?;
                    self.base_attempt.insert(trial.number, 0);
                    TrialToRun { number: trial.number, params: trial.params, seed }
                }
                Ask::Wait => return Ok(Next::Wait),
                Ask::Finished => return Ok(Next::Finished),
            },
        };
        match (self.launcher)(&trial, slot) {
            Ok(spec) => {
                if self.running.is_empty() {
                    self.current_batch = None;
                }
                self.running.insert(trial.number);
                if self.batch_requeued && !self.batch_of.contains_key(&trial.number) {
                    let batch = *self.current_batch.get_or_insert(trial.number);
                    self.batch_of.insert(trial.number, batch);
                    self.sqlite().set_user_attr(trial.number, "batch", &serde_json::json!(batch))?;
                }
                Ok(Next::Launch(spec))
            }
            Err(err) => {
                // The trial cannot even be built: it fails, the study goes on.
                let reason = format!("cannot launch: {err:#}");
                self.requeued_running.remove(&trial.number);
                self.sqlite().start_trial(trial.number, &slot.label(), 0)?;
                self.tell(trial.number, Outcome::Failed(reason))?;
                self.next_trial(slot)
            }
        }
    }

    fn on_start(&mut self, number: u64, slot: &Slot, attempt: u32) -> anyhow::Result<()> {
        let base = self.base_attempt.get(&number).copied().unwrap_or(0);
        self.sqlite().start_trial(number, &slot.label(), base + attempt - 1)
    }

    fn on_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.sqlite().set_waiting(number, reason)
    }

    fn on_message(&mut self, number: u64, message: &Message) -> anyhow::Result<Directive> {
        match message {
            Message::Intermediate { step, value } if value.0.is_finite() => {
                self.study.report(number, *step, value.0)?;
                let prune = match self.batch_of.get(&number).filter(|_| self.batch_requeued) {
                    Some(&batch) => self.study.should_prune_against(number, |t| t.number < batch)?,
                    None => self.study.should_prune(number)?,
                };
                if prune {
                    return Ok(Directive::Prune);
                }
            }
            Message::Start { .. } | Message::Epoch { .. } => self.sqlite().heartbeat(number)?,
            Message::Metrics { metrics } => {
                let entry = self.metrics.entry(number).or_default();
                entry.extend(metrics.iter().map(|(k, v)| (k.clone(), v.0)));
            }
            Message::Final { constraints, objectives, .. } => {
                let numbers = |list: &[super::protocol::Number]| list.iter().map(|v| v.0).collect();
                if let Some(values) = constraints {
                    self.reported_constraints.insert(number, numbers(values));
                }
                if let Some(values) = objectives {
                    self.reported_objectives.insert(number, numbers(values));
                }
            }
            Message::Artifact { kind, path } => {
                let path = self.trials_dir.join(number.to_string()).join(path);
                self.sqlite().add_artifact(number, kind, &path)?;
            }
            _ => {}
        }
        Ok(Directive::Continue)
    }

    fn on_retry(&mut self, number: u64, attempt: u32, reason: &str) -> anyhow::Result<()> {
        let key = format!("attempt_{attempt}_failure");
        self.sqlite().set_user_attr(number, &key, &serde_json::Value::String(reason.to_owned()))
    }

    fn on_finish(&mut self, number: u64, report: &TrialReport) -> anyhow::Result<()> {
        self.requeued_running.remove(&number);
        self.running.remove(&number);
        let dir = self.trials_dir.join(number.to_string());
        for attempt in 1..=report.attempts {
            let (stdout, stderr) = super::scheduler::log_paths(&dir, attempt);
            self.sqlite().add_artifact(number, "stdout", &stdout)?;
            self.sqlite().add_artifact(number, "stderr", &stderr)?;
        }
        let metrics = self.metrics.remove(&number).unwrap_or_default();
        if !metrics.is_empty() {
            self.sqlite().set_metrics(number, &metrics)?;
        }
        let reported = self.reported_constraints.remove(&number);
        let outcome =
            self.record_constraints(number, report.outcome.clone(), &metrics, reported.as_deref())?;
        let reported = self.reported_objectives.remove(&number);
        let outcome = match outcome {
            Outcome::Complete(value) => {
                match self.objectives.of_complete(value, &metrics, reported.as_deref()) {
                    Ok(told) => return self.study.tell(number, told),
                    Err(why) => Outcome::Failed(why),
                }
            }
            other => other,
        };
        self.tell(number, outcome)
    }
}

/// Opens (or creates) the study in `<dir>/study.db` under `setup`'s
/// definition, configuration and phases: what every writer of a study does
/// first, whether a controller or an outside driver's `ask`/`tell`.
pub fn open_store(setup: &StudySetup<'_>) -> anyhow::Result<SqliteStore> {
    let db = Database::open_with(setup.dir.join("study.db"), setup.journal)?;
    let new = NewStudy {
        name: setup.name.to_owned(),
        direction: setup.config.direction,
        objectives: setup.objectives.stored(),
        seed: setup.config.seed,
        config: setup.snapshot.clone(),
    };
    let mut sqlite = db.open_or_create_study(&new)?;
    record_definition(&mut sqlite, setup.definition)?;
    sqlite.set_config(&setup.snapshot)?;
    for (index, phase) in setup.config.phases.iter().enumerate() {
        sqlite.set_phase(&storage::Phase {
            index,
            name: phase.name.clone(),
            sampler: serde_json::to_string(&phase.sampler)?,
            space: phase.space.clone(),
            budget: phase.n_trials,
        })?;
    }
    Ok(sqlite)
}

/// Records the definition the study goes on under, unless it is the last
/// one stored; refuses (with the review's error) before anything is
/// written when the review does. A study from before definitions were kept
/// first gets its stored snapshot as revision 1.
fn record_definition(sqlite: &mut SqliteStore, review: &dyn DefinitionReview) -> anyhow::Result<()> {
    let none = serde_json::json!([]);
    let (last, from_snapshot) = match sqlite.definitions()?.pop() {
        Some(stored) => (stored.definition, false),
        None if sqlite.load_trials()?.is_empty() => {
            sqlite.add_definition(review.current(), &none, false)?;
            return Ok(());
        }
        None => match review.of_snapshot(&sqlite.info().config) {
            Some(old) => (old, true),
            None => {
                sqlite.add_definition(review.current(), &none, false)?;
                return Ok(());
            }
        },
    };
    let reviewed = review.review(&last)?;
    if from_snapshot {
        sqlite.add_definition(&last, &none, false)?;
    }
    if reviewed.changes.as_array().is_some_and(|c| !c.is_empty()) {
        sqlite.add_definition(review.current(), &reviewed.changes, reviewed.accepted)?;
    }
    Ok(())
}

impl StudyController {
    /// Records a finishing trial's constraint values where the study has
    /// constraints: from its metrics and reported values when it ran to its
    /// end (a COMPLETE trial missing one fails, saying which), from its
    /// failure when failures for resources count as infeasible.
    fn record_constraints(
        &mut self,
        number: u64,
        outcome: Outcome,
        metrics: &BTreeMap<String, f64>,
        reported: Option<&[f64]>,
    ) -> anyhow::Result<Outcome> {
        let ending = match &outcome {
            Outcome::Complete(_) => Ending::Complete,
            Outcome::Pruned => Ending::Pruned,
            Outcome::Failed(reason) => Ending::Failed(reason),
            Outcome::Interrupted => return Ok(outcome),
        };
        let values = match self.constraints.of_ending(ending, metrics, reported) {
            Ok(Some(values)) => values,
            Ok(None) => return Ok(outcome),
            Err(why) => return Ok(Outcome::Failed(why)),
        };
        self.study.set_constraints(number, &values)?;
        Ok(outcome)
    }

    fn tell(&mut self, number: u64, outcome: Outcome) -> anyhow::Result<()> {
        let outcome = match outcome {
            Outcome::Complete(value) => crate::hpo::Outcome::Complete(value),
            Outcome::Pruned => crate::hpo::Outcome::Pruned,
            Outcome::Failed(reason) => crate::hpo::Outcome::Failed(Some(reason)),
            Outcome::Interrupted => return self.sqlite().requeue(number),
        };
        self.study.tell(number, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_seeds_are_stable_and_distinct() {
        assert_eq!(trial_seed(1, 2), trial_seed(1, 2));
        assert_ne!(trial_seed(1, 2), trial_seed(1, 3));
        assert_ne!(trial_seed(1, 2), trial_seed(2, 2));
    }
}
