//! The ask/tell core: a study over a [`TrialStore`], run by one controller.
//!
//! The controller is the single writer, so the study keeps every trial in
//! memory after one load and updates that cache with each of its own
//! writes: `ask` and `tell` cost one store call each, never a reload.
//!
//! `ask` finds the current phase (the first one with budget or grid points
//! left), samples with that phase's sampler and creates the trial RUNNING.
//! A grid around the best trial waits (`Ask::Wait`) until every earlier
//! trial has finished, so the best — and thus the grid — cannot change
//! under it.

use serde::{Deserialize, Serialize};

use super::pareto::Pick;
use super::phase::{Phase, SamplerConfig};
use super::pruners::{Pruner, PrunerConfig};
use super::samplers::{
    GpSampler, GridSampler, GridSpec, Nsga2Sampler, RandomSampler, SampleContext, Sampler, TpeSampler,
};
use super::{best_trial, Direction, FrozenTrial, Params, TrialState, TrialStore};
use anisostudy_error::InputError;

/// Everything that defines a study's behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// Seeds every draw, together with the trial number.
    pub seed: u64,
    /// The objective's direction; with several objectives, the first one's.
    #[serde(default)]
    pub direction: Direction,
    /// Every objective's direction in a study with several objectives
    /// (at least two, the first equal to `direction`); empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<Direction>,
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub pruner: PrunerConfig,
}

