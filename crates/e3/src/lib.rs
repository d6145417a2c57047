//! Equivariant math: irreps, spherical harmonics, Wigner matrices, rotations and
//! the Cartesian ↔ irreps change of basis. Pure functions, no I/O.
//!
//! Conventions follow e3nn 0.6 (PyTorch) throughout, so that parameters and
//! reference numbers carry over unchanged:
//! - an irrep of degree `l` has `2l + 1` components indexed by `m = -l..=l`
//!   (index `l + m`), in e3nn's real basis, whose polar axis is **y**: the
//!   `l = 1` components are `(x, y, z)` of the vector and transform with the
//!   rotation matrix itself, `D_1(R) = R`;
//! - spherical harmonics use "component" normalisation, `Σ_m Y_lm² = 2l + 1`
//!   on the unit sphere;
//! - Wigner-3j symbols are real, indexed `[m1][m2][m3]`, with Frobenius norm 1.

pub mod cartesian;
pub mod irreps;
pub mod rotation;
pub mod spherical_harmonics;
pub mod sym3;
pub mod wigner;

pub use irreps::{Irrep, Irreps, MulIr, Parity};
pub use rotation::{random_rotation, rotation_from_axis_angle};
pub use spherical_harmonics::{spherical_harmonics, spherical_harmonics_into};
pub use wigner::{wigner_3j, wigner_d};

/// Floating-point numbers the per-edge math runs in (`f32` and `f64`).
///
/// Constants are computed in `f64` and converted once with [`Real::from_f64`],
/// so the `f32` path loses nothing beyond its own rounding.
pub trait Real:
    Copy
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

/// Reading the shared e3nn reference fixtures in tests.
#[cfg(test)]
pub(crate) mod fixtures {
    /// The parsed fixture `name` from `../shared/fixtures`, or `None` (with a
    /// printed note) when the shared folder is absent.
    pub fn load(name: &str) -> Option<serde_json::Value> {
        let path = format!("{}/../../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).expect("fixture is valid JSON")),
            Err(_) => {
                eprintln!("skipping: {path} not found");
                None
            }
        }
    }

    /// All numbers of a nested JSON array, flattened row-major.
    pub fn flatten(v: &serde_json::Value) -> Vec<f64> {
        match v {
            serde_json::Value::Array(items) => items.iter().flat_map(flatten).collect(),
            other => vec![other.as_f64().expect("fixture holds numbers")],
        }
    }
}
