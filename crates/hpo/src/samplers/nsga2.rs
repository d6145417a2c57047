//! NSGA-II (Deb et al. 2002), with the components of Optuna 5.0's
//! `NSGAIISampler`: a population evolved generation by generation, parents
//! kept by non-dominated rank and crowding distance, children made by
//! uniform crossover and mutation.
//!
//! - **Generations.** The phase's trials, in number order, form generations
//!   of `population_size`. The parent population of a generation is the
//!   elite of the previous parents and the previous generation's COMPLETE
//!   trials: whole non-dominated ranks while they fit, the rank that does
//!   not fit cut by crowding distance (largest first). The first generation,
//!   and any whose parents are not known yet, is sampled at random.
//! - **Constraints.** Domination is Deb's constrained domination: feasible
//!   trials dominate infeasible ones, of two infeasible ones the smaller
//!   summed violation wins.
//! - **A child.** With probability `crossover_prob`, two distinct parents
//!   are chosen by binary tournament (the first of two random members if
//!   it dominates the second, else the second) and each parameter is taken from the second
//!   with probability `swapping_prob`; otherwise the child copies one
//!   random parent. Each parameter is then dropped with probability
//!   `mutation_prob` (1 / number of parameters by default) and drawn at
//!   random instead, as is any the parents lack (a conditional space).
//!
//! Differences from Optuna, on purpose: Optuna records each trial's
//! generation when it is sampled and waits for `population_size` COMPLETE
//! trials before a generation counts as done, so which generation a trial
//! joins depends on timing. Here a trial's generation is its position in
//! the phase, so the sampler stays stateless, a resumed study asks what an
//! uninterrupted one would have asked, and a generation with failed trials
//! is simply a smaller population. Random streams are ChaCha keyed by
//! (seed, trial), as for every sampler here.

use serde::{Deserialize, Serialize};

use super::random::{sample_one, sample_space};
use super::{SampleContext, Sampler};
use crate::pareto;
use crate::rng::{self, Stream};
use crate::{FrozenTrial, Params, TrialState};
use anisostudy_error::InputError;

/// Settings of the NSGA-II sampler; defaults are Optuna 5.0's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nsga2Config {
    /// Trials per generation, and the number of parents kept.
    pub population_size: usize,
    /// Probability that a child is a crossover of two parents (else a copy of one).
    pub crossover_prob: f64,
    /// Probability that uniform crossover takes a parameter from the second parent.
    pub swapping_prob: f64,
    /// Probability that a parameter is drawn at random instead of inherited;
    /// 1 / (number of parameters) when absent.
    pub mutation_prob: Option<f64>,
}

impl Default for Nsga2Config {
    fn default() -> Self {
        Self { population_size: 50, crossover_prob: 0.9, swapping_prob: 0.5, mutation_prob: None }
    }
}

impl Nsga2Config {
    pub fn validate(&self, location: &str) -> Result<(), InputError> {
        if self.population_size < 2 {
            return Err(InputError::new(location, "population_size must be at least 2")
                .with_hint("crossover needs two parents; Optuna's default is 50"));
        }
        let probabilities = [
            ("crossover_prob", Some(self.crossover_prob)),
            ("swapping_prob", Some(self.swapping_prob)),
            ("mutation_prob", self.mutation_prob),
        ];
        for (name, p) in probabilities {
            if let Some(p) = p.filter(|p| !(0.0..=1.0).contains(p)) {
                return Err(InputError::new(location, format!("{name} is {p}, not a probability"))
                    .with_hint("give a value between 0 and 1"));
            }
        }
        Ok(())
    }
}

/// The NSGA-II sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Nsga2Sampler {
    config: Nsga2Config,
}

impl Nsga2Sampler {
    pub fn new(config: Nsga2Config) -> Self {
        Self { config }
    }
}

/// A trial as selection sees it: its losses and its violation.
struct Member<'a> {
    trial: &'a FrozenTrial,
    losses: Vec<f64>,
    violation: Option<f64>,
}

impl Member<'_> {
    fn dominates(&self, other: &Member<'_>) -> bool {
        pareto::constrained_dominates((&self.losses, self.violation), (&other.losses, other.violation))
    }
}

