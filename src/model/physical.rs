//! `output: physical`: ε = I + V softplus(Λ) Vᵀ for the predicted symmetric
//! tensor T = V Λ Vᵀ. A spectral function commutes with rotations (equivariant)
//! and every eigenvalue of ε is 1 + softplus(λ) > 1. Its derivative follows the
//! Daleckii–Krein formula, with f'(λ) on (near-)degenerate pairs.

use crate::e3::cartesian::{cartesian_to_irreps, irreps_to_cartesian, Mat3};
use crate::e3::sym3::{eigen_sym3, eigenvalues_sym3};

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn softplus_grad(x: f64) -> f64 {
    super::normalize::sigmoid(x)
}

/// Rows of `vectors` are unit eigenvectors; returns V f(Λ) Vᵀ-type sums Σ_k c_k v_k v_kᵀ.
fn spectral(values: [f64; 3], vectors: &[[f64; 3]; 3]) -> Mat3 {
    let mut m = [[0.0; 3]; 3];
    for k in 0..3 {
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += values[k] * vectors[k][i] * vectors[k][j];
            }
        }
    }
    m
}

/// Irreps 0e+2e of the raw prediction → irreps of ε = I + softplus(T).
pub fn physical_forward(raw: &[f64; 6]) -> [f64; 6] {
    let (lam, vec) = eigen_sym3(&irreps_to_cartesian(raw));
    let mut eps = spectral(lam.map(softplus), &vec);
    for (i, row) in eps.iter_mut().enumerate() {
        row[i] += 1.0;
    }
    cartesian_to_irreps(&eps)
}

/// Vector–Jacobian product of [`physical_forward`]: d loss / d raw from d loss / d output.
pub fn physical_backward(raw: &[f64; 6], grad_out: &[f64; 6]) -> [f64; 6] {
    let (lam, vec) = eigen_sym3(&irreps_to_cartesian(raw));
    let g = irreps_to_cartesian(grad_out);
    // Gv = Vᵀ G V in the eigenbasis, then Hadamard with the divided differences.
    let mut gv = [[0.0; 3]; 3];
    for a in 0..3 {
        for b in 0..3 {
            let mut s = 0.0;
            for i in 0..3 {
                for j in 0..3 {
                    s += vec[a][i] * g[i][j] * vec[b][j];
                }
            }
            let scale = lam[a].abs().max(lam[b].abs()).max(1.0);
            let f = if (lam[a] - lam[b]).abs() <= 1e-6 * scale {
                softplus_grad(0.5 * (lam[a] + lam[b]))
            } else {
                (softplus(lam[a]) - softplus(lam[b])) / (lam[a] - lam[b])
            };
            gv[a][b] = s * f;
        }
    }
    let mut dt = [[0.0; 3]; 3];
    for a in 0..3 {
        for b in 0..3 {
            for i in 0..3 {
                for j in 0..3 {
                    dt[i][j] += vec[a][i] * gv[a][b] * vec[b][j];
                }
            }
        }
    }
    cartesian_to_irreps(&dt)
}

/// Whether ε (irreps 0e+2e) is unphysical: its smallest eigenvalue is below 1.
pub fn is_unphysical(irreps: &[f64; 6]) -> bool {
    let lam = eigenvalues_sym3(&irreps_to_cartesian(irreps));
    lam.iter().copied().fold(f64::INFINITY, f64::min) < 1.0
}

/// Number of predictions (irreps 0e+2e each) whose smallest eigenvalue is below 1.
pub fn count_unphysical(predictions: &[[f64; 6]]) -> usize {
    predictions.iter().filter(|p| is_unphysical(p)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_output_has_eigenvalues_above_one() {
        let raw = [-3.0, 1.5, -0.4, 2.0, 0.3, -1.1];
        assert!(is_unphysical(&raw));
        let eps = physical_forward(&raw);
        assert!(!is_unphysical(&eps));
        assert_eq!(count_unphysical(&[raw, eps]), 1);
    }

    #[test]
    fn physical_backward_matches_finite_differences() {
        for raw in [
            [0.7, 1.5, -0.4, 2.0, 0.3, -1.1],
            [2.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 1e-9, 0.0, 0.0, 0.0, 0.0],
        ] {
            let g = [0.3, -0.2, 0.5, 0.1, -0.7, 0.4];
            let analytic = physical_backward(&raw, &g);
            for k in 0..6 {
                let h = 1e-6;
                let mut p = raw;
                let mut m = raw;
                p[k] += h;
                m[k] -= h;
                let fp: f64 = physical_forward(&p).iter().zip(&g).map(|(a, b)| a * b).sum();
                let fm: f64 = physical_forward(&m).iter().zip(&g).map(|(a, b)| a * b).sum();
                let numeric = (fp - fm) / (2.0 * h);
                assert!((numeric - analytic[k]).abs() < 1e-6, "{k}: {numeric} vs {}", analytic[k]);
            }
        }
    }
}
