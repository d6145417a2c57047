//! Search spaces: named parameters and their distributions, as in Optuna.
//!
//! Samplers work on an *internal representation* of each value, as Optuna
//! does: numbers on a log scale become their natural logarithm, categorical
//! choices become their index. [`Distribution::to_internal`] and
//! [`Distribution::from_internal`] convert; the latter also snaps to the step
//! grid and clamps into the domain, so whatever a sampler proposes is valid.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use anisostudy_error::InputError;

/// Relative tolerance for "is this float on the step grid".
const GRID_TOLERANCE: f64 = 1e-9;

/// The value of one hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// As a study file writes it: `float [0.0001, 0.5] log`, `int [16, 64] step 8`,
/// `categorical [adam, sgd]`.
impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Float { low, high, log, step } => {
                write!(f, "float [{low}, {high}]")?;
                if *log {
                    write!(f, " log")?;
                }
                step.map_or(Ok(()), |s| write!(f, " step {s}"))
            }
            Distribution::Int { low, high, log, step } => {
                write!(f, "int [{low}, {high}]")?;
                if *log {
                    write!(f, " log")?;
                }
                if *step != 1 {
                    write!(f, " step {step}")?;
                }
                Ok(())
            }
            Distribution::Categorical { choices } => {
                let choices: Vec<String> = choices.iter().map(ToString::to_string).collect();
                write!(f, "categorical [{}]", choices.join(", "))
            }
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

impl ParamValue {
    /// The value as a real number (integers convert exactly up to 2⁵³).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ParamValue::Int(i) => Some(i as f64),
            ParamValue::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The value as an integer; a float counts when it is integral.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ParamValue::Int(i) => Some(i),
            ParamValue::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(x as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            ParamValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Equality that treats `Int(2)` and `Float(2.0)` as the same number, so
    /// values read back from YAML or a database match the ones sampled.
    pub fn same(&self, other: &ParamValue) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }
}

impl From<f64> for ParamValue {
    fn from(x: f64) -> Self {
        ParamValue::Float(x)
    }
}

impl From<i64> for ParamValue {
    fn from(i: i64) -> Self {
        ParamValue::Int(i)
    }
}

impl From<bool> for ParamValue {
    fn from(b: bool) -> Self {
        ParamValue::Bool(b)
    }
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        ParamValue::Str(s.to_owned())
    }
}

/// The domain of one hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// A real in [low, high]; `log` samples log-uniformly; `step` discretises
    /// to low + k·step.
    Float { low: f64, high: f64, log: bool, step: Option<f64> },
    /// An integer in [low, high] on low + k·step; `log` samples log-uniformly.
    Int { low: i64, high: i64, log: bool, step: i64 },
    /// One of a list of choices (YAML scalars).
    Categorical { choices: Vec<ParamValue> },
}

