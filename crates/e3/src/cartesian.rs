//! Symmetric Cartesian 3×3 tensors ↔ irreps 1x0e+1x2e, in the basis of e3nn's
//! `CartesianTensor("ij=ji")`.
//!
//! `irreps[k] = Σ_ij Q[k][i][j] T[i][j]`. The six 3×3 matrices `Q[k]` are
//! orthonormal (as 9-vectors), so the inverse is `T = Σ_k irreps[k] Q[k]`.

/// A symmetric 3×3 tensor, row-major.
pub type Mat3 = [[f64; 3]; 3];

const S3: f64 = 0.577_350_269_189_625_8; // 1/√3
const S2: f64 = std::f64::consts::FRAC_1_SQRT_2; // 1/√2
const S6: f64 = 0.408_248_290_463_863; // 1/√6

/// The change of basis Q (6 × 3 × 3): component 0 is the 0e scalar, 1..=5 the
/// 2e components in e3nn's order (xz, xy, (2yy − xx − zz)/√6, yz, (zz − xx)/√2).
pub const CHANGE_OF_BASIS: [Mat3; 6] = [
    [[S3, 0.0, 0.0], [0.0, S3, 0.0], [0.0, 0.0, S3]],
    [[0.0, 0.0, S2], [0.0, 0.0, 0.0], [S2, 0.0, 0.0]],
    [[0.0, S2, 0.0], [S2, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[-S6, 0.0, 0.0], [0.0, 2.0 * S6, 0.0], [0.0, 0.0, -S6]],
    [[0.0, 0.0, 0.0], [0.0, 0.0, S2], [0.0, S2, 0.0]],
    [[-S2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, S2]],
];

/// Irreps 0e+2e (6 numbers) of a Cartesian tensor. Only the symmetric part
/// survives: the antisymmetric part of `t` projects to zero.
pub fn cartesian_to_irreps(t: &Mat3) -> [f64; 6] {
    let mut irreps = [0.0; 6];
    for (k, q) in CHANGE_OF_BASIS.iter().enumerate() {
        irreps[k] = (0..3).flat_map(|i| (0..3).map(move |j| (i, j))).map(|(i, j)| q[i][j] * t[i][j]).sum();
    }
    irreps
}

/// The symmetric Cartesian tensor of irreps 0e+2e (6 numbers).
pub fn irreps_to_cartesian(irreps: &[f64; 6]) -> Mat3 {
    let mut t = [[0.0; 3]; 3];
    for (q, &c) in CHANGE_OF_BASIS.iter().zip(irreps) {
        for i in 0..3 {
            for j in 0..3 {
                t[i][j] += c * q[i][j];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Option<serde_json::Value> {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/e3nn_cartesian_symmetric.json");
        match std::fs::read_to_string(path) {
            Ok(text) => Some(serde_json::from_str(&text).unwrap()),
            Err(_) => {
                eprintln!("skipping: {path} not found");
                None
            }
        }
    }

    fn mat(v: &serde_json::Value) -> Mat3 {
        let mut m = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = v[i][j].as_f64().unwrap();
            }
        }
        m
    }

    #[test]
    fn change_of_basis_matches_e3nn() {
        let Some(fx) = fixture() else { return };
        for k in 0..6 {
            let q = mat(&fx["change_of_basis"][k]);
            for i in 0..3 {
                for j in 0..3 {
                    assert!((q[i][j] - CHANGE_OF_BASIS[k][i][j]).abs() < 1e-12, "Q[{k}][{i}][{j}]");
                }
            }
        }
    }

    #[test]
    fn examples_round_trip() {
        let Some(fx) = fixture() else { return };
        for ex in fx["examples"].as_array().unwrap() {
            let t = mat(&ex["cartesian"]);
            let irreps = cartesian_to_irreps(&t);
            for k in 0..6 {
                let want = ex["irreps_0e_2e"][k].as_f64().unwrap();
                assert!((irreps[k] - want).abs() < 1e-10, "component {k}: {} vs {want}", irreps[k]);
            }
            let back = irreps_to_cartesian(&irreps);
            for i in 0..3 {
                for j in 0..3 {
                    assert!((back[i][j] - t[i][j]).abs() < 1e-10);
                }
            }
        }
    }
}
