//! Equivariant math: irreps, spherical harmonics, Wigner matrices and the
//! Cartesian ↔ irreps change of basis. Pure functions, no I/O.

pub mod cartesian;
pub mod sym3;
