//! Wigner-3j symbols and Wigner-D matrices in e3nn's real basis.
//!
//! - [`wigner_3j`]`(l1, l2, l3)`: the real coupling tensor `C[m1][m2][m3]`
//!   (flattened row-major, dims `(2l1+1, 2l2+1, 2l3+1)`), Frobenius norm 1,
//!   equal to e3nn's `o3.wigner_3j`. It is invariant:
//!   `Σ D1[a][a'] D2[b][b'] D3[c][c'] C[a'][b'][c'] = C[a][b][c]` for every rotation.
//! - [`wigner_d`]`(l, R)`: the `(2l+1)×(2l+1)` matrix (row-major) with
//!   `Y_l(R v) = D_l(R) · Y_l(v)` for the spherical harmonics of
//!   [`super::spherical_harmonics()`].
//!
//! The 3j symbols start from the complex Clebsch–Gordan coefficients (Racah's
//! formula), move to the real basis with the unitary change of basis of the
//! real spherical harmonics (including the phase `(−i)^l` that makes the
//! result real), and are normalised. The D matrices are projections of the
//! rotated harmonics onto the harmonics, computed with a quadrature that is
//! exact for polynomials of the degree involved, so they need no Euler-angle
//! convention and hold for improper rotations too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::cartesian::Mat3;
use super::spherical_harmonics::spherical_harmonics;

/// Whether `(l1, l2, l3)` satisfies the triangle rule `|l1 − l2| ≤ l3 ≤ l1 + l2`.
pub fn triangle(l1: u32, l2: u32, l3: u32) -> bool {
    l1.abs_diff(l2) <= l3 && l3 <= l1 + l2
}

/// The real Wigner-3j symbol of e3nn, `C[m1][m2][m3]` flattened row-major
/// (index `((l1+m1)·(2l2+1) + (l2+m2))·(2l3+1) + (l3+m3)`), Frobenius norm 1.
/// Results are cached: repeated calls cost one copy.
///
/// # Panics
/// If the triangle rule fails (a programming error; check with [`triangle`]).
pub fn wigner_3j(l1: u32, l2: u32, l3: u32) -> Vec<f64> {
    wigner_3j_shared(l1, l2, l3).to_vec()
}

/// [`wigner_3j`] without the copy: the cached tensor itself.
pub fn wigner_3j_shared(l1: u32, l2: u32, l3: u32) -> Arc<[f64]> {
    assert!(triangle(l1, l2, l3), "wigner_3j({l1}, {l2}, {l3}) violates the triangle rule");
    type Cache = Mutex<HashMap<(u32, u32, u32), Arc<[f64]>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(&(l1, l2, l3)) {
        return c.clone();
    }
    let c: Arc<[f64]> = real_coupling(l1, l2, l3).into();
    cache.lock().unwrap().insert((l1, l2, l3), c.clone());
    c
}

/// A complex number, just enough for the change of basis.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const ZERO: Self = Self { re: 0.0, im: 0.0 };

    fn mul(self, o: Self) -> Self {
        Self { re: self.re * o.re - self.im * o.im, im: self.re * o.im + self.im * o.re }
    }

    fn conj(self) -> Self {
        Self { re: self.re, im: -self.im }
    }

    fn scale(self, s: f64) -> Self {
        Self { re: self.re * s, im: self.im * s }
    }
}

/// Unitary change of basis between the real harmonics (index `l + m`) and the
/// complex ones (index `l + μ`), `U[l + μ][l + m]`, as a `(2l+1)²` row-major
/// matrix. Row `μ` holds the real components `±|μ|` of the complex harmonic
/// `μ` (standard real form, with the factor `(−1)^μ` for `μ > 0`), all times
/// `(−i)^l` so that the coupling tensors come out real.
fn real_to_complex(l: u32) -> Vec<Complex> {
    let l = l as i64;
    let d = (2 * l + 1) as usize;
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let mut u = vec![Complex::ZERO; d * d];
    let at = |mu: i64, m: i64| ((l + mu) as usize) * d + (l + m) as usize;
    for mu in -l..=l {
        let a = mu.abs();
        if mu < 0 {
            u[at(mu, a)] = Complex { re: h, im: 0.0 };
            u[at(mu, -a)] = Complex { re: 0.0, im: -h };
        } else if mu == 0 {
            u[at(0, 0)] = Complex { re: 1.0, im: 0.0 };
        } else {
            let sign = if mu % 2 == 0 { 1.0 } else { -1.0 };
            u[at(mu, a)] = Complex { re: sign * h, im: 0.0 };
            u[at(mu, -a)] = Complex { re: 0.0, im: sign * h };
        }
    }
    // (−i)^l
    let phase = match l % 4 {
        0 => Complex { re: 1.0, im: 0.0 },
        1 => Complex { re: 0.0, im: -1.0 },
        2 => Complex { re: -1.0, im: 0.0 },
        _ => Complex { re: 0.0, im: 1.0 },
    };
    u.iter().map(|&z| phase.mul(z)).collect()
}

