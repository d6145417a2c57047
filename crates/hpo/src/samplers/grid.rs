//! Grid search: every combination of the given values exactly once, in an
//! order shuffled by the study seed (as Optuna's `GridSampler` does).
//!
//! The sampler keeps no state: a combination is *taken* when any trial of
//! the grid's phase already has those parameters, whatever its state —
//! RUNNING ones included, so parallel asks never repeat a point, and resumes
//! continue where the study stopped. With `retry_failed`, a combination whose
//! trials all FAILED is free again (so an out-of-memory crash can be
//! retried); without it, a failure uses the combination up. The next
//! combination is the first free one in the shuffled order; the grid is
//! exhausted when none is free.
//!
//! A [`GridSpec`] can also describe a grid *around the best trial* of the
//! earlier phases: per parameter explicit values, the best value itself,
//! multiples of it, or `count` values spaced linearly or logarithmically
//! around it — clipped to the domain, snapped to its step and deduplicated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{SampleContext, Sampler};
use crate::rng::{self, Stream};
use crate::{Distribution, ParamValue, Params, SearchSpace, TrialState};
use anisostudy_error::InputError;

/// Largest grid accepted (combinations), so a typo cannot exhaust memory.
pub const MAX_GRID_SIZE: u64 = 10_000_000;

/// How the values of one parameter of a grid are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridAxis {
    /// Exactly these values.
    Values(Vec<ParamValue>),
    /// Only the best trial's value.
    Best,
    /// The best value times each factor (e.g. [0.5, 1, 2]).
    Factors(Vec<f64>),
    /// `count` values around the best one: offsets −⌊(count−1)/2⌋, …, so the
    /// best is included and an even count leans upwards.
    Around { count: usize, spacing: Spacing },
}

/// Spacing of [`GridAxis::Around`] values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    /// best × ratio^j (for log-scale parameters such as a learning rate).
    Log { ratio: f64 },
    /// best + j·step; for a categorical, j·step positions along the choices.
    Linear { step: f64 },
}

/// A grid as the user describes it: one axis per parameter of the phase's space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    pub axes: BTreeMap<String, GridAxis>,
    /// Whether a combination whose trials all FAILED may be tried again.
    #[serde(default)]
    pub retry_failed: bool,
    /// Which Pareto trial the grid centres on, after phases with several
    /// objectives (which have no single best trial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<crate::pareto::Pick>,
}

impl GridSpec {
    /// Whether the grid depends on the best trial of the earlier phases.
    pub fn needs_best(&self) -> bool {
        self.axes.values().any(|axis| !matches!(axis, GridAxis::Values(_)))
    }

