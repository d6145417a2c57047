//! Uniform random search: uniform on the internal scale (so log-uniform for
//! log domains), exactly uniform over the points of a step grid.

use rand::RngCore;

use super::{SampleContext, Sampler};
use crate::rng::{self, Stream};
use crate::{Distribution, ParamValue, Params, SearchSpace};

/// Independent uniform draws for every parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RandomSampler;

impl Sampler for RandomSampler {
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params> {
        let mut rng = rng::seeded(ctx.seed, ctx.trial_number, Stream::Sample);
        Ok(sample_space(ctx.space, &mut rng))
    }
}

/// One uniform draw of every parameter of `space` that the draws before it
/// make active, in [`SearchSpace::sampling_order`] (name order without
/// conditions).
pub fn sample_space(space: &SearchSpace, rng: &mut impl RngCore) -> Params {
    let mut params = Params::new();
    for name in space.sampling_order() {
        if space.is_active(name, &params) {
            params.insert(name.clone(), sample_one(&space.params[name], rng));
        }
    }
    params
}

/// One uniform draw from `dist`.
pub fn sample_one(dist: &Distribution, rng: &mut impl RngCore) -> ParamValue {
    match *dist {
        Distribution::Categorical { ref choices } => choices[rng::index(rng, choices.len())].clone(),
        Distribution::Int { low, high, log: true, .. } => {
            // Log-uniform over [low − ½, high + ½], then rounded: every
            // integer gets the log-width of its rounding cell.
            let (lo, hi) = ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln());
            dist.from_internal(lo + rng::uniform(rng) * (hi - lo))
        }
        _ => {
            let (low, high) = dist.internal_bounds();
            match (dist.step(), dist.n_values()) {
                (Some(step), Some(n)) => {
                    let k = rng::index(rng, n as usize) as f64;
                    dist.from_internal(low + k * step)
                }
                _ => dist.from_internal(low + rng::uniform(rng) * (high - low)),
            }
        }
    }
}
