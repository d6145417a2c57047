//! Crystal systems from the space group found by `moyo`.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use moyo::base::{Cell, Lattice, Position};
use moyo::MoyoDataset;

use super::structure::Structure;

/// Default symmetry tolerance, Å (the value the reference data was labelled with).
pub const DEFAULT_SYMPREC: f64 = 0.01;

/// The seven crystal systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrystalSystem {
    Triclinic,
    Monoclinic,
    Orthorhombic,
    Tetragonal,
    Trigonal,
    Hexagonal,
    Cubic,
}

impl CrystalSystem {
    /// All systems in the order the paper's tables list them.
    pub const ALL: [CrystalSystem; 7] = [
        CrystalSystem::Cubic,
        CrystalSystem::Hexagonal,
        CrystalSystem::Trigonal,
        CrystalSystem::Tetragonal,
        CrystalSystem::Orthorhombic,
        CrystalSystem::Monoclinic,
        CrystalSystem::Triclinic,
    ];

    /// The crystal system of an international space-group number (1..=230).
    pub fn from_space_group(number: u32) -> Option<CrystalSystem> {
        Some(match number {
            1..=2 => CrystalSystem::Triclinic,
            3..=15 => CrystalSystem::Monoclinic,
            16..=74 => CrystalSystem::Orthorhombic,
            75..=142 => CrystalSystem::Tetragonal,
            143..=167 => CrystalSystem::Trigonal,
            168..=194 => CrystalSystem::Hexagonal,
            195..=230 => CrystalSystem::Cubic,
            _ => return None,
        })
    }

    /// Lowercase name, as used in tables, files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CrystalSystem::Triclinic => "triclinic",
            CrystalSystem::Monoclinic => "monoclinic",
            CrystalSystem::Orthorhombic => "orthorhombic",
            CrystalSystem::Tetragonal => "tetragonal",
            CrystalSystem::Trigonal => "trigonal",
            CrystalSystem::Hexagonal => "hexagonal",
            CrystalSystem::Cubic => "cubic",
        }
    }
}

impl fmt::Display for CrystalSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of the seven crystal systems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown crystal system '{0}' (expected one of: cubic, hexagonal, trigonal, tetragonal, orthorhombic, monoclinic, triclinic)")]
pub struct UnknownCrystalSystem(pub String);

impl FromStr for CrystalSystem {
    type Err = UnknownCrystalSystem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        CrystalSystem::ALL
            .into_iter()
            .find(|c| c.name() == lower)
            .ok_or_else(|| UnknownCrystalSystem(s.to_string()))
    }
}

/// International space-group number (1..=230) of `structure`, found with
/// tolerance `symprec` (Å).
pub fn space_group_number(structure: &Structure, symprec: f64) -> anyhow::Result<u32> {
    let fractional =
        structure.fractional_positions().context("the cell is singular; no symmetry search is possible")?;
    let cell = Cell::new(
        Lattice::from_basis(structure.lattice),
        fractional.into_iter().map(|f| Position::new(f[0], f[1], f[2])).collect(),
        structure.numbers.iter().map(|&z| i32::from(z)).collect(),
    );
    let dataset = MoyoDataset::with_default(&cell, symprec)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("symmetry search failed (symprec {symprec} Å)"))?;
    u32::try_from(dataset.number).context("moyo returned a negative space-group number")
}

