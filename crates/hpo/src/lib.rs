//! Hyperparameter optimisation: search spaces, trials, samplers and pruners.
//! Pure: nothing here touches the database or the file system.
//!
//! [`Study`] is the ask/tell core over a [`TrialStore`]; it runs an ordered
//! list of [`Phase`]s (e.g. TPE, then a grid around the best trial) and asks
//! the configured [`pruners::Pruner`] whether a trial should stop early.

pub mod pareto;
pub mod phase;
pub mod pruners;
pub mod rng;
pub mod samplers;
pub mod space;
pub mod store;
pub mod study;
pub mod test_functions;
pub mod trial;

pub use phase::{Phase, SamplerConfig};
pub use pruners::{HyperbandPruner, MedianPruner, NopPruner, Pruner, PrunerConfig, SuccessiveHalvingPruner};
pub use space::{Distribution, ParamValue, SearchSpace};
pub use store::{MemoryStore, TrialStore};
pub use study::{Ask, Outcome, Study, StudyConfig, Trial};
pub use trial::{best_trial, violation, Direction, FrozenTrial, Params, TrialState};