    /// Checks the axes against the phase's space.
    pub fn validate(&self, space: &SearchSpace, location: &str) -> Result<(), InputError> {
        let at = |name: &str| format!("{location}, grid parameter `{name}`");
        for name in self.axes.keys() {
            if !space.params.contains_key(name) {
                return Err(InputError::new(at(name), "is not in the phase's search space")
                    .with_hint("add it to the space or remove it from the grid"));
            }
        }
        for (name, dist) in &space.params {
            let Some(axis) = self.axes.get(name) else {
                return Err(InputError::new(at(name), "has no grid values")
                    .with_hint("list its values, or use `best` to keep the best trial's value"));
            };
            let numeric = !matches!(dist, Distribution::Categorical { .. });
            match axis {
                GridAxis::Values(values) => {
                    if values.is_empty() {
                        return Err(InputError::new(at(name), "has an empty list of values"));
                    }
                    for (i, v) in values.iter().enumerate() {
                        if !dist.contains(v) {
                            return Err(InputError::new(
                                at(name),
                                format!("value {v} is outside its domain"),
                            )
                            .with_hint("use values inside the parameter's range, on its step"));
                        }
                        if values[..i].iter().any(|w| w.same(v)) {
                            return Err(InputError::new(at(name), format!("value {v} is listed twice")));
                        }
                    }
                }
                GridAxis::Best => {}
                GridAxis::Factors(factors) => {
                    if !numeric {
                        return Err(InputError::new(at(name), "factors need a numeric parameter"));
                    }
                    if factors.is_empty() || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
                        return Err(InputError::new(
                            at(name),
                            "factors must be a non-empty list of positive numbers",
                        ));
                    }
                }
                GridAxis::Around { count, spacing } => {
                    if *count == 0 {
                        return Err(InputError::new(at(name), "count must be at least 1"));
                    }
                    match *spacing {
                        Spacing::Log { ratio } => {
                            if !numeric {
                                return Err(InputError::new(
                                    at(name),
                                    "log spacing needs a numeric parameter",
                                )
                                .with_hint("use linear spacing to step along the choices"));
                            }
                            if !(ratio.is_finite() && ratio > 0.0 && ratio != 1.0) {
                                return Err(InputError::new(
                                    at(name),
                                    format!("ratio {ratio} must be a positive number other than 1"),
                                ));
                            }
                        }
                        Spacing::Linear { step } => {
                            if !(step.is_finite() && step > 0.0) {
                                return Err(InputError::new(
                                    at(name),
                                    format!("step {step} must be positive"),
                                ));
                            }
                            if !numeric && step.fract() != 0.0 {
                                return Err(InputError::new(
                                    at(name),
                                    format!("step {step} must be a whole number of choices"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The concrete grid; `best` holds the best trial's parameters when
    /// [`GridSpec::needs_best`]. Call [`GridSpec::validate`] first.
    pub fn resolve(&self, space: &SearchSpace, best: Option<&Params>) -> anyhow::Result<GridSampler> {
        let mut values = BTreeMap::new();
        for (name, dist) in &space.params {
            let axis =
                self.axes.get(name).ok_or_else(|| anyhow::anyhow!("grid parameter `{name}` has no axis"))?;
            let axis_values = match axis {
                GridAxis::Values(v) => v.iter().map(|x| dist.snap(x).unwrap_or_else(|| x.clone())).collect(),
                _ => {
                    let best_value = best.and_then(|b| b.get(name)).filter(|v| dist.admits(v));
                    let best_value = match best_value {
                        Some(value) => value.clone(),
                        // A conditional parameter the best trial does not
                        // have: the grid centres it on its domain's middle.
                        None if space.conditions.contains_key(name) => {
                            let (lo, hi) = dist.internal_bounds();
                            dist.from_internal(0.5 * (lo + hi))
                        }
                        None => anyhow::bail!(
                            "the best trial of the earlier phases has no value for `{name}` in its domain"
                        ),
                    };
                    around(dist, &best_value, axis)
                }
            };
            values.insert(name.clone(), axis_values);
        }
        GridSampler::new(values, self.retry_failed)?.conditional(space)
    }
}

/// Values of a best-relative axis, clipped, snapped, deduplicated and sorted.
fn around(dist: &Distribution, best: &ParamValue, axis: &GridAxis) -> Vec<ParamValue> {
    let offsets = |count: usize| {
        let shift = (count as i64 - 1) / 2;
        (0..count as i64).map(move |i| (i - shift) as f64)
    };
    let raw: Vec<ParamValue> = match (dist, axis) {
        (
            Distribution::Categorical { choices },
            GridAxis::Around { count, spacing: Spacing::Linear { step } },
        ) => {
            let at = dist.to_internal(best).unwrap_or(0.0);
            let last = (choices.len() - 1) as f64;
            offsets(*count).map(|j| dist.from_internal((at + j * step).clamp(0.0, last))).collect()
        }
        (_, GridAxis::Factors(factors)) => {
            let x = best.as_f64().unwrap_or(0.0);
            factors.iter().map(|f| ParamValue::Float(x * f)).collect()
        }
        (_, GridAxis::Around { count, spacing }) => {
            let x = best.as_f64().unwrap_or(0.0);
            offsets(*count)
                .map(|j| match *spacing {
                    Spacing::Log { ratio } => ParamValue::Float(x * ratio.powf(j)),
                    Spacing::Linear { step } => ParamValue::Float(x + j * step),
                })
                .collect()
        }
        _ => vec![best.clone()],
    };
    let mut snapped: Vec<(f64, ParamValue)> = Vec::new();
    for value in raw.iter().filter_map(|v| dist.snap(v)) {
        if !snapped.iter().any(|(_, w)| w.same(&value)) {
            snapped.push((dist.to_internal(&value).unwrap_or(0.0), value));
        }
    }
    snapped.sort_by(|a, b| a.0.total_cmp(&b.0));
    snapped.into_iter().map(|(_, v)| v).collect()
}

/// A concrete grid: the values of each parameter, in name order.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSampler {
    names: Vec<String>,
    values: Vec<Vec<ParamValue>>,
    len: u64,
    retry_failed: bool,
    /// With conditional parameters: the space, and the product's indices
    /// that are combinations (an inactive parameter at its first value;
    /// the others would repeat a combination without it).
    conditional: Option<(SearchSpace, Vec<u64>)>,
}

impl GridSampler {
    /// A grid over `values` (each list non-empty).
    pub fn new(values: BTreeMap<String, Vec<ParamValue>>, retry_failed: bool) -> anyhow::Result<Self> {
        let mut len: u64 = 1;
        for (name, v) in &values {
            anyhow::ensure!(!v.is_empty(), "grid parameter `{name}` has no values");
            len = len.saturating_mul(v.len() as u64);
        }
        if len > MAX_GRID_SIZE {
            return Err(InputError::new(
                "grid",
                format!("has {len} combinations, more than {MAX_GRID_SIZE}"),
            )
            .with_hint("use fewer values per parameter")
            .into());
        }
        let (names, values) = values.into_iter().unzip();
        Ok(Self { names, values, len, retry_failed, conditional: None })
    }

    /// The grid over a space with conditional parameters: a combination
    /// leaves out the parameters its values make inactive, and each
    /// combination comes once (`optimizer: adamw` once, not once per
    /// momentum value). Without conditions, the grid unchanged.
    pub fn conditional(mut self, space: &SearchSpace) -> anyhow::Result<Self> {
        if !space.is_conditional() {
            return Ok(self);
        }
        let space = space.clone();
        let mut canonical = Vec::new();
        for raw in 0..self.len {
            let full = self.product_entry(raw);
            let kept = prune(&space, &full);
            let is_first = self
                .names
                .iter()
                .zip(&self.values)
                .all(|(name, values)| kept.contains_key(name) || values[0].same(&full[name]));
            if is_first {
                canonical.push(raw);
            }
        }
        self.len = canonical.len() as u64;
        self.conditional = Some((space, canonical));
        Ok(self)
    }

    /// Entry `index` of the full product (mixed radix, the last name varying fastest).
    fn product_entry(&self, mut index: u64) -> Params {
        let mut params = Params::new();
        for (name, values) in self.names.iter().zip(&self.values).rev() {
            let n = values.len() as u64;
            params.insert(name.clone(), values[(index % n) as usize].clone());
            index /= n;
        }
        params
    }

    /// Number of combinations.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values of each parameter.
    pub fn axes(&self) -> impl Iterator<Item = (&str, &[ParamValue])> {
        self.names.iter().map(String::as_str).zip(self.values.iter().map(Vec::as_slice))
    }

    /// Combination `index`: the product's entry (mixed radix, the last
    /// name varying fastest) without its inactive parameters.
    pub fn combination(&self, index: u64) -> Params {
        match &self.conditional {
            None => self.product_entry(index),
            Some((space, canonical)) => prune(space, &self.product_entry(canonical[index as usize])),
        }
    }

    /// The index of the combination equal to `params`, if it is one.
    pub fn index_of(&self, params: &Params) -> Option<u64> {
        if self.conditional.is_none() && params.len() != self.names.len() {
            return None;
        }
        let mut index = 0u64;
        for (name, values) in self.names.iter().zip(&self.values) {
            // An absent (inactive) parameter stands at its first value.
            let position = match params.get(name) {
                Some(value) => values.iter().position(|v| v.same(value))?,
                None if self.conditional.is_some() => 0,
                None => return None,
            };
            index = index * values.len() as u64 + position as u64;
        }
        match &self.conditional {
            None => Some(index),
            Some((_, canonical)) => {
                let i = canonical.binary_search(&index).ok()? as u64;
                (self.combination(i) == *params).then_some(i)
            }
        }
    }

    /// The seeded visiting order of the combinations of phase `phase`.
    pub fn order(&self, seed: u64, phase: usize) -> Vec<u64> {
        let mut order: Vec<u64> = (0..self.len).collect();
        let mut rng = rng::seeded(seed, phase as u64, Stream::GridOrder);
        for i in (1..order.len()).rev() {
            order.swap(i, rng::index(&mut rng, i + 1));
        }
        order
    }

    /// Which combinations the phase's trials have taken.
    fn taken(&self, ctx: &SampleContext<'_>) -> Vec<bool> {
        let mut taken = vec![false; self.len as usize];
        for trial in ctx.history.iter().filter(|t| t.phase == ctx.phase) {
            if self.retry_failed && trial.state == TrialState::Failed {
                continue;
            }
            if let Some(i) = self.index_of(&trial.params) {
                taken[i as usize] = true;
            }
        }
        taken
    }

    /// The next free combination, or `None` when the grid is exhausted.
    pub fn next(&self, ctx: &SampleContext<'_>) -> Option<Params> {
        let taken = self.taken(ctx);
        self.order(ctx.seed, ctx.phase).into_iter().find(|&i| !taken[i as usize]).map(|i| self.combination(i))
    }

    /// The combinations not yet taken, in the order they will be asked for.
    pub fn pending(&self, ctx: &SampleContext<'_>) -> Vec<Params> {
        let taken = self.taken(ctx);
        self.order(ctx.seed, ctx.phase)
            .into_iter()
            .filter(|&i| !taken[i as usize])
            .map(|i| self.combination(i))
            .collect()
    }

    /// Combinations not yet taken.
    pub fn remaining(&self, ctx: &SampleContext<'_>) -> u64 {
        self.taken(ctx).iter().filter(|&&t| !t).count() as u64
    }
}

/// `full` without the parameters its values make inactive, decided in the
/// space's sampling order (a parent first).
fn prune(space: &SearchSpace, full: &Params) -> Params {
    let mut kept = Params::new();
    for name in space.sampling_order() {
        if let Some(value) = full.get(name) {
            if space.is_active(name, &kept) {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    kept
}

impl Sampler for GridSampler {
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params> {
        self.next(ctx).ok_or_else(|| anyhow::anyhow!("every combination of the grid has been tried"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(low: i64, high: i64) -> Distribution {
        Distribution::Int { low, high, log: false, step: 1 }
    }

    #[test]
    fn grid_around_the_papers_optimum() {
        let space = SearchSpace::new()
            .log_float("lr", 1e-4, 0.5)
            .with("em_dim", Distribution::Int { low: 8, high: 96, log: false, step: 8 })
            .with("layers", int(1, 4))
            .with("mul", int(16, 64))
            .categorical("l_max", [1i64, 2, 3, 4].map(ParamValue::Int))
            .float("dropout", 0.0, 0.5);
        let best: Params = [
            ("lr", ParamValue::Float(0.003)),
            ("em_dim", ParamValue::Int(48)),
            ("layers", ParamValue::Int(1)),
            ("mul", ParamValue::Int(48)),
            ("l_max", ParamValue::Int(2)),
            ("dropout", ParamValue::Float(0.1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let spec = GridSpec {
            axes: [
                ("lr", GridAxis::Factors(vec![2.0 / 3.0, 1.0, 4.0 / 3.0, 5.0 / 3.0])),
                ("em_dim", GridAxis::Around { count: 4, spacing: Spacing::Linear { step: 16.0 } }),
                ("layers", GridAxis::Around { count: 3, spacing: Spacing::Linear { step: 1.0 } }),
                ("mul", GridAxis::Values(vec![16i64.into(), 32i64.into(), 48i64.into()])),
                ("l_max", GridAxis::Around { count: 3, spacing: Spacing::Linear { step: 1.0 } }),
                ("dropout", GridAxis::Best),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            retry_failed: false,
            pick: None,
        };
        spec.validate(&space, "phase `grid`").unwrap();
        let grid = spec.resolve(&space, Some(&best)).unwrap();
        let axes: BTreeMap<&str, Vec<String>> =
            grid.axes().map(|(n, v)| (n, v.iter().map(|x| format!("{x}")).collect())).collect();
        assert_eq!(axes["em_dim"], ["32", "48", "64", "80"]);
        // Layers 0 is outside [1, 4]: clipped to 1 and deduplicated.
        assert_eq!(axes["layers"], ["1", "2"]);
        assert_eq!(axes["l_max"], ["1", "2", "3"]);
        assert_eq!(axes["mul"], ["16", "32", "48"]);
        assert_eq!(axes["dropout"], ["0.1"]);
        let lr: Vec<f64> =
            grid.axes().find(|(n, _)| *n == "lr").unwrap().1.iter().map(|v| v.as_f64().unwrap()).collect();
        for (got, want) in lr.iter().zip([0.002, 0.003, 0.004, 0.005]) {
            assert!((got - want).abs() < 1e-12, "{lr:?}");
        }
        assert_eq!(grid.len(), 4 * 4 * 2 * 3 * 3);
    }

    #[test]
    fn invalid_grids_name_the_parameter() {
        let space = SearchSpace::new().int("layers", 1, 4).int("mul", 16, 64);
        let mut spec = GridSpec::default();
        spec.axes.insert("layers".into(), GridAxis::Values(vec![1i64.into(), 5i64.into()]));
        spec.axes.insert("mul".into(), GridAxis::Best);
        let err = spec.validate(&space, "phase `g`").unwrap_err();
        assert!(err.location.contains("`layers`") && err.problem.contains("outside"), "{err}");
        spec.axes.remove("layers");
        let err = spec.validate(&space, "phase `g`").unwrap_err();
        assert!(err.location.contains("`layers`") && err.problem.contains("no grid values"), "{err}");
        spec.axes
            .insert("layers".into(), GridAxis::Around { count: 0, spacing: Spacing::Linear { step: 1.0 } });
        assert!(spec.validate(&space, "phase `g`").is_err());
    }

    #[test]
    fn a_conditional_grid_runs_each_combination_once() {
        let space = SearchSpace::new()
            .categorical("optimizer", ["adamw".into(), "sgd".into()])
            .float("momentum", 0.5, 0.99)
            .when("momentum", "optimizer", vec!["sgd".into()]);
        let values: BTreeMap<String, Vec<ParamValue>> = [
            ("optimizer".to_owned(), vec!["adamw".into(), "sgd".into()]),
            ("momentum".to_owned(), vec![0.5.into(), 0.9.into()]),
        ]
        .into();
        let grid = GridSampler::new(values, false).unwrap().conditional(&space).unwrap();
        assert_eq!(grid.len(), 3, "adamw; sgd with 0.5; sgd with 0.9");
        let combos: Vec<Params> = (0..3).map(|i| grid.combination(i)).collect();
        assert_eq!(combos.iter().filter(|p| !p.contains_key("momentum")).count(), 1);
        for (i, p) in combos.iter().enumerate() {
            assert!(space.contains(p), "{p:?}");
            assert_eq!(grid.index_of(p), Some(i as u64));
        }
        let mut stray = combos[0].clone();
        stray.insert("momentum".into(), 0.5.into());
        assert_eq!(grid.index_of(&stray), None, "adamw with a momentum is no combination");
    }

    #[test]
    fn combinations_round_trip_through_their_index() {
        let values: BTreeMap<String, Vec<ParamValue>> = [
            ("a".to_owned(), vec![1i64.into(), 2i64.into(), 3i64.into()]),
            ("b".to_owned(), vec!["x".into(), "y".into()]),
        ]
        .into();
        let grid = GridSampler::new(values, false).unwrap();
        for i in 0..grid.len() {
            assert_eq!(grid.index_of(&grid.combination(i)), Some(i));
        }
        let mut order = grid.order(5, 1);
        assert_ne!(order, grid.order(6, 1));
        order.sort_unstable();
        assert_eq!(order, (0..6).collect::<Vec<_>>());
    }
}
