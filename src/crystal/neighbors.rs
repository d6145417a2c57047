//! Periodic neighbour lists: every pair of atoms (periodic images included)
//! closer than a cutoff, as directed edges src → dst.
//!
//! The search is a cell list in fractional space: the (reduced) cell is cut
//! into bins at least one cutoff thick, and each atom looks only at the bins
//! within reach, wrapping across the periodic boundary with an image shift. A
//! cell thinner than the cutoff is one bin that is visited at several image
//! shifts, as many as its perpendicular height requires, so cost stays linear
//! in the number of atoms for any cell shape.

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
/// only the self-edges.
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
    sorted_position: Vec<Vec3>,
    sorted_atom: Vec<u32>,
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
        let mut bins = heights.map(|h| (h / cutoff).floor().clamp(1.0, 1024.0) as usize);
        let max_bins = (2 * n).max(27);
        while bins[0] * bins[1] * bins[2] > max_bins {
            let k = (0..3).max_by_key(|&k| bins[k]).unwrap_or(0);
            bins[k] = bins[k].div_ceil(2);
        }
        // How many bins away a neighbour can be along each axis.
        let reach: [i64; 3] =
            std::array::from_fn(|k| (cutoff * bins[k] as f64 / heights[k] + 1e-9).ceil() as i64);

        self.bin_atoms(structure, &cell, &inverse, bins);

        let r2 = cutoff * cutoff;
        let nb = bins.map(|b| b as i64);
        for i in 0..n {
            if self_edges {
                out.push(i, i as u32, [0.0; 3]);
            }
            let p = self.wrapped[i];
            let home = self.atom_bin[i].map(|b| b as i64);
            for dx in -reach[0]..=reach[0] {
                let (sx, bx) = ((home[0] + dx).div_euclid(nb[0]), (home[0] + dx).rem_euclid(nb[0]));
                for dy in -reach[1]..=reach[1] {
                    let (sy, by) = ((home[1] + dy).div_euclid(nb[1]), (home[1] + dy).rem_euclid(nb[1]));
                    for dz in -reach[2]..=reach[2] {
                        let (sz, bz) = ((home[2] + dz).div_euclid(nb[2]), (home[2] + dz).rem_euclid(nb[2]));
                        let shift = lattice::vec_mat([sx as f64, sy as f64, sz as f64], &cell);
                        let offset = [shift[0] - p[0], shift[1] - p[1], shift[2] - p[2]];
                        let home_image = sx == 0 && sy == 0 && sz == 0;
                        let bin = ((bx * nb[1] + by) * nb[2] + bz) as usize;
                        let range = self.bin_start[bin]..self.bin_start[bin + 1];
                        for (q, &j) in
                            self.sorted_position[range.clone()].iter().zip(&self.sorted_atom[range])
                        {
                            let v = [q[0] + offset[0], q[1] + offset[1], q[2] + offset[2]];
                            if v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < r2
                                && !(home_image && j as usize == i)
                            {
                                out.push(i, j, v);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Wraps every atom into `cell` and sorts the atoms by bin (counting sort).
    fn bin_atoms(
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
            let back = lattice::vec_mat(whole, cell);
            self.wrapped.push([p[0] - back[0], p[1] - back[1], p[2] - back[2]]);
            self.atom_bin.push(std::array::from_fn(|k| {
                (((frac[k] - whole[k]) * bins[k] as f64) as usize).min(bins[k] - 1)
            }));
        }
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
        self.sorted_position.clear();
        self.sorted_position.resize(n, [0.0; 3]);
        self.sorted_atom.clear();
        self.sorted_atom.resize(n, 0);
        // Fill each bin from its end, walking atoms backwards, so atoms stay in input order within a bin.
        for i in (0..n).rev() {
            let end = &mut self.bin_start[linear(self.atom_bin[i]) + 1];
            *end -= 1;
            self.sorted_position[*end] = self.wrapped[i];
            self.sorted_atom[*end] = i as u32;
        }
        // Each end now holds the start of the next bin; shift them back into place.
        self.bin_start.rotate_left(1);
        self.bin_start[total] = n;
    }
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
}
