//! AnisoStudy: hyperparameter studies of equivariant graph neural networks
//! that predict the high-frequency dielectric tensor ε∞ of crystals.
//!
//! Data flows downward through the layers:
//! `cli` → `crystal` (structures, readers, neighbour lists, symmetry).

pub mod cli;
pub mod crystal;
pub mod data;
pub mod e3;
pub mod error;
pub mod exec;
pub mod hpo;
pub mod model;
pub mod paths;
pub mod report;
pub mod screen;
pub mod storage;
pub mod study;
pub mod train;
