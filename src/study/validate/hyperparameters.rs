//! The built-in objective's hyperparameters, each defined once: its name,
//! section of the study file, the values it takes, its default and its doc
//! line (the rows of `docs/study-file.md`, held against it by a test), and
//! how a trial's value applies. What a value may be is decided by the
//! model's and the trainer's own checks ([`ModelConfig::check`],
//! [`TrainConfig::validate`]), so a study file is refused for exactly the
//! values a trial would fail on.

use crate::error::ConfigProblem;
use crate::hpo::{ParamValue, Params};
use crate::model::{ModelConfig, ModelKind, OutputMode, Precision};
use crate::study::file::{ModelSpec, TrainingSpec};
use crate::study::load::closest;
use crate::train::TrainConfig;

/// The section of the study file a hyperparameter is fixed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Model,
    Training,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Model => "model",
            Section::Training => "training",
        }
    }
}

/// One hyperparameter of the built-in objective.
pub struct Hyperparameter {
    pub name: &'static str,
    pub section: Section,
    /// The values it takes, as the docs state them.
    pub domain: &'static str,
    /// Its default, as the docs state it.
    pub default: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// Sets the value, refusing one of the wrong kind.
    apply: fn(&mut Hyperparameters, &ParamValue) -> Result<(), String>,
}

impl Hyperparameter {
    /// The hyperparameter's row of the table in `docs/study-file.md`.
    pub fn doc_row(&self) -> String {
        format!("| `{}` | {} | {} | {} |", self.name, self.domain, self.default, self.doc)
    }
}

