//! Dielectric data sets: reading and cleaning (the paper's rules), seeded and
//! fixed splits, the model's graphs and their batches, an on-disk graph cache,
//! and the embedded synthetic data set.

pub(crate) mod cache;
pub(crate) mod clean;
pub mod dataset;
pub mod graph;
pub(crate) mod split;
pub mod synthetic;

pub use cache::{load_graphs, CacheOptions, CacheStatus, GraphSet};
pub use clean::{CleaningOptions, CleaningReport};
pub use dataset::{load, CleanFrame, Dataset, Entry, LoadOptions, Source};
pub use graph::{build_graph, build_graphs, Graph, GraphBatch, GraphOptions};
pub use split::{Split, SplitRatios};
