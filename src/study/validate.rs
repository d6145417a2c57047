//! Semantic checks of a parsed study file and its conversion into what the
//! rest of the crate runs: the ask/tell configuration ([`hpo::StudyConfig`]),
//! the objective, the device pool and the scheduling settings.
//!
//! Every error points at the offending key's line through the [`Locator`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::file::*;
use super::load::{closest, LoadedFile, Locator};
use crate::error::InputError;
use crate::exec::command::CommandTemplate;
use crate::exec::devices::{parse_device, DeviceRequest, PoolSpec};
use crate::exec::slurm::StepRequest;
use crate::hpo::samplers::{GridAxis, GridSpec, Spacing, TpeConfig};
use crate::hpo::{
    Distribution, MedianPruner, ParamValue, Phase, PrunerConfig, SamplerConfig, SearchSpace, StudyConfig,
    SuccessiveHalvingPruner,
};

/// Names a search space or sweep may use with the built-in objective: the
/// model and training hyperparameters.
pub const HYPERPARAMETERS: &[&str] = &[
    "kind",
    "em_dim",
    "layers",
    "lmax",
    "mul",
    "num_basis",
    "radial_neurons",
    "cutoff",
    "num_neighbors",
    "dtype",
    "output",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "lr_decay",
    "patience",
    "seed",
    "center_targets",
    "max_grad_norm",
];

/// Largest rotation order the model supports.
pub const MAX_LMAX: u32 = 4;

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
    /// Fixed hyperparameters; a trial's parameters override them.
    pub hyperparameters: Hyperparameters,
    pub pool: PoolSpec,
    /// With `executor: slurm`, what each trial's job step asks for.
    pub slurm: Option<StepRequest>,
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
}

impl StudyPlan {
    /// The dataset file, resolved against the study file's folder.
    pub fn dataset_path(&self) -> Option<PathBuf> {
        let path = self.file.dataset.as_ref()?.path.as_ref()?;
        Some(self.base_dir.join(path))
    }
}

/// The model and training hyperparameters of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub model: ModelSpec,
    pub training: TrainingSpec,
}

