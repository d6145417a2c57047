//! Semantic checks of a parsed study file and its conversion into what the
//! rest of the crate runs: the ask/tell configuration ([`hpo::StudyConfig`]),
//! the objective, the device pool and the scheduling settings.
//!
//! Every error points at the offending key's line through the [`Locator`].
//! The checks are split by section of the study file; the hyperparameters
//! the built-in objective trains with are defined once, in [`hyperparameters`].

mod dataset;
pub mod hyperparameters;
mod phases;
mod pruner;
mod resources;
use resources::SlurmPlan;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::file::*;
use super::load::{closest, LoadedFile, Locator};
use crate::error::InputError;
use crate::exec::command::CommandTemplate;
use crate::exec::constraints::{Bound, Constraint, Constraints};
use crate::exec::devices::PoolSpec;
use crate::exec::objectives::{self, Objectives, Source};
use crate::exec::slurm::{JobsRequest, StepRequest};
use crate::hpo::{ParamValue, SearchSpace, StudyConfig};
pub use hyperparameters::{Hyperparameters, HYPERPARAMETERS};

/// What a trial computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// The built-in AnisoNet trainer, optimising this validation metric.
    Anisonet { metric: Metric },
    /// A user command; runs in `workdir`.
    Command { template: CommandTemplate, workdir: PathBuf },
}

/// A validated study, ready to run.
#[derive(Debug, Clone)]
pub struct StudyPlan {
    pub name: String,
    /// The file as parsed (after `--set` overrides).
    pub file: StudyFile,
    /// Folder relative paths of the file are resolved against.
    pub base_dir: PathBuf,
    /// Phases (a sweep becomes one grid phase named `sweep`), pruner, seed, direction.
    pub config: StudyConfig,
    pub objective: Objective,
    /// Where each objective's value comes from, with several objectives.
    pub objectives: Objectives,
    /// What a trial's constraint values are made of.
    pub constraints: Constraints,
    /// Fixed hyperparameters; a trial's parameters override them.
    pub hyperparameters: Hyperparameters,
    pub pool: PoolSpec,
    /// With `executor: slurm`, what each trial's job step asks for.
    pub slurm: Option<StepRequest>,
    /// With `executor: slurm-jobs`, what each trial's batch job asks for.
    pub slurm_jobs: Option<JobsRequest>,
    pub trial_timeout: Option<Duration>,
    pub retries: u32,
    pub mode: Mode,
    /// A finished study whose best trial fills the hyperparameters a sweep leaves open.
    pub sweep_best_of: Option<String>,
    /// The study file, as messages name it.
    pub source: String,
    /// Go on under a definition whose changes alter what the earlier trials
    /// mean, recording them (`study run --accept-changes`).
    pub accept_changes: bool,
    /// Lines for the run's log about choices made for the user (what a
    /// `sampler: auto` phase runs, and why).
    pub notes: Vec<String>,
}

impl StudyPlan {
    /// The dataset file, resolved against the study file's folder.
    pub fn dataset_path(&self) -> Option<PathBuf> {
        let path = self.file.dataset.as_ref()?.path.as_ref()?;
        Some(self.base_dir.join(path))
    }
}

/// Placeholders every command may use besides the parameters.
pub const COMMAND_BUILTINS: &[&str] = &["trial", "trial_dir", "device", "threads", "seed"];