/// Crystal system of `structure` with tolerance `symprec` (Å; [`DEFAULT_SYMPREC`] is usual).
pub fn crystal_system(structure: &Structure, symprec: f64) -> anyhow::Result<CrystalSystem> {
    let number = space_group_number(structure, symprec)?;
    CrystalSystem::from_space_group(number)
        .with_context(|| format!("space-group number {number} is outside 1..=230"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_fractional(lattice: [[f64; 3]; 3], atoms: &[(u8, [f64; 3])]) -> Structure {
        let mut s = Structure { lattice, numbers: vec![], positions: vec![] };
        for &(z, f) in atoms {
            s.numbers.push(z);
            s.positions.push(s.to_cartesian(f));
        }
        s
    }

    #[test]
    fn names_round_trip_in_paper_order() {
        let names: Vec<String> = CrystalSystem::ALL.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            names,
            ["cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic"]
        );
        for c in CrystalSystem::ALL {
            assert_eq!(c.name().parse::<CrystalSystem>(), Ok(c));
        }
        assert_eq!("Cubic".parse::<CrystalSystem>(), Ok(CrystalSystem::Cubic));
        assert!("rhombic".parse::<CrystalSystem>().unwrap_err().to_string().contains("expected one of"));
    }

    #[test]
    fn space_group_ranges() {
        assert_eq!(CrystalSystem::from_space_group(2), Some(CrystalSystem::Triclinic));
        assert_eq!(CrystalSystem::from_space_group(15), Some(CrystalSystem::Monoclinic));
        assert_eq!(CrystalSystem::from_space_group(74), Some(CrystalSystem::Orthorhombic));
        assert_eq!(CrystalSystem::from_space_group(142), Some(CrystalSystem::Tetragonal));
        assert_eq!(CrystalSystem::from_space_group(167), Some(CrystalSystem::Trigonal));
        assert_eq!(CrystalSystem::from_space_group(194), Some(CrystalSystem::Hexagonal));
        assert_eq!(CrystalSystem::from_space_group(225), Some(CrystalSystem::Cubic));
        assert_eq!(CrystalSystem::from_space_group(0), None);
        assert_eq!(CrystalSystem::from_space_group(231), None);
    }

    #[test]
    fn rock_salt_is_cubic() {
        let a = 5.64;
        let s = from_fractional(
            [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]],
            &[(11, [0.0, 0.0, 0.0]), (17, [0.5, 0.5, 0.5])],
        );
        assert_eq!(space_group_number(&s, DEFAULT_SYMPREC).unwrap(), 225);
        assert_eq!(crystal_system(&s, DEFAULT_SYMPREC).unwrap(), CrystalSystem::Cubic);
    }

    #[test]
    fn wurtzite_is_hexagonal() {
        let (a, c, u) = (3.25, 5.21, 0.382);
        let s = from_fractional(
            [[a, 0.0, 0.0], [-a / 2.0, a * 3f64.sqrt() / 2.0, 0.0], [0.0, 0.0, c]],
            &[
                (30, [1.0 / 3.0, 2.0 / 3.0, 0.0]),
                (30, [2.0 / 3.0, 1.0 / 3.0, 0.5]),
                (8, [1.0 / 3.0, 2.0 / 3.0, u]),
                (8, [2.0 / 3.0, 1.0 / 3.0, 0.5 + u]),
            ],
        );
        assert_eq!(space_group_number(&s, DEFAULT_SYMPREC).unwrap(), 186);
        assert_eq!(crystal_system(&s, DEFAULT_SYMPREC).unwrap(), CrystalSystem::Hexagonal);
    }

    #[test]
    fn rutile_is_tetragonal() {
        let (a, c, x) = (4.594, 2.959, 0.3048);
        let s = from_fractional(
            [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, c]],
            &[
                (22, [0.0, 0.0, 0.0]),
                (22, [0.5, 0.5, 0.5]),
                (8, [x, x, 0.0]),
                (8, [-x, -x, 0.0]),
                (8, [0.5 + x, 0.5 - x, 0.5]),
                (8, [0.5 - x, 0.5 + x, 0.5]),
            ],
        );
        assert_eq!(space_group_number(&s, DEFAULT_SYMPREC).unwrap(), 136);
        assert_eq!(crystal_system(&s, DEFAULT_SYMPREC).unwrap(), CrystalSystem::Tetragonal);
    }

    #[test]
    fn generic_cell_is_triclinic() {
        let s = from_fractional(
            [[4.1, 0.3, -0.2], [0.7, 5.3, 0.4], [-0.5, 0.9, 6.2]],
            &[(6, [0.0, 0.0, 0.0]), (7, [0.31, 0.17, 0.43]), (8, [0.62, 0.71, 0.12])],
        );
        assert_eq!(crystal_system(&s, DEFAULT_SYMPREC).unwrap(), CrystalSystem::Triclinic);
    }
}
