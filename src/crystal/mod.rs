//! Crystal structures: the periodic cell, its atoms, file readers, periodic
//! neighbour lists and symmetry.

pub mod structure;

pub use structure::Structure;
