//! Eigenvalues of symmetric 3×3 matrices (dielectric tensors).

use super::cartesian::Mat3;

/// Eigenvalues and eigenvectors of a symmetric 3×3 matrix by cyclic Jacobi
/// rotations: accurate to machine precision, also for (near-)degenerate
/// spectra such as cubic crystals. Eigenvalues ascending; `vectors[k]` is the
/// unit eigenvector of `values[k]`.
pub fn eigen_sym3(m: &Mat3) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = *m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]; // columns = eigenvectors
    for _sweep in 0..50 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        let scale = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2] + off;
        if off <= 1e-32 * scale || off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // a ← Jᵀ a J with the rotation J in the (p, q) plane.
            for row in a.iter_mut() {
                let (akp, akq) = (row[p], row[q]);
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (ap, aq) = (a[p], a[q]);
            a[p] = [0, 1, 2].map(|k| c * ap[k] - s * aq[k]);
            a[q] = [0, 1, 2].map(|k| s * ap[k] + c * aq[k]);
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| a[i][i].total_cmp(&a[j][j]));
    let values = order.map(|i| a[i][i]);
    let vectors = order.map(|i| [v[0][i], v[1][i], v[2][i]]);
    (values, vectors)
}

/// Eigenvalues of a symmetric 3×3 matrix, ascending.
pub fn eigenvalues_sym3(m: &Mat3) -> [f64; 3] {
    eigen_sym3(m).0
}

/// Polycrystalline dielectric constant ε_poly: mean of the eigenvalues (= trace / 3).
pub fn eps_poly(m: &Mat3) -> f64 {
    (m[0][0] + m[1][1] + m[2][2]) / 3.0
}

/// Anisotropy ratio a_r: largest over smallest eigenvalue.
pub fn anisotropy_ratio(m: &Mat3) -> f64 {
    let [lo, _, hi] = eigenvalues_sym3(m);
    hi / lo
}

/// a_r = λ_max / λ_min, undefined (`None`) when λ_min ≤ 0 (an unphysical prediction).
pub fn anisotropy_ratio_checked(m: &Mat3) -> Option<f64> {
    let [lo, _, hi] = eigenvalues_sym3(m);
    (lo > 0.0).then(|| hi / lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_and_rotated() {
        let m = [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]];
        assert_eq!(eigenvalues_sym3(&m), [1.0, 2.0, 3.0]);
        // R diag(1,2,3) Rᵀ for a rotation about z by 30°.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let r = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let d = [1.0, 2.0, 3.0];
        let mut rot = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                rot[i][j] = (0..3).map(|k| r[i][k] * d[k] * r[j][k]).sum();
            }
        }
        let (vals, vecs) = eigen_sym3(&rot);
        for k in 0..3 {
            assert!((vals[k] - d[k]).abs() < 1e-13);
            // m v = λ v
            for i in 0..3 {
                let mv: f64 = (0..3).map(|j| rot[i][j] * vecs[k][j]).sum();
                assert!((mv - vals[k] * vecs[k][i]).abs() < 1e-12);
            }
        }
        assert!((anisotropy_ratio(&rot) - 3.0).abs() < 1e-12);
        assert!((eps_poly(&rot) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_spectrum() {
        let m = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        assert_eq!(eigenvalues_sym3(&m), [2.0, 2.0, 2.0]);
        assert_eq!(anisotropy_ratio(&m), 1.0);
    }
}
