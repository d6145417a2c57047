//! Periodic neighbour lists: every pair of atoms (periodic images included)
//! closer than a cutoff, as directed edges src → dst.
//!
//! The search is a cell list in fractional space: the cell, first reduced to
//! short nearly orthogonal vectors, is cut into bins at least one cutoff thick,
//! and each atom looks only at the atoms in bins within reach (across the
//! periodic boundary), so cost is linear in the number of atoms. For each such
//! pair, the periodic images inside the cutoff sphere are enumerated exactly,
//! one lattice axis at a time, so cells far smaller than the cutoff (many
//! images) cost no more than the edges they have.

use super::lattice::{self, Vec3};
use super::structure::Structure;

/// Directed edges sorted by source atom; `vectors[e]` = r_dst − r_src + image shift, Å.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeighborList {
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    pub vectors: Vec<[f64; 3]>,
}

impl NeighborList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Removes all edges, keeping the allocations.
    pub fn clear(&mut self) {
        self.src.clear();
        self.dst.clear();
        self.vectors.clear();
    }

    /// Edge lengths, Å.
    pub fn lengths(&self) -> impl Iterator<Item = f64> + '_ {
        self.vectors.iter().map(|&v| lattice::norm(v))
    }

    #[inline]
    fn push(&mut self, src: usize, dst: u32, vector: Vec3) {
        self.src.push(src as u32);
        self.dst.push(dst);
        self.vectors.push(vector);
    }
}

/// All edges of `structure` shorter than `cutoff` (Å, strict), sorted by source.
/// With `self_edges`, each atom also gets the edge i → i with a zero vector
/// (first among its edges); periodic self-images are ordinary edges.
///
/// The structure should pass [`Structure::validate`]; a singular cell gives
/// only the self-edges, and atoms at non-finite positions get no neighbours.
pub fn neighbor_list(structure: &Structure, cutoff: f64, self_edges: bool) -> NeighborList {
    NeighborSearch::new().neighbor_list(structure, cutoff, self_edges)
}

/// Reusable scratch space for neighbour searches over many structures: keep
/// one per thread and call [`NeighborSearch::fill`] with a reused output.
#[derive(Debug, Clone, Default)]
pub struct NeighborSearch {
    /// Per atom: Cartesian position wrapped into the reduced cell, Å.
    wrapped: Vec<Vec3>,
    /// Per atom: bin coordinates.
    atom_bin: Vec<[usize; 3]>,
    /// Atoms of bin b are `sorted_*[bin_start[b]..bin_start[b + 1]]`.
    bin_start: Vec<usize>,
    sorted_atom: Vec<u32>,
    /// Wrapped Cartesian positions in bin order, Å.
    sorted_position: Vec<Vec3>,
    /// The same positions in the cell's triangular frame (see [`Sphere`]), Å.
    sorted_framed: Vec<Vec3>,
    /// Edges (i, j, r_j − r_i + shift) found for pairs j ≥ i.
    half: Vec<(u32, u32, Vec3)>,
    /// Per source atom: where its next edge goes in the output.
    cursor: Vec<usize>,
}