/// `n!` in floating point.
fn factorial(n: i64) -> f64 {
    (2..=n).map(|k| k as f64).product()
}

/// The complex Clebsch–Gordan coefficient `⟨l1 m1 l2 m2 | l3 m3⟩` by Racah's
/// formula (Condon–Shortley phase convention).
fn clebsch_gordan(l1: i64, m1: i64, l2: i64, m2: i64, l3: i64, m3: i64) -> f64 {
    if m1 + m2 != m3 || m1.abs() > l1 || m2.abs() > l2 || m3.abs() > l3 {
        return 0.0;
    }
    let prefactor =
        ((2 * l3 + 1) as f64 * factorial(l3 + l1 - l2) * factorial(l3 - l1 + l2) * factorial(l1 + l2 - l3)
            / factorial(l1 + l2 + l3 + 1))
        .sqrt()
            * (factorial(l3 + m3)
                * factorial(l3 - m3)
                * factorial(l1 - m1)
                * factorial(l1 + m1)
                * factorial(l2 - m2)
                * factorial(l2 + m2))
            .sqrt();
    // The sum runs over every k that keeps all factorial arguments ≥ 0.
    let k_min = 0.max(l2 - l3 - m1).max(l1 - l3 + m2);
    let k_max = (l1 + l2 - l3).min(l1 - m1).min(l2 + m2);
    let sum: f64 = (k_min..=k_max)
        .map(|k| {
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            sign / (factorial(k)
                * factorial(l1 + l2 - l3 - k)
                * factorial(l1 - m1 - k)
                * factorial(l2 + m2 - k)
                * factorial(l3 - l2 + m1 + k)
                * factorial(l3 - l1 - m2 + k))
        })
        .sum();
    prefactor * sum
}

/// The real coupling tensor: `Σ U1[μ1][a] U2[μ2][b] conj(U3[μ3][c]) ⟨μ1 μ2|μ3⟩`
/// over the complex indices, normalised to Frobenius norm 1.
fn real_coupling(l1: u32, l2: u32, l3: u32) -> Vec<f64> {
    let (d1, d2, d3) = (2 * l1 as usize + 1, 2 * l2 as usize + 1, 2 * l3 as usize + 1);
    let (u1, u2, u3) = (real_to_complex(l1), real_to_complex(l2), real_to_complex(l3));
    let (l1i, l2i, l3i) = (l1 as i64, l2 as i64, l3 as i64);
    let mut c = vec![Complex::ZERO; d1 * d2 * d3];
    for mu1 in -l1i..=l1i {
        for mu2 in -l2i..=l2i {
            let mu3 = mu1 + mu2;
            let cg = clebsch_gordan(l1i, mu1, l2i, mu2, l3i, mu3);
            if cg == 0.0 {
                continue;
            }
            let (r1, r2, r3) = ((l1i + mu1) as usize, (l2i + mu2) as usize, (l3i + mu3) as usize);
            for a in 0..d1 {
                let x1 = u1[r1 * d1 + a];
                if x1 == Complex::ZERO {
                    continue;
                }
                for b in 0..d2 {
                    let x12 = x1.mul(u2[r2 * d2 + b]);
                    if x12 == Complex::ZERO {
                        continue;
                    }
                    for (k, &x3) in u3[r3 * d3..(r3 + 1) * d3].iter().enumerate() {
                        let z = x12.mul(x3.conj()).scale(cg);
                        let entry = &mut c[(a * d2 + b) * d3 + k];
                        entry.re += z.re;
                        entry.im += z.im;
                    }
                }
            }
        }
    }
    debug_assert!(c.iter().all(|z| z.im.abs() < 1e-10), "coupling tensor must be real");
    let norm = c.iter().map(|z| z.re * z.re).sum::<f64>().sqrt();
    c.iter().map(|z| z.re / norm).collect()
}

