//! Dense linear algebra for the Gaussian process: Cholesky factors and
//! triangular solves of the (at most a few hundred square) kernel matrix.
//!
//! Written out rather than taken from a crate on purpose: every operation
//! runs in one fixed order of plain `f64` arithmetic, so a study's
//! proposals are bit-identical on every machine. BLAS-backed crates, and
//! `faer` with its run-time SIMD dispatch, change the summation order with
//! the CPU (AVX2 against AVX-512), and so the last bits of a fit, which the
//! acquisition's argmax can amplify into another proposal. At these sizes
//! (n ≤ a few hundred trials) a factorisation costs well under a
//! millisecond, so nothing is lost.

/// A square matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub n: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(n: usize) -> Self {
        Self { n, data: vec![0.0; n * n] }
    }

    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.n + j]
    }

    #[inline]
    pub fn set(&mut self, i: usize, j: usize, value: f64) {
        self.data[i * self.n + j] = value;
    }
}

/// The lower Cholesky factor L of a symmetric positive-definite `a`
/// (A = L·Lᵀ); `None` when `a` is not positive definite in floating point.
pub fn cholesky(a: &Matrix) -> Option<Matrix> {
    let n = a.n;
    let mut l = Matrix::zeros(n);
    for i in 0..n {
        for j in 0..=i {
            let (ri, rj) = (&l.data[i * n..i * n + j], &l.data[j * n..j * n + j]);
            let dot: f64 = ri.iter().zip(rj).map(|(x, y)| x * y).sum();
            let s = a.at(i, j) - dot;
            if i == j {
                if !s.is_finite() || s <= 0.0 {
                    return None;
                }
                l.set(i, i, s.sqrt());
            } else {
                l.set(i, j, s / l.at(j, j));
            }
        }
    }
    Some(l)
}

/// Solves L·x = b for lower-triangular `l`, in place.
pub fn solve_lower(l: &Matrix, b: &mut [f64]) {
    let n = l.n;
    for i in 0..n {
        let row = &l.data[i * n..i * n + i];
        let dot: f64 = row.iter().zip(&b[..i]).map(|(x, y)| x * y).sum();
        b[i] = (b[i] - dot) / l.data[i * n + i];
    }
}

/// Solves Lᵀ·x = b for lower-triangular `l`, in place.
pub fn solve_upper_transposed(l: &Matrix, b: &mut [f64]) {
    let n = l.n;
    for i in (0..n).rev() {
        b[i] /= l.data[i * n + i];
        let bi = b[i];
        let row = &l.data[i * n..i * n + i];
        for (bj, lij) in b[..i].iter_mut().zip(row) {
            *bj -= lij * bi;
        }
    }
}

/// Solves (L·Lᵀ)·x = b, in place.
pub fn solve_cholesky(l: &Matrix, b: &mut [f64]) {
    solve_lower(l, b);
    solve_upper_transposed(l, b);
}

/// (L·Lᵀ)⁻¹, the inverse of the factorised matrix (symmetric).
pub fn inverse_from_cholesky(l: &Matrix) -> Matrix {
    let n = l.n;
    // W = L⁻¹ (lower), column by column; then A⁻¹ = Wᵀ·W.
    let mut w = Matrix::zeros(n);
    let mut column = vec![0.0; n];
    for j in 0..n {
        column.iter_mut().for_each(|c| *c = 0.0);
        column[j] = 1.0;
        solve_lower(l, &mut column);
        for (i, &value) in column.iter().enumerate().skip(j) {
            w.set(i, j, value);
        }
    }
    let mut inv = Matrix::zeros(n);
    for i in 0..n {
        for j in 0..=i {
            // Σ_k W[k,i]·W[k,j] over k ≥ max(i, j) = i.
            let s: f64 = (i..n).map(|k| w.at(k, i) * w.at(k, j)).sum();
            inv.set(i, j, s);
            inv.set(j, i, s);
        }
    }
    inv
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Matrix {
        // A = B·Bᵀ + I for a fixed B: symmetric positive definite.
        let b = [[1.0, 2.0, 0.5], [0.0, 1.0, -1.0], [3.0, 0.2, 1.0]];
        let mut a = Matrix::zeros(3);
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| b[i][k] * b[j][k]).sum();
                a.set(i, j, s + f64::from(u8::from(i == j)));
            }
        }
        a
    }

    #[test]
    fn cholesky_solves_and_inverts() {
        let a = example();
        let l = cholesky(&a).unwrap();
        let mut x = vec![1.0, -2.0, 0.5];
        solve_cholesky(&l, &mut x);
        for i in 0..3 {
            let ax: f64 = (0..3).map(|j| a.at(i, j) * x[j]).sum();
            assert!((ax - [1.0, -2.0, 0.5][i]).abs() < 1e-12);
        }
        let inv = inverse_from_cholesky(&l);
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| a.at(i, k) * inv.at(k, j)).sum();
                assert!((s - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        let mut singular = Matrix::zeros(2);
        singular.data = vec![1.0, 1.0, 1.0, 1.0];
        assert!(cholesky(&singular).is_none());
    }
}