impl Hyperparameters {
    /// Sets hyperparameter `name` to `value`; errors say why it does not fit.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), String> {
        let m = &mut self.model;
        let t = &mut self.training;
        match name {
            "kind" => {
                m.kind =
                    choice(value, &[("equivariant", ModelKind::Equivariant), ("scalar", ModelKind::Scalar)])?
            }
            "dtype" => m.dtype = choice(value, &[("f32", Dtype::F32), ("f64", Dtype::F64)])?,
            "output" => {
                m.output = choice(value, &[("raw", OutputMode::Raw), ("physical", OutputMode::Physical)])?
            }
            "em_dim" => m.em_dim = positive_int(value)?,
            "layers" => m.layers = positive_int(value)?,
            "lmax" => {
                let lmax = whole(value)?;
                if lmax > MAX_LMAX as i64 {
                    return Err(format!("lmax {lmax} is out of range 0..={MAX_LMAX}"));
                }
                m.lmax = lmax as u32;
            }
            "mul" => m.mul = positive_int(value)?,
            "num_basis" => m.num_basis = positive_int(value)?,
            "radial_neurons" => m.radial_neurons = positive_int(value)?,
            "cutoff" => m.cutoff = positive_real(value)?,
            "num_neighbors" => m.num_neighbors = Some(positive_real(value)?),
            "epochs" => t.epochs = positive_int(value)?,
            "batch_size" => t.batch_size = positive_int(value)?,
            "patience" => t.patience = positive_int(value)?,
            "lr" => t.lr = positive_real(value)?,
            "weight_decay" => {
                let x = real(value)?;
                if x < 0.0 {
                    return Err(format!("weight_decay {x} must be ≥ 0"));
                }
                t.weight_decay = x;
            }
            "lr_decay" => {
                let x = real(value)?;
                if !(x > 0.0 && x <= 1.0) {
                    return Err(format!("lr_decay {x} must be in (0, 1]"));
                }
                t.lr_decay = x;
            }
            "seed" => t.seed = Some(whole(value)? as u64),
            "max_grad_norm" => t.max_grad_norm = Some(positive_real(value)?),
            "center_targets" => {
                t.center_targets = match value {
                    ParamValue::Bool(b) => *b,
                    _ => return Err(format!("`{value}` is not true or false")),
                }
            }
            other => {
                let hint = closest(other, HYPERPARAMETERS)
                    .map_or(String::new(), |best| format!(" (did you mean `{best}`?)"));
                return Err(format!("`{other}` is not a hyperparameter of the built-in objective{hint}"));
            }
        }
        Ok(())
    }

    /// These hyperparameters with a trial's parameters applied.
    pub fn with_params(&self, params: &crate::hpo::Params) -> Result<Self, String> {
        let mut out = self.clone();
        for (name, value) in params {
            out.set(name, value).map_err(|e| format!("parameter `{name}`: {e}"))?;
        }
        Ok(out)
    }

    /// Checks the fixed values; returns the offending key path and why.
    fn check(&self) -> Result<(), (String, String)> {
        let m = &self.model;
        let t = &self.training;
        let ints: [(&str, &str, u32); 8] = [
            ("model", "em_dim", m.em_dim),
            ("model", "layers", m.layers),
            ("model", "mul", m.mul),
            ("model", "num_basis", m.num_basis),
            ("model", "radial_neurons", m.radial_neurons),
            ("training", "epochs", t.epochs),
            ("training", "batch_size", t.batch_size),
            ("training", "patience", t.patience),
        ];
        let reals: [(&str, &str, f64); 6] = [
            ("model", "cutoff", m.cutoff),
            ("model", "num_neighbors", m.num_neighbors.unwrap_or(1.0)),
            ("training", "lr", t.lr),
            ("training", "weight_decay", t.weight_decay),
            ("training", "lr_decay", t.lr_decay),
            ("training", "max_grad_norm", t.max_grad_norm.unwrap_or(1.0)),
        ];
        let mut probe = Hyperparameters { model: ModelSpec::default(), training: TrainingSpec::default() };
        let numbered = ints
            .iter()
            .map(|&(section, name, v)| (section, name, ParamValue::Int(v as i64)))
            .chain([("model", "lmax", ParamValue::Int(m.lmax as i64))])
            .chain(reals.iter().map(|&(section, name, v)| (section, name, ParamValue::Float(v))));
        for (section, name, value) in numbered {
            probe.set(name, &value).map_err(|e| (format!("{section}.{name}"), e))?;
        }
        Ok(())
    }
}

fn choice<T: Copy>(value: &ParamValue, options: &[(&str, T)]) -> Result<T, String> {
    let text = value.as_str().unwrap_or_default();
    options.iter().find(|(name, _)| *name == text).map(|&(_, v)| v).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        format!("`{value}` is not one of {}", names.join(", "))
    })
}

fn whole(value: &ParamValue) -> Result<i64, String> {
    match value.as_i64() {
        Some(i) if i >= 0 => Ok(i),
        _ => Err(format!("`{value}` is not a whole number ≥ 0")),
    }
}

fn positive_int(value: &ParamValue) -> Result<u32, String> {
    match whole(value)? {
        0 => Err("must be at least 1".to_owned()),
        i => u32::try_from(i).map_err(|_| format!("{i} is too large")),
    }
}

fn real(value: &ParamValue) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!("`{value}` is not a finite number")),
    }
}

fn positive_real(value: &ParamValue) -> Result<f64, String> {
    let x = real(value)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} must be positive"))
    }
}

/// Placeholders every command may use besides the parameters.
pub const COMMAND_BUILTINS: &[&str] = &["trial", "trial_dir", "device", "threads", "seed"];

