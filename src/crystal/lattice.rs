//! 3×3 lattice arithmetic on row-vector cells (`lattice[k]` = k-th cell vector, Å).
//!
//! Cartesian and fractional coordinates are row vectors: `cart = frac · L`,
//! `frac = cart · L⁻¹`.

/// A 3-vector, Å (or fractional, by context).
pub type Vec3 = [f64; 3];
/// A cell: three lattice vectors as rows, Å.
pub type Lattice = [[f64; 3]; 3];

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// Signed volume a · (b × c), Å³.
pub fn determinant(l: &Lattice) -> f64 {
    dot(l[0], cross(l[1], l[2]))
}

/// The inverse matrix, `None` when the determinant is zero or not finite.
pub fn inverse(l: &Lattice) -> Option<Lattice> {
    let det = determinant(l);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    // Columns of the inverse are the reciprocal vectors (b × c) / det etc.
    let r = [cross(l[1], l[2]), cross(l[2], l[0]), cross(l[0], l[1])];
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (k, value) in row.iter_mut().enumerate() {
            *value = r[k][i] / det;
        }
    }
    Some(inv)
}

/// Row vector times matrix: `v · m`.
pub fn vec_mat(v: Vec3, m: &Lattice) -> Vec3 {
    [
        v[0] * m[0][0] + v[1] * m[1][0] + v[2] * m[2][0],
        v[0] * m[0][1] + v[1] * m[1][1] + v[2] * m[2][1],
        v[0] * m[0][2] + v[1] * m[1][2] + v[2] * m[2][2],
    ]
}

/// Perpendicular distance between neighbouring lattice planes of each family,
/// Å: `heights[k]` = |V| / |a_{k+1} × a_{k+2}|. A sphere of radius r spans at
/// most `ceil(r / heights[k])` cells along axis k.
pub fn heights(l: &Lattice) -> Vec3 {
    let volume = determinant(l).abs();
    [volume / norm(cross(l[1], l[2])), volume / norm(cross(l[2], l[0])), volume / norm(cross(l[0], l[1]))]
}

/// Lengths of the three lattice vectors, Å.
pub fn lengths(l: &Lattice) -> Vec3 {
    [norm(l[0]), norm(l[1]), norm(l[2])]
}

/// A basis of the same lattice with short, nearly orthogonal vectors (greedy
/// 3-D reduction: pairwise Gauss steps plus the a₃ ± a₁ ± a₂ test).
///
/// Skewed input cells have tiny plane heights and would need many periodic
/// images; the reduced basis needs few. The input must have finite, nonzero
/// volume.
pub fn reduce(l: &Lattice) -> Lattice {
    let mut b = *l;
    let shrinks =
        |candidate: Vec3, current: Vec3| dot(candidate, candidate) < dot(current, current) * (1.0 - 1e-12);
    for _ in 0..200 {
        let mut changed = false;
        for i in 0..3 {
            for j in 0..3 {
                let bj2 = dot(b[j], b[j]);
                if i == j || bj2 == 0.0 {
                    continue;
                }
                let k = (dot(b[i], b[j]) / bj2).round();
                if k != 0.0 {
                    let candidate = [b[i][0] - k * b[j][0], b[i][1] - k * b[j][1], b[i][2] - k * b[j][2]];
                    if shrinks(candidate, b[i]) {
                        b[i] = candidate;
                        changed = true;
                    }
                }
            }
        }
        let longest = (0..3).max_by(|&x, &y| dot(b[x], b[x]).total_cmp(&dot(b[y], b[y]))).unwrap_or(2);
        let (p, q) = ((longest + 1) % 3, (longest + 2) % 3);
        for (sp, sq) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
            let c = b[longest];
            let candidate = [
                c[0] + sp * b[p][0] + sq * b[q][0],
                c[1] + sp * b[p][1] + sq * b[q][1],
                c[2] + sp * b[p][2] + sq * b[q][2],
            ];
            if shrinks(candidate, b[longest]) {
                b[longest] = candidate;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_triclinic_cell() {
        let l = [[4.0, 0.1, -0.3], [1.2, 3.5, 0.2], [-0.7, 0.4, 6.1]];
        let inv = inverse(&l).unwrap();
        for (i, row) in l.iter().enumerate() {
            let back = vec_mat(*row, &inv);
            for (k, x) in back.iter().enumerate() {
                assert!((x - if i == k { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
        assert!(inverse(&[[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).is_none());
    }

    #[test]
    fn heights_of_orthorhombic_cell_are_lengths() {
        let h = heights(&[[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 5.0]]);
        assert_eq!(h, [3.0, 4.0, 5.0]);
    }

    #[test]
    fn reduction_recovers_cubic_basis_and_keeps_volume() {
        // Simple cubic lattice in a badly skewed unimodular basis.
        let l = [[1.0, 0.0, 0.0], [7.0, 1.0, 0.0], [-5.0, 3.0, 1.0]];
        let r = reduce(&l);
        assert!((determinant(&r).abs() - 1.0).abs() < 1e-12);
        for v in r {
            assert!((norm(v) - 1.0).abs() < 1e-12, "{v:?}");
        }
    }
}