/// Checks a loaded file and converts it into a [`StudyPlan`].
pub fn validate(loaded: LoadedFile) -> Result<StudyPlan, InputError> {
    let LoadedFile { file, base_dir, locator } = loaded;
    let builtin = file.objective.command.is_none();
    let hyperparameters = Hyperparameters { model: file.model.clone(), training: file.training.clone() };
    let check = Checker {
        at: &locator,
        fixed: builtin.then_some(&hyperparameters),
        searched: searched(&file),
        several_objectives: file.objective.is_multi(),
        objective_names: Vec::new(),
    };
    check.name(&file.name)?;

    if file.objective.command.is_some() && file.objective.metric.is_some() {
        return Err(check
            .err("objective.command", "an objective is either a `metric` or a `command`, not both")
            .with_hint("remove `metric` to tune the command, or `command` to train AnisoNet"));
    }
    hyperparameters.check().map_err(|p| {
        check
            .err(&hyperparameters::key_of(p.field), p.problem)
            .with_hint("see the valid values in docs/study-file.md (model and training)")
    })?;
    match (&file.dataset, builtin) {
        (None, true) => {
            return Err(check.err("", "the built-in objective needs a `dataset`").with_hint(
                "add `dataset: {path: ../shared/data/mp_dielectric_2k.extxyz}` or \
                 `dataset: {synthetic: {size: 64}}`",
            ))
        }
        (Some(_), false) => {
            return Err(check
                .err("dataset", "a `command` objective does not use `dataset`")
                .with_hint("remove `dataset`; the command reads its own data"))
        }
        (Some(dataset), true) => check.dataset(dataset)?,
        (None, false) => {}
    }

    let objectives = check.objectives(&file)?;
    let check = Checker { objective_names: objectives.names(), ..check };
    let (phases, notes) = match (&file.phases[..], &file.sweep) {
        ([], None) => {
            return Err(check
                .err("", "the study has neither `phases` nor a `sweep`")
                .with_hint("add `phases:` (a search) or `sweep:` (a product of fixed values)"))
        }
        ([_, ..], Some(_)) => {
            return Err(check
                .err("sweep", "a study has either `phases` or a `sweep`, not both")
                .with_hint("run the search as one study, then the sweep as another with `best_of`"))
        }
        (phases, None) => check.phases(phases)?,
        ([], Some(sweep)) => (vec![check.sweep(sweep)?], Vec::new()),
    };
    let pruner = check.pruner(&file.pruner, &file.name)?;
    if objectives.is_multi() && pruner != crate::hpo::PrunerConfig::None {
        return Err(check.err("pruner", "cannot prune a study with several objectives").with_hint(
            "remove `pruner`: a trial's intermediate values follow one objective, so no rule stops it \
             early on several (Optuna refuses this too)",
        ));
    }
    let directions = objectives.directions();
    let direction = directions.first().copied().unwrap_or(file.objective.direction);
    let config = StudyConfig { seed: file.seed, direction, directions, phases, pruner };
    config.validate().map_err(|err| {
        check.err("phases", format!("{}: {}", err.location, err.problem)).with_hint(err.hint)
    })?;

    let objective = match &file.objective.command {
        None => Objective::Anisonet { metric: first_metric(&file.objective) },
        Some(text) => {
            let template = CommandTemplate::parse(text).map_err(|problem| {
                check.err("objective.command", problem).with_hint("quote arguments with spaces, e.g. 'a b'")
            })?;
            let mut known: Vec<&str> = COMMAND_BUILTINS.to_vec();
            for phase in &config.phases {
                known.extend(phase.space.params.keys().map(String::as_str));
            }
            // With `sweep.best_of`, the other study's parameters are known
            // only at run time, where they are checked.
            let deferred = file.sweep.as_ref().is_some_and(|s| s.best_of.is_some());
            let unknown: Vec<&str> =
                template.placeholders().into_iter().filter(|p| !deferred && !known.contains(p)).collect();
            if let Some(first) = unknown.first() {
                let names = unknown.iter().map(|u| format!("{{{u}}}")).collect::<Vec<_>>().join(", ");
                let hint = match closest(first, &known) {
                    Some(best) => format!("did you mean {{{best}}}? known: {}", known.join(", ")),
                    None => format!("known placeholders: {}", known.join(", ")),
                };
                return Err(check
                    .err("objective.command", format!("unknown placeholder(s) {names} in the command"))
                    .with_hint(hint));
            }
            let workdir = base_dir.join(file.objective.workdir.clone().unwrap_or_default());
            Objective::Command { template, workdir }
        }
    };

    if file.resources.executor == ExecutorKind::External && file.mode == Mode::Deterministic {
        return Err(check
            .err("mode", "a deterministic study cannot have its trials run by an external driver")
            .with_hint(
                "reproducing a study needs its controller to start trials in batches and to know \
                 when each ends; remove `mode: deterministic`, or run the study with `study run`",
            ));
    }
    let constraints = check.constraints(&file, builtin)?;
    let (pool, trial_timeout) = check.resources(&file.resources)?;
    let (slurm, slurm_jobs) = match check.executor(&file.resources)? {
        SlurmPlan::None => (None, None),
        SlurmPlan::Steps(steps) => (Some(steps), None),
        SlurmPlan::Jobs(jobs) => (None, Some(jobs)),
    };
    Ok(StudyPlan {
        name: file.name.clone(),
        sweep_best_of: file.sweep.as_ref().and_then(|s| s.best_of.clone()),
        base_dir,
        config,
        objective,
        objectives,
        constraints,
        hyperparameters,
        pool,
        slurm,
        slurm_jobs,
        trial_timeout,
        retries: file.resources.retries,
        mode: file.mode,
        file,
        source: locator.label().to_owned(),
        accept_changes: false,
        notes,
    })
}

/// The metric the built-in trainer reports as its result and for pruning:
/// the objective's, or with several the first that is a validation metric
/// it optimises (`val_loss` when none is).
fn first_metric(spec: &ObjectiveSpec) -> Metric {
    let named = |name: &str| {
        [Metric::ValLoss, Metric::ValEpsPolyMae, Metric::ValAnisotropyMae]
            .into_iter()
            .find(|m| m.name() == name)
    };
    spec.metric.or_else(|| spec.list.iter().find_map(|o| named(&o.metric))).unwrap_or_default()
}

