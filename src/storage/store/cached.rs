//! The study as the crate holds it: a [`StudyStore`] behind two caches, in
//! the manner of Optuna's cached storage.
//!
//! - The trials the ask/tell core reads on every ask are kept in memory as
//!   of the connection's `PRAGMA data_version`, which changes when another
//!   connection commits. This store's own commits do not change it, so each
//!   write here that changes a trial patches the cached trials; every write
//!   goes through this wrapper, which is why it holds the store rather than
//!   lends it out.
//! - The distributions of each phase's space, which every new trial stores
//!   beside its parameters, are parsed once per version of the phase's text.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value as Json;

use super::{Definition, Phase, StudyInfo, StudyStore, TrialDetails};
use crate::hpo::{FrozenTrial, Params, SearchSpace, TrialState, TrialStore};
use crate::storage::rows::storable_constraint;
use crate::storage::Database;

/// A study in a SQLite database: the persistent [`TrialStore`].
///
/// Every method that changes something is one `BEGIN IMMEDIATE … COMMIT`
/// transaction. The trials the ask/tell core reads on every ask are cached in
/// memory, patched by this store's own commits and reloaded when another
/// connection commits (`PRAGMA data_version`).
pub struct SqliteStore {
    store: StudyStore,
    trials: RefCell<Option<TrialCache>>,
    spaces: PhaseSpaces,
}

/// The trials as of `data_version`, ordered by number.
struct TrialCache {
    data_version: i64,
    trials: Vec<FrozenTrial>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db", &self.store.db)
            .field("study", &self.store.info.name)
            .finish()
    }
}

/// Reads, and writes that change no trial's state, value, parameters or
/// intermediate values, go straight to the store.
impl SqliteStore {
    pub(super) fn new(store: StudyStore) -> Self {
        SqliteStore { store, trials: RefCell::new(None), spaces: PhaseSpaces::default() }
    }

    pub fn database(&self) -> &Database {
        self.store.database()
    }

    pub fn info(&self) -> &StudyInfo {
        self.store.info()
    }

    /// Replaces the snapshot of the study file (e.g. after an edit on resume).
    pub fn set_config(&mut self, config: &str) -> anyhow::Result<()> {
        self.store.set_config(config)
    }

    pub fn set_study_user_attr(&mut self, key: &str, value: &Json) -> anyhow::Result<()> {
        self.store.set_study_user_attr(key, value)
    }

    pub fn study_user_attrs(&self) -> anyhow::Result<BTreeMap<String, Json>> {
        self.store.study_user_attrs()
    }

    /// Every definition the study ran under, by revision.
    pub fn definitions(&self) -> anyhow::Result<Vec<Definition>> {
        self.store.definitions()
    }

    /// Records the definition the study goes on under; its first trial is
    /// the next one created (trial 0 for the first revision, which so also
    /// covers trials recorded before definitions were kept). Returns its revision.
    pub fn add_definition(
        &mut self,
        definition: &Json,
        changes: &Json,
        accepted: bool,
    ) -> anyhow::Result<u32> {
        self.store.add_definition(definition, changes, accepted)
    }

    /// Records or replaces phase `phase.index` of the plan.
    pub fn set_phase(&mut self, phase: &Phase) -> anyhow::Result<()> {
        self.store.set_phase(phase)
    }

    /// The phases of the plan, by index.
    pub fn phases(&self) -> anyhow::Result<Vec<Phase>> {
        self.store.phases()
    }

    /// A RUNNING trial waits to start, for `reason`; with `None` it started
    /// now (its start time moves here, so its duration leaves the wait out).
    pub fn set_waiting(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.store.set_waiting(number, reason)
    }

    /// A RUNNING trial shows it is alive.
    pub fn heartbeat(&mut self, number: u64) -> anyhow::Result<()> {
        self.store.heartbeat(number)
    }

    /// RUNNING trials whose last heartbeat (or start) is older than `max_age`:
    /// their process is presumed dead.
    pub fn stale_running_trials(&self, max_age: Duration) -> anyhow::Result<Vec<u64>> {
        self.store.stale_running_trials(max_age)
    }

    /// Records (or replaces) named final metrics of a trial.
    pub fn set_metrics(&mut self, number: u64, metrics: &BTreeMap<String, f64>) -> anyhow::Result<()> {
        self.store.set_metrics(number, metrics)
    }

    /// Records the seed a trial's training runs with.
    pub fn set_trial_seed(&mut self, number: u64, seed: u64) -> anyhow::Result<()> {
        self.store.set_trial_seed(number, seed)
    }

    /// Records a file the trial produced; recording it twice changes nothing.
    pub fn add_artifact(&mut self, number: u64, kind: &str, path: &Path) -> anyhow::Result<()> {
        self.store.add_artifact(number, kind, path)
    }

    /// Sets (or replaces) a user attribute of a trial.
    pub fn set_user_attr(&mut self, number: u64, key: &str, value: &Json) -> anyhow::Result<()> {
        self.store.set_user_attr(number, key, value)
    }

    /// Everything stored about trial `number`.
    pub fn trial_details(&self, number: u64) -> anyhow::Result<TrialDetails> {
        self.store.trial_details(number)
    }

    /// Everything stored about every trial, by number, from one snapshot.
    pub fn all_trial_details(&self) -> anyhow::Result<Vec<TrialDetails>> {
        self.store.all_trial_details()
    }
}