impl StudyConfig {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.phases.is_empty() {
            return Err(InputError::new("study", "has no phases").with_hint("add at least one phase"));
        }
        if !self.directions.is_empty() {
            self.validate_objectives()?;
        }
        for (i, phase) in self.phases.iter().enumerate() {
            phase.validate()?;
            if self.phases[..i].iter().any(|p| p.name == phase.name) {
                return Err(InputError::new(phase.location(), "appears twice")
                    .with_hint("give phases distinct names"));
            }
        }
        self.pruner.validate("pruner")
    }

    /// Whether the study has several objectives.
    pub fn is_multi_objective(&self) -> bool {
        !self.directions.is_empty()
    }

    /// The trial a grid around the best centres on: the best feasible
    /// COMPLETE trial, or with several objectives the Pareto trial the
    /// grid's `pick` names.
    pub fn centre<'a>(
        &self,
        trials: impl IntoIterator<Item = &'a FrozenTrial>,
        spec: &GridSpec,
    ) -> Option<&'a FrozenTrial> {
        match (&spec.pick, self.is_multi_objective()) {
            (Some(pick), true) => crate::pareto::pick(trials, &self.directions, pick),
            _ => best_trial(trials, self.direction),
        }
    }

    /// What a study with several objectives cannot do, refused as Optuna
    /// does: pruning (intermediate values have one objective), a grid
    /// around "the" best trial (there is a Pareto set instead), and the GP.
    fn validate_objectives(&self) -> Result<(), InputError> {
        if self.directions.len() < 2 || self.directions[0] != self.direction {
            return Err(InputError::new(
                "objective",
                "several objectives need two directions or more, the first the study's",
            )
            .with_hint("list every objective's direction"));
        }
        if self.pruner != PrunerConfig::None {
            return Err(InputError::new("pruner", "cannot prune a study with several objectives")
                .with_hint("remove `pruner`: a trial's intermediate values follow one objective, so there is no rule to stop it early on several (Optuna refuses it too)"));
        }
        for phase in &self.phases {
            match &phase.sampler {
                SamplerConfig::Grid(spec) if spec.needs_best() && spec.pick.is_none() => {
                    return Err(InputError::new(phase.location(), "is a grid around the best trial, but a study with several objectives has a Pareto set, not one best trial")
                        .with_hint("say which Pareto trial to centre on: `pick: {objective: NAME}` or `pick: knee`"));
                }
                SamplerConfig::Grid(GridSpec { pick: Some(Pick::Objective(i)), .. })
                    if *i >= self.directions.len() =>
                {
                    return Err(InputError::new(
                        phase.location(),
                        format!("picks objective {i}, but the study has {}", self.directions.len()),
                    ));
                }
                SamplerConfig::Gp(_) => {
                    return Err(InputError::new(
                        phase.location(),
                        "uses the GP sampler, which handles one objective",
                    )
                    .with_hint("use `tpe` (multi-objective TPE) or `nsga2` for several objectives"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether what trial n samples, or whether it is pruned, can depend on
    /// which earlier trials have finished when it starts: TPE learns from
    /// results, a grid with `retry_failed` reuses failed cells, a pruner
    /// compares trials. Otherwise (random search, plain grids and sweeps,
    /// and grids around a best, which wait for every earlier trial anyway)
    /// trial n is the same whenever it starts, so a run that must be
    /// reproducible can still start each trial as soon as a slot is free.
    pub fn depends_on_finish_order(&self) -> bool {
        let phase_depends = |phase: &Phase| match &phase.sampler {
            SamplerConfig::Tpe(_) | SamplerConfig::Gp(_) | SamplerConfig::Nsga2(_) => true,
            SamplerConfig::Random => false,
            SamplerConfig::Grid(spec) => spec.retry_failed,
        };
        self.pruner != PrunerConfig::None || self.phases.iter().any(phase_depends)
    }

    /// The trials still to be created after `history`, in the order they
    /// will be asked for: each with its parameters where its phase fixes them
    /// in advance (grid cells), `None` where they will be sampled. `None`
    /// overall when the number is not known yet: a grid around a best trial
    /// that is still to be found, with no `n_trials` cap.
    pub fn planned(&self, history: &[FrozenTrial]) -> Option<Vec<Option<Params>>> {
        let mut planned = Vec::new();
        for (p, phase) in self.phases.iter().enumerate() {
            let created = history.iter().filter(|t| t.phase == p).count() as u64;
            let left = phase.n_trials.map(|n| n.saturating_sub(created));
            let SamplerConfig::Grid(spec) = &phase.sampler else {
                planned.extend((0..left?).map(|_| None));
                continue;
            };
            let earlier: Vec<&FrozenTrial> = history.iter().filter(|t| t.phase < p).collect();
            let best = if spec.needs_best() {
                match self.centre(earlier.iter().copied(), spec) {
                    Some(best) if earlier.iter().all(|t| t.state.is_finished()) => Some(&best.params),
                    _ => {
                        planned.extend((0..left?).map(|_| None));
                        continue;
                    }
                }
            } else {
                None
            };
            let grid = spec.resolve(&phase.space, best).ok()?;
            let ctx = SampleContext {
                space: &phase.space,
                history,
                direction: self.direction,
                directions: &self.directions,
                seed: self.seed,
                trial_number: history.last().map_or(0, |t| t.number + 1),
                phase: p,
            };
            let cells = grid.pending(&ctx).into_iter().take(left.unwrap_or(u64::MAX) as usize);
            planned.extend(cells.map(Some));
        }
        Some(planned)
    }
}

/// A trial handed out by [`Study::ask`].
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub number: u64,
    /// Index of the phase that created it.
    pub phase: usize,
    pub params: Params,
}

/// The answer of [`Study::ask`].
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// Run this trial.
    Trial(Trial),
    /// Nothing to start now: the next phase needs the running trials' results.
    Wait,
    /// Every phase has used its budget.
    Finished,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The objective value. NaN makes the trial FAILED, as in Optuna.
    Complete(f64),
    /// Every objective's value, in a study with several objectives. A NaN
    /// makes the trial FAILED.
    Objectives(Vec<f64>),
    /// Stopped early by the pruner; the last intermediate value becomes its value.
    Pruned,
    /// Crashed or diverged, with why when known.
    Failed(Option<String>),
}

/// Where the study stands.
#[derive(Debug, Clone, PartialEq)]
enum PhaseStatus {
    Active(usize, Option<GridSampler>),
    Waiting(usize),
    Finished,
}

/// A study: configuration, store, and the cached trials.
pub struct Study<S: TrialStore> {
    store: S,
    config: StudyConfig,
    trials: Vec<FrozenTrial>,
}

impl<S: TrialStore> Study<S> {
    /// Opens a study over `store` (empty or holding an earlier run of the
    /// same study): validates the configuration and loads the trials once.
    pub fn new(store: S, config: StudyConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let trials = store.load_trials()?;
        if let Some(t) = trials.iter().find(|t| t.phase >= config.phases.len()) {
            return Err(InputError::new(
                "study",
                format!(
                    "stored trial {} belongs to phase {}, but the study has {} phases",
                    t.number,
                    t.phase,
                    config.phases.len()
                ),
            )
            .with_hint("resume with the configuration the study was started with")
            .into());
        }
        anyhow::ensure!(
            trials.windows(2).all(|w| w[0].number < w[1].number),
            "the store returned trials out of order"
        );
        Ok(Self { store, config, trials })
    }

    pub fn config(&self) -> &StudyConfig {
        &self.config
    }

    pub fn direction(&self) -> Direction {
        self.config.direction
    }

    /// Every trial, by number.
    pub fn trials(&self) -> &[FrozenTrial] {
        &self.trials
    }

    pub fn trial(&self, number: u64) -> Option<&FrozenTrial> {
        self.position(number).map(|i| &self.trials[i])
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn into_store(self) -> S {
        self.store
    }

    /// The Pareto set of a study with several objectives: its feasible
    /// COMPLETE trials that no other dominates, by number.
    pub fn pareto_front(&self) -> Vec<&FrozenTrial> {
        crate::pareto::pareto_front(&self.trials, &self.config.directions)
    }

    /// The feasible COMPLETE trial with the best value (the lowest number on ties).
    pub fn best_trial(&self) -> Option<&FrozenTrial> {
        best_trial(&self.trials, self.config.direction)
    }

    /// The index of the phase that the next `ask` draws from; `None` when
    /// the study is finished.
    pub fn current_phase(&self) -> anyhow::Result<Option<usize>> {
        Ok(match self.phase_status()? {
            PhaseStatus::Active(p, _) | PhaseStatus::Waiting(p) => Some(p),
            PhaseStatus::Finished => None,
        })
    }

    /// The next trial to run, created RUNNING in the store.
    pub fn ask(&mut self) -> anyhow::Result<Ask> {
        let (phase_index, grid) = match self.phase_status()? {
            PhaseStatus::Active(p, grid) => (p, grid),
            PhaseStatus::Waiting(_) => return Ok(Ask::Wait),
            PhaseStatus::Finished => return Ok(Ask::Finished),
        };
        let number = self.trials.last().map_or(0, |t| t.number + 1);
        let phase = &self.config.phases[phase_index];
        let ctx = self.context(phase_index, number);
        let params = match (&phase.sampler, &grid) {
            (_, Some(grid)) => grid.sample(&ctx)?,
            (SamplerConfig::Tpe(config), None) => TpeSampler::new(*config).sample(&ctx)?,
            (SamplerConfig::Gp(config), None) => GpSampler::new(*config).sample(&ctx)?,
            (SamplerConfig::Nsga2(config), None) => Nsga2Sampler::new(*config).sample(&ctx)?,
            (SamplerConfig::Random, None) => RandomSampler.sample(&ctx)?,
            (SamplerConfig::Grid(_), None) => unreachable!("grid phases are resolved by phase_status"),
        };
        let created = self.store.create_trial(phase_index, &params, TrialState::Running)?;
        anyhow::ensure!(created == number, "the store numbered the new trial {created}, expected {number}");
        self.trials.push(FrozenTrial {
            number,
            phase: phase_index,
            state: TrialState::Running,
            params: params.clone(),
            value: None,
            intermediate: Default::default(),
            values: Vec::new(),
            constraints: None,
        });
        Ok(Ask::Trial(Trial { number, phase: phase_index, params }))
    }

    /// Finishes trial `number` with `outcome`.
    pub fn tell(&mut self, number: u64, outcome: Outcome) -> anyhow::Result<()> {
        let i = self.unfinished(number)?;
        let (state, value, reason) = match outcome {
            Outcome::Complete(_) if self.config.is_multi_objective() => {
                anyhow::bail!("trial {number} was told one value, but the study has several objectives")
            }
            Outcome::Complete(v) if v.is_nan() => {
                (TrialState::Failed, None, Some("the objective value is NaN".to_owned()))
            }
            Outcome::Complete(v) => (TrialState::Complete, Some(v), None),
            Outcome::Objectives(values) => {
                let expected = self.config.directions.len();
                if values.len() != expected {
                    anyhow::bail!(
                        "trial {number} was told {} objective values, but the study has {expected} objectives",
                        values.len()
                    );
                }
                if values.iter().any(|v| v.is_nan()) {
                    (TrialState::Failed, None, Some("an objective value is NaN".to_owned()))
                } else {
                    self.store.set_values(number, &values)?;
                    self.trials[i].values = values.clone();
                    (TrialState::Complete, Some(values[0]), None)
                }
            }
            Outcome::Pruned => {
                let last = self.trials[i].last_intermediate().map(|(_, v)| v).filter(|v| !v.is_nan());
                (TrialState::Pruned, last, None)
            }
            Outcome::Failed(reason) => (TrialState::Failed, None, reason),
        };
        if state == TrialState::Failed {
            self.store.fail(number, reason.as_deref())?;
        } else {
            self.store.set_state(number, state, value)?;
        }
        let trial = &mut self.trials[i];
        trial.state = state;
        trial.value = value;
        Ok(())
    }

    /// Records the constraint values of an unfinished trial (≤ 0 feasible),
    /// before it is told: samplers see them once it is finished.
    pub fn set_constraints(&mut self, number: u64, values: &[f64]) -> anyhow::Result<()> {
        let i = self.unfinished(number)?;
        self.store.set_constraints(number, values)?;
        self.trials[i].constraints = Some(values.to_vec());
        Ok(())
    }

    /// Records the intermediate value of a running trial at `step`. A step
    /// reported twice keeps its first value (as Optuna does).
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> anyhow::Result<()> {
        let i = self.unfinished(number)?;
        if self.trials[i].intermediate.contains_key(&step) {
            return Ok(());
        }
        self.store.report(number, step, value)?;
        self.trials[i].intermediate.insert(step, value);
        Ok(())
    }

    /// Whether the configured pruner stops trial `number` at its last report.
    pub fn should_prune(&self, number: u64) -> anyhow::Result<bool> {
        let i = self.unfinished(number)?;
        Ok(self.config.pruner.prune(&self.trials[i], &self.trials, self.config.direction))
    }

    /// [`Self::should_prune`], judged against only the trials `visible`
    /// keeps: e.g. those finished before the trial's batch began, so the
    /// decision does not depend on how fast its batch-mates run.
    pub fn should_prune_against(
        &self,
        number: u64,
        visible: impl Fn(&FrozenTrial) -> bool,
    ) -> anyhow::Result<bool> {
        let i = self.unfinished(number)?;
        let history: Vec<FrozenTrial> =
            self.trials.iter().filter(|t| t.number == number || visible(t)).cloned().collect();
        Ok(self.config.pruner.prune(&self.trials[i], &history, self.config.direction))
    }

    fn position(&self, number: u64) -> Option<usize> {
        self.trials.binary_search_by_key(&number, |t| t.number).ok()
    }

    fn unfinished(&self, number: u64) -> anyhow::Result<usize> {
        let i = self.position(number).ok_or_else(|| anyhow::anyhow!("the study has no trial {number}"))?;
        let state = self.trials[i].state;
        anyhow::ensure!(!state.is_finished(), "trial {number} is already {state:?}");
        Ok(i)
    }

    fn context(&self, phase: usize, trial_number: u64) -> SampleContext<'_> {
        SampleContext {
            space: &self.config.phases[phase].space,
            history: &self.trials,
            direction: self.config.direction,
            directions: &self.config.directions,
            seed: self.config.seed,
            trial_number,
            phase,
        }
    }

    fn phase_status(&self) -> anyhow::Result<PhaseStatus> {
        for (p, phase) in self.config.phases.iter().enumerate() {
            let created = self.trials.iter().filter(|t| t.phase == p).count() as u64;
            if phase.n_trials.is_some_and(|n| created >= n) {
                continue;
            }
            let SamplerConfig::Grid(spec) = &phase.sampler else {
                return Ok(PhaseStatus::Active(p, None));
            };
            let best = if spec.needs_best() {
                let earlier = self.trials.iter().filter(|t| t.phase < p);
                if earlier.clone().any(|t| !t.state.is_finished()) {
                    return Ok(PhaseStatus::Waiting(p));
                }
                let best = self.config.centre(earlier, spec).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} is a grid around the best trial, but no earlier trial is COMPLETE (and feasible)",
                        phase.location()
                    )
                })?;
                Some(&best.params)
            } else {
                None
            };
            let grid = spec.resolve(&phase.space, best)?;
            let number = self.trials.last().map_or(0, |t| t.number + 1);
            if grid.next(&self.context(p, number)).is_some() {
                return Ok(PhaseStatus::Active(p, Some(grid)));
            }
        }
        Ok(PhaseStatus::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::{GridAxis, GridSpec};
    use crate::{MemoryStore, ParamValue, SearchSpace};

    fn grid(values: &[i64]) -> SamplerConfig {
        let axis = GridAxis::Values(values.iter().map(|&v| ParamValue::Int(v)).collect());
        SamplerConfig::Grid(GridSpec {
            axes: [("x".to_owned(), axis)].into(),
            retry_failed: false,
            pick: None,
        })
    }

    #[test]
    fn the_plan_lists_grid_cells_in_asking_order_and_counts_sampled_trials() {
        let space = SearchSpace::new().int("x", 0, 9);
        let config = StudyConfig {
            seed: 1,
            direction: Direction::Minimize,
            directions: Vec::new(),
            phases: vec![
                Phase::new("grid", space.clone(), grid(&[1, 2, 3, 4]), None),
                Phase::new("random", space.clone(), SamplerConfig::Random, Some(3)),
            ],
            pruner: PrunerConfig::None,
        };
        let mut study = Study::new(MemoryStore::default(), config.clone()).unwrap();
        let Ask::Trial(first) = study.ask().unwrap() else { panic!("a trial") };
        let planned = config.planned(study.trials()).unwrap();
        assert_eq!(planned.len(), 3 + 3);
        // The cells come in the order `ask` hands them out.
        for cell in &planned[..3] {
            let Ask::Trial(next) = study.ask().unwrap() else { panic!("a trial") };
            assert_eq!(Some(&next.params), cell.as_ref());
            assert_ne!(next.params, first.params);
        }
        assert!(planned[3..].iter().all(Option::is_none));

        // A grid around a best not yet known has no size.
        let around = SamplerConfig::Grid(GridSpec {
            axes: [("x".to_owned(), GridAxis::Best)].into(),
            retry_failed: false,
            pick: None,
        });
        let config = StudyConfig {
            phases: vec![
                Phase::new("random", space.clone(), SamplerConfig::Random, Some(2)),
                Phase::new("around", space, around, None),
            ],
            ..config
        };
        assert_eq!(config.planned(&[]), None);
    }

    /// A study with several objectives takes their values, keeps a Pareto
    /// set, fails a trial with a NaN objective, and refuses what has no
    /// meaning for it: pruning, a grid around the best trial, one value.
    #[test]
    fn several_objectives_are_told_together_and_pruning_is_refused() {
        let space = SearchSpace::new().int("x", 0, 9);
        let config = StudyConfig {
            seed: 1,
            direction: Direction::Minimize,
            directions: vec![Direction::Minimize, Direction::Maximize],
            phases: vec![Phase::new("tpe", space.clone(), SamplerConfig::Tpe(Default::default()), Some(4))],
            pruner: PrunerConfig::None,
        };
        let mut study = Study::new(MemoryStore::default(), config.clone()).unwrap();
        let told = [vec![1.0, 1.0], vec![2.0, 3.0], vec![2.0, 0.5], vec![f64::NAN, 1.0]];
        for values in told {
            let Ask::Trial(trial) = study.ask().unwrap() else { panic!("a trial") };
            study.tell(trial.number, Outcome::Objectives(values)).unwrap();
        }
        let front: Vec<u64> = study.pareto_front().iter().map(|t| t.number).collect();
        assert_eq!(front, vec![0, 1]);
        assert_eq!(study.trial(1).unwrap().values, vec![2.0, 3.0]);
        assert_eq!(study.trial(3).unwrap().state, TrialState::Failed);

        let mut other = Study::new(MemoryStore::default(), config.clone()).unwrap();
        let Ask::Trial(trial) = other.ask().unwrap() else { panic!("a trial") };
        assert!(other.tell(trial.number, Outcome::Complete(1.0)).is_err());
        assert!(other.tell(trial.number, Outcome::Objectives(vec![1.0])).is_err());

        let pruned = StudyConfig { pruner: PrunerConfig::Median(Default::default()), ..config.clone() };
        assert!(pruned.validate().unwrap_err().to_string().contains("several objectives"));
        let around = SamplerConfig::Grid(GridSpec {
            axes: [("x".to_owned(), GridAxis::Best)].into(),
            retry_failed: false,
            pick: None,
        });
        let phases = vec![config.phases[0].clone(), Phase::new("around", space, around, None)];
        assert!(StudyConfig { phases, ..config }.validate().unwrap_err().to_string().contains("Pareto set"));
    }
}
