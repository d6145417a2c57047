//! Irreducible representations of O(3) and direct sums of them, written as in
//! e3nn: `"16x0e+8x1o"`.
//!
//! An [`Irrep`] is a degree `l` (dimension `2l + 1`) and a [`Parity`]: how the
//! components change under inversion (`e`: unchanged, `o`: sign flip). A
//! feature vector of [`Irreps`] `"4x0e+2x1o"` holds `4·1 + 2·3 = 10` numbers:
//! the blocks in order, each block `mul` copies of the irrep back to back
//! (`[copy][m]`, row-major), exactly as in e3nn.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::cartesian::Mat3;

/// Behaviour under inversion: even (`e`, `+1`) or odd (`o`, `−1`).
///
/// Ordered `Odd < Even`, as e3nn's `p = −1 < p = +1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parity {
    Odd,
    Even,
}

impl Parity {
    /// `+1` for even, `−1` for odd.
    pub fn sign(self) -> i32 {
        match self {
            Parity::Even => 1,
            Parity::Odd => -1,
        }
    }

    /// The parity `(−1)^l` of the spherical harmonics of degree `l`.
    pub fn of_harmonic(l: u32) -> Parity {
        if l.is_multiple_of(2) {
            Parity::Even
        } else {
            Parity::Odd
        }
    }

    fn letter(self) -> char {
        match self {
            Parity::Even => 'e',
            Parity::Odd => 'o',
        }
    }
}

impl std::ops::Mul for Parity {
    type Output = Parity;
    fn mul(self, other: Parity) -> Parity {
        if self == other {
            Parity::Even
        } else {
            Parity::Odd
        }
    }
}

/// One irreducible representation of O(3): degree `l`, parity `p`.
///
/// Ordered by `(l, p)` with odd before even, which is e3nn's sort order
/// (`"0o" < "0e" < "1o" < "1e"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Irrep {
    pub l: u32,
    pub p: Parity,
}

impl Irrep {
    pub const fn new(l: u32, p: Parity) -> Self {
        Self { l, p }
    }

    /// The irrep of the degree-`l` spherical harmonics, parity `(−1)^l`
    /// (`0e, 1o, 2e, …`).
    pub fn spherical_harmonic(l: u32) -> Self {
        Self::new(l, Parity::of_harmonic(l))
    }

    /// Number of components, `2l + 1`.
    pub fn dim(self) -> usize {
        2 * self.l as usize + 1
    }

    /// Whether this is the invariant scalar `0e`.
    pub fn is_scalar(self) -> bool {
        self.l == 0 && self.p == Parity::Even
    }

    /// The irreps in the tensor product `self ⊗ other`: degrees
    /// `|l1 − l2| ..= l1 + l2` in increasing order, parity `p1 · p2`.
    pub fn tensor_product(self, other: Irrep) -> impl Iterator<Item = Irrep> {
        let p = self.p * other.p;
        (self.l.abs_diff(other.l)..=self.l + other.l).map(move |l| Irrep::new(l, p))
    }

    /// The representation matrix of this irrep for an orthogonal 3×3 matrix
    /// `r`, `(2l+1)×(2l+1)` row-major, as e3nn's `Irrep.D_from_matrix`: the
    /// Wigner-D matrix of the rotation `det(r)·r`, times the parity sign when
    /// `r` includes the inversion.
    pub fn d_from_matrix(self, r: &Mat3) -> Vec<f64> {
        let improper = super::rotation::det(r) < 0.0;
        let rotation = if improper { r.map(|row| row.map(|c| -c)) } else { *r };
        let mut d = super::wigner::wigner_d(self.l, &rotation);
        if improper && self.p == Parity::Odd {
            d.iter_mut().for_each(|c| *c = -*c);
        }
        d
    }
}

impl fmt::Display for Irrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.l, self.p.letter())
    }
}

/// `ir1 * ir2`: the irreps of the tensor product, one copy each
/// (`1o * 1o = 1x0e+1x1e+1x2e`).
impl std::ops::Mul for Irrep {
    type Output = Irreps;
    fn mul(self, other: Irrep) -> Irreps {
        Irreps(self.tensor_product(other).map(|ir| MulIr::new(1, ir)).collect())
    }
}

