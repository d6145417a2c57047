//! A periodic crystal structure.

use super::elements;
use super::lattice;
use super::neighbors::NeighborSearch;

/// Atoms closer than this (Å, across periodic images too) make a structure unphysical.
pub const MIN_INTERATOMIC_DISTANCE: f64 = 0.5;

/// A periodic crystal: a cell and the atoms in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Lattice vectors as rows, Å: `lattice[k]` is the k-th cell vector.
    pub lattice: [[f64; 3]; 3],
    /// Atomic number Z (1..=118) of each atom.
    pub numbers: Vec<u8>,
    /// Cartesian position of each atom, Å.
    pub positions: Vec<[f64; 3]>,
}

/// Coordinates beyond this (Å) are not a crystal's atoms.
const MAX_COORDINATE: f64 = 1e8;

/// Why a structure is not a usable crystal, with the fix; `atoms` are the
/// 0-based indices of the atoms involved (so readers can name their lines).
#[derive(Debug, Clone, PartialEq)]
pub struct StructureProblem {
    pub problem: String,
    pub hint: String,
    pub atoms: Vec<usize>,
}

impl StructureProblem {
    fn new(problem: impl Into<String>, hint: impl Into<String>, atoms: Vec<usize>) -> Self {
        Self { problem: problem.into(), hint: hint.into(), atoms }
    }
}

impl Structure {
    /// Number of atoms in the cell.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Signed cell volume a · (b × c), Å³.
    pub fn volume(&self) -> f64 {
        lattice::determinant(&self.lattice)
    }

    /// Inverse of the lattice matrix (`frac = cart · inverse`), `None` for a singular cell.
    pub fn inverse_lattice(&self) -> Option<[[f64; 3]; 3]> {
        lattice::inverse(&self.lattice)
    }

    /// Fractional coordinates of the atoms (not wrapped into [0, 1)); `None` for a singular cell.
    pub fn fractional_positions(&self) -> Option<Vec<[f64; 3]>> {
        let inv = self.inverse_lattice()?;
        Some(self.positions.iter().map(|&p| lattice::vec_mat(p, &inv)).collect())
    }

    /// Cartesian position (Å) of a fractional coordinate in this cell.
    pub fn to_cartesian(&self, frac: [f64; 3]) -> [f64; 3] {
        lattice::vec_mat(frac, &self.lattice)
    }

    /// Perpendicular distances between neighbouring lattice planes, Å.
    pub fn heights(&self) -> [f64; 3] {
        lattice::heights(&self.lattice)
    }

