//! What an ensemble of models says about one structure: the mean tensor,
//! and how far the models disagree (their spread), per component and on the
//! quantities a screen ranks by.
//!
//! The ensemble's prediction is the mean of the members' Cartesian tensors;
//! its eigenvalues, ε_poly, a_r and birefringence are those of the mean
//! tensor. Spreads are sample standard deviations over the members (n − 1
//! in the denominator; 0 for a single model): of each tensor component, and
//! of each member's own ε_poly and a_r. A spread is what a user weighs a
//! high predicted a_r against before spending a DFPT calculation on it.

use crate::e3::cartesian::Mat3;
use crate::e3::sym3::{anisotropy_ratio_checked, eigenvalues_sym3, eps_poly};

/// The ensemble's prediction for one structure.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleStats {
    pub members: usize,
    /// Mean of the members' tensors (symmetric).
    pub mean: Mat3,
    /// Sample standard deviation of each component over the members.
    pub spread: Mat3,
    /// Eigenvalues of the mean tensor, ascending.
    pub eigenvalues: [f64; 3],
    /// ε_poly of the mean tensor (trace / 3).
    pub eps_poly: f64,
    /// Spread of the members' ε_poly.
    pub eps_poly_spread: f64,
    /// a_r (largest / smallest eigenvalue) of the mean tensor; `None` when
    /// its smallest eigenvalue is not positive.
    pub anisotropy: Option<f64>,
    /// Spread of the members' a_r; `None` when a member's a_r is undefined.
    pub anisotropy_spread: Option<f64>,
    /// Δn = √λ_max − √λ_min of the mean tensor (n = √ε∞); `None` like a_r.
    pub birefringence: Option<f64>,
    /// The mean tensor has an eigenvalue below 1 (ε∞ ≥ 1 for real materials).
    pub unphysical: bool,
    /// How many members' own tensors have an eigenvalue below 1.
    pub unphysical_members: usize,
}

/// Sample mean and standard deviation (n − 1; 0 for fewer than two values).
pub fn mean_and_spread(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn smallest(tensor: &Mat3) -> f64 {
    eigenvalues_sym3(tensor)[0]
}

/// The statistics of the members' tensors (at least one).
pub fn ensemble_stats(tensors: &[Mat3]) -> EnsembleStats {
    assert!(!tensors.is_empty(), "an ensemble has at least one member");
    let mut mean = [[0.0; 3]; 3];
    let mut spread = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let values: Vec<f64> = tensors.iter().map(|t| t[i][j]).collect();
            (mean[i][j], spread[i][j]) = mean_and_spread(&values);
        }
    }
    let eigenvalues = eigenvalues_sym3(&mean);
    let polys: Vec<f64> = tensors.iter().map(eps_poly).collect();
    let ratios: Vec<f64> = tensors.iter().filter_map(anisotropy_ratio_checked).collect();
    let anisotropy = anisotropy_ratio_checked(&mean);
    EnsembleStats {
        members: tensors.len(),
        mean,
        spread,
        eigenvalues,
        eps_poly: eps_poly(&mean),
        eps_poly_spread: mean_and_spread(&polys).1,
        anisotropy,
        anisotropy_spread: (ratios.len() == tensors.len()).then(|| mean_and_spread(&ratios).1),
        birefringence: anisotropy.map(|_| eigenvalues[2].sqrt() - eigenvalues[0].sqrt()),
        unphysical: eigenvalues[0] < 1.0,
        unphysical_members: tensors.iter().filter(|t| smallest(t) < 1.0).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_diagonal_members_by_hand() {
        let a = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 4.0]];
        let b = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let s = ensemble_stats(&[a, b]);
        assert_eq!(s.mean[2][2], 3.0);
        // Two values 4 and 2: mean 3, sample sd √2.
        assert!((s.spread[2][2] - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(s.spread[0][0], 0.0);
        assert_eq!(s.eigenvalues, [2.0, 2.0, 3.0]);
        assert!((s.eps_poly - 7.0 / 3.0).abs() < 1e-15);
        // Members' ε_poly 8/3 and 2: sd = (2/3)/√2.
        assert!((s.eps_poly_spread - (2.0 / 3.0) / 2f64.sqrt()).abs() < 1e-14);
        assert_eq!(s.anisotropy, Some(1.5));
        // Members' a_r 2 and 1.
        assert!((s.anisotropy_spread.unwrap() - 0.5f64.sqrt()).abs() < 1e-15);
        assert!((s.birefringence.unwrap() - (3f64.sqrt() - 2f64.sqrt())).abs() < 1e-15);
        assert!(!s.unphysical);
    }

    #[test]
    fn one_member_has_no_spread_and_unphysical_tensors_are_flagged() {
        let t = [[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let s = ensemble_stats(&[t]);
        assert_eq!((s.eps_poly_spread, s.anisotropy_spread), (0.0, Some(0.0)));
        assert!(s.unphysical);
        assert_eq!(s.unphysical_members, 1);
        let negative = [[-1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        let s = ensemble_stats(&[negative]);
        assert_eq!((s.anisotropy, s.birefringence, s.anisotropy_spread), (None, None, None));
    }
}