/// Points and weights of a quadrature on the unit sphere that averages every
/// polynomial of degree ≤ `degree` exactly: `mean_S² f = Σ w f(p)` (weights
/// sum to 1). Gauss–Legendre nodes along the polar axis times equally spaced
/// azimuths.
pub(crate) fn sphere_quadrature(degree: u32) -> Vec<([f64; 3], f64)> {
    let n_polar = degree as usize / 2 + 1; // exact to degree 2n − 1
    let n_azimuth = degree as usize + 1; // exact for trigonometric degree < n
    let mut points = Vec::with_capacity(n_polar * n_azimuth);
    for (t, w) in gauss_legendre(n_polar) {
        let rho = (1.0 - t * t).sqrt();
        for k in 0..n_azimuth {
            let phi = std::f64::consts::TAU * k as f64 / n_azimuth as f64;
            points.push(([rho * phi.cos(), t, rho * phi.sin()], 0.5 * w / n_azimuth as f64));
        }
    }
    points
}

/// Nodes and weights of `n`-point Gauss–Legendre quadrature on [−1, 1]
/// (Newton's method on the Legendre polynomial from the standard guesses).
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                // P_n(x) and P_n'(x) by the three-term recurrence.
                let (mut p0, mut p1) = (1.0, x);
                for k in 2..=n {
                    (p0, p1) = (p1, ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64);
                }
                derivative = n as f64 * (x * p1 - p0) / (x * x - 1.0);
                let step = p1 / derivative;
                x -= step;
                if step.abs() < 1e-16 {
                    break;
                }
            }
            (x, 2.0 / ((1.0 - x * x) * derivative * derivative))
        })
        .collect()
}

