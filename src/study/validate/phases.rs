//! `phases` and `sweep`: the search spaces, samplers and grids, with every
//! value a domain can produce checked against the hyperparameter it sets.

use std::collections::BTreeMap;

use super::hyperparameters::{hyperparameter, hyperparameter_names};
use super::{categorical_space, Checker};
use crate::error::InputError;
use crate::hpo::samplers::{auto, GpConfig, GridAxis, GridSpec, Nsga2Config, Spacing, TpeConfig};
use crate::hpo::{Distribution, ParamValue, Phase, SamplerConfig, SearchSpace};
use crate::study::file::{
    GpOptions, Nsga2Options, ParamKind, ParamSpec, PhaseSpec, PickSpec, SamplerSpec, SweepSpec, TpeOptions,
};
use crate::study::load::closest;

impl Checker<'_> {
    /// The phases, and for each `auto` sampler a line saying what it chose and why.
    pub(super) fn phases(&self, specs: &[PhaseSpec]) -> Result<(Vec<Phase>, Vec<String>), InputError> {
        let mut phases: Vec<Phase> = Vec::new();
        let mut notes = Vec::new();
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
            let mut space = self.space(&spec.space, &format!("{at}.space"))?;
            let sampler_config = match &spec.sampler {
                SamplerSpec::Tpe(_)
                | SamplerSpec::Gp(_)
                | SamplerSpec::Nsga2(_)
                | SamplerSpec::Auto {}
                | SamplerSpec::Random {} => {
                    if space.is_empty() {
                        return Err(self
                            .err(&at, format!("the {} sampler needs a `space`", spec.sampler.name()))
                            .with_hint("add `space:` with at least one parameter"));
                    }
                    if spec.n_trials.is_none() {
                        return Err(self
                            .err(&at, "has no `n_trials`")
                            .with_hint("say how many trials the phase runs, e.g. `n_trials: 60`"));
                    }
                    match &spec.sampler {
                        SamplerSpec::Tpe(options) => SamplerConfig::Tpe(tpe_config(options)),
                        SamplerSpec::Gp(options) => SamplerConfig::Gp(gp_config(options)),
                        SamplerSpec::Nsga2(options) => SamplerConfig::Nsga2(nsga2_config(options)),
                        SamplerSpec::Auto {} => {
                            let (config, why) =
                                auto::choose(&space, spec.n_trials.unwrap_or(0), self.several_objectives);
                            notes.push(format!("phase `{}`: sampler auto chose {why}", spec.name));
                            config
                        }
                        _ => SamplerConfig::Random,
                    }
                }
                SamplerSpec::Grid { values, retry_failed } => {
                    let path = format!("{at}.sampler.values");
                    if values.is_empty() {
                        return Err(self
                            .err(&path, "a grid needs `values`")
                            .with_hint("e.g. `values: {lr: [0.001, 0.003], layers: [1, 2]}`"));
                    }
                    let axes = self.value_axes(values, &path)?;
                    if space.is_empty() {
                        space = categorical_space(values);
                    }
                    SamplerConfig::Grid(GridSpec {
                        axes,
                        retry_failed: retry_failed.unwrap_or(false),
                        pick: None,
                    })
                }
                SamplerSpec::GridAroundBest { axes: written, retry_failed, pick } => {
                    let Some(previous) = phases.last() else {
                        return Err(self
                            .err(&format!("{at}.sampler.type"), "grid_around_best cannot be the first phase")
                            .with_hint("put a tpe or random phase before it to find the best trial"));
                    };
                    if space.is_empty() {
                        space = previous.space.clone();
                    }
                    let path = format!("{at}.sampler.axes");
                    if written.is_empty() {
                        return Err(self.err(&path, "grid_around_best needs `axes`").with_hint(
                            "e.g. `axes: {lr: [0.002, 0.003], em_dim: {count: 3, spacing: linear, step: 16}}`",
                        ));
                    }
                    let mut axes = BTreeMap::new();
                    for (name, value) in written {
                        axes.insert(name.clone(), self.axis(value, &format!("{path}.{name}"), name)?);
                    }
                    for name in space.params.keys() {
                        axes.entry(name.clone()).or_insert(GridAxis::Best);
                    }
                    let pick = match pick {
                        Some(pick) => Some(self.pick(pick, &format!("{at}.sampler.pick"))?),
                        None => None,
                    };
                    SamplerConfig::Grid(GridSpec { axes, retry_failed: retry_failed.unwrap_or(false), pick })
                }
            };
            let phase = Phase::new(&spec.name, space, sampler_config, spec.n_trials);
            phase.validate().map_err(|err| {
                let problem = format!("{}: {}", err.location, err.problem);
                self.err(&format!("{at}.sampler"), problem).with_hint(err.hint)
            })?;
            phases.push(phase);
        }
        Ok((phases, notes))
    }

    fn space(&self, specs: &BTreeMap<String, ParamSpec>, at: &str) -> Result<SearchSpace, InputError> {
        let mut space = SearchSpace::new();
        for (name, spec) in specs {
            let path = format!("{at}.{name}");
            let dist = self.distribution(spec, &path)?;
            dist.validate(name).map_err(|err| self.err(&path, err.problem).with_hint(err.hint))?;
            if self.fixed.is_some() {
                self.hyperparameter_domain(name, &dist, &path)?;
            }
            space = space.with(name, dist);
        }
        // Conditions, once every parameter they may name is known.
        for (name, spec) in specs {
            for (parent, values) in spec.when.iter().flatten() {
                space = space.when(name, parent, values.values());
            }
            if spec.when.as_ref().is_some_and(BTreeMap::is_empty) {
                return Err(self
                    .err(&format!("{at}.{name}.when"), "names no parameter")
                    .with_hint("write `when: {optimizer: sgd}`, or remove `when`"));
            }
            space
                .validate_condition(name)
                .map_err(|err| self.err(&format!("{at}.{name}.when"), err.problem).with_hint(err.hint))?;
        }
        space.validate_no_cycle().map_err(|err| {
            let name = err.location.split('`').nth(1).unwrap_or_default().to_owned();
            self.err(&format!("{at}.{name}.when"), err.problem).with_hint(err.hint)
        })?;
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
        self.hyperparameter_values(name, &probes, at)
    }

    /// Values of one hyperparameter: each on its own first, then with the
    /// fixed values.
    fn hyperparameter_values(&self, name: &str, values: &[ParamValue], at: &str) -> Result<(), InputError> {
        for alone in [true, false] {
            for value in values {
                self.hyperparameter_value(name, value, at, alone)?;
            }
        }
        Ok(())
    }

    /// A value a phase or the sweep gives hyperparameter `name`: it must fit
    /// the hyperparameter, and the model and trainer must take it together
    /// with the fixed values. A problem of its combination with another
    /// varied value is left to the trials that draw both.
    fn hyperparameter_value(
        &self,
        name: &str,
        value: &ParamValue,
        at: &str,
        alone: bool,
    ) -> Result<(), InputError> {
        let Some(fixed) = self.fixed else { return Ok(()) };
        let mut probe = fixed.clone();
        probe.set(name, value).map_err(|problem| {
            let hint = match hyperparameter(name) {
                Some(h) => format!("`{name}` takes {} (docs/study-file.md)", h.domain),
                None => format!("hyperparameters: {}", hyperparameter_names().join(", ")),
            };
            self.err(at, problem).with_hint(hint)
        })?;
        let Err(p) = probe.check() else { return Ok(()) };
        if !p.involves(name) {
            return Ok(());
        }
        // The other setting of a combination, which must be fixed to blame this value.
        let other = if p.field == name { p.with } else { Some(p.field) };
        let problem = match other {
            None => p.problem,
            Some(other) if !alone && !self.varies(other) => {
                format!("{name} = {value} with the fixed {other}: {}", p.problem)
            }
            Some(_) => return Ok(()),
        };
        let domain = hyperparameter(name).map_or("", |h| h.domain);
        Err(self.err(at, problem).with_hint(format!(
            "keep the domain inside the hyperparameter's valid range: {domain} (docs/study-file.md)"
        )))
    }

    /// Whether a phase or the sweep varies `name`.
    fn varies(&self, name: &str) -> bool {
        self.searched.iter().any(|s| s == name)
    }

    fn value_axes(
        &self,
        values: &BTreeMap<String, Vec<ParamValue>>,
        at: &str,
    ) -> Result<BTreeMap<String, GridAxis>, InputError> {
        let mut axes = BTreeMap::new();
        for (name, list) in values {
            let path = format!("{at}.{name}");
            self.value_list(name, list, &path)?;
            axes.insert(name.clone(), GridAxis::Values(list.clone()));
        }
        Ok(axes)
    }

    fn value_list(&self, name: &str, list: &[ParamValue], at: &str) -> Result<(), InputError> {
        if list.is_empty() {
            return Err(self.err(at, "has no values").with_hint("list at least one value"));
        }
        for (i, v) in list.iter().enumerate() {
            if list[..i].iter().any(|w| w.same(v)) {
                return Err(self
                    .err(at, format!("value {v} is listed twice"))
                    .with_hint("remove the duplicate"));
            }
        }
        self.hyperparameter_values(name, list, at)
    }

    /// One axis of a grid around the best trial.
    fn axis(&self, value: &serde_yaml::Value, at: &str, name: &str) -> Result<GridAxis, InputError> {
        use serde_yaml::Value;
        let usage = "write a list of values, `best`, `{factors: [0.5, 1, 2]}`, \
                     `{count: 3, spacing: linear, step: 16}` or `{count: 3, spacing: log, ratio: 2}`";
        let bad = |problem: &str| self.err(at, problem).with_hint(usage);
        match value {
            Value::String(s) if s == "best" => Ok(GridAxis::Best),
            Value::Sequence(_) => {
                let list: Vec<ParamValue> = serde_yaml::from_value(value.clone())
                    .map_err(|_| bad("the values must be numbers, strings or booleans"))?;
                self.value_list(name, &list, at)?;
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

    pub(super) fn sweep(&self, sweep: &SweepSpec) -> Result<Phase, InputError> {
        if sweep.values.is_empty() {
            return Err(self
                .err("sweep.values", "is empty")
                .with_hint("e.g. `values: {lmax: [0, 1, 2, 3, 4]}`"));
        }
        let axes = self.value_axes(&sweep.values, "sweep.values")?;
        if sweep.pick.is_some() && sweep.best_of.is_none() {
            return Err(self
                .err("sweep.pick", "`pick` chooses the trial of `best_of`, which the sweep does not have")
                .with_hint(
                    "add `best_of: STUDY` (a finished study with several objectives), or remove `pick`",
                ));
        }
        if let Some(best_of) = &sweep.best_of {
            self.name(best_of).map_err(|err| {
                self.err("sweep.best_of", format!("`{best_of}` is not a study name")).with_hint(err.hint)
            })?;
        }
        let phase = Phase::new(
            "sweep",
            categorical_space(&sweep.values),
            SamplerConfig::Grid(GridSpec { axes, retry_failed: false, pick: None }),
            None,
        );
        phase.validate().map_err(|err| self.err("sweep", err.problem).with_hint(err.hint))?;
        Ok(phase)
    }
}

/// The TPE settings of a sampler spec. The constant liar is on by default in
/// both modes: running trials count as bad ones, so parallel trials spread.
/// In deterministic mode the running trials a proposal sees are exactly its
/// batch's earlier proposals, asked in order, so the liar keeps a study
/// reproducible.
fn gp_config(s: &GpOptions) -> GpConfig {
    let d = GpConfig::default();
    GpConfig {
        n_startup_trials: s.n_startup_trials.unwrap_or(d.n_startup_trials),
        deterministic_objective: s.deterministic_objective.unwrap_or(d.deterministic_objective),
        n_preliminary_samples: s.n_preliminary_samples.unwrap_or(d.n_preliminary_samples),
        n_local_search: s.n_local_search.unwrap_or(d.n_local_search),
        n_qmc_samples: s.n_qmc_samples.unwrap_or(d.n_qmc_samples),
    }
}

fn tpe_config(s: &TpeOptions) -> TpeConfig {
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

impl Checker<'_> {
    /// The Pareto trial a `pick` names, by the study's objectives.
    fn pick(&self, pick: &PickSpec, at: &str) -> Result<crate::hpo::pareto::Pick, InputError> {
        use crate::hpo::pareto::Pick;
        if self.objective_names.is_empty() {
            return Err(self
                .err(at, "`pick` chooses a trial of a Pareto set, but this study has one objective")
                .with_hint("remove `pick`: the grid centres on the best trial"));
        }
        match pick {
            PickSpec::Knee => Ok(Pick::Knee),
            PickSpec::Objective(name) => match self.objective_names.iter().position(|n| n == name) {
                Some(i) => Ok(Pick::Objective(i)),
                None => Err(self
                    .err(at, format!("the study has no objective `{name}`"))
                    .with_hint(format!("its objectives: {}", self.objective_names.join(", ")))),
            },
        }
    }
}

fn nsga2_config(options: &Nsga2Options) -> Nsga2Config {
    let d = Nsga2Config::default();
    Nsga2Config {
        population_size: options.population_size.unwrap_or(d.population_size),
        crossover_prob: options.crossover_prob.unwrap_or(d.crossover_prob),
        swapping_prob: options.swapping_prob.unwrap_or(d.swapping_prob),
        mutation_prob: options.mutation_prob.or(d.mutation_prob),
    }
}
