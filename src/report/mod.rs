//! `study report`: ablation tables, statistics and publication figures.
//!
//! [`collect`] reads a study (read-only, safe while it runs), [`stats`]
//! gives means with Student-t intervals over seeds, [`sweep`] and
//! [`search`] build the tables of a sweep (the paper's Table 2, per crystal
//! system) and of a search (top trials, phases), [`tables`] renders them as
//! Markdown, CSV and LaTeX, [`figures`] draws PNG and SVG figures,
//! [`importance`] ranks hyperparameters (fANOVA), [`plots`] picks a study's
//! figures, and [`document`] writes the report folder.

pub(crate) mod collect;
pub(crate) mod document;
pub mod figures;
pub mod importance;
pub(crate) mod plots;
pub(crate) mod search;
pub mod stats;
pub(crate) mod sweep;
pub(crate) mod tables;
