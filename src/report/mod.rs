//! `study report`: ablation tables, statistics and publication figures.

pub mod figures;
