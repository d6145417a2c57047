//! Search spaces: named parameters and their distributions, as in Optuna.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The value of one hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
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

/// Named distributions, ordered by name so that iteration order (and so every
/// seeded draw) never depends on hashing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub params: BTreeMap<String, Distribution>,
}
