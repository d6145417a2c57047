//! Rotation matrices: uniformly random ones from a seeded generator, and from
//! an axis and an angle. Used by equivariance tests across the project.
//!
//! A rotation is a 3×3 matrix `R` (row-major, [`Mat3`]) acting on column
//! vectors, `v' = R v`, i.e. `v'[i] = Σ_j R[i][j] v[j]`.

use rand::Rng;
use rand::SeedableRng;

use super::cartesian::Mat3;

/// A rotation drawn uniformly (Haar measure) from SO(3), via a uniformly
/// random unit quaternion (Shoemake's method: three uniform numbers).
pub fn random_rotation<R: Rng + ?Sized>(rng: &mut R) -> Mat3 {
    let (u1, u2, u3): (f64, f64, f64) = (rng.gen(), rng.gen(), rng.gen());
    let tau = std::f64::consts::TAU;
    let (a, b) = ((1.0 - u1).sqrt(), u1.sqrt());
    let q = [b * (tau * u3).cos(), a * (tau * u2).sin(), a * (tau * u2).cos(), b * (tau * u3).sin()];
    quaternion_to_matrix(q)
}

/// `n` uniformly random rotations from a seed (ChaCha8, stable across
/// library versions).
pub fn random_rotations(seed: u64, n: usize) -> Vec<Mat3> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| random_rotation(&mut rng)).collect()
}

/// The rotation matrix of a unit quaternion `[w, x, y, z]` (normalised here,
/// so any non-zero quaternion works).
pub fn quaternion_to_matrix(q: [f64; 4]) -> Mat3 {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    let [w, x, y, z] = q.map(|c| c / n);
    [
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
        [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
        [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)],
    ]
}

/// Rotation by `angle` radians (right-handed) about `axis` (any non-zero
/// length; normalised here), by Rodrigues' formula.
pub fn rotation_from_axis_angle(axis: [f64; 3], angle: f64) -> Mat3 {
    let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
    let half = 0.5 * angle;
    let s = half.sin() / n;
    quaternion_to_matrix([half.cos(), axis[0] * s, axis[1] * s, axis[2] * s])
}

/// `R v`.
pub fn apply(r: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2])
}

/// The matrix product `a b`.
pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// `Rᵀ` (the inverse of a rotation).
pub fn transpose(r: &Mat3) -> Mat3 {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| r[j][i]))
}

/// The determinant: +1 for a rotation, −1 for a rotation times inversion.
pub fn det(r: &Mat3) -> f64 {
    r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: &Mat3, b: &Mat3, tol: f64) {
        for i in 0..3 {
            for j in 0..3 {
                assert!((a[i][j] - b[i][j]).abs() < tol, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn random_rotations_are_proper_orthogonal_and_seeded() {
        let rs = random_rotations(11, 50);
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for r in &rs {
            assert_close(&matmul(r, &transpose(r)), &identity, 1e-12);
            assert!((det(r) - 1.0).abs() < 1e-12);
        }
        assert_eq!(rs, random_rotations(11, 50));
        assert_ne!(rs[0], random_rotations(12, 1)[0]);
    }

    /// Uniform on SO(3): the mean of R over many draws vanishes (E[R] = 0),
    /// and E[tr R] = 0.
    #[test]
    fn random_rotations_have_zero_mean() {
        let n = 4000;
        let rs = random_rotations(3, n);
        for i in 0..3 {
            for j in 0..3 {
                let mean: f64 = rs.iter().map(|r| r[i][j]).sum::<f64>() / n as f64;
                assert!(mean.abs() < 0.05, "E[R[{i}][{j}]] = {mean}");
            }
        }
    }

    #[test]
    fn axis_angle_is_right_handed() {
        // A quarter turn about z takes x to y.
        let r = rotation_from_axis_angle([0.0, 0.0, 2.0], std::f64::consts::FRAC_PI_2);
        let v = apply(&r, [1.0, 0.0, 0.0]);
        assert!((v[0]).abs() < 1e-15 && (v[1] - 1.0).abs() < 1e-15 && v[2].abs() < 1e-15);
        // The axis is fixed; angles add.
        let axis = [0.3, -1.0, 0.4];
        let r1 = rotation_from_axis_angle(axis, 0.7);
        let fixed = apply(&r1, axis);
        for k in 0..3 {
            assert!((fixed[k] - axis[k]).abs() < 1e-14);
        }
        assert_close(
            &matmul(&r1, &rotation_from_axis_angle(axis, 0.5)),
            &rotation_from_axis_angle(axis, 1.2),
            1e-14,
        );
    }
}