impl NeighborSearch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`neighbor_list`], reusing this scratch space.
    pub fn neighbor_list(&mut self, structure: &Structure, cutoff: f64, self_edges: bool) -> NeighborList {
        let mut list = NeighborList::new();
        self.fill(structure, cutoff, self_edges, &mut list);
        list
    }

    /// Replaces the contents of `out` with the neighbour list of `structure`
    /// (see [`neighbor_list`]); allocates nothing once the buffers are warm.
    pub fn fill(&mut self, structure: &Structure, cutoff: f64, self_edges: bool, out: &mut NeighborList) {
        out.clear();
        let n = structure.len();
        let cell = lattice::reduce(&structure.lattice);
        let inverse = match lattice::inverse(&cell) {
            Some(inverse) if cutoff > 0.0 && cutoff.is_finite() => inverse,
            _ => {
                if self_edges {
                    (0..n).for_each(|i| out.push(i, i as u32, [0.0; 3]));
                }
                return;
            }
        };
        let heights = lattice::heights(&cell);

        // Bins at least one cutoff thick, at most ~2 per atom.
        let mut bins = heights.map(|h| ((h / cutoff) as usize).clamp(1, 1024));
        let max_bins = (2 * n).max(27);
        while bins[0] * bins[1] * bins[2] > max_bins {
            let k = (0..3).max_by_key(|&k| bins[k]).unwrap_or(0);
            bins[k] = bins[k].div_ceil(2);
        }
        // How many bins away a neighbour can be along each axis.
        let reach: [usize; 3] =
            std::array::from_fn(|k| (cutoff * bins[k] as f64 / heights[k] + 1e-9).ceil() as usize);
        let sphere = Sphere::new(&cell, cutoff);
        self.wrap_atoms(structure, &cell, &inverse, bins);
        self.sort_into_bins(bins, &sphere);

        // Each unordered pair once (j ≥ i); the edge j → i is the reverse of i → j.
        self.half.clear();
        for i in 0..n {
            let p = self.wrapped[i];
            let f = sphere.frame(p);
            let home = self.atom_bin[i];
            // Each bin in reach once; `Sphere::images` finds every image of each atom in it.
            let visit: [(usize, usize); 3] = std::array::from_fn(|k| {
                if 2 * reach[k] + 1 >= bins[k] {
                    (0, bins[k])
                } else {
                    (home[k] + bins[k] - reach[k], 2 * reach[k] + 1)
                }
            });
            for tx in 0..visit[0].1 {
                let bx = (visit[0].0 + tx) % bins[0];
                for ty in 0..visit[1].1 {
                    let by = (visit[1].0 + ty) % bins[1];
                    for tz in 0..visit[2].1 {
                        let bz = (visit[2].0 + tz) % bins[2];
                        let bin = (bx * bins[1] + by) * bins[2] + bz;
                        for t in self.bin_start[bin]..self.bin_start[bin + 1] {
                            let j = self.sorted_atom[t];
                            if (j as usize) < i {
                                continue;
                            }
                            let (q, g) = (self.sorted_position[t], self.sorted_framed[t]);
                            let half = &mut self.half;
                            sphere.images(sub(q, p), sub(g, f), j as usize == i, |v| {
                                half.push((i as u32, j, v))
                            });
                        }
                    }
                }
            }
        }
        self.scatter_by_source(n, self_edges, out);
    }

    /// Writes the edges found for pairs j ≥ i, and their reverses, into `out`
    /// grouped by source (counting sort); each source's self-edge comes first.
    fn scatter_by_source(&mut self, n: usize, self_edges: bool, out: &mut NeighborList) {
        self.cursor.clear();
        self.cursor.resize(n + 1, 0);
        for &(i, j, _) in &self.half {
            self.cursor[i as usize + 1] += 1;
            if i != j {
                self.cursor[j as usize + 1] += 1;
            }
        }
        for a in 0..n {
            self.cursor[a + 1] += self.cursor[a] + usize::from(self_edges);
        }
        let total = self.cursor[n];
        out.src.resize(total, 0);
        out.dst.resize(total, 0);
        out.vectors.resize(total, [0.0; 3]);
        let mut place = |cursor: &mut usize, src: u32, dst: u32, v: Vec3| {
            out.src[*cursor] = src;
            out.dst[*cursor] = dst;
            out.vectors[*cursor] = v;
            *cursor += 1;
        };
        if self_edges {
            for a in 0..n {
                place(&mut self.cursor[a], a as u32, a as u32, [0.0; 3]);
            }
        }
        for &(i, j, v) in &self.half {
            place(&mut self.cursor[i as usize], i, j, v);
            if i != j {
                place(&mut self.cursor[j as usize], j, i, [-v[0], -v[1], -v[2]]);
            }
        }
    }

    /// Wraps every atom into `cell` and finds its bin.
    fn wrap_atoms(
        &mut self,
        structure: &Structure,
        cell: &lattice::Lattice,
        inverse: &lattice::Lattice,
        bins: [usize; 3],
    ) {
        self.wrapped.clear();
        self.atom_bin.clear();
        for &p in &structure.positions {
            let frac = lattice::vec_mat(p, inverse);
            let whole = frac.map(f64::floor);
            // Shift by whole lattice vectors only, so the position keeps its precision.
            self.wrapped.push(sub(p, lattice::vec_mat(whole, cell)));
            self.atom_bin.push(std::array::from_fn(|k| {
                (((frac[k] - whole[k]) * bins[k] as f64) as usize).min(bins[k] - 1)
            }));
        }
    }

    /// Sorts the atoms by bin (counting sort, stable).
    fn sort_into_bins(&mut self, bins: [usize; 3], sphere: &Sphere) {
        let total = bins[0] * bins[1] * bins[2];
        let linear = |b: [usize; 3]| (b[0] * bins[1] + b[1]) * bins[2] + b[2];
        self.bin_start.clear();
        self.bin_start.resize(total + 1, 0);
        for &b in &self.atom_bin {
            self.bin_start[linear(b) + 1] += 1;
        }
        for b in 0..total {
            self.bin_start[b + 1] += self.bin_start[b];
        }
        let n = self.wrapped.len();
        self.sorted_atom.clear();
        self.sorted_atom.resize(n, 0);
        self.sorted_position.clear();
        self.sorted_position.resize(n, [0.0; 3]);
        self.sorted_framed.clear();
        self.sorted_framed.resize(n, [0.0; 3]);
        // Fill each bin from its end, walking atoms backwards, so atoms stay in input order within a bin.
        for i in (0..n).rev() {
            let end = &mut self.bin_start[linear(self.atom_bin[i]) + 1];
            *end -= 1;
            self.sorted_atom[*end] = i as u32;
            self.sorted_position[*end] = self.wrapped[i];
            self.sorted_framed[*end] = sphere.frame(self.wrapped[i]);
        }
        // Each end now holds the start of the next bin; shift them back into place.
        self.bin_start.rotate_left(1);
        self.bin_start[total] = n;
    }
}

