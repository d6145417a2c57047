//! Model hyperparameters (serde) and the typed construction error.

use serde::{Deserialize, Serialize};

pub use crate::error::ConfigProblem;

/// Largest rotation order the model supports.
pub const MAX_LMAX: usize = 4;

/// Which readout the last Convolution produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Output irreps 1x0e+1x2e: equivariant end to end.
    Equivariant,
    /// Output 6x0e = (xx, yy, zz, xy, xz, yz): equivariance breaks at the readout.
    Scalar,
}

/// Floating-point precision of parameters and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

/// How the predicted symmetric tensor is turned into ε.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// The network's tensor as is (the paper).
    Raw,
    /// ε = I + V softplus(Λ) Vᵀ for the prediction V Λ Vᵀ: eigenvalues always > 1.
    Physical,
}

/// AnisoNet hyperparameters. Defaults are the published optimum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Width of the shared element embedding (em_dim × 0e).
    pub em_dim: usize,
    /// Number of Convolution + Gate layers before the final Convolution.
    pub layers: usize,
    /// Largest spherical-harmonic degree of edges and hidden features (0..=4).
    pub lmax: usize,
    /// Multiplicity of every hidden irrep.
    pub mul: usize,
    /// Number of Gaussian radial basis functions on [0, cutoff].
    pub num_basis: usize,
    /// Hidden width of the radial MLP.
    pub radial_neurons: usize,
    /// Number of hidden layers of the radial MLP.
    pub radial_layers: usize,
    /// Neighbour cutoff radius, Å.
    pub cutoff: f64,
    /// Normalisation of the neighbour sum (divides by √num_neighbors).
    pub num_neighbors: f64,
    pub dtype: Precision,
    pub output: OutputMode,
    /// Isotropic offset of the prediction, in units of ε: ε = eps_offset·I +
    /// the network's tensor (before the physical map). 0 is the reference
    /// model; a trainer with `center_targets` sets the training set's mean
    /// ε_poly, so the network only learns the deviation from it.
    pub eps_offset: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Equivariant,
            em_dim: 48,
            layers: 2,
            lmax: 3,
            mul: 48,
            num_basis: 15,
            radial_neurons: 100,
            radial_layers: 1,
            cutoff: 5.0,
            num_neighbors: 32.0,
            dtype: Precision::F32,
            output: OutputMode::Raw,
            eps_offset: 0.0,
        }
    }
}

/// Why a model cannot be built or fed; a study records it as a failed trial.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("an equivariant model with lmax = 0 cannot produce the 2e part of the dielectric tensor; use lmax >= 1 or kind: scalar")]
    EquivariantNeedsLmax1,
    #[error("lmax = {0} is outside the supported range 0..=4")]
    LmaxOutOfRange(usize),
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    #[error("compute device: {0}")]
    Device(String),
    #[error("invalid model input: {0}")]
    InvalidInput(String),
    #[error("parameter file: {0}")]
    Parameters(String),
}

impl ModelConfig {
    /// Checks ranges that would otherwise fail deep inside construction.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check().map_err(|p| match (p.field, p.with) {
            ("lmax", Some("kind")) => ModelError::EquivariantNeedsLmax1,
            ("lmax", None) => ModelError::LmaxOutOfRange(self.lmax),
            _ => ModelError::InvalidConfig(format!("{} {}", p.field, p.problem)),
        })
    }

    /// The first setting the model refuses, named by its key: the one check
    /// both [`ModelConfig::validate`] and a study file's validation use.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        if self.lmax > MAX_LMAX {
            return Err(ConfigProblem::new(
                "lmax",
                format!("lmax {} is out of range 0..={MAX_LMAX}", self.lmax),
            ));
        }
        let least = [
            ("em_dim", self.em_dim, 1),
            ("layers", self.layers, 1),
            ("mul", self.mul, 1),
            ("num_basis", self.num_basis, 2),
            ("radial_neurons", self.radial_neurons, 1),
        ];
        for (name, v, min) in least {
            if v < min {
                return Err(ConfigProblem::new(name, format!("must be at least {min}")));
            }
        }
        if !(self.cutoff > 0.0 && self.cutoff.is_finite()) {
            return Err(ConfigProblem::new("cutoff", "must be a positive length in Å"));
        }
        if !(self.num_neighbors > 0.0 && self.num_neighbors.is_finite()) {
            return Err(ConfigProblem::new("num_neighbors", "must be positive"));
        }
        if !self.eps_offset.is_finite() {
            return Err(ConfigProblem::new("eps_offset", "must be a finite number"));
        }
        if self.kind == ModelKind::Equivariant && self.lmax == 0 {
            return Err(ConfigProblem::combined(
                "lmax",
                "kind",
                "an equivariant model with lmax = 0 cannot produce the 2e part of the dielectric tensor; use lmax ≥ 1 or kind: scalar",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trip_with_defaults() {
        let c: ModelConfig =
            serde_yaml::from_str("kind: scalar\nlmax: 2\ndtype: f64\noutput: physical\n").unwrap();
        assert_eq!(c.kind, ModelKind::Scalar);
        assert_eq!((c.lmax, c.em_dim, c.mul, c.num_basis), (2, 48, 48, 15));
        assert_eq!((c.dtype, c.output), (Precision::F64, OutputMode::Physical));
        let back: ModelConfig = serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_yaml::from_str::<ModelConfig>("lmaxx: 2\n").is_err());
    }

    #[test]
    fn validation_gives_typed_errors() {
        let eq0 = ModelConfig { lmax: 0, ..Default::default() };
        assert_eq!(eq0.validate(), Err(ModelError::EquivariantNeedsLmax1));
        assert!(ModelConfig { kind: ModelKind::Scalar, ..eq0 }.validate().is_ok());
        assert_eq!(
            ModelConfig { lmax: 5, ..Default::default() }.validate(),
            Err(ModelError::LmaxOutOfRange(5))
        );
        assert!(matches!(
            ModelConfig { mul: 0, ..Default::default() }.validate(),
            Err(ModelError::InvalidConfig(_))
        ));
        assert!(matches!(
            ModelConfig { cutoff: -1.0, ..Default::default() }.validate(),
            Err(ModelError::InvalidConfig(_))
        ));
    }
}