impl Checker<'_> {
    /// A study's several objectives: a list of metrics (the built-in
    /// trainer's), or a command's `directions` (with optional `names`);
    /// none for one objective.
    fn objectives(&self, file: &StudyFile) -> Result<Objectives, InputError> {
        let spec = &file.objective;
        let mut list = Vec::new();
        if !spec.list.is_empty() {
            if spec.list.len() < 2 {
                return Err(self.err("objective", "a list of objectives needs two or more").with_hint(
                    "write one objective as a map: `objective: {metric: val_loss, direction: minimize}`",
                ));
            }
            for (i, entry) in spec.list.iter().enumerate() {
                let at = format!("objective[{i}].metric");
                self.recorded_metric(&entry.metric, &at, "optimise")?;
                if file.mode == Mode::Deterministic
                    && crate::train::metrics::MEASURED_METRICS.contains(&entry.metric.as_str())
                {
                    return Err(self
                        .err(&at, format!("`{}` is measured, and differs from run to run, so a deterministic study cannot optimise it", entry.metric))
                        .with_hint("optimise `num_params` for a model's size, or use `mode: async`"));
                }
                if spec.list[..i].iter().any(|o| o.metric == entry.metric) {
                    return Err(self
                        .err(&at, format!("`{}` is listed twice", entry.metric))
                        .with_hint("remove one"));
                }
                list.push(objectives::Objective {
                    name: entry.metric.clone(),
                    direction: entry.direction,
                    source: Source::Metric(entry.metric.clone()),
                });
            }
            return Ok(Objectives { list });
        }
        if spec.directions.is_empty() {
            if !spec.names.is_empty() {
                return Err(self
                    .err(
                        "objective.names",
                        "names one objective's several values, but the objective has no `directions`",
                    )
                    .with_hint(
                        "give `directions: [minimize, minimize]` for a command with several objectives",
                    ));
            }
            return Ok(Objectives::default());
        }
        if spec.command.is_none() {
            return Err(self
                .err("objective.directions", "`directions` belongs to a `command` with several objectives")
                .with_hint(
                    "for the built-in trainer, list the metrics: `objective: [{metric: val_eps_poly_mae}, {metric: num_params}]`",
                ));
        }
        if spec.directions.len() < 2 {
            return Err(self
                .err("objective.directions", "several objectives need two directions or more")
                .with_hint("one objective takes `direction: minimize` instead"));
        }
        if !spec.names.is_empty() && spec.names.len() != spec.directions.len() {
            return Err(self
                .err(
                    "objective.names",
                    format!("gives {} names for {} directions", spec.names.len(), spec.directions.len()),
                )
                .with_hint("name every objective, in the order of `directions`, or leave `names` out"));
        }
        for (i, name) in spec.names.iter().enumerate() {
            if name.trim().is_empty() || spec.names[..i].contains(name) {
                return Err(self
                    .err("objective.names", format!("`{name}` is empty or used twice"))
                    .with_hint("give every objective its own name"));
            }
        }
        for (i, &direction) in spec.directions.iter().enumerate() {
            let name = spec.names.get(i).cloned().unwrap_or_else(|| format!("objective_{i}"));
            list.push(objectives::Objective { name, direction, source: Source::Reported(i) });
        }
        Ok(Objectives { list })
    }

    /// The study's constraints: each a bound on a metric (`metric` with
    /// `max` or `min`) or a value the command reports (`name`).
    fn constraints(&self, file: &StudyFile, builtin: bool) -> Result<Constraints, InputError> {
        let mut list = Vec::new();
        for (i, spec) in file.constraints.iter().enumerate() {
            let at = format!("constraints[{i}]");
            let example = "e.g. `{metric: num_params, max: 2.0e6}`, or `{name: memory}` for a value the \
                           command reports";
            let constraint = match (&spec.metric, &spec.name) {
                (Some(_), Some(_)) => {
                    return Err(self
                        .err(&at, "a constraint bounds a `metric` or names a reported value, not both")
                        .with_hint(example))
                }
                (None, None) => {
                    return Err(self.err(&at, "a constraint needs a `metric` or a `name`").with_hint(example))
                }
                (Some(metric), None) => {
                    let bound = match (spec.max, spec.min) {
                        (Some(max), None) => Bound::Max(max),
                        (None, Some(min)) => Bound::Min(min),
                        (Some(_), Some(_)) => {
                            return Err(self
                                .err(&at, "a constraint has one bound, `max` or `min`")
                                .with_hint(
                                    "write a range as two constraints, one with `max`, one with `min`",
                                ))
                        }
                        (None, None) => {
                            return Err(self
                                .err(&at, format!("the constraint on `{metric}` has no bound"))
                                .with_hint(format!(
                                    "add `max: …` or `min: …`, e.g. `{{metric: {metric}, max: 10}}`"
                                )))
                        }
                    };
                    if let Some(x) = spec.max.or(spec.min).filter(|x| !x.is_finite()) {
                        return Err(self.err(&at, format!("the bound {x} is not a finite number")));
                    }
                    if builtin {
                        self.recorded_metric(metric, &format!("{at}.metric"), "bound")?;
                    }
                    if file.mode == Mode::Deterministic
                        && crate::train::metrics::MEASURED_METRICS.contains(&metric.as_str())
                    {
                        return Err(self
                            .err(&format!("{at}.metric"), format!("`{metric}` is measured, and differs from run to run, so a deterministic study cannot bound it"))
                            .with_hint("bound `num_params` for a model's size, or use `mode: async`"));
                    }
                    Constraint::Metric { metric: metric.clone(), bound }
                }
                (None, Some(name)) => {
                    if builtin {
                        return Err(self
                            .err(&format!("{at}.name"), "the built-in objective reports no constraint values")
                            .with_hint(
                                "bound one of its metrics instead, e.g. `{metric: num_params, max: 2.0e6}`",
                            ));
                    }
                    if spec.max.is_some() || spec.min.is_some() {
                        return Err(self
                            .err(&at, format!("`{name}` is reported by the command, which says itself whether it holds (≤ 0)"))
                            .with_hint("remove `max`/`min`, or bound a metric: `{metric: …, max: …}`"));
                    }
                    let index = list.iter().filter(|c| matches!(c, Constraint::Reported { .. })).count();
                    Constraint::Reported { name: name.clone(), index }
                }
            };
            if let Some(j) = list.iter().position(|c: &Constraint| c == &constraint) {
                return Err(self
                    .err(&at, format!("is the same as constraints[{j}]"))
                    .with_hint("remove one of them"));
            }
            list.push(constraint);
        }
        Ok(Constraints { list, failures_infeasible: file.failures == Failures::Infeasible })
    }

    /// A metric the built-in trainer records, which a constraint may bound
    /// and an objective may optimise (`verb`).
    fn recorded_metric(&self, metric: &str, at: &str, verb: &str) -> Result<(), InputError> {
        use crate::train::metrics::CONSTRAINABLE_METRICS as KNOWN;
        if KNOWN.contains(&metric) {
            return Ok(());
        }
        let err = self.err(at, format!("the built-in trainer records no metric `{metric}` to {verb}"));
        Err(if metric.starts_with("test_") {
            err.with_hint(format!(
                "{verb} a validation metric (`val_…`): the search never looks at the test split"
            ))
        } else {
            match closest(metric, KNOWN) {
                Some(best) => err.with_hint(format!("did you mean `{best}`? known: {}", KNOWN.join(", "))),
                None => err.with_hint(format!("known: {}", KNOWN.join(", "))),
            }
        })
    }
}