/// Enumerates the lattice shifts s that put r_j − r_i + s·A inside the
/// cutoff sphere, one axis at a time, instead of scanning a box of images.
///
/// In an orthonormal frame (e₁ ∥ a₂, e₂ in the a₁a₂ plane) the cell is
/// triangular: a₂ = (t₂₀, 0, 0), a₁ = (t₁₀, t₁₁, 0), a₀ = (t₀₀, t₀₁, t₀₂).
/// The e₃ component of the vector fixes the range of s₀; given s₀, e₂ bounds
/// s₁; given both, e₁ bounds s₂. Nearly every candidate is an edge.
struct Sphere {
    cell: lattice::Lattice,
    axes: [Vec3; 3],
    t0: Vec3,
    t1: Vec3,
    /// 1 / t₀₂, 1 / t₁₁, 1 / t₂₀.
    inverse_diagonal: Vec3,
    cutoff: f64,
    cutoff2: f64,
    /// Widens each range a little so rounding never drops an edge; the
    /// Cartesian test decides.
    slack: f64,
}

impl Sphere {
    fn new(cell: &lattice::Lattice, cutoff: f64) -> Self {
        let [a0, a1, a2] = *cell;
        let e1 = scale(a2, 1.0 / lattice::norm(a2));
        let a1_perp = sub(a1, scale(e1, lattice::dot(a1, e1)));
        let e2 = scale(a1_perp, 1.0 / lattice::norm(a1_perp));
        let mut e3 = lattice::cross(e1, e2);
        if lattice::dot(a0, e3) < 0.0 {
            e3 = scale(e3, -1.0);
        }
        let axes = [e1, e2, e3];
        let frame = |v: Vec3| axes.map(|e| lattice::dot(v, e));
        let (t0, t1) = (frame(a0), frame(a1));
        Self {
            cell: *cell,
            axes,
            t0,
            t1,
            inverse_diagonal: [1.0 / t0[2], 1.0 / t1[1], 1.0 / lattice::norm(a2)],
            cutoff,
            cutoff2: cutoff * cutoff,
            slack: 1e-9 * cutoff,
        }
    }