/// `mul` copies of one irrep: a block of `mul · (2l + 1)` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MulIr {
    pub mul: usize,
    pub ir: Irrep,
}

impl MulIr {
    pub const fn new(mul: usize, ir: Irrep) -> Self {
        Self { mul, ir }
    }

    /// Number of components of the block, `mul · (2l + 1)`.
    pub fn dim(self) -> usize {
        self.mul * self.ir.dim()
    }
}

impl fmt::Display for MulIr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.mul, self.ir)
    }
}

/// A direct sum of irreps, in order: e3nn's `Irreps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Irreps(pub Vec<MulIr>);

/// The result of [`Irreps::sort`]: the sorted irreps and the permutation of
/// the blocks, `p[old] = new` and `inv[new] = old` (e3nn's `(irreps, p, inv)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortedIrreps {
    pub irreps: Irreps,
    pub p: Vec<usize>,
    pub inv: Vec<usize>,
}

impl Irreps {
    pub fn new(blocks: Vec<MulIr>) -> Self {
        Self(blocks)
    }

    /// The irreps `1x0e+1x1o+1x2e+…` of the spherical harmonics `l ≤ lmax`.
    pub fn spherical_harmonics(lmax: u32) -> Self {
        Self((0..=lmax).map(|l| MulIr::new(1, Irrep::spherical_harmonic(l))).collect())
    }

    /// Total number of components, `Σ mul · (2l + 1)`.
    pub fn dim(&self) -> usize {
        self.0.iter().map(|b| b.dim()).sum()
    }

    /// Total number of irreps, `Σ mul`.
    pub fn num_irreps(&self) -> usize {
        self.0.iter().map(|b| b.mul).sum()
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, MulIr> {
        self.0.iter()
    }

    /// Largest degree present, `None` when empty.
    pub fn lmax(&self) -> Option<u32> {
        self.0.iter().map(|b| b.ir.l).max()
    }

    /// Total multiplicity of `ir` over all blocks.
    pub fn count(&self, ir: Irrep) -> usize {
        self.0.iter().filter(|b| b.ir == ir).map(|b| b.mul).sum()
    }

    /// Start of each block in a feature vector.
    pub fn offsets(&self) -> Vec<usize> {
        let mut at = 0;
        self.0
            .iter()
            .map(|block| {
                let start = at;
                at += block.dim();
                start
            })
            .collect()
    }

    /// The component range of each block in a feature vector.
    pub fn slices(&self) -> Vec<Range<usize>> {
        self.offsets().into_iter().zip(&self.0).map(|(start, block)| start..start + block.dim()).collect()
    }

    /// Merges neighbouring blocks of the same irrep and drops empty blocks,
    /// as e3nn's `simplify` (`"1e+1e+0e+1e"` → `"2x1e+1x0e+1x1e"`). Does not
    /// reorder: use [`Irreps::regroup`] for that.
    pub fn simplify(&self) -> Irreps {
        let mut out: Vec<MulIr> = Vec::with_capacity(self.0.len());
        for block in &self.0 {
            match out.last_mut() {
                Some(last) if last.ir == block.ir => last.mul += block.mul,
                _ if block.mul > 0 => out.push(*block),
                _ => {}
            }
        }
        Irreps(out)
    }

    /// Sorts the blocks by irrep (stable: ties keep their order), as e3nn's
    /// `sort`: by `l`, then odd before even.
    pub fn sort(&self) -> SortedIrreps {
        let mut inv: Vec<usize> = (0..self.0.len()).collect();
        inv.sort_by_key(|&i| (self.0[i].ir, i));
        let mut p = vec![0; inv.len()];
        for (new, &old) in inv.iter().enumerate() {
            p[old] = new;
        }
        SortedIrreps { irreps: Irreps(inv.iter().map(|&i| self.0[i]).collect()), p, inv }
    }

    /// Sorted, then simplified: one block per distinct irrep.
    pub fn regroup(&self) -> Irreps {
        self.sort().irreps.simplify()
    }

    /// The blocks for which `keep` holds, in order.
    pub fn filter(&self, keep: impl Fn(&MulIr) -> bool) -> Irreps {
        Irreps(self.0.iter().filter(|b| keep(b)).copied().collect())
    }

    /// The block-diagonal representation matrix of an orthogonal 3×3 matrix,
    /// `dim × dim` row-major (each copy of each irrep gets its
    /// [`Irrep::d_from_matrix`]).
    pub fn d_from_matrix(&self, r: &Mat3) -> Vec<f64> {
        let dim = self.dim();
        let mut out = vec![0.0; dim * dim];
        let mut at = 0;
        for block in &self.0 {
            let d = block.ir.d_from_matrix(r);
            let n = block.ir.dim();
            for _ in 0..block.mul {
                for i in 0..n {
                    out[(at + i) * dim + at..(at + i) * dim + at + n].copy_from_slice(&d[i * n..(i + 1) * n]);
                }
                at += n;
            }
        }
        out
    }

    /// Applies the representation of `r` to feature rows: `features` has shape
    /// `(rows, dim)` row-major; returns `x ↦ D(r) x` for every row.
    pub fn transform(&self, r: &Mat3, features: &[f64]) -> Vec<f64> {
        let dim = self.dim();
        if dim == 0 {
            return Vec::new();
        }
        assert_eq!(features.len() % dim, 0, "features must have shape (rows, {dim})");
        let mut out = vec![0.0; features.len()];
        let blocks: Vec<(Vec<f64>, usize, usize)> =
            self.0.iter().map(|b| (b.ir.d_from_matrix(r), b.ir.dim(), b.mul)).collect();
        for (x, y) in features.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let mut at = 0;
            for (d, n, mul) in &blocks {
                for _ in 0..*mul {
                    for i in 0..*n {
                        y[at + i] = (0..*n).map(|j| d[i * n + j] * x[at + j]).sum();
                    }
                    at += n;
                }
            }
        }
        out
    }
}

