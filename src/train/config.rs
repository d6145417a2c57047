//! Training hyperparameters (serde). Defaults are the published optimum.

use serde::{Deserialize, Serialize};

/// How a model is trained: AdamW with exponential learning-rate decay per
/// epoch and early stopping on the validation loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Structures per optimiser step.
    pub batch_size: usize,
    /// Largest number of epochs.
    pub epochs: usize,
    /// Learning rate of the first epoch.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// γ: the learning rate of epoch k is `lr · γ^k`.
    pub lr_decay: f64,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    /// Seeds the initial parameters and, with the epoch number, each epoch's shuffle.
    pub seed: u64,
    /// Train the network on ε − ε̄·I, with ε̄ the training set's mean ε_poly
    /// (stored in the model as `eps_offset`). Off reproduces the reference,
    /// whose network must first learn ε̄ ≈ 5 from outputs of order 1.
    pub center_targets: bool,
    /// Largest global L2 norm of a batch's gradient (larger ones are scaled
    /// down before AdamW sees them); `None` trains as the reference. Batches
    /// with heavy elements give gradients 10³–10⁴× the typical one, and
    /// without a limit AdamW's second moment carries each such spike for
    /// thousands of steps, stalling training. Absent in checkpoints written
    /// before the limit existed: those runs continue without one.
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
}

/// The default gradient-norm limit. Typical batch gradients of AnisoNet's
/// MSE are 10–10³, so nearly every step is scaled to this norm: AdamW then
/// sees normalised gradients, and the value itself hardly matters (AdamW is
/// invariant to a common scale of its gradients).
pub const DEFAULT_MAX_GRAD_NORM: f64 = 10.0;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 12,
            epochs: 120,
            lr: 0.003,
            weight_decay: 0.03,
            lr_decay: 0.98,
            patience: 30,
            seed: 0,
            center_targets: false,
            max_grad_norm: Some(DEFAULT_MAX_GRAD_NORM),
        }
    }
}

pub use crate::error::ConfigProblem;

impl TrainConfig {
    /// Ranges that would otherwise fail (or silently do nothing) during training.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        let bad = |field, problem: &str| Err(ConfigProblem::new(field, problem));
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", "must be zero or positive");
        }
        if self.lr * self.weight_decay >= 1.0 {
            return Err(ConfigProblem::combined("weight_decay", "lr", "lr × weight_decay must stay below 1"));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return bad("lr_decay", "must be in (0, 1]");
        }
        if let Some(c) = self.max_grad_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return bad("max_grad_norm", &format!("{c} must be positive"));
        }
        if self.patience == 0 {
            return bad("patience", "must be at least 1");
        }
        Ok(())
    }

    /// Learning rate of epoch `epoch` (0-based): `lr · γ^epoch`, as PyTorch's
    /// `ExponentialLR` stepped once per epoch.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.lr_decay.powi(epoch as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = TrainConfig::default();
        assert!(c.validate().is_ok());
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.lr_at(0), 0.003);
        assert!((c.lr_at(2) - 0.003 * 0.98 * 0.98).abs() < 1e-18);
        let e = TrainConfig { lr_decay: 1.5, ..c.clone() }.validate().unwrap_err();
        assert_eq!(e.field, "lr_decay");
        assert_eq!(TrainConfig { batch_size: 0, ..c }.validate().unwrap_err().field, "batch_size");
    }
}