/// The Wigner-D matrix of degree `l` for an orthogonal matrix `r`,
/// `(2l+1)×(2l+1)` row-major, such that `Y_l(r v) = D · Y_l(v)` for all `v`.
///
/// For a proper rotation this is e3nn's `D_from_matrix` of `Irrep(l, ±)`. For
/// an improper `r` (determinant −1) it includes the parity of the harmonics,
/// `(−1)^l D_l(−r)`; use [`super::Irrep::d_from_matrix`] for an irrep of a
/// given parity.
pub fn wigner_d(l: u32, r: &Mat3) -> Vec<f64> {
    let d = 2 * l as usize + 1;
    let offset = (l * l) as usize;
    // D[i][j] = mean over the sphere of Y_li(r v) Y_lj(v): a polynomial of degree 2l.
    let mut out = vec![0.0; d * d];
    for (v, w) in sphere_quadrature(2 * l) {
        let rv = super::rotation::apply(r, v);
        let y = spherical_harmonics(l, v);
        let y_rot = spherical_harmonics(l, rv);
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] += w * y_rot[offset + i] * y[offset + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cartesian::CHANGE_OF_BASIS;
    use crate::fixtures;
    use crate::rotation::{apply, random_rotations};

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn wigner_3j_matches_e3nn_fixture() {
        let Some(fx) = fixtures::load("e3nn_wigner_3j.json") else { return };
        let table = fx["wigner_3j"].as_object().unwrap();
        assert!(table.len() > 60);
        let mut max_err = 0.0f64;
        for (key, value) in table {
            let l: Vec<u32> = key.split(',').map(|s| s.parse().unwrap()).collect();
            let want = fixtures::flatten(value);
            let err = max_abs_diff(&wigner_3j(l[0], l[1], l[2]), &want);
            assert!(err < 1e-10, "wigner_3j({key}): max error {err}");
            max_err = max_err.max(err);
        }
        eprintln!("wigner_3j: max |error| vs e3nn = {max_err:.3e}");
    }

    #[test]
    fn wigner_d_matches_e3nn_fixture() {
        let Some(fx) = fixtures::load("e3nn_wigner_D.json") else { return };
        let mut max_err = 0.0f64;
        for (k, rot) in fx["rotations"].as_array().unwrap().iter().enumerate() {
            let flat = fixtures::flatten(rot);
            let r: Mat3 = [0, 1, 2].map(|i| [0, 1, 2].map(|j| flat[3 * i + j]));
            for l in 0..=4u32 {
                let want = fixtures::flatten(&fx["D"][l.to_string()][k]);
                let err = max_abs_diff(&wigner_d(l, &r), &want);
                assert!(err < 1e-10, "rotation {k}, l {l}: max error {err}");
                max_err = max_err.max(err);
            }
        }
        eprintln!("wigner_d: max |error| vs e3nn = {max_err:.3e}");
    }

    #[test]
    fn harmonics_rotate_with_wigner_d_also_with_inversion() {
        let lmax = 8;
        let vectors = [[0.3, -0.8, 1.1], [-1.0, 0.2, 0.05], [0.0, 0.0, 2.0]];
        for (k, rot) in random_rotations(5, 4).iter().enumerate() {
            // Every other matrix includes the inversion.
            let r = if k % 2 == 0 { *rot } else { rot.map(|row| row.map(|c| -c)) };
            for l in 0..=lmax {
                let d = wigner_d(l, &r);
                let n = 2 * l as usize + 1;
                for v in vectors {
                    let y = &spherical_harmonics(l, v)[(l * l) as usize..];
                    let y_rot = &spherical_harmonics(l, apply(&r, v))[(l * l) as usize..];
                    for i in 0..n {
                        let dy: f64 = (0..n).map(|j| d[i * n + j] * y[j]).sum();
                        assert!((dy - y_rot[i]).abs() < 1e-11, "l {l}, rotation {k}: {dy} vs {}", y_rot[i]);
                    }
                }
            }
        }
        // Pure inversion: D = (−1)^l · identity.
        let inversion = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]];
        for l in 0..=4u32 {
            let d = wigner_d(l, &inversion);
            let n = 2 * l as usize + 1;
            let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j { sign } else { 0.0 };
                    assert!((d[i * n + j] - want).abs() < 1e-13);
                }
            }
        }
    }

    #[test]
    fn wigner_3j_is_invariant_and_normalised() {
        let rotations = random_rotations(9, 2);
        for l1 in 0..=5u32 {
            for l2 in 0..=5u32 {
                for l3 in l1.abs_diff(l2)..=(l1 + l2).min(6) {
                    let c = wigner_3j(l1, l2, l3);
                    let norm: f64 = c.iter().map(|x| x * x).sum();
                    assert!((norm - 1.0).abs() < 1e-12);
                    for r in &rotations {
                        let rotated = rotate_3j(&c, [l1, l2, l3], r);
                        let err = max_abs_diff(&rotated, &c);
                        assert!(err < 1e-11, "({l1}, {l2}, {l3}): {err}");
                    }
                }
            }
        }
    }

    /// `Σ D1[a][a'] D2[b][b'] D3[c][c'] C[a'][b'][c']`, one index at a time.
    fn rotate_3j(c: &[f64], l: [u32; 3], r: &Mat3) -> Vec<f64> {
        let dims = l.map(|l| 2 * l as usize + 1);
        let mut t = c.to_vec();
        for axis in 0..3 {
            let d = wigner_d(l[axis], r);
            let n = dims[axis];
            let (outer, inner): (usize, usize) =
                (dims[..axis].iter().product(), dims[axis + 1..].iter().product());
            let mut next = vec![0.0; t.len()];
            for o in 0..outer {
                for i in 0..n {
                    for j in 0..n {
                        for k in 0..inner {
                            next[(o * n + i) * inner + k] += d[i * n + j] * t[(o * n + j) * inner + k];
                        }
                    }
                }
            }
            t = next;
        }
        t
    }

    /// The symmetric-tensor change of basis is the coupling of two vectors:
    /// `Q[k][i][j] = s · C(1, 1, l)[i][j][k]` for l = 0 (k = 0) and l = 2
    /// (k = 1..6), with one constant `s` per l (sign and normalisation).
    #[test]
    fn cartesian_change_of_basis_agrees_with_wigner_3j() {
        for (l, first_k) in [(0u32, 0usize), (2, 1)] {
            let c = wigner_3j(1, 1, l);
            let n = 2 * l as usize + 1;
            let c_at = |ij: usize, k: usize| c[ij * n + k];
            let entries =
                |k: usize| (0..9).map(move |ij| (CHANGE_OF_BASIS[first_k + k][ij / 3][ij % 3], c_at(ij, k)));
            let (q0, c0) = (0..n).flat_map(entries).find(|(q, _)| q.abs() > 0.1).unwrap();
            let s = q0 / c0;
            // Each Q[k] has norm 1; C spreads norm 1 over its 2l + 1 columns.
            assert!((s.abs() - (n as f64).sqrt()).abs() < 1e-12, "l {l}: scale {s}");
            for k in 0..n {
                for (q, c) in entries(k) {
                    assert!((s * c - q).abs() < 1e-12, "l {l}, k {k}: {} vs {q}", s * c);
                }
            }
        }
    }
}
