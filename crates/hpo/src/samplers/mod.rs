//! Samplers propose the parameters of the next trial. They are stateless:
//! everything they use comes in a [`SampleContext`] (space, full history,
//! direction, seed, trial number), so a resumed study asks exactly what an
//! uninterrupted one would have asked.

pub mod auto;
pub mod gp;
pub mod grid;
mod normal;
pub mod parzen;
pub mod random;
pub mod tpe;

pub use gp::{GpConfig, GpSampler};
pub use grid::{GridAxis, GridSampler, GridSpec, Spacing};
pub use random::RandomSampler;
pub use tpe::{TpeConfig, TpeSampler};

use super::{Direction, FrozenTrial, Params, SearchSpace};

/// What a sampler may look at when proposing trial `trial_number`.
#[derive(Debug, Clone, Copy)]
pub struct SampleContext<'a> {
    pub space: &'a SearchSpace,
    /// Every trial of the study so far (all phases, all states), by number.
    pub history: &'a [FrozenTrial],
    pub direction: Direction,
    /// The study seed; draws come from ChaCha keyed by (seed, trial number).
    pub seed: u64,
    pub trial_number: u64,
    /// Index of the phase asking.
    pub phase: usize,
}

/// A stateless proposer of parameters.
pub trait Sampler {
    /// Parameters for `ctx.trial_number`, each value inside its domain.
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params>;
}
