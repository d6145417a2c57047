//! Hyperparameter optimisation: search spaces, trials, samplers and pruners.
//! Pure: nothing here touches the database or the file system.

pub mod space;
pub mod trial;

pub use space::{Distribution, ParamValue, SearchSpace};
pub use trial::{Direction, FrozenTrial, Params, TrialState};