impl std::ops::Index<usize> for Irreps {
    type Output = MulIr;
    fn index(&self, i: usize) -> &MulIr {
        &self.0[i]
    }
}

impl<'a> IntoIterator for &'a Irreps {
    type Item = &'a MulIr;
    type IntoIter = std::slice::Iter<'a, MulIr>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<MulIr> for Irreps {
    fn from_iter<I: IntoIterator<Item = MulIr>>(iter: I) -> Self {
        Irreps(iter.into_iter().collect())
    }
}

impl From<Irrep> for Irreps {
    fn from(ir: Irrep) -> Self {
        Irreps(vec![MulIr::new(1, ir)])
    }
}

/// Concatenation, as e3nn's `irreps1 + irreps2`.
impl std::ops::Add for Irreps {
    type Output = Irreps;
    fn add(mut self, other: Irreps) -> Irreps {
        self.0.extend(other.0);
        self
    }
}

/// e3nn's string form, `"16x0e+8x1o"` (every block with its multiplicity; the
/// empty sum is `""`).
impl fmt::Display for Irreps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, block) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{block}")?;
        }
        Ok(())
    }
}

/// Why a string is not valid irreps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid irreps \"{input}\": {problem}; write blocks like \"16x0e\" or \"1o\" (degree, then e = even, \
     o = odd, y = (-1)^l) joined by '+', e.g. \"16x0e+8x1o\""
)]
pub struct ParseIrrepsError {
    /// The whole string given.
    pub input: String,
    /// What is wrong, naming the offending term.
    pub problem: String,
}

fn parse_irrep(text: &str) -> Result<Irrep, String> {
    let text = text.trim();
    let Some(letter) = text.chars().last() else { return Err("the irrep is missing".into()) };
    let degree = text[..text.len() - letter.len_utf8()].trim();
    let l: u32 = degree.parse().map_err(|_| format!("degree \"{degree}\" is not a non-negative integer"))?;
    let p = match letter {
        'e' => Parity::Even,
        'o' => Parity::Odd,
        'y' => Parity::of_harmonic(l),
        other => return Err(format!("parity '{other}' is not e, o or y")),
    };
    Ok(Irrep::new(l, p))
}

impl FromStr for Irrep {
    type Err = ParseIrrepsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_irrep(s).map_err(|problem| ParseIrrepsError { input: s.into(), problem })
    }
}