/// Writes that change trials: each patches the cached trials after its commit.
impl SqliteStore {
    /// Like [`TrialStore::create_trial`], also recording the trial's seed.
    pub fn create_trial_with_seed(
        &mut self,
        phase: usize,
        params: &Params,
        state: TrialState,
        seed: Option<u64>,
    ) -> anyhow::Result<u64> {
        let number = self.store.create_trial(&mut self.spaces, phase, params, state, seed)?;
        self.patch_cache(|trials| {
            trials.push(FrozenTrial {
                number,
                phase,
                state,
                params: params.clone(),
                value: None,
                intermediate: BTreeMap::new(),
                values: Vec::new(),
                constraints: None,
            })
        });
        Ok(number)
    }

    /// The controller starts a trial on `device`: RUNNING (from WAITING, or
    /// already RUNNING since its creation), start time and first heartbeat now.
    pub fn start_trial(&mut self, number: u64, device: &str, attempt: u32) -> anyhow::Result<()> {
        self.store.start_trial(number, device, attempt)?;
        self.patch_trial(number, |trial| trial.state = TrialState::Running);
        Ok(())
    }

    /// Finishes a trial in one transaction: its state (COMPLETE, PRUNED or
    /// FAILED), objective value and final metrics appear together or not at all.
    pub fn finish_trial(
        &mut self,
        number: u64,
        state: TrialState,
        value: Option<f64>,
        metrics: &BTreeMap<String, f64>,
    ) -> anyhow::Result<()> {
        let value = self.store.finish_trial(number, state, value, metrics)?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (state, value));
        Ok(())
    }

    /// The trial failed (crash, out of memory, NaN loss): FAILED with the reason.
    pub fn fail_trial(&mut self, number: u64, reason: &str) -> anyhow::Result<()> {
        self.store.fail_trial(number, reason)?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (TrialState::Failed, None));
        Ok(())
    }

    /// Puts a RUNNING trial whose process died back in the queue: WAITING,
    /// one more attempt, no device. Its intermediate values stay (a resumed
    /// run overwrites them step by step).
    pub fn requeue(&mut self, number: u64) -> anyhow::Result<()> {
        self.store.requeue(number)?;
        self.patch_trial(number, |trial| trial.state = TrialState::Waiting);
        Ok(())
    }

    /// Applies a committed change of this store to the cached trials.
    fn patch_cache(&self, change: impl FnOnce(&mut Vec<FrozenTrial>)) {
        if let Some(cache) = self.trials.borrow_mut().as_mut() {
            change(&mut cache.trials);
        }
    }

    fn patch_trial(&self, number: u64, change: impl FnOnce(&mut FrozenTrial)) {
        let mut cache = self.trials.borrow_mut();
        let Some(trials) = cache.as_mut().map(|cache| &mut cache.trials) else { return };
        match trials.binary_search_by_key(&number, |trial| trial.number) {
            Ok(index) => change(&mut trials[index]),
            Err(_) => *cache = None,
        }
    }
}

impl TrialStore for SqliteStore {
    fn load_trials(&self) -> anyhow::Result<Vec<FrozenTrial>> {
        let data_version = self.store.data_version()?;
        if let Some(cache) = self.trials.borrow().as_ref() {
            if cache.data_version == data_version {
                return Ok(cache.trials.clone());
            }
        }
        let trials = self.store.frozen_trials()?;
        *self.trials.borrow_mut() = Some(TrialCache { data_version, trials: trials.clone() });
        Ok(trials)
    }

    fn create_trial(&mut self, phase: usize, params: &Params, state: TrialState) -> anyhow::Result<u64> {
        self.create_trial_with_seed(phase, params, state, None)
    }

    /// COMPLETE needs a value; finished trials never change again; only
    /// [`SqliteStore::requeue`] moves a trial back to WAITING.
    fn set_state(&mut self, number: u64, state: TrialState, value: Option<f64>) -> anyhow::Result<()> {
        let value = self.store.set_state(number, state, value)?;
        self.patch_trial(number, |trial| (trial.state, trial.value) = (state, value));
        Ok(())
    }

    /// Replaces an earlier value at the same step; finished trials take no
    /// more. NaN is stored as NULL and reads back as NaN.
    fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        self.store.set_intermediate(number, step, value)?;
        self.patch_trial(number, |trial| {
            trial.intermediate.insert(step, value);
        });
        Ok(())
    }

    fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.store.set_constraints(number, values)?;
        let stored = values.iter().map(|&v| storable_constraint(v).unwrap_or(f64::NAN)).collect();
        self.patch_trial(number, |trial| trial.constraints = Some(stored));
        Ok(())
    }

    fn set_values(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        self.store.set_values(number, values)?;
        self.patch_trial(number, |trial| trial.values = values.to_vec());
        Ok(())
    }

    fn fail(&mut self, number: u64, reason: Option<&str>) -> anyhow::Result<()> {
        self.fail_trial(number, reason.unwrap_or("failed (no reason given)"))
    }
}

/// Distributions of each phase's space as stored JSON, parsed once per
/// version of the phase's text.
#[derive(Default)]
pub(super) struct PhaseSpaces {
    by_phase: HashMap<usize, (String, BTreeMap<String, String>)>,
}

impl PhaseSpaces {
    /// The JSON of each parameter's distribution in `space_json`, the
    /// stored space of `phase`.
    pub(super) fn distributions_json(
        &mut self,
        phase: usize,
        space_json: String,
    ) -> anyhow::Result<&BTreeMap<String, String>> {
        let fresh = self.by_phase.get(&phase).is_some_and(|(text, _)| *text == space_json);
        if !fresh {
            let space: SearchSpace = serde_json::from_str(&space_json).context("search space of a phase")?;
            let distributions = space
                .params
                .iter()
                .map(|(name, distribution)| Ok((name.clone(), serde_json::to_string(distribution)?)))
                .collect::<anyhow::Result<_>>()?;
            self.by_phase.insert(phase, (space_json, distributions));
        }
        Ok(&self.by_phase[&phase].1)
    }
}
