//! Study reports: summaries of finished studies.

pub mod importance;