/// Checks a loaded file and converts it into a [`StudyPlan`].
pub fn validate(loaded: LoadedFile) -> Result<StudyPlan, InputError> {
    let LoadedFile { file, base_dir, locator } = loaded;
    let check = Checker { at: &locator };
    check.name(&file.name)?;

    let builtin = file.objective.command.is_none();
    if file.objective.command.is_some() && file.objective.metric.is_some() {
        return Err(check
            .err("objective.command", "an objective is either a `metric` or a `command`, not both")
            .with_hint("remove `metric` to tune the command, or `command` to train AnisoNet"));
    }
    let hyperparameters = Hyperparameters { model: file.model.clone(), training: file.training.clone() };
    hyperparameters.check().map_err(|(path, problem)| {
        check.err(&path, problem).with_hint("see the valid values in docs/study-file.md (model and training)")
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

    let phases = match (&file.phases[..], &file.sweep) {
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
        (phases, None) => check.phases(phases, builtin)?,
        ([], Some(sweep)) => vec![check.sweep(sweep, builtin)?],
    };
    let pruner = check.pruner(&file.pruner)?;
    let config = StudyConfig { seed: file.seed, direction: file.objective.direction, phases, pruner };
    config.validate().map_err(|err| check.err("phases", format!("{}: {}", err.location, err.problem)))?;

    let objective = match &file.objective.command {
        None => Objective::Anisonet { metric: file.objective.metric.unwrap_or_default() },
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

    let (pool, trial_timeout) = check.resources(&file.resources)?;
    let slurm = check.executor(&file.resources)?;
    Ok(StudyPlan {
        name: file.name.clone(),
        sweep_best_of: file.sweep.as_ref().and_then(|s| s.best_of.clone()),
        base_dir,
        config,
        objective,
        hyperparameters,
        pool,
        slurm,
        trial_timeout,
        retries: file.resources.retries,
        mode: file.mode,
        file,
        source: locator.label().to_owned(),
        accept_changes: false,
    })
}

/// Validation helpers that know where keys are.
struct Checker<'a> {
    at: &'a Locator,
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

    fn dataset(&self, d: &DatasetSpec) -> Result<(), InputError> {
        match (&d.synthetic, &d.path) {
            (Some(_), Some(_)) => {
                return Err(self
                    .err("dataset.synthetic", "give either `synthetic` or `path`, not both")
                    .with_hint("remove one of them"))
            }
            (None, None) => {
                return Err(self
                    .err("dataset", "no data: give `path` (an extxyz file) or `synthetic`")
                    .with_hint("e.g. `path: ../shared/data/mp_dielectric_2k.extxyz`"))
            }
            (Some(s), None) if s.size < 10 => {
                return Err(self
                    .err("dataset.synthetic.size", format!("{} structures are too few to split", s.size))
                    .with_hint("use at least 10"))
            }
            _ => {}
        }
        if d.dielectric_key.is_empty() {
            return Err(self.err("dataset.dielectric_key", "is empty"));
        }
        let c = &d.cleaning;
        if !c.min_diagonal.is_finite() || !c.max_eps_poly.is_finite() || c.max_eps_poly <= c.min_diagonal {
            return Err(self
                .err(
                    "dataset.cleaning",
                    format!(
                        "max_eps_poly {} must be a number above min_diagonal {}",
                        c.max_eps_poly, c.min_diagonal
                    ),
                )
                .with_hint("the paper uses min_diagonal 1 and max_eps_poly 15"));
        }
        if d.split.is_some() && d.split_file.is_some() {
            return Err(self
                .err("dataset.split_file", "give either `split` ratios or a `split_file`, not both")
                .with_hint("remove one of them"));
        }
        if let Some(s) = &d.split {
            let ratios = [s.train, s.valid, s.test];
            if ratios.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || s.train <= 0.0 || s.valid <= 0.0 {
                return Err(self
                    .err("dataset.split", "ratios must be ≥ 0, with train and valid above 0")
                    .with_hint("e.g. {train: 0.8, valid: 0.1, test: 0.1}"));
            }
            let sum: f64 = ratios.iter().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(self
                    .err("dataset.split", format!("ratios add up to {sum}, not 1"))
                    .with_hint("e.g. {train: 0.8, valid: 0.1, test: 0.1}"));
            }
        }
        Ok(())
    }

    fn phases(&self, specs: &[PhaseSpec], builtin: bool) -> Result<Vec<Phase>, InputError> {
        let mut phases: Vec<Phase> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("phases[{i}]");
            if spec.name.trim().is_empty() {
                return Err(self
                    .err(&format!("{at}.name"), "is empty")
                    .with_hint("name the phase, e.g. tpe"));
            }
            if let Some(j) = specs[..i].iter().position(|p| p.name == spec.name) {
                return Err(self
                    .err(
                        &format!("{at}.name"),
                        format!("phase name `{}` is also used by phase {j}", spec.name),
                    )
                    .with_hint("give every phase its own name"));
            }
            if spec.n_trials == Some(0) {
                return Err(self.err(&format!("{at}.n_trials"), "must be at least 1"));
            }
            let sampler = &spec.sampler;
            self.sampler_options(sampler, &format!("{at}.sampler"))?;
            let mut space = self.space(&spec.space, &format!("{at}.space"), builtin)?;
            let sampler_config = match sampler.kind {
                SamplerKind::Tpe | SamplerKind::Random => {
                    if space.is_empty() {
                        return Err(self
                            .err(&at, format!("the {} sampler needs a `space`", sampler.kind.name()))
                            .with_hint("add `space:` with at least one parameter"));
                    }
                    if spec.n_trials.is_none() {
                        return Err(self
                            .err(&at, "has no `n_trials`")
                            .with_hint("say how many trials the phase runs, e.g. `n_trials: 60`"));
                    }
                    if sampler.kind == SamplerKind::Random {
                        SamplerConfig::Random
                    } else {
                        SamplerConfig::Tpe(tpe_config(sampler))
                    }
                }
                SamplerKind::Grid => {
                    let path = format!("{at}.sampler.values");
                    let values = sampler.values.as_ref().filter(|v| !v.is_empty()).ok_or_else(|| {
                        self.err(&format!("{at}.sampler"), "a grid needs `values`")
                            .with_hint("e.g. `values: {lr: [0.001, 0.003], layers: [1, 2]}`")
                    })?;
                    let axes = self.value_axes(values, &path, builtin)?;
                    if space.is_empty() {
                        space = categorical_space(values);
                    }
                    SamplerConfig::Grid(GridSpec {
                        axes,
                        retry_failed: sampler.retry_failed.unwrap_or(false),
                    })
                }
                SamplerKind::GridAroundBest => {
                    let Some(previous) = phases.last() else {
                        return Err(self
                            .err(&format!("{at}.sampler.type"), "grid_around_best cannot be the first phase")
                            .with_hint("put a tpe or random phase before it to find the best trial"));
                    };
                    if space.is_empty() {
                        space = previous.space.clone();
                    }
                    let path = format!("{at}.sampler.axes");
                    let written = sampler.axes.as_ref().filter(|a| !a.is_empty()).ok_or_else(|| {
                        self.err(&format!("{at}.sampler"), "grid_around_best needs `axes`").with_hint(
                            "e.g. `axes: {lr: [0.002, 0.003], em_dim: {count: 3, spacing: linear, step: 16}}`",
                        )
                    })?;
                    let mut axes = BTreeMap::new();
                    for (name, value) in written {
                        axes.insert(
                            name.clone(),
                            self.axis(value, &format!("{path}.{name}"), builtin, name)?,
                        );
                    }
                    for name in space.params.keys() {
                        axes.entry(name.clone()).or_insert(GridAxis::Best);
                    }
                    SamplerConfig::Grid(GridSpec {
                        axes,
                        retry_failed: sampler.retry_failed.unwrap_or(false),
                    })
                }
            };
            let phase = Phase::new(&spec.name, space, sampler_config, spec.n_trials);
            phase.validate().map_err(|err| {
                let problem = format!("{}: {}", err.location, err.problem);
                self.err(&format!("{at}.sampler"), problem).with_hint(err.hint)
            })?;
            phases.push(phase);
        }
        Ok(phases)
    }

    /// Options that do not belong to the sampler's type are errors.
    fn sampler_options(&self, s: &SamplerSpec, at: &str) -> Result<(), InputError> {
        let set = [
            ("n_startup_trials", s.n_startup_trials.is_some(), SamplerKind::Tpe),
            ("n_ei_candidates", s.n_ei_candidates.is_some(), SamplerKind::Tpe),
            ("multivariate", s.multivariate.is_some(), SamplerKind::Tpe),
            ("constant_liar", s.constant_liar.is_some(), SamplerKind::Tpe),
            ("prior_weight", s.prior_weight.is_some(), SamplerKind::Tpe),
            ("consider_endpoints", s.consider_endpoints.is_some(), SamplerKind::Tpe),
            ("consider_magic_clip", s.consider_magic_clip.is_some(), SamplerKind::Tpe),
            ("values", s.values.is_some(), SamplerKind::Grid),
            ("axes", s.axes.is_some(), SamplerKind::GridAroundBest),
        ];
        for (key, present, owner) in set {
            if present && s.kind != owner {
                return Err(self
                    .err(
                        &format!("{at}.{key}"),
                        format!("`{key}` is an option of the {} sampler", owner.name()),
                    )
                    .with_hint(format!("remove it, or set `type: {}`", owner.name())));
            }
        }
        if s.retry_failed.is_some() && !matches!(s.kind, SamplerKind::Grid | SamplerKind::GridAroundBest) {
            return Err(self
                .err(&format!("{at}.retry_failed"), "`retry_failed` is an option of grid samplers")
                .with_hint("remove it"));
        }
        Ok(())
    }

    fn space(
        &self,
        specs: &BTreeMap<String, ParamSpec>,
        at: &str,
        builtin: bool,
    ) -> Result<SearchSpace, InputError> {
        let mut space = SearchSpace::new();
        for (name, spec) in specs {
            let path = format!("{at}.{name}");
            let dist = self.distribution(spec, &path)?;
            dist.validate(name).map_err(|err| self.err(&path, err.problem).with_hint(err.hint))?;
            if builtin {
                self.hyperparameter_domain(name, &dist, &path)?;
            }
            space = space.with(name, dist);
        }
        Ok(space)
    }

    fn distribution(&self, p: &ParamSpec, at: &str) -> Result<Distribution, InputError> {
        let needs = |key: &str, v: Option<f64>| {
            v.ok_or_else(|| {
                self.err(at, format!("a {:?} parameter needs `{key}`", p.kind).to_lowercase())
                    .with_hint("give `low` and `high`")
            })
        };
        let integral = |key: &str, v: f64| {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(self
                    .err(&format!("{at}.{key}"), format!("{key} {v} is not a whole number"))
                    .with_hint("use `type: float` for real values"))
            }
        };
        match p.kind {
            ParamKind::Float | ParamKind::Int => {
                if p.choices.is_some() {
                    return Err(self
                        .err(&format!("{at}.choices"), "`choices` belongs to categorical parameters")
                        .with_hint("remove `choices`, or set `type: categorical`"));
                }
                let (low, high) = (needs("low", p.low)?, needs("high", p.high)?);
                if p.kind == ParamKind::Float {
                    Ok(Distribution::Float { low, high, log: p.log, step: p.step })
                } else {
                    let step = match p.step {
                        Some(s) => integral("step", s)?,
                        None => 1,
                    };
                    Ok(Distribution::Int {
                        low: integral("low", low)?,
                        high: integral("high", high)?,
                        log: p.log,
                        step,
                    })
                }
            }
            ParamKind::Categorical => {
                for (key, present) in [
                    ("low", p.low.is_some()),
                    ("high", p.high.is_some()),
                    ("step", p.step.is_some()),
                    ("log", p.log),
                ] {
                    if present {
                        return Err(self
                            .err(
                                &format!("{at}.{key}"),
                                format!("`{key}` belongs to float and int parameters"),
                            )
                            .with_hint("a categorical parameter has only `choices`"));
                    }
                }
                let choices = p.choices.clone().ok_or_else(|| {
                    self.err(at, "a categorical parameter needs `choices`")
                        .with_hint("e.g. `choices: [1, 2, 3]`")
                })?;
                Ok(Distribution::Categorical { choices })
            }
        }
    }

    /// Every value a domain can produce must be a valid hyperparameter:
    /// checked at the bounds (numbers) or for each choice.
    fn hyperparameter_domain(&self, name: &str, dist: &Distribution, at: &str) -> Result<(), InputError> {
        let probes: Vec<ParamValue> = match dist {
            Distribution::Float { low, high, .. } => vec![ParamValue::Float(*low), ParamValue::Float(*high)],
            Distribution::Int { low, high, .. } => vec![ParamValue::Int(*low), ParamValue::Int(*high)],
            Distribution::Categorical { choices } => choices.clone(),
        };
        for value in &probes {
            self.hyperparameter_value(name, value, at)?;
        }
        Ok(())
    }

    fn hyperparameter_value(&self, name: &str, value: &ParamValue, at: &str) -> Result<(), InputError> {
        let mut probe = Hyperparameters { model: ModelSpec::default(), training: TrainingSpec::default() };
        probe.set(name, value).map_err(|problem| {
            let hint = if HYPERPARAMETERS.contains(&name) {
                "keep the domain inside the hyperparameter's valid range (docs/study-file.md)".to_owned()
            } else {
                format!("hyperparameters: {}", HYPERPARAMETERS.join(", "))
            };
            self.err(at, problem).with_hint(hint)
        })
    }

    fn value_axes(
        &self,
        values: &BTreeMap<String, Vec<ParamValue>>,
        at: &str,
        builtin: bool,
    ) -> Result<BTreeMap<String, GridAxis>, InputError> {
        let mut axes = BTreeMap::new();
        for (name, list) in values {
            let path = format!("{at}.{name}");
            self.value_list(name, list, &path, builtin)?;
            axes.insert(name.clone(), GridAxis::Values(list.clone()));
        }
        Ok(axes)
    }

    fn value_list(&self, name: &str, list: &[ParamValue], at: &str, builtin: bool) -> Result<(), InputError> {
        if list.is_empty() {
            return Err(self.err(at, "has no values").with_hint("list at least one value"));
        }
        for (i, v) in list.iter().enumerate() {
            if list[..i].iter().any(|w| w.same(v)) {
                return Err(self
                    .err(at, format!("value {v} is listed twice"))
                    .with_hint("remove the duplicate"));
            }
            if builtin {
                self.hyperparameter_value(name, v, at)?;
            }
        }
        Ok(())
    }

    /// One axis of a grid around the best trial.
    fn axis(
        &self,
        value: &serde_yaml::Value,
        at: &str,
        builtin: bool,
        name: &str,
    ) -> Result<GridAxis, InputError> {
        use serde_yaml::Value;
        let usage = "write a list of values, `best`, `{factors: [0.5, 1, 2]}`, \
                     `{count: 3, spacing: linear, step: 16}` or `{count: 3, spacing: log, ratio: 2}`";
        let bad = |problem: &str| self.err(at, problem).with_hint(usage);
        match value {
            Value::String(s) if s == "best" => Ok(GridAxis::Best),
            Value::Sequence(_) => {
                let list: Vec<ParamValue> = serde_yaml::from_value(value.clone())
                    .map_err(|_| bad("the values must be numbers, strings or booleans"))?;
                self.value_list(name, &list, at, builtin)?;
                Ok(GridAxis::Values(list))
            }
            Value::Mapping(map) => {
                let get = |key: &str| map.get(Value::String(key.to_owned()));
                for key in map.keys() {
                    let key = key.as_str().unwrap_or_default();
                    if !["factors", "count", "spacing", "step", "ratio"].contains(&key) {
                        let hint = closest(key, &["factors", "count", "spacing", "step", "ratio"])
                            .map_or(usage.to_owned(), |b| format!("did you mean `{b}`? {usage}"));
                        return Err(self
                            .err(&format!("{at}.{key}"), format!("unknown key `{key}`"))
                            .with_hint(hint));
                    }
                }
                if let Some(factors) = get("factors") {
                    let factors: Vec<f64> = serde_yaml::from_value(factors.clone())
                        .map_err(|_| bad("`factors` must be a list of numbers"))?;
                    return Ok(GridAxis::Factors(factors));
                }
                let count = get("count")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("needs `count`, a whole number"))?;
                let number = |key: &str| get(key).and_then(Value::as_f64);
                let spacing = match get("spacing").and_then(Value::as_str) {
                    Some("linear") => Spacing::Linear {
                        step: number("step").ok_or_else(|| bad("linear spacing needs `step`"))?,
                    },
                    Some("log") => Spacing::Log {
                        ratio: number("ratio").ok_or_else(|| bad("log spacing needs `ratio`"))?,
                    },
                    _ => return Err(bad("`spacing` must be `linear` or `log`")),
                };
                Ok(GridAxis::Around { count: count as usize, spacing })
            }
            _ => Err(bad("is not a grid axis")),
        }
    }

    fn sweep(&self, sweep: &SweepSpec, builtin: bool) -> Result<Phase, InputError> {
        if sweep.values.is_empty() {
            return Err(self
                .err("sweep.values", "is empty")
                .with_hint("e.g. `values: {lmax: [0, 1, 2, 3, 4]}`"));
        }
        let axes = self.value_axes(&sweep.values, "sweep.values", builtin)?;
        if let Some(best_of) = &sweep.best_of {
            self.name(best_of).map_err(|err| {
                self.err("sweep.best_of", format!("`{best_of}` is not a study name")).with_hint(err.hint)
            })?;
        }
        let phase = Phase::new(
            "sweep",
            categorical_space(&sweep.values),
            SamplerConfig::Grid(GridSpec { axes, retry_failed: false }),
            None,
        );
        phase.validate().map_err(|err| self.err("sweep", err.problem).with_hint(err.hint))?;
        Ok(phase)
    }

    fn pruner(&self, p: &PrunerSpec) -> Result<PrunerConfig, InputError> {
        let options = [
            ("n_startup_trials", p.n_startup_trials.is_some(), PrunerKind::Median),
            ("n_warmup_steps", p.n_warmup_steps.is_some(), PrunerKind::Median),
            ("interval_steps", p.interval_steps.is_some(), PrunerKind::Median),
            ("n_min_trials", p.n_min_trials.is_some(), PrunerKind::Median),
            ("min_resource", p.min_resource.is_some(), PrunerKind::Asha),
            ("reduction_factor", p.reduction_factor.is_some(), PrunerKind::Asha),
            ("min_early_stopping_rate", p.min_early_stopping_rate.is_some(), PrunerKind::Asha),
        ];
        for (key, present, owner) in options {
            if present && p.kind != owner {
                let owner = if owner == PrunerKind::Median { "median" } else { "asha" };
                return Err(self
                    .err(&format!("pruner.{key}"), format!("`{key}` is an option of the {owner} pruner"))
                    .with_hint(format!("remove it, or set `type: {owner}`")));
            }
        }
        let config = match p.kind {
            PrunerKind::None => PrunerConfig::None,
            PrunerKind::Median => {
                let d = MedianPruner::default();
                PrunerConfig::Median(MedianPruner {
                    n_startup_trials: p.n_startup_trials.unwrap_or(d.n_startup_trials),
                    n_warmup_steps: p.n_warmup_steps.unwrap_or(d.n_warmup_steps),
                    interval_steps: p.interval_steps.unwrap_or(d.interval_steps),
                    n_min_trials: p.n_min_trials.unwrap_or(d.n_min_trials),
                })
            }
            PrunerKind::Asha => {
                let d = SuccessiveHalvingPruner::default();
                PrunerConfig::SuccessiveHalving(SuccessiveHalvingPruner {
                    min_resource: p.min_resource.or(d.min_resource),
                    reduction_factor: p.reduction_factor.unwrap_or(d.reduction_factor),
                    min_early_stopping_rate: p.min_early_stopping_rate.unwrap_or(d.min_early_stopping_rate),
                })
            }
        };
        config.validate("pruner").map_err(|err| self.err("pruner", err.problem).with_hint(err.hint))?;
        Ok(config)
    }

    /// `resources.executor` and `resources.slurm`.
    fn executor(&self, r: &ResourcesSpec) -> Result<Option<StepRequest>, InputError> {
        match (r.executor, &r.slurm) {
            (ExecutorKind::Local, None) => Ok(None),
            (ExecutorKind::Local, Some(_)) => Err(self
                .err("resources.slurm", "job step settings, but the executor is `local`")
                .with_hint("add `executor: slurm` to resources, or remove `slurm:`")),
            (ExecutorKind::Slurm, spec) => {
                let spec = spec.clone().unwrap_or_default();
                if r.trials_per_device.is_some_and(|n| n > 1) && spec.gpus_per_trial != Some(0) {
                    return Err(self
                        .err("resources.trials_per_device", "GPUs cannot be shared with `executor: slurm`")
                        .with_hint(
                            "Slurm gives each job step GPUs of its own; remove trials_per_device, \
                             or set `slurm: {gpus_per_trial: 0}` for CPU trials",
                        ));
                }
                spec.validate(r.cpu_threads_per_trial)
                    .map(Some)
                    .map_err(|(key, problem, hint)| self.err(&key, problem).with_hint(hint))
            }
        }
    }

    fn resources(&self, r: &ResourcesSpec) -> Result<(PoolSpec, Option<Duration>), InputError> {
        let devices_hint = "write `auto`, `cpu` or a list such as [cuda:0, cuda:1]";
        let request = match &r.devices {
            DevicesSpec::Named(name) if name == "auto" => DeviceRequest::Auto,
            DevicesSpec::Named(name) if name == "cpu" => DeviceRequest::Cpu,
            DevicesSpec::Named(name) => {
                return Err(self
                    .err("resources.devices", format!("`{name}` is not a device setting"))
                    .with_hint(devices_hint))
            }
            DevicesSpec::List(list) => {
                if list.is_empty() {
                    return Err(self
                        .err("resources.devices", "the device list is empty")
                        .with_hint(devices_hint));
                }
                let mut devices = Vec::new();
                for (i, text) in list.iter().enumerate() {
                    let device = parse_device(text).map_err(|problem| {
                        self.err(&format!("resources.devices[{i}]"), problem).with_hint(devices_hint)
                    })?;
                    if devices.contains(&device) {
                        return Err(self
                            .err(&format!("resources.devices[{i}]"), format!("`{text}` is listed twice"))
                            .with_hint("use trials_per_device to run several trials on one device"));
                    }
                    devices.push(device);
                }
                DeviceRequest::List(devices)
            }
        };
        if r.cpu_threads_per_trial == 0 {
            return Err(self.err("resources.cpu_threads_per_trial", "must be at least 1"));
        }
        if r.trials_per_device == Some(0) {
            return Err(self.err("resources.trials_per_device", "must be at least 1"));
        }
        let timeout = match &r.trial_timeout {
            None => None,
            Some(spec) => Some(Duration::from_secs_f64(spec.seconds().map_err(|problem| {
                self.err("resources.trial_timeout", problem).with_hint("e.g. `3600`, `90s`, `30m` or `2h`")
            })?)),
        };
        let pool = PoolSpec {
            request,
            trials_per_device: r.trials_per_device,
            cpu_threads_per_trial: r.cpu_threads_per_trial,
        };
        Ok((pool, timeout))
    }
}

