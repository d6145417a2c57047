//! AnisoStudy: hyperparameter studies of equivariant graph neural networks
//! that predict the high-frequency dielectric tensor ε∞ of crystals.
//!
//! Each layer uses only those below it:
//!
//! | layer | modules |
//! |---|---|
//! | the `study` command | [`cli`] |
//! | ranking structures with a study's models | [`screen`] |
//! | study files and runs; tables and figures | [`study`], [`report`] |
//! | running trials; training one model | [`exec`], [`train`] |
//! | the study database; the network; graphs of a data set | [`storage`], [`model`], [`data`] |
//! | search spaces, samplers, pruners; crystal structures | [`hpo`] (crate `anisostudy-hpo`), [`crystal`] |
//! | irreps, harmonics, Wigner matrices | [`e3`] (crate `anisostudy-e3`) |
//! | errors about input; the results folder's layout | [`error`] (crate `anisostudy-error`), [`paths`] |
//!
//! The pure layers are crates of the workspace, so the compiler keeps them
//! free of I/O, the model and storage; the others are modules of this crate,
//! whose face is what the binary, the tests and the benches use.

pub mod cli;
pub mod crystal;
pub mod data;
pub mod error;
pub mod exec;
pub mod model;
pub mod paths;
pub mod report;
pub mod screen;
pub mod storage;
pub mod study;
pub mod train;

/// The pure layers, crates of this workspace.
pub use anisostudy_e3 as e3;
pub use anisostudy_hpo as hpo;
