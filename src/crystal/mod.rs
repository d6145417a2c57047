//! Crystal structures: the periodic cell, its atoms, file readers, periodic
//! neighbour lists and symmetry.

pub mod elements;
pub mod io;
pub(crate) mod lattice;
pub mod neighbors;
pub mod structure;
pub mod symmetry;

pub use io::{read_structures, write_extxyz, ExtxyzOptions, Frame};
pub use neighbors::{neighbor_list, NeighborList, NeighborSearch};
pub use structure::Structure;
pub use symmetry::{crystal_system, CrystalSystem};