impl Sampler for Nsga2Sampler {
    fn sample(&self, ctx: &SampleContext<'_>) -> anyhow::Result<Params> {
        let mut rng = rng::seeded(ctx.seed, ctx.trial_number, Stream::Sample);
        let parents = self.parents(ctx);
        if parents.len() < 2 {
            return Ok(sample_space(ctx.space, &mut rng));
        }
        let inherited: Params = if rng::uniform(&mut rng) < self.config.crossover_prob {
            let first = tournament(&parents, None, &mut rng);
            let second = tournament(&parents, Some(first), &mut rng);
            let (a, b) = (&parents[first].trial.params, &parents[second].trial.params);
            let mut child = Params::new();
            for name in ctx.space.params.keys() {
                let from_second = rng::uniform(&mut rng) < self.config.swapping_prob;
                let pick =
                    if from_second { b.get(name).or(a.get(name)) } else { a.get(name).or(b.get(name)) };
                if let Some(value) = pick {
                    child.insert(name.clone(), value.clone());
                }
            }
            child
        } else {
            parents[rng::index(&mut rng, parents.len())].trial.params.clone()
        };
        let mutation = self.config.mutation_prob.unwrap_or(1.0 / (inherited.len().max(1) as f64));
        let kept: Params = inherited
            .into_iter()
            .filter(|_| rng::uniform(&mut rng) >= mutation)
            .filter(|(name, value)| ctx.space.params.get(name).is_some_and(|d| d.contains(value)))
            .collect();
        let mut params = Params::new();
        for name in ctx.space.sampling_order() {
            if !ctx.space.is_active(name, &params) {
                continue;
            }
            let value = match kept.get(name) {
                Some(value) => value.clone(),
                None => sample_one(&ctx.space.params[name], &mut rng),
            };
            params.insert(name.clone(), value);
        }
        Ok(params)
    }
}

impl Nsga2Sampler {
    /// The parent population of the generation the asked trial joins.
    fn parents<'a>(&self, ctx: &SampleContext<'a>) -> Vec<Member<'a>> {
        let size = self.config.population_size;
        let phase: Vec<&FrozenTrial> = ctx.history.iter().filter(|t| t.phase == ctx.phase).collect();
        let generation = phase.len() / size;
        let mut parents: Vec<Member<'a>> = Vec::new();
        for g in 0..generation {
            let offspring = phase[g * size..(g + 1) * size]
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(|t| member(t, ctx));
            parents.extend(offspring);
            parents = elite(parents, size);
        }
        parents
    }
}

fn member<'a>(trial: &'a FrozenTrial, ctx: &SampleContext<'_>) -> Option<Member<'a>> {
    let losses = if ctx.directions.is_empty() {
        vec![ctx.direction.as_loss(trial.value?)]
    } else {
        pareto::losses(trial, ctx.directions)?
    };
    Some(Member { trial, losses, violation: trial.violation() })
}

/// The `size` best of `population`: whole non-dominated ranks while they
/// fit, then the rank that does not fit by crowding distance, largest
/// first (ties to the lower trial number). In trial order.
fn elite(population: Vec<Member<'_>>, size: usize) -> Vec<Member<'_>> {
    if population.len() <= size {
        return population;
    }
    let ranks = pareto::non_dominated_ranks(&population, |a, b| a.dominates(b));
    let mut keep = vec![false; population.len()];
    let mut count = 0;
    for rank in 0.. {
        let members: Vec<usize> = (0..population.len()).filter(|&i| ranks[i] == rank).collect();
        if count + members.len() <= size {
            members.iter().for_each(|&i| keep[i] = true);
            count += members.len();
            if count == size {
                break;
            }
            continue;
        }
        let points: Vec<Vec<f64>> = members.iter().map(|&i| population[i].losses.clone()).collect();
        let distance = pareto::crowding_distances(&points);
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| {
            distance[b]
                .total_cmp(&distance[a])
                .then(population[members[a]].trial.number.cmp(&population[members[b]].trial.number))
        });
        for &k in order.iter().take(size - count) {
            keep[members[k]] = true;
        }
        break;
    }
    let mut kept: Vec<Member<'_>> =
        population.into_iter().zip(keep).filter(|(_, k)| *k).map(|(m, _)| m).collect();
    kept.sort_by_key(|m| m.trial.number);
    kept
}

/// Binary tournament: of two random members (other than `except`), the
/// first if it dominates the second, else the second (Optuna 5.0's rule).
fn tournament(population: &[Member<'_>], except: Option<usize>, rng: &mut impl rand::RngCore) -> usize {
    let candidates: Vec<usize> = (0..population.len()).filter(|&i| Some(i) != except).collect();
    let a = candidates[rng::index(rng, candidates.len())];
    let b = candidates[rng::index(rng, candidates.len())];
    if population[a].dominates(&population[b]) {
        a
    } else {
        b
    }
}