    /// Coordinates of `v` in the triangular frame.
    #[inline]
    fn frame(&self, v: Vec3) -> Vec3 {
        self.axes.map(|e| lattice::dot(v, e))
    }

    /// Calls `edge` with every vector r_j − r_i + shift shorter than the
    /// cutoff: `d` = r_j − r_i (Cartesian), `f` = the same in the triangular
    /// frame. Skips the zero shift for an atom and itself.
    #[inline(always)]
    fn images(&self, d: Vec3, f: Vec3, same_atom: bool, mut edge: impl FnMut(Vec3)) {
        // Wrapped atoms are within a cell of each other; anything else comes
        // from non-finite or absurdly large positions, which have no neighbours.
        if !(f[0].abs() < MAX_SEPARATION && f[1].abs() < MAX_SEPARATION && f[2].abs() < MAX_SEPARATION) {
            return;
        }
        let [a0, a1, a2] = self.cell;
        let (t0, t1, inv) = (self.t0, self.t1, self.inverse_diagonal);
        let reach3 = self.cutoff + self.slack;
        // Shifts are whole numbers held as f64: the loops need no integer conversions.
        let (mut s0, last0) = (ceil((-reach3 - f[2]) * inv[0]), floor((reach3 - f[2]) * inv[0]));
        while s0 <= last0 {
            let v3 = f[2] + s0 * t0[2];
            let left3 = self.cutoff2 - v3 * v3;
            let reach2 = left3.max(0.0).sqrt() + self.slack;
            let v2_base = f[1] + s0 * t0[1];
            let d0 = add(d, scale(a0, s0));
            let (mut s1, last1) = (ceil((-reach2 - v2_base) * inv[1]), floor((reach2 - v2_base) * inv[1]));
            while s1 <= last1 {
                let v2 = v2_base + s1 * t1[1];
                let left2 = left3 - v2 * v2;
                let reach1 = left2.max(0.0).sqrt() + self.slack;
                let v1_base = f[0] + s0 * t0[0] + s1 * t1[0];
                let d01 = add(d0, scale(a1, s1));
                let (mut s2, last2) =
                    (ceil((-reach1 - v1_base) * inv[2]), floor((reach1 - v1_base) * inv[2]));
                while s2 <= last2 {
                    let v = add(d01, scale(a2, s2));
                    if v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < self.cutoff2
                        && !(same_atom && s0 == 0.0 && s1 == 0.0 && s2 == 0.0)
                    {
                        edge(v);
                    }
                    s2 += 1.0;
                }
                s1 += 1.0;
            }
            s0 += 1.0;
        }
    }
}

/// Pairs of wrapped atoms farther apart than this (Å) are skipped: only
/// non-finite or absurd (> 10⁹ Å) input positions produce them.
const MAX_SEPARATION: f64 = 1e9;

/// Adding and subtracting 1.5 · 2⁵² rounds an f64 to the nearest whole number
/// (exact for |x| < 2⁵¹): floor and ceil without a libm call, which
/// `f64::floor` is on baseline x86-64.
const ROUND_TO_WHOLE: f64 = 6_755_399_441_055_744.0;

/// ⌊x⌋ for |x| < 2⁵¹ (NaN stays NaN, so loops bounded by it do not run).
#[inline]
fn floor(x: f64) -> f64 {
    let r = (x + ROUND_TO_WHOLE) - ROUND_TO_WHOLE;
    if r > x {
        r - 1.0
    } else {
        r
    }
}