/// Parses e3nn's string form: blocks `"<mul>x<l><p>"` or `"<l><p>"` (mul 1)
/// joined by `+`, whitespace anywhere between tokens; `""` is the empty sum.
impl FromStr for Irreps {
    type Err = ParseIrrepsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(Irreps::default());
        }
        let error = |problem: String| ParseIrrepsError { input: s.into(), problem };
        s.split('+')
            .enumerate()
            .map(|(k, term)| {
                let term = term.trim();
                if term.is_empty() {
                    return Err(error(format!("term {} is empty (a stray '+')", k + 1)));
                }
                let (mul, ir) = match term.split_once('x') {
                    Some((mul, ir)) => {
                        let mul = mul.trim().parse::<usize>().map_err(|_| {
                            error(format!(
                                "in \"{term}\", multiplicity \"{}\" is not a non-negative integer",
                                mul.trim()
                            ))
                        })?;
                        (mul, ir)
                    }
                    None => (1, term),
                };
                let ir = parse_irrep(ir).map_err(|problem| error(format!("in \"{term}\", {problem}")))?;
                Ok(MulIr::new(mul, ir))
            })
            .collect()
    }
}

impl serde::Serialize for Irreps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Irreps {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::rotation::{apply, random_rotations};
    use crate::spherical_harmonics::spherical_harmonics;

    fn irreps(s: &str) -> Irreps {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_e3nn_strings() {
        let x = irreps("16x0e+8x1o");
        assert_eq!(
            x.0,
            vec![MulIr::new(16, Irrep::new(0, Parity::Even)), MulIr::new(8, Irrep::new(1, Parity::Odd))]
        );
        assert_eq!(x.to_string(), "16x0e+8x1o");
        assert_eq!(irreps("0e").to_string(), "1x0e");
        assert_eq!(irreps(" 2x1e + 3 x 2o+ 0e ").to_string(), "2x1e+3x2o+1x0e");
        assert_eq!(irreps("1y+2y+0x3y").to_string(), "1x1o+1x2e+0x3o");
        assert_eq!(irreps(""), Irreps::default());
        assert_eq!(Irreps::default().to_string(), "");
        assert_eq!("2o".parse::<Irrep>().unwrap(), Irrep::new(2, Parity::Odd));
        for bad in ["1x", "x1e", "1e+", "ax0e", "-1e", "1z", "2x1e++0e", "1.5e", "3"] {
            let err = bad.parse::<Irreps>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains("16x0e"), "{err}");
        }
        let err = "4x0e+4xle".parse::<Irreps>().unwrap_err();
        assert!(err.problem.contains("\"4xle\""), "{}", err.problem);
    }

    #[test]
    fn dimensions_and_slices() {
        let x = irreps("4x0e+2x1o+1x2e");
        assert_eq!(x.dim(), 4 + 6 + 5);
        assert_eq!(x.num_irreps(), 7);
        assert_eq!(x.len(), 3);
        assert_eq!(x.lmax(), Some(2));
        assert_eq!(x.offsets(), vec![0, 4, 10]);
        assert_eq!(x.slices(), vec![0..4, 4..10, 10..15]);
        assert_eq!(Irreps::spherical_harmonics(3).to_string(), "1x0e+1x1o+1x2e+1x3o");
        assert!(Irrep::new(0, Parity::Even).is_scalar());
        assert!(!Irrep::new(0, Parity::Odd).is_scalar());
        assert_eq!(irreps("2x0e+1x1o+3x0e").count(Irrep::new(0, Parity::Even)), 5);
    }

    #[test]
    fn simplify_sort_and_regroup_follow_e3nn() {
        assert_eq!(irreps("1e+1e+0e+1e").simplify().to_string(), "2x1e+1x0e+1x1e");
        assert_eq!(irreps("0x1o+2x0e+0x0e+1x0e").simplify().to_string(), "3x0e");
        let sorted = irreps("1e+0e+1o+0o+2e").sort();
        assert_eq!(sorted.irreps.to_string(), "1x0o+1x0e+1x1o+1x1e+1x2e");
        assert_eq!(sorted.inv, vec![3, 1, 2, 0, 4]);
        assert_eq!(sorted.p, vec![3, 1, 2, 0, 4]);
        let sorted = irreps("2x1o+3x0e+1x1o").sort();
        assert_eq!(sorted.irreps.to_string(), "3x0e+2x1o+1x1o");
        assert_eq!(sorted.inv, vec![1, 0, 2]);
        assert_eq!(sorted.p, vec![1, 0, 2]);
        assert_eq!(irreps("1o+0e+1o+2x0e").regroup().to_string(), "3x0e+2x1o");
    }

