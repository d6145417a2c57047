//! Hyperparameter optimisation: search spaces, trials, samplers and pruners.
//! Pure: nothing here touches the database or the file system.

pub mod space;
pub mod store;
pub mod trial;

pub use space::{Distribution, ParamValue, SearchSpace};
pub use store::{MemoryStore, TrialStore};
pub use trial::{Direction, FrozenTrial, Params, TrialState};
