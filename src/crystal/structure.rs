//! A periodic crystal structure.

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
        let [a, b, c] = self.lattice;
        let bxc = [b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]];
        a[0] * bxc[0] + a[1] * bxc[1] + a[2] * bxc[2]
    }
}