/// Every hyperparameter a search space or sweep may vary with the built-in
/// objective, in the order of the docs.
pub const HYPERPARAMETERS: &[Hyperparameter] = &[
    Hyperparameter {
        name: "kind",
        section: Section::Model,
        domain: "`equivariant` \\| `scalar`",
        default: "`equivariant`",
        doc: "output irreps 0e+2e, or 6×0e (the six Cartesian components)",
        apply: |h, v| {
            put(
                &mut h.model.kind,
                choice(v, &[("equivariant", ModelKind::Equivariant), ("scalar", ModelKind::Scalar)]),
            )
        },
    },
    Hyperparameter {
        name: "em_dim",
        section: Section::Model,
        domain: "integer ≥ 1",
        default: "`48`",
        doc: "embedding width of species and mass attributes",
        apply: |h, v| put(&mut h.model.em_dim, count(v)),
    },
    Hyperparameter {
        name: "layers",
        section: Section::Model,
        domain: "integer ≥ 1",
        default: "`2`",
        doc: "gate layers (convolution + gate)",
        apply: |h, v| put(&mut h.model.layers, count(v)),
    },
    Hyperparameter {
        name: "lmax",
        section: Section::Model,
        domain: "integer 0…4",
        default: "`3`",
        doc: "largest rotation order of hidden features and edge harmonics",
        apply: |h, v| put(&mut h.model.lmax, count(v)),
    },
    Hyperparameter {
        name: "mul",
        section: Section::Model,
        domain: "integer ≥ 1",
        default: "`48`",
        doc: "multiplicity of each hidden irrep",
        apply: |h, v| put(&mut h.model.mul, count(v)),
    },
    Hyperparameter {
        name: "num_basis",
        section: Section::Model,
        domain: "integer ≥ 2",
        default: "`15`",
        doc: "Gaussians of the radial basis",
        apply: |h, v| put(&mut h.model.num_basis, count(v)),
    },
    Hyperparameter {
        name: "radial_neurons",
        section: Section::Model,
        domain: "integer ≥ 1",
        default: "`100`",
        doc: "hidden width of the radial MLP",
        apply: |h, v| put(&mut h.model.radial_neurons, count(v)),
    },
    Hyperparameter {
        name: "cutoff",
        section: Section::Model,
        domain: "number > 0",
        default: "`5.0`",
        doc: "neighbour cutoff in Å",
        apply: |h, v| put(&mut h.model.cutoff, real(v)),
    },
    Hyperparameter {
        name: "num_neighbors",
        section: Section::Model,
        domain: "number > 0",
        default: "training-set mean",
        doc: "normalisation of the neighbour sum",
        apply: |h, v| put(&mut h.model.num_neighbors, real(v).map(Some)),
    },
    Hyperparameter {
        name: "dtype",
        section: Section::Model,
        domain: "`f32` \\| `f64`",
        default: "`f32`",
        doc: "floating-point precision (the public implementation trains in f64)",
        apply: |h, v| put(&mut h.model.dtype, choice(v, &[("f32", Precision::F32), ("f64", Precision::F64)])),
    },
    Hyperparameter {
        name: "output",
        section: Section::Model,
        domain: "`raw` \\| `physical`",
        default: "`raw`",
        doc: "the network output as is, or projected onto physical tensors (eigenvalues ≥ 1)",
        apply: |h, v| {
            put(
                &mut h.model.output,
                choice(v, &[("raw", OutputMode::Raw), ("physical", OutputMode::Physical)]),
            )
        },
    },
    Hyperparameter {
        name: "epochs",
        section: Section::Training,
        domain: "integer ≥ 1",
        default: "`120`",
        doc: "most epochs",
        apply: |h, v| put(&mut h.training.epochs, count(v)),
    },
    Hyperparameter {
        name: "batch_size",
        section: Section::Training,
        domain: "integer ≥ 1",
        default: "`12`",
        doc: "structures per batch",
        apply: |h, v| put(&mut h.training.batch_size, count(v)),
    },
    Hyperparameter {
        name: "lr",
        section: Section::Training,
        domain: "number > 0",
        default: "`0.003`",
        doc: "AdamW learning rate",
        apply: |h, v| put(&mut h.training.lr, real(v)),
    },
    Hyperparameter {
        name: "weight_decay",
        section: Section::Training,
        domain: "number ≥ 0, lr × weight_decay < 1",
        default: "`0.03`",
        doc: "AdamW weight decay",
        apply: |h, v| put(&mut h.training.weight_decay, real(v)),
    },
    Hyperparameter {
        name: "lr_decay",
        section: Section::Training,
        domain: "number in (0, 1]",
        default: "`0.98`",
        doc: "learning-rate factor per epoch (exponential decay)",
        apply: |h, v| put(&mut h.training.lr_decay, real(v)),
    },
    Hyperparameter {
        name: "patience",
        section: Section::Training,
        domain: "integer ≥ 1",
        default: "`30`",
        doc: "epochs without a better validation loss before early stopping",
        apply: |h, v| put(&mut h.training.patience, count(v)),
    },
    Hyperparameter {
        name: "seed",
        section: Section::Training,
        domain: "integer",
        default: "derived",
        doc: "initialisation and shuffling seed; when absent, derived from (study seed, trial number)",
        apply: |h, v| put(&mut h.training.seed, whole(v).map(|s| Some(s as u64))),
    },
    Hyperparameter {
        name: "max_grad_norm",
        section: Section::Training,
        domain: "number > 0 \\| `null`",
        default: "`10`",
        doc: "largest global L2 norm of a batch's gradient; larger ones are scaled down to it before AdamW \
              (as `torch.nn.utils.clip_grad_norm_`). Without it, batches with heavy elements (gradients \
              10³–10⁴× the typical one) stall AdamW for epochs; `null` trains as the reference",
        apply: |h, v| put(&mut h.training.max_grad_norm, real(v).map(Some)),
    },
    Hyperparameter {
        name: "center_targets",
        section: Section::Training,
        domain: "`true` \\| `false`",
        default: "`false`",
        doc: "learn ε − ε̄·I, with ε̄ the training split's mean ε_poly (kept in the model as `eps_offset`); \
              `false` trains exactly as the reference, whose network must first learn ε̄ ≈ 5 from outputs \
              of order 1",
        apply: |h, v| match v {
            ParamValue::Bool(b) => put(&mut h.training.center_targets, Ok(*b)),
            _ => Err(format!("`{v}` is not true or false")),
        },
    },
];

/// The definition of hyperparameter `name`.
pub fn hyperparameter(name: &str) -> Option<&'static Hyperparameter> {
    HYPERPARAMETERS.iter().find(|h| h.name == name)
}

/// The hyperparameters' names, in the order of the docs.
pub fn hyperparameter_names() -> Vec<&'static str> {
    HYPERPARAMETERS.iter().map(|h| h.name).collect()
}

/// The model and training hyperparameters of one trial.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hyperparameters {
    pub model: ModelSpec,
    pub training: TrainingSpec,
}