/// The TPE settings of a sampler spec. The constant liar is on by default in
/// both modes: running trials count as bad ones, so parallel trials spread.
/// In deterministic mode the running trials a proposal sees are exactly its
/// batch's earlier proposals, asked in order, so the liar keeps a study
/// reproducible.
fn tpe_config(s: &SamplerSpec) -> TpeConfig {
    let d = TpeConfig::default();
    TpeConfig {
        n_startup_trials: s.n_startup_trials.unwrap_or(d.n_startup_trials),
        n_ei_candidates: s.n_ei_candidates.unwrap_or(d.n_ei_candidates),
        multivariate: s.multivariate.unwrap_or(d.multivariate),
        constant_liar: s.constant_liar.unwrap_or(d.constant_liar),
        prior_weight: s.prior_weight.unwrap_or(d.prior_weight),
        consider_endpoints: s.consider_endpoints.unwrap_or(d.consider_endpoints),
        consider_magic_clip: s.consider_magic_clip.unwrap_or(d.consider_magic_clip),
    }
}

/// A categorical space whose choices are a grid's values.
fn categorical_space(values: &BTreeMap<String, Vec<ParamValue>>) -> SearchSpace {
    values
        .iter()
        .fold(SearchSpace::new(), |space, (name, list)| space.categorical(name, list.iter().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_parameters_override_the_fixed_hyperparameters() {
        let fixed = Hyperparameters { model: ModelSpec::default(), training: TrainingSpec::default() };
        let params: crate::hpo::Params = [
            ("lr".to_owned(), ParamValue::Float(0.01)),
            ("lmax".to_owned(), ParamValue::Int(2)),
            ("kind".to_owned(), ParamValue::Str("scalar".into())),
            ("seed".to_owned(), ParamValue::Int(4)),
        ]
        .into();
        let h = fixed.with_params(&params).unwrap();
        assert_eq!((h.training.lr, h.model.lmax, h.model.kind), (0.01, 2, ModelKind::Scalar));
        assert_eq!(h.training.seed, Some(4));
        assert_eq!(h.model.em_dim, 48, "untouched values stay");
        let bad = [("lmax".to_owned(), ParamValue::Int(5))].into();
        assert!(fixed.with_params(&bad).unwrap_err().contains("out of range"));
        let unknown = [("layer".to_owned(), ParamValue::Int(2))].into();
        assert!(fixed.with_params(&unknown).unwrap_err().contains("did you mean `layers`?"));
    }
}