    /// The tensor-product outputs of the reference model's convolutions,
    /// sorted the e3nn way, reproduce the fixture's `irreps_mid`.
    #[test]
    fn sorted_tensor_product_outputs_match_reference_model() {
        let Some(fx) = fixtures::load("anisonet_tiny_forward.json") else { return };
        let edge = irreps(fx["architecture"]["irreps_edge_attr"].as_str().unwrap());
        for layer in fx["architecture"]["layers"].as_array().unwrap() {
            let input = irreps(layer["irreps_in"].as_str().unwrap());
            let output = irreps(layer["irreps_out"].as_str().unwrap());
            // uvu: each (input block, edge irrep) pair gives mul copies of every
            // product irrep present in the output.
            let mut mid = Vec::new();
            for a in &input {
                for b in &edge {
                    for ir in a.ir.tensor_product(b.ir) {
                        if output.count(ir) > 0 {
                            mid.push(MulIr::new(a.mul, ir));
                        }
                    }
                }
            }
            let sorted = Irreps(mid).sort().irreps;
            assert_eq!(sorted.to_string(), layer["irreps_mid"].as_str().unwrap());
        }
        let hidden = irreps(fx["architecture"]["irreps_hidden"].as_str().unwrap());
        assert_eq!(hidden.to_string(), "4x0o+4x0e+4x1o+4x1e+4x2o+4x2e");
        assert_eq!(hidden.sort().irreps, hidden, "odd before even at each l");
    }

    #[test]
    fn tensor_product_of_irreps() {
        let (o1, e2) = (Irrep::new(1, Parity::Odd), Irrep::new(2, Parity::Even));
        assert_eq!((o1 * o1).to_string(), "1x0e+1x1e+1x2e");
        assert_eq!((o1 * e2).to_string(), "1x1o+1x2o+1x3o");
        assert_eq!((e2 * e2).num_irreps(), 5);
        assert_eq!(Parity::Odd * Parity::Odd, Parity::Even);
    }

    /// Features built from three vectors transform with `d_from_matrix`, for
    /// rotations and for rotations times inversion: scalars (0e), the first
    /// vector's harmonics (1o, 2e), a cross product (1e) and a triple product (0o).
    #[test]
    fn representation_matrices_act_on_features() {
        let x = irreps("2x0e+1x1o+1x1e+1x2e+1x0o");
        let cross = |a: [f64; 3], b: [f64; 3]| {
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
        };
        let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let features = |u: [f64; 3], v: [f64; 3], w: [f64; 3]| {
            let y = spherical_harmonics(2, u);
            let mut f = vec![dot(u, u), dot(u, v)];
            f.extend_from_slice(&y[1..4]);
            f.extend_from_slice(&cross(u, v));
            f.extend_from_slice(&y[4..9]);
            f.push(dot(cross(u, v), w));
            f
        };
        let (u, v, w) = ([0.4, -1.2, 0.7], [-0.3, 0.5, 0.9], [1.1, 0.2, -0.6]);
        let before = features(u, v, w);
        for (k, rot) in random_rotations(21, 4).iter().enumerate() {
            let r = if k % 2 == 1 { rot.map(|row| row.map(|c| -c)) } else { *rot };
            let after = features(apply(&r, u), apply(&r, v), apply(&r, w));
            let rotated = x.transform(&r, &before);
            let d = x.d_from_matrix(&r);
            let n = x.dim();
            for i in 0..n {
                assert!((rotated[i] - after[i]).abs() < 1e-12, "matrix {k}, component {i}");
                let di: f64 = (0..n).map(|j| d[i * n + j] * before[j]).sum();
                assert!((di - after[i]).abs() < 1e-12, "matrix {k}, component {i}");
            }
        }
    }

    #[test]
    fn serde_round_trip() {
        let x = irreps("4x0e+2x1o");
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(json, "\"4x0e+2x1o\"");
        assert_eq!(serde_json::from_str::<Irreps>(&json).unwrap(), x);
        assert!(serde_json::from_str::<Irreps>("\"4x\"").is_err());
    }
}