impl Hyperparameters {
    /// Sets hyperparameter `name` to `value`; errors say why it does not
    /// fit its kind. Whether the model and trainer accept the result is
    /// [`Hyperparameters::check`]'s question.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), String> {
        let Some(definition) = hyperparameter(name) else {
            let hint = closest(name, &hyperparameter_names())
                .map_or(String::new(), |best| format!(" (did you mean `{best}`?)"));
            return Err(format!("`{name}` is not a hyperparameter of the built-in objective{hint}"));
        };
        (definition.apply)(self, value)
    }

    /// These hyperparameters with a trial's parameters applied, if each
    /// value is one the model and trainer take. A combination they refuse
    /// (an equivariant model with lmax 0) is the trial's to report, as the
    /// failed cell of an ablation.
    pub fn with_params(&self, params: &Params) -> Result<Self, String> {
        let mut out = self.clone();
        for (name, value) in params {
            out.set(name, value).map_err(|e| format!("parameter `{name}`: {e}"))?;
        }
        match out.check() {
            Err(p) if p.with.is_none() => Err(format!("parameter `{}`: {}", p.field, p.problem)),
            _ => Ok(out),
        }
    }

    /// The first value the model or the trainer refuses.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        self.model_config().check()?;
        self.train_config(0).validate()
    }

    /// The model configuration (`num_neighbors`, when open, at the model's default).
    pub fn model_config(&self) -> ModelConfig {
        let m = &self.model;
        ModelConfig {
            kind: m.kind,
            em_dim: m.em_dim as usize,
            layers: m.layers as usize,
            lmax: m.lmax as usize,
            mul: m.mul as usize,
            num_basis: m.num_basis as usize,
            radial_neurons: m.radial_neurons as usize,
            cutoff: m.cutoff,
            num_neighbors: m.num_neighbors.unwrap_or(ModelConfig::default().num_neighbors),
            dtype: m.dtype,
            output: m.output,
            ..ModelConfig::default()
        }
    }

    /// The training configuration, with `seed` where the study fixes none.
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        let t = &self.training;
        TrainConfig {
            batch_size: t.batch_size as usize,
            epochs: t.epochs as usize,
            lr: t.lr,
            weight_decay: t.weight_decay,
            lr_decay: t.lr_decay,
            patience: t.patience as usize,
            seed: t.seed.unwrap_or(seed),
            center_targets: t.center_targets,
            max_grad_norm: t.max_grad_norm,
        }
    }
}

/// The key of a setting the model or trainer names, as the study file writes it.
pub fn key_of(field: &str) -> String {
    let section = hyperparameter(field).map_or(Section::Model, |h| h.section);
    format!("{}.{field}", section.key())
}

/// Stores a value that fits.
fn put<T>(slot: &mut T, value: Result<T, String>) -> Result<(), String> {
    *slot = value?;
    Ok(())
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

/// A whole number ≥ 0 (its range is the model's or trainer's to check).
fn count(value: &ParamValue) -> Result<u32, String> {
    let i = whole(value)?;
    u32::try_from(i).map_err(|_| format!("{i} is too large"))
}

fn real(value: &ParamValue) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!("`{value}` is not a finite number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_parameters_override_the_fixed_hyperparameters() {
        let fixed = Hyperparameters::default();
        let params: Params = [
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
        assert!(fixed.with_params(&bad).unwrap_err().contains("lmax 5 is out of range 0..=4"));
        let unknown = [("layer".to_owned(), ParamValue::Int(2))].into();
        assert!(fixed.with_params(&unknown).unwrap_err().contains("did you mean `layers`?"));
    }

    #[test]
    fn the_defaults_are_the_model_s_and_trainer_s_own() {
        let h = Hyperparameters::default();
        assert_eq!(h.model_config(), ModelConfig::default());
        assert_eq!(h.train_config(0), TrainConfig::default());
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn every_value_the_model_or_trainer_refuses_is_refused_here() {
        let refused = [
            ("num_basis", ParamValue::Int(1)),
            ("lmax", ParamValue::Int(5)),
            ("em_dim", ParamValue::Int(0)),
            ("cutoff", ParamValue::Float(0.0)),
            ("lr", ParamValue::Float(-1.0)),
            ("lr_decay", ParamValue::Float(1.5)),
            ("epochs", ParamValue::Int(0)),
            ("max_grad_norm", ParamValue::Float(0.0)),
        ];
        for (name, value) in refused {
            let mut h = Hyperparameters::default();
            h.set(name, &value).unwrap();
            let problem = h.check().unwrap_err();
            assert!(problem.involves(name), "{name} = {value}: {problem}");
        }
    }

    #[test]
    fn the_docs_tables_are_these_definitions() {
        let docs = include_str!("../../../docs/study-file.md");
        for section in [Section::Model, Section::Training] {
            let heading = format!("## `{}`", section.key());
            let table =
                docs.split(&heading).nth(1).expect("the section's heading").split("\n## ").next().unwrap();
            let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
            let defined: Vec<String> = HYPERPARAMETERS
                .iter()
                .filter(|h| h.section == section)
                .map(Hyperparameter::doc_row)
                .collect();
            assert_eq!(rows, defined, "docs/study-file.md, {heading}: write the rows as defined here");
        }
        let list = docs.split("## Searchable hyperparameters").nth(1).unwrap();
        let list: String = list.split(';').next().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        let names = hyperparameter_names().join(", ");
        assert!(list.contains(&format!("`{names}`")), "docs list the searchable names: {names}");
    }
}