    /// Checks that this is a usable crystal: at least one atom, known
    /// elements, finite numbers (positions within 10⁸ Å), a cell of nonzero
    /// volume, and no two atoms
    /// (periodic images included) closer than [`MIN_INTERATOMIC_DISTANCE`].
    pub fn validate(&self) -> Result<(), StructureProblem> {
        if self.is_empty() {
            return Err(StructureProblem::new(
                "the structure has no atoms",
                "give at least one atom",
                vec![],
            ));
        }
        if self.positions.len() != self.numbers.len() {
            return Err(StructureProblem::new(
                format!("{} atomic numbers but {} positions", self.numbers.len(), self.positions.len()),
                "give one position per atom",
                vec![],
            ));
        }
        if let Some(i) = self.numbers.iter().position(|&z| !elements::is_valid(z)) {
            return Err(StructureProblem::new(
                format!("atomic number {} is not an element (1..=118)", self.numbers[i]),
                "use atomic numbers between 1 and 118",
                vec![i],
            ));
        }
        if self.lattice.iter().flatten().any(|x| !x.is_finite()) {
            return Err(StructureProblem::new(
                "the lattice contains a number that is not finite (NaN or infinity)",
                "give nine finite lattice components, Å",
                vec![],
            ));
        }
        if let Some(i) = self.positions.iter().position(|p| p.iter().any(|x| !x.is_finite())) {
            return Err(StructureProblem::new(
                "an atomic position is not finite (NaN or infinity)",
                "give finite Cartesian coordinates, Å",
                vec![i],
            ));
        }
        if let Some(i) = self.positions.iter().position(|p| p.iter().any(|x| x.abs() > MAX_COORDINATE)) {
            return Err(StructureProblem::new(
                format!(
                    "an atomic position is implausibly far from the origin (beyond {MAX_COORDINATE:e} Å)"
                ),
                "give Cartesian coordinates in Å near the cell",
                vec![i],
            ));
        }
        let lengths = lattice::lengths(&self.lattice);
        let volume = self.volume().abs();
        if volume < 1e-6 * lengths[0] * lengths[1] * lengths[2] || volume < 1e-3 {
            return Err(StructureProblem::new(
                format!("the cell is singular or has near-zero volume ({volume:.3e} Å³)"),
                "the three lattice vectors must be linearly independent (rows of Lattice = a, b, c in Å)",
                vec![],
            ));
        }
        let shortest =
            lattice::lengths(&lattice::reduce(&self.lattice)).into_iter().fold(f64::INFINITY, f64::min);
        if shortest < MIN_INTERATOMIC_DISTANCE {
            return Err(StructureProblem::new(
                format!(
                    "a lattice vector is only {shortest:.4} Å long, so every atom is closer than \
                     {MIN_INTERATOMIC_DISTANCE} Å to its own periodic image"
                ),
                "check the lattice units (Å) and that the rows are the lattice vectors",
                vec![],
            ));
        }
        let list = NeighborSearch::new().neighbor_list(self, MIN_INTERATOMIC_DISTANCE, false);
        if let Some(k) = (0..list.len())
            .min_by(|&a, &b| lattice::norm(list.vectors[a]).total_cmp(&lattice::norm(list.vectors[b])))
        {
            let (i, j) = (list.src[k] as usize, list.dst[k] as usize);
            let distance = lattice::norm(list.vectors[k]);
            let (lo, hi) = (i.min(j), i.max(j));
            let what = if lo == hi {
                format!("atom {} is {distance:.4} Å from its own periodic image", lo + 1)
            } else {
                format!(
                    "atoms {} and {} are {distance:.4} Å apart (periodic images included)",
                    lo + 1,
                    hi + 1
                )
            };
            return Err(StructureProblem::new(
                format!("{what}; atoms closer than {MIN_INTERATOMIC_DISTANCE} Å are unphysical"),
                "remove duplicated atoms and check that positions are Cartesian in Å (not fractional)",
                if lo == hi { vec![lo] } else { vec![lo, hi] },
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rock_salt() -> Structure {
        let a = 5.64;
        Structure {
            lattice: [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]],
            numbers: vec![11, 17],
            positions: vec![[0.0, 0.0, 0.0], [a / 2.0, a / 2.0, a / 2.0]],
        }
    }

    #[test]
    fn fractional_round_trip() {
        let s = rock_salt();
        let frac = s.fractional_positions().unwrap();
        assert!((frac[1][0] - 0.5).abs() < 1e-12 && (frac[1][2] - 0.5).abs() < 1e-12);
        let back = s.to_cartesian(frac[1]);
        for (x, y) in back.iter().zip(&s.positions[1]) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn validate_accepts_crystal_and_rejects_close_images() {
        assert_eq!(rock_salt().validate(), Ok(()));
        let mut s = rock_salt();
        s.positions[1] = [5.64 / 2.0 + 0.3, 5.64 / 2.0, 0.0]; // 0.3 Å from an image of atom 1
        let err = s.validate().unwrap_err();
        assert!(err.problem.contains("atoms 1 and 2"), "{}", err.problem);
        let tiny = Structure {
            lattice: [[0.3, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            numbers: vec![1],
            positions: vec![[0.0; 3]],
        };
        assert!(tiny.validate().unwrap_err().problem.contains("own periodic image"));
        let flat = Structure {
            lattice: [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.0, 3.0, 0.0]],
            numbers: vec![1],
            positions: vec![[0.0; 3]],
        };
        assert!(flat.validate().unwrap_err().problem.contains("singular"));
    }
}