/// ⌈x⌉ for |x| < 2⁵¹.
#[inline]
fn ceil(x: f64) -> f64 {
    let r = (x + ROUND_TO_WHOLE) - ROUND_TO_WHOLE;
    if r < x {
        r + 1.0
    } else {
        r
    }
}

fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: Vec3, k: f64) -> Vec3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

/// The same edges as [`neighbor_list`] by testing every atom pair at every
/// image shift in reach: O(N²), the reference the cell list is tested against.
pub fn brute_force_neighbor_list(structure: &Structure, cutoff: f64, self_edges: bool) -> NeighborList {
    let n = structure.len();
    let mut edges = Vec::new();
    if let Some(frac) = structure.fractional_positions().filter(|_| cutoff > 0.0 && cutoff.is_finite()) {
        brute_force_edges(structure, &frac, cutoff, &mut edges);
    }
    // Self-edges first, then the rest, grouped by source.
    let mut merged = NeighborList::new();
    let mut next = 0;
    for i in 0..n {
        if self_edges {
            merged.push(i, i as u32, [0.0; 3]);
        }
        while next < edges.len() && edges[next].0 == i {
            merged.push(i, edges[next].1, edges[next].2);
            next += 1;
        }
    }
    merged
}

fn brute_force_edges(structure: &Structure, frac: &[Vec3], cutoff: f64, edges: &mut Vec<(usize, u32, Vec3)>) {
    let n = structure.len();
    let l = &structure.lattice;
    let reach = structure.heights().map(|h| (cutoff / h).ceil() as i64 + 1);
    for i in 0..n {
        for j in 0..n {
            let near = std::array::from_fn::<i64, 3, _>(|k| -(frac[j][k] - frac[i][k]).round() as i64);
            for a in near[0] - reach[0]..=near[0] + reach[0] {
                for b in near[1] - reach[1]..=near[1] + reach[1] {
                    for c in near[2] - reach[2]..=near[2] + reach[2] {
                        if i == j && a == 0 && b == 0 && c == 0 {
                            continue;
                        }
                        let shift = lattice::vec_mat([a as f64, b as f64, c as f64], l);
                        let v: Vec3 = std::array::from_fn(|k| {
                            structure.positions[j][k] - structure.positions[i][k] + shift[k]
                        });
                        if lattice::dot(v, v) < cutoff * cutoff {
                            edges.push((i, j as u32, v));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_cubic_has_six_nearest_neighbours() {
        let s = Structure {
            lattice: [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]],
            numbers: vec![1],
            positions: vec![[0.3, -0.1, 7.0]],
        };
        let list = neighbor_list(&s, 2.5, true);
        assert_eq!(list.len(), 7);
        assert_eq!(list.vectors[0], [0.0; 3]);
        assert!(list.lengths().skip(1).all(|d| (d - 2.0).abs() < 1e-12));
        // 6 at 2 Å, 12 at 2√2 Å, 8 at 2√3 Å.
        assert_eq!(neighbor_list(&s, 3.5, false).len(), 26);
        assert_eq!(brute_force_neighbor_list(&s, 3.5, false).len(), 26);
    }

    #[test]
    fn non_finite_positions_have_no_neighbours_and_absurd_ones_terminate() {
        let s = Structure {
            lattice: [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            numbers: vec![1, 1, 1],
            positions: vec![[0.0; 3], [f64::NAN, 0.0, 0.0], [1e300, 0.0, 0.0]],
        };
        let list = neighbor_list(&s, 5.0, true);
        // The NaN atom keeps only its self-edge.
        assert!(list.src.iter().zip(&list.dst).all(|(&i, &j)| (i != 1 && j != 1) || i == j));
        assert_eq!(list.src.iter().filter(|&&i| i == 1).count(), 1);
        let singular = Structure { lattice: [[0.0; 3]; 3], ..s };
        assert_eq!(neighbor_list(&singular, 5.0, true).len(), 3);
    }
}
