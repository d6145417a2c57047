//! Training: the loop ([`trainer`]), AdamW with savable state ([`optim`]),
//! batches from graphs ([`batch`]), metrics ([`metrics`]) and checkpoints
//! ([`checkpoint`]). Everything is deterministic on the CPU: the same seed
//! gives bit-identical losses and metrics, also across interruptions.

pub mod batch;
pub(crate) mod checkpoint;
pub(crate) mod config;
pub mod metrics;
pub mod optim;
pub mod predictions;
pub(crate) mod trainer;

pub use checkpoint::{
    exists as checkpoint_exists, load_best_model, Checkpoint, EpochRecord, FinalMetrics, StopReason,
    TrainState,
};
pub use config::TrainConfig;
pub use metrics::{GroupMetrics, Metrics};
pub use trainer::{model_for_run, resume, train, Control, EpochReport, TrainData, TrainOutcome, Trainer};

#[cfg(test)]
mod tests;