impl Distribution {
    /// Checks the domain is usable; the error names the parameter.
    pub fn validate(&self, name: &str) -> Result<(), InputError> {
        let fail =
            |problem: String, hint: &str| Err(InputError::new(location(name), problem).with_hint(hint));
        match *self {
            Distribution::Float { low, high, log, step } => {
                if !low.is_finite() || !high.is_finite() {
                    return fail(
                        format!("bounds [{low}, {high}] are not finite"),
                        "give finite low and high",
                    );
                }
                if low >= high {
                    return fail(
                        format!("low {low} must be below high {high}"),
                        "swap the bounds, or use a categorical with one choice to fix a value",
                    );
                }
                if !(high - low).is_finite() {
                    return fail(format!("the range [{low}, {high}] is too wide to sample"), "narrow it");
                }
                if log && low <= 0.0 {
                    return fail(
                        format!("a log-scale range needs low > 0, got {low}"),
                        "set low to a positive value or drop `log`",
                    );
                }
                if let Some(step) = step {
                    if log {
                        return fail("`step` cannot be combined with `log`".into(), "drop one of them");
                    }
                    if !step.is_finite() || step <= 0.0 {
                        return fail(format!("step {step} must be a positive number"), "");
                    }
                    // Relative slack: 0.49 − 0.44 is 0.0499…9 in binary, yet a step of
                    // 0.05 fits that range exactly as written.
                    if (high - low) / step < 1.0 - GRID_TOLERANCE {
                        return fail(
                            format!("step {step} is larger than the range [{low}, {high}]"),
                            "use a smaller step or a wider range",
                        );
                    }
                }
                Ok(())
            }
            Distribution::Int { low, high, log, step } => {
                if low >= high {
                    return fail(
                        format!("low {low} must be below high {high}"),
                        "swap the bounds, or use a categorical with one choice to fix a value",
                    );
                }
                if high.checked_sub(low).is_none() {
                    return fail(format!("the range [{low}, {high}] is too wide to sample"), "narrow it");
                }
                if log && low <= 0 {
                    return fail(
                        format!("a log-scale range needs low ≥ 1, got {low}"),
                        "set low to 1 or more, or drop `log`",
                    );
                }
                if step <= 0 {
                    return fail(format!("step {step} must be a positive integer"), "");
                }
                if log && step != 1 {
                    return fail(
                        format!("`step` {step} cannot be combined with `log`"),
                        "drop `step` (a log-scale integer uses step 1) or drop `log`",
                    );
                }
                if step as i128 > high as i128 - low as i128 {
                    return fail(
                        format!("step {step} is larger than the range [{low}, {high}]"),
                        "use a smaller step or a wider range",
                    );
                }
                Ok(())
            }
            Distribution::Categorical { ref choices } => {
                if choices.is_empty() {
                    return fail("has no choices".into(), "list at least one choice");
                }
                for (i, choice) in choices.iter().enumerate() {
                    if matches!(choice, ParamValue::Float(x) if !x.is_finite()) {
                        return fail(format!("choice {choice} is not a finite number"), "");
                    }
                    if choices[..i].iter().any(|earlier| earlier.same(choice)) {
                        return fail(format!("choice {choice} is listed twice"), "remove the duplicate");
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether `value` is in the domain (and on its step grid).
    pub fn contains(&self, value: &ParamValue) -> bool {
        match *self {
            Distribution::Float { low, high, step, .. } => {
                let Some(x) = value.as_f64() else { return false };
                if !(x >= low && x <= high) {
                    return false;
                }
                match step {
                    None => true,
                    Some(step) => {
                        let k = (x - low) / step;
                        (k - k.round()).abs() <= GRID_TOLERANCE * k.abs().max(1.0)
                    }
                }
            }
            Distribution::Int { low, high, step, .. } => {
                let Some(i) = value.as_i64() else { return false };
                i >= low && i <= high && (i - low) % step == 0
            }
            Distribution::Categorical { ref choices } => choices.iter().any(|c| c.same(value)),
        }
    }

    /// Whether a value lies within the bounds (numbers) or among the choices,
    /// ignoring the step grid: what a sampler needs to learn from a trial
    /// that another phase (with another grid) created.
    pub fn admits(&self, value: &ParamValue) -> bool {
        match self.to_internal(value) {
            None => false,
            Some(x) => {
                let (low, high) = self.internal_bounds();
                x >= low && x <= high
            }
        }
    }

    pub fn is_log(&self) -> bool {
        matches!(*self, Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. })
    }

    /// The step of a discrete numeric domain (ints always have one).
    pub fn step(&self) -> Option<f64> {
        match *self {
            Distribution::Float { step, .. } => step,
            Distribution::Int { step, .. } => Some(step as f64),
            Distribution::Categorical { .. } => None,
        }
    }

    /// Bounds of the internal representation: logs for a log scale, choice
    /// indices for categoricals. The upper bound is the last point of the
    /// step grid (Optuna likewise trims `high` to `low + k·step`).
    pub fn internal_bounds(&self) -> (f64, f64) {
        let (low, high) = match *self {
            Distribution::Float { low, .. } => (low, self.grid_high()),
            Distribution::Int { low, .. } => (low as f64, self.grid_high()),
            Distribution::Categorical { ref choices } => {
                return (0.0, choices.len().saturating_sub(1) as f64)
            }
        };
        if self.is_log() {
            (low.ln(), high.ln())
        } else {
            (low, high)
        }
    }

    /// The largest value of the domain: `high`, trimmed to the step grid.
    fn grid_high(&self) -> f64 {
        match *self {
            Distribution::Float { low, high, step: Some(step), .. } => {
                low + ((high - low) / step + GRID_TOLERANCE).floor() * step
            }
            Distribution::Float { high, .. } => high,
            Distribution::Int { low, high, step, .. } => (low + (high - low) / step * step) as f64,
            Distribution::Categorical { ref choices } => choices.len().saturating_sub(1) as f64,
        }
    }

    /// Internal representation of `value`: ln for log scales, the choice
    /// index for categoricals. `None` when the value has the wrong kind.
    pub fn to_internal(&self, value: &ParamValue) -> Option<f64> {
        match self {
            Distribution::Float { log, .. } | Distribution::Int { log, .. } => {
                let x = value.as_f64()?;
                if *log {
                    Some(x.ln())
                } else {
                    Some(x)
                }
            }
            Distribution::Categorical { choices } => {
                choices.iter().position(|c| c.same(value)).map(|i| i as f64)
            }
        }
    }

    /// The value for an internal representation `x`: undoes the log, snaps
    /// to the step grid (or nearest choice) and clamps into the domain.
    /// The distribution must be valid ([`Distribution::validate`]).
    pub fn from_internal(&self, x: f64) -> ParamValue {
        match *self {
            Distribution::Float { low, high, log, step } => {
                let external = if log { x.exp() } else { x };
                ParamValue::Float(match step {
                    None => external.clamp(low, high),
                    Some(step) => {
                        let k = ((external - low) / step).round().max(0.0);
                        (low + k * step).min(self.grid_high())
                    }
                })
            }
            Distribution::Int { low, log, step, .. } => {
                let external = if log { x.exp() } else { x };
                let k = ((external - low as f64) / step as f64).round().max(0.0);
                let value = (low as f64 + k * step as f64).min(self.grid_high());
                ParamValue::Int(value as i64)
            }
            Distribution::Categorical { ref choices } => {
                let i = x.round().clamp(0.0, (choices.len() - 1) as f64) as usize;
                choices[i].clone()
            }
        }
    }

    /// Snaps a value of the right kind onto the domain: clamped to the
    /// bounds and rounded to the step grid. `None` for a categorical value
    /// that is not a choice or a value of the wrong kind.
    pub fn snap(&self, value: &ParamValue) -> Option<ParamValue> {
        match self {
            Distribution::Categorical { choices } => choices.iter().find(|c| c.same(value)).cloned(),
            _ => {
                let x = value.as_f64().filter(|x| x.is_finite())?;
                let x = if self.is_log() { x.max(f64::MIN_POSITIVE).ln() } else { x };
                let (low, high) = self.internal_bounds();
                Some(self.from_internal(x.clamp(low, high)))
            }
        }
    }

    /// Number of values of a discrete domain; `None` for continuous floats.
    pub fn n_values(&self) -> Option<u64> {
        match *self {
            Distribution::Float { low, high, step: Some(step), .. } => {
                Some(((high - low) / step + GRID_TOLERANCE).floor() as u64 + 1)
            }
            Distribution::Float { .. } => None,
            Distribution::Int { low, high, step, .. } => Some(((high - low) / step) as u64 + 1),
            Distribution::Categorical { ref choices } => Some(choices.len() as u64),
        }
    }

    /// The `k`-th value of a discrete domain, in increasing order (choices
    /// in their order); `None` past the last one or for continuous floats.
    pub fn value_at(&self, k: u64) -> Option<ParamValue> {
        if k >= self.n_values()? {
            return None;
        }
        Some(match *self {
            Distribution::Float { low, step: Some(step), .. } => ParamValue::Float(low + k as f64 * step),
            Distribution::Int { low, step, .. } => ParamValue::Int(low + k as i64 * step),
            Distribution::Categorical { ref choices } => choices[k as usize].clone(),
            Distribution::Float { step: None, .. } => return None,
        })
    }
}

fn location(name: &str) -> String {
    format!("search space, parameter `{name}`")
}

/// Named distributions, ordered by name so that iteration order (and so every
/// seeded draw) never depends on hashing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub params: BTreeMap<String, Distribution>,
    /// Conditional parameters: each exists only in the trials whose other
    /// parameters meet its [`Condition`]. Parameters absent here always exist.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, Condition>,
}

/// When a conditional parameter exists: each named parent (another
/// parameter, itself present) has one of the listed values.
pub type Condition = BTreeMap<String, Vec<ParamValue>>;

impl SearchSpace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a parameter; for building spaces in code.
    pub fn with(mut self, name: &str, distribution: Distribution) -> Self {
        self.params.insert(name.to_owned(), distribution);
        self
    }

    /// Adds a uniform float on [low, high].
    pub fn float(self, name: &str, low: f64, high: f64) -> Self {
        self.with(name, Distribution::Float { low, high, log: false, step: None })
    }

    /// Adds a log-uniform float on [low, high].
    pub fn log_float(self, name: &str, low: f64, high: f64) -> Self {
        self.with(name, Distribution::Float { low, high, log: true, step: None })
    }

    /// Adds an integer on [low, high] with step 1.
    pub fn int(self, name: &str, low: i64, high: i64) -> Self {
        self.with(name, Distribution::Int { low, high, log: false, step: 1 })
    }

    /// Adds a categorical parameter.
    pub fn categorical(self, name: &str, choices: impl IntoIterator<Item = ParamValue>) -> Self {
        self.with(name, Distribution::Categorical { choices: choices.into_iter().collect() })
    }

    /// Checks every distribution; the first problem is reported.
    pub fn validate(&self) -> Result<(), InputError> {
        if self.params.is_empty() {
            return Err(InputError::new("search space", "has no parameters").with_hint("add at least one"));
        }
        self.params.iter().try_for_each(|(name, dist)| dist.validate(name))?;
        self.validate_conditions()
    }

    /// Whether `params` has exactly this space's names that its values make
    /// active, each value in its domain.
    pub fn contains(&self, params: &super::Params) -> bool {
        self.params.iter().all(|(name, dist)| match params.get(name) {
            Some(value) => dist.contains(value) && self.is_active(name, params),
            None => !self.is_active(name, params),
        }) && params.keys().all(|name| self.params.contains_key(name))
    }

    /// Adds a condition to parameter `name`: it exists only when `parent`
    /// has one of `values` (conditions on several parents must all hold).
    pub fn when(mut self, name: &str, parent: &str, values: Vec<ParamValue>) -> Self {
        self.conditions.entry(name.to_owned()).or_default().insert(parent.to_owned(), values);
        self
    }

    /// Whether the space has conditional parameters.
    pub fn is_conditional(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// Whether parameter `name` exists given the (parent) values in `params`.
    pub fn is_active(&self, name: &str, params: &super::Params) -> bool {
        self.conditions.get(name).is_none_or(|condition| {
            condition
                .iter()
                .all(|(parent, values)| params.get(parent).is_some_and(|v| values.iter().any(|w| w.same(v))))
        })
    }

    /// The parameters in an order where every parent comes before its
    /// children: name order, each conditional parameter moved after its
    /// parents. Without conditions, name order.
    pub fn sampling_order(&self) -> Vec<&String> {
        let (mut order, in_a_circle) = self.ordered();
        // A cycle (refused by `validate`): the rest in name order.
        order.extend(in_a_circle);
        order
    }

    /// The parameters in parent-first order as far as their conditions
    /// allow, and those conditions in a circle leave out (in name order).
    fn ordered(&self) -> (Vec<&String>, Vec<&String>) {
        let mut order: Vec<&String> = Vec::with_capacity(self.params.len());
        loop {
            let before = order.len();
            for name in self.params.keys() {
                let ready = self.conditions.get(name).is_none_or(|c| c.keys().all(|p| order.contains(&p)));
                if ready && !order.contains(&name) {
                    order.push(name);
                }
            }
            if order.len() == before {
                let rest = self.params.keys().filter(|n| !order.contains(n)).collect();
                return (order, rest);
            }
        }
    }

    /// The parameters whose conditions are the same, so they exist in the
    /// same trials, in [`Self::sampling_order`] of their first member: what
    /// multivariate TPE models jointly (Optuna's `group` decomposition).
    /// Without conditions, one group of every parameter.
    pub fn groups(&self) -> Vec<Vec<&String>> {
        let mut groups: Vec<(Option<&Condition>, Vec<&String>)> = Vec::new();
        for name in self.sampling_order() {
            let condition = self.conditions.get(name);
            match groups.iter_mut().find(|(c, _)| *c == condition) {
                Some((_, members)) => members.push(name),
                None => groups.push((condition, vec![name])),
            }
        }
        groups.into_iter().map(|(_, members)| members).collect()
    }

    /// The conditions' problems: an unknown parent, a value the parent
    /// cannot take, a parameter conditioned on itself or on a cycle.
    fn validate_conditions(&self) -> Result<(), InputError> {
        for name in self.conditions.keys() {
            self.validate_condition(name)?;
        }
        self.validate_no_cycle()
    }

    /// The problems of parameter `name`'s condition alone (see
    /// [`Self::validate_no_cycle`] for those of several together).
    pub fn validate_condition(&self, name: &str) -> Result<(), InputError> {
        let at = format!("search space, parameter `{name}`, `when`");
        let Some(condition) = self.conditions.get(name) else { return Ok(()) };
        if !self.params.contains_key(name) {
            return Err(InputError::new(at, "is a condition of no parameter"));
        }
        {
            for (parent, values) in condition {
                if parent == name {
                    return Err(InputError::new(at, "a parameter cannot depend on itself")
                        .with_hint("name another parameter"));
                }
                let Some(dist) = self.params.get(parent) else {
                    let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                    return Err(InputError::new(at, format!("depends on `{parent}`, which is no parameter"))
                        .with_hint(format!("the parameters are {}", known.join(", "))));
                };
                if values.is_empty() {
                    return Err(InputError::new(at, format!("lists no value of `{parent}`"))
                        .with_hint(format!("give one value or a list, e.g. `when: {{{parent}: …}}`")));
                }
                if let Some(bad) = values.iter().find(|v| !dist.contains(v)) {
                    return Err(InputError::new(
                        at,
                        format!("`{parent}` never takes the value {bad} ({dist})"),
                    )
                    .with_hint(format!("use values of `{parent}`'s domain")));
                }
            }
        }
        Ok(())
    }

    /// Conditions that depend on each other in a circle.
    pub fn validate_no_cycle(&self) -> Result<(), InputError> {
        let (_, in_a_circle) = self.ordered();
        if let Some(first) = in_a_circle.first() {
            let names: Vec<&str> = in_a_circle.iter().map(|n| n.as_str()).collect();
            return Err(InputError::new(
                format!("search space, parameter `{first}`, `when`"),
                format!("the conditions of {} depend on each other in a circle", names.join(", ")),
            )
            .with_hint("a parameter's condition may name only parameters that do not depend on it"));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(low: f64, high: f64, log: bool, step: Option<f64>) -> Distribution {
        Distribution::Float { low, high, log, step }
    }

    fn problem(dist: Distribution) -> String {
        let err = dist.validate("lr").unwrap_err();
        assert!(err.location.contains("`lr`"), "{err}");
        err.problem
    }

    #[test]
    fn invalid_domains_are_named() {
        assert!(problem(float(1.0, 1.0, false, None)).contains("below high"));
        assert!(problem(float(0.0, 1.0, true, None)).contains("low > 0"));
        assert!(problem(float(0.1, 1.0, true, Some(0.1))).contains("log"));
        assert!(problem(float(0.0, 1.0, false, Some(2.0))).contains("larger than the range"));
        // A step equal to the range as written, though not in binary, is fine.
        assert!(float(0.44, 0.49, false, Some(0.05)).validate("p").is_ok());
        assert!(problem(float(0.0, f64::INFINITY, false, None)).contains("not finite"));
        assert!(problem(float(f64::NAN, 1.0, false, None)).contains("not finite"));
        assert!(problem(Distribution::Int { low: 0, high: 8, log: true, step: 1 }).contains("low ≥ 1"));
        assert!(problem(Distribution::Int { low: 1, high: 8, log: true, step: 2 }).contains("log"));
        assert!(problem(Distribution::Int { low: 1, high: 3, log: false, step: 4 }).contains("larger"));
        assert!(problem(Distribution::Int { low: 3, high: 1, log: false, step: 1 }).contains("below"));
        assert!(problem(Distribution::Int { low: i64::MIN, high: i64::MAX, log: false, step: 1 })
            .contains("wide"));
        assert!(problem(float(-1e308, 1e308, false, None)).contains("wide"));
        assert!(problem(Distribution::Categorical { choices: vec![] }).contains("no choices"));
        let dup = Distribution::Categorical { choices: vec![1i64.into(), 2i64.into(), 1.0.into()] };
        assert!(problem(dup).contains("twice"));
        assert!(float(1e-4, 0.5, true, None).validate("lr").is_ok());
    }

    #[test]
    fn contains_respects_bounds_and_steps() {
        let d = float(0.0, 1.0, false, Some(0.25));
        assert!(d.contains(&0.75.into()));
        assert!(!d.contains(&0.7.into()));
        assert!(!d.contains(&1.25.into()));
        let i = Distribution::Int { low: 16, high: 64, log: false, step: 16 };
        assert!(i.contains(&48i64.into()));
        assert!(i.contains(&32.0.into()));
        assert!(!i.contains(&40i64.into()));
        let c = Distribution::Categorical { choices: vec!["a".into(), 3i64.into()] };
        assert!(c.contains(&3.0.into()));
        assert!(!c.contains(&"b".into()));
    }

    #[test]
    fn internal_round_trip_snaps_to_grid() {
        let lr = float(1e-4, 0.5, true, None);
        let x = lr.to_internal(&0.003.into()).unwrap();
        assert!((x - 0.003f64.ln()).abs() < 1e-15);
        assert_eq!(lr.from_internal(x).as_f64().unwrap(), 0.003f64.ln().exp());
        assert_eq!(lr.from_internal(10.0), ParamValue::Float(0.5));
        let mul = Distribution::Int { low: 16, high: 60, log: false, step: 8 };
        assert_eq!(mul.internal_bounds(), (16.0, 56.0));
        assert_eq!(mul.from_internal(59.0), ParamValue::Int(56));
        assert_eq!(mul.from_internal(27.9), ParamValue::Int(24));
        assert_eq!(mul.n_values(), Some(6));
        let layers = Distribution::Int { low: 1, high: 64, log: true, step: 1 };
        assert_eq!(layers.from_internal(3.0f64.ln() + 0.1), ParamValue::Int(3));
        assert_eq!(layers.snap(&100i64.into()), Some(ParamValue::Int(64)));
        let c = Distribution::Categorical { choices: vec![1i64.into(), 2i64.into()] };
        assert_eq!(c.from_internal(0.9), ParamValue::Int(2));
    }

    fn optimiser_space() -> SearchSpace {
        SearchSpace::new()
            .categorical("optimizer", ["adamw".into(), "sgd".into()])
            .float("momentum", 0.5, 0.99)
            .when("momentum", "optimizer", vec!["sgd".into()])
            .categorical("nesterov", [true.into(), false.into()])
            .when("nesterov", "momentum", vec![0.9.into()])
            .log_float("lr", 1e-4, 0.1)
    }

    #[test]
    fn conditional_parameters_exist_only_when_their_parents_say_so() {
        let space = optimiser_space();
        space.validate().unwrap();
        let order: Vec<&str> = space.sampling_order().iter().map(|s| s.as_str()).collect();
        assert_eq!(order, ["lr", "optimizer", "momentum", "nesterov"]);
        let groups = space.groups();
        assert_eq!(groups.len(), 3, "{groups:?}");
        let mut p = super::super::Params::new();
        p.insert("optimizer".into(), "adamw".into());
        p.insert("lr".into(), 0.01.into());
        assert!(space.contains(&p));
        assert!(!space.is_active("momentum", &p));
        p.insert("momentum".into(), 0.9.into());
        assert!(!space.contains(&p), "momentum is not active with adamw");
        p.insert("optimizer".into(), "sgd".into());
        assert!(!space.contains(&p), "nesterov is active with momentum 0.9");
        p.insert("nesterov".into(), true.into());
        assert!(space.contains(&p));
    }

    #[test]
    fn bad_conditions_are_refused_with_the_parameter_and_the_fix() {
        let problem = |space: SearchSpace| space.validate().unwrap_err();
        let err = problem(optimiser_space().when("lr", "optimiser", vec!["sgd".into()]));
        assert!(
            err.problem.contains("`optimiser`, which is no parameter") && err.hint.contains("optimizer"),
            "{err}"
        );
        let err = problem(optimiser_space().when("lr", "optimizer", vec!["adam".into()]));
        assert!(err.problem.contains("never takes the value adam"), "{err}");
        let err = problem(optimiser_space().when("optimizer", "nesterov", vec![true.into()]));
        assert!(err.problem.contains("in a circle"), "{err}");
        let err = problem(optimiser_space().when("lr", "lr", vec![0.01.into()]));
        assert!(err.problem.contains("itself"), "{err}");
    }

    #[test]
    fn conversions() {
        assert_eq!(ParamValue::Int(3).as_f64(), Some(3.0));
        assert_eq!(ParamValue::Float(3.0).as_i64(), Some(3));
        assert_eq!(ParamValue::Float(3.5).as_i64(), None);
        assert_eq!(ParamValue::Bool(true).as_bool(), Some(true));
        assert_eq!(ParamValue::Str("x".into()).as_str(), Some("x"));
        assert!(ParamValue::Int(2).same(&ParamValue::Float(2.0)));
    }
}
