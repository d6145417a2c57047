//! Real spherical harmonics in e3nn's basis and normalisation.
//!
//! `Y_l(v)` has `2l + 1` components `m = -l..=l`; all degrees `l ≤ lmax` are
//! written back to back, so component `(l, m)` sits at index `l² + l + m` of a
//! vector of length `(lmax + 1)²` — the layout of e3nn's
//! `o3.spherical_harmonics(range(lmax + 1), v, normalize=True,
//! normalization="component")`, i.e. irreps `1x0e+1x1o+1x2e+…`.
//!
//! Conventions (those of e3nn 0.6):
//! - the input is normalised first (`v / max(|v|, 1e-12)`), so only the
//!   direction matters, and the zero vector gives `Y_0 = 1`, `Y_l>0 = 0`;
//! - the polar axis is **y** and the azimuth runs from **z** towards **x**:
//!   these are the textbook real harmonics (no Condon–Shortley phase) of the
//!   relabelled coordinates `(X, Y, Z) = (z, x, y)`, so `Y_1 = √3 (x, y, z)`
//!   and `Y_2 = √15 (xz, xy, (2y² − x² − z²)/(2√3), yz, (z² − x²)/2)`;
//! - component normalisation: `Σ_m Y_lm(v)² = 2l + 1` for `v ≠ 0`.
//!
//! Values come from the three-term recurrence of the associated Legendre
//! polynomials written as solid harmonics (polynomials in the components of the
//! unit vector), with the normalisation folded into the recurrence
//! coefficients so every intermediate stays of order one.

use std::sync::OnceLock;

use super::Real;

/// Largest degree supported (the coefficient table is built once up to it).
pub const MAX_L: u32 = 20;

/// Number of components of all degrees `0..=lmax`: `(lmax + 1)²`.
pub const fn sh_dim(lmax: u32) -> usize {
    let n = lmax as usize + 1;
    n * n
}

/// Recurrence coefficients `(a, b)` for each `(l, m ≥ 0)` at index
/// `l(l + 1)/2 + m`, acting on the normalised Legendre part
/// `Q_l^m = N_lm · P̃_l^m` (a polynomial in `Z` and `r²`):
/// - `l = m`:      `Q_m^m = a` (a constant),
/// - `l = m + 1`:  `Q_l^m = a · Z · Q_m^m`,
/// - otherwise:    `Q_l^m = a · Z · Q_{l-1}^m − b · r² · Q_{l-2}^m`.
fn recurrence_table() -> &'static [(f64, f64)] {
    static TABLE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // N_lm = sqrt((2l + 1)(2 − δ_m0)(l − m)!/(l + m)!): component normalisation.
        let norm = |l: u32, m: u32| {
            let ratio: f64 = (l - m + 1..=l + m).map(|k| 1.0 / k as f64).product();
            ((2 * l + 1) as f64 * if m == 0 { 1.0 } else { 2.0 } * ratio).sqrt()
        };
        let mut table = Vec::with_capacity(sh_dim(MAX_L));
        for l in 0..=MAX_L {
            for m in 0..=l {
                let (lf, mf) = (l as f64, m as f64);
                let coefficients = if l == m {
                    // P̃_m^m = (2m − 1)!! (times Re/Im (X + iY)^m, applied later).
                    let double_factorial: f64 = (1..=m).map(|k| (2 * k - 1) as f64).product();
                    (norm(m, m) * double_factorial, 0.0)
                } else if l == m + 1 {
                    ((2.0 * mf + 1.0) * norm(l, m) / norm(m, m), 0.0)
                } else {
                    let a = (2.0 * lf - 1.0) / (lf - mf) * norm(l, m) / norm(l - 1, m);
                    let b = (lf + mf - 1.0) / (lf - mf) * norm(l, m) / norm(l - 2, m);
                    (a, b)
                };
                table.push(coefficients);
            }
        }
        table
    })
}

/// Writes `Y_l(v)` for every `l ≤ lmax` into `out` (length `(lmax + 1)²`,
/// component `(l, m)` at index `l² + l + m`). `v = [x, y, z]` need not be
/// normalised.
///
/// # Panics
/// If `lmax > MAX_L` or `out.len() != (lmax + 1)²` (programming errors).
pub fn spherical_harmonics_into<T: Real>(lmax: u32, v: [T; 3], out: &mut [T]) {
    assert!(lmax <= MAX_L, "spherical harmonics support l ≤ {MAX_L}, got lmax = {lmax}");
    assert_eq!(out.len(), sh_dim(lmax), "output length must be (lmax + 1)²");
    let table = recurrence_table();

    // Normalise like torch.nn.functional.normalize (eps 1e-12).
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let eps = T::from_f64(1e-12);
    let inv = T::ONE / if norm > eps { norm } else { eps };
    // Relabelled axes: polar axis Z = y, azimuth from X = z towards Y = x.
    let (x, y, z) = (v[2] * inv, v[0] * inv, v[1] * inv);
    let r2 = x * x + y * y + z * z; // 1, or 0 for the zero vector

    // (c, s) = Re, Im of (X + iY)^m.
    let (mut c, mut s) = (T::ONE, T::ZERO);
    for m in 0..=lmax as usize {
        if m > 0 {
            (c, s) = (x * c - y * s, x * s + y * c);
        }
        let mut q_prev = T::ZERO; // Q_{l-2}^m
        let mut q = T::ZERO; // Q_{l-1}^m
        for l in m..=lmax as usize {
            let (a, b) = table[l * (l + 1) / 2 + m];
            let q_next = if l == m {
                T::from_f64(a)
            } else if l == m + 1 {
                T::from_f64(a) * z * q
            } else {
                T::from_f64(a) * z * q - T::from_f64(b) * r2 * q_prev
            };
            (q_prev, q) = (q, q_next);
            let centre = l * l + l;
            if m == 0 {
                out[centre] = q;
            } else {
                out[centre + m] = q * c;
                out[centre - m] = q * s;
            }
        }
    }
}