/// Validation helpers that know where keys are.
struct Checker<'a> {
    at: &'a Locator,
    /// The fixed hyperparameters, with the built-in objective.
    fixed: Option<&'a Hyperparameters>,
    /// The names any phase or the sweep varies.
    searched: Vec<String>,
    /// Whether the study has several objectives.
    several_objectives: bool,
    /// Their names (none with one objective), which `pick` names.
    objective_names: Vec<String>,
}

impl Checker<'_> {
    fn err(&self, path: &str, problem: impl AsRef<str>) -> InputError {
        self.at.error(path, problem)
    }

    fn name(&self, name: &str) -> Result<(), InputError> {
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !name.starts_with('.');
        if ok {
            Ok(())
        } else {
            Err(self
                .err("name", format!("`{name}` cannot name a results folder"))
                .with_hint("use letters, digits, `_`, `-` and `.` (e.g. anisonet_hpo)"))
        }
    }
}

/// The names a study varies: in any phase's space, grid or axes, or its sweep.
fn searched(file: &StudyFile) -> Vec<String> {
    let mut names: Vec<String> = file.sweep.iter().flat_map(|s| s.values.keys().cloned()).collect();
    for phase in &file.phases {
        names.extend(phase.space.keys().cloned());
        match &phase.sampler {
            SamplerSpec::Grid { values, .. } => names.extend(values.keys().cloned()),
            SamplerSpec::GridAroundBest { axes, .. } => names.extend(axes.keys().cloned()),
            SamplerSpec::Tpe(_)
            | SamplerSpec::Gp(_)
            | SamplerSpec::Nsga2(_)
            | SamplerSpec::Auto {}
            | SamplerSpec::Random {} => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A categorical space whose choices are a grid's values.
fn categorical_space(values: &BTreeMap<String, Vec<ParamValue>>) -> SearchSpace {
    values
        .iter()
        .fold(SearchSpace::new(), |space, (name, list)| space.categorical(name, list.iter().cloned()))
}