/// `Y_l(v)` for every `l ≤ lmax` as a new vector of length `(lmax + 1)²`.
pub fn spherical_harmonics<T: Real>(lmax: u32, v: [T; 3]) -> Vec<T> {
    let mut out = vec![T::ZERO; sh_dim(lmax)];
    spherical_harmonics_into(lmax, v, &mut out);
    out
}

/// Spherical harmonics of many vectors (e.g. one per edge) into `out`, shape
/// `(vectors.len(), (lmax + 1)²)` row-major.
///
/// # Panics
/// If `out.len() != vectors.len() · (lmax + 1)²` or `lmax > MAX_L`.
pub fn spherical_harmonics_batch_into<T: Real>(lmax: u32, vectors: &[[T; 3]], out: &mut [T]) {
    let dim = sh_dim(lmax);
    assert_eq!(out.len(), vectors.len() * dim, "output length must be vectors × (lmax + 1)²");
    for (v, row) in vectors.iter().zip(out.chunks_exact_mut(dim)) {
        spherical_harmonics_into(lmax, *v, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_e3nn_fixture() {
        let Some(fx) = fixtures::load("e3nn_spherical_harmonics.json") else { return };
        let vectors = fx["vectors"].as_array().unwrap();
        let mut max_err = 0.0f64;
        for (i, v) in vectors.iter().enumerate() {
            let v = [v[0].as_f64().unwrap(), v[1].as_f64().unwrap(), v[2].as_f64().unwrap()];
            let y = spherical_harmonics(4, v);
            let y32 = spherical_harmonics(4, v.map(|c| c as f32));
            for l in 0..=4usize {
                let want = fixtures::flatten(&fx["spherical_harmonics"][l.to_string()][i]);
                for (m, w) in want.iter().enumerate() {
                    let got = y[l * l + m];
                    max_err = max_err.max((got - w).abs());
                    assert!((got - w).abs() < 1e-10, "vector {i}, l {l}, m {m}: {got} vs {w}");
                    let got32 = y32[l * l + m] as f64;
                    assert!((got32 - w).abs() < 1e-5, "f32: vector {i}, l {l}, m {m}: {got32} vs {w}");
                }
            }
        }
        eprintln!("spherical harmonics: max |error| vs e3nn = {max_err:.3e}");
    }

    #[test]
    fn zero_vector_is_constant() {
        let y = spherical_harmonics(6, [0.0f64; 3]);
        assert_eq!(y[0], 1.0);
        assert!(y[1..].iter().all(|&c| c == 0.0));
    }

    #[test]
    fn component_normalisation_and_parity() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let v: [f64; 3] = [rng.gen_range(-2.0..2.0), rng.gen_range(-2.0..2.0), rng.gen_range(-2.0..2.0)];
            let y = spherical_harmonics(MAX_L, v);
            let y_neg = spherical_harmonics(MAX_L, v.map(|c| -c));
            for l in 0..=MAX_L as usize {
                let block = &y[l * l..(l + 1) * (l + 1)];
                let sum: f64 = block.iter().map(|c| c * c).sum();
                assert!((sum - (2 * l + 1) as f64).abs() < 1e-9 * (2 * l + 1) as f64, "l {l}: {sum}");
                let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
                for (a, b) in block.iter().zip(&y_neg[l * l..(l + 1) * (l + 1)]) {
                    assert!((a * sign - b).abs() < 1e-10);
                }
            }
        }
    }

    /// Orthogonality on the sphere: (1/N) Σ_v Y_lm(v) Y_l'm'(v) → δ δ, checked
    /// with an exact product quadrature (Gauss–Legendre in y, uniform in angle).
    #[test]
    fn orthonormal_under_quadrature() {
        let lmax = 8u32;
        let dim = sh_dim(lmax);
        let mut gram = vec![0.0; dim * dim];
        for (point, weight) in crate::wigner::sphere_quadrature(2 * lmax) {
            let y = spherical_harmonics(lmax, point);
            for i in 0..dim {
                for j in 0..dim {
                    gram[i * dim + j] += weight * y[i] * y[j];
                }
            }
        }
        for i in 0..dim {
            for j in 0..dim {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((gram[i * dim + j] - want).abs() < 1e-12, "({i}, {j}): {}", gram[i * dim + j]);
            }
        }
    }

    #[test]
    fn f32_agrees_with_f64() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let v: [f64; 3] = [rng.gen_range(-6.0..6.0), rng.gen_range(-6.0..6.0), rng.gen_range(-6.0..6.0)];
            let y64 = spherical_harmonics(8, v);
            let y32 = spherical_harmonics(8, v.map(|c| c as f32));
            for (a, b) in y64.iter().zip(&y32) {
                assert!((a - *b as f64).abs() < 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn batch_matches_single() {
        let vectors = [[0.3f32, -1.0, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]];
        let mut out = vec![0.0f32; 3 * sh_dim(3)];
        spherical_harmonics_batch_into(3, &vectors, &mut out);
        for (v, row) in vectors.iter().zip(out.chunks(sh_dim(3))) {
            assert_eq!(row, spherical_harmonics(3, *v).as_slice());
        }
    }
}
