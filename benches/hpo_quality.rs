//! Quality of the samplers: the median over 20 seeds of the best value after
//! 100 trials on Branin, Hartmann-6 and a mixed AnisoNet-like space, for
//! random search and univariate / multivariate TPE. Prints one JSON line per
//! (function, sampler), with Optuna 5.0's TPE result for reference.
//!
//!     cargo bench --bench hpo_quality
//!     HPO_QUALITY_SEEDS=100 cargo bench --bench hpo_quality
//!     HPO_QUALITY_PER_SEED=1 HPO_QUALITY_SEEDS=200 cargo bench --bench hpo_quality
//!
//! With `HPO_QUALITY_PER_SEED=1` each line also carries `first_seed` and
//! `per_seed`, the best value of every seed in order, for comparing whole
//! distributions (e.g. against Optuna run on the same seeds) rather than
//! medians alone.
//!
//! A 20-seed median is noisy: Optuna 5.0 itself gives −3.228, −3.209,
//! −3.208 and −3.199 on Hartmann-6 (multivariate) for seeds 0–19, 20–39,
//! 40–59 and 60–79. Over seeds 0–99 it gets Hartmann-6 −2.992 (univariate)
//! and −3.190 (multivariate), mixed 0.00088 (multivariate); compare with
//! `HPO_QUALITY_SEEDS=100`. Over seeds 0–999 it gets Branin 0.4436 (0.4204
//! multivariate), Hartmann-6 −2.985 (−3.179), mixed 0.0042 (0.0016); compare
//! with `HPO_QUALITY_SEEDS=1000` (about a minute on two cores).

use anisostudy::hpo::samplers::TpeConfig;
use anisostudy::hpo::test_functions::{branin, branin_space, hartmann6, hartmann6_space, mixed, mixed_space};
use anisostudy::hpo::{
    Ask, MemoryStore, Outcome, Params, Phase, SamplerConfig, SearchSpace, Study, StudyConfig,
};

/// Seeds per (function, sampler); `HPO_QUALITY_SEEDS` and
/// `HPO_QUALITY_FIRST_SEED` (default 0) choose others.
const DEFAULT_SEEDS: u64 = 20;
const TRIALS: u64 = 100;

fn best_after(space: &SearchSpace, objective: fn(&Params) -> f64, sampler: &SamplerConfig, seed: u64) -> f64 {
    let phase = Phase::new("search", space.clone(), sampler.clone(), Some(TRIALS));
    let config =
        StudyConfig { seed, direction: Default::default(), phases: vec![phase], pruner: Default::default() };
    let mut study = Study::new(MemoryStore::default(), config).expect("valid study");
    while let Ask::Trial(trial) = study.ask().expect("ask") {
        study.tell(trial.number, Outcome::Complete(objective(&trial.params))).expect("tell");
    }
    study.best_trial().and_then(|t| t.value).expect("a completed trial")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

fn main() {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seeds = env("HPO_QUALITY_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first_seed = env("HPO_QUALITY_FIRST_SEED").unwrap_or(0);
    let per_seed = env("HPO_QUALITY_PER_SEED").is_some_and(|v| v != 0);
    type Problem = (&'static str, SearchSpace, fn(&Params) -> f64, [f64; 2]);
    let problems: [Problem; 3] = [
        ("branin", branin_space(), branin, [0.448, 0.417]),
        ("hartmann6", hartmann6_space(), hartmann6, [-2.996, -3.228]),
        ("mixed", mixed_space(), mixed, [0.0052, 0.00018]),
    ];
    let samplers = [
        ("random", SamplerConfig::Random, None),
        ("tpe", SamplerConfig::Tpe(TpeConfig::default()), Some(0)),
        (
            "tpe_multivariate",
            SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }),
            Some(1),
        ),
    ];
    for (name, space, objective, optuna) in &problems {
        for (sampler_name, sampler, optuna_index) in &samplers {
            let start = std::time::Instant::now();
            let bests: Vec<f64> = (first_seed..first_seed + seeds)
                .map(|seed| best_after(space, *objective, sampler, seed))
                .collect();
            let optuna_value = optuna_index.map_or("null".to_owned(), |i: usize| optuna[i].to_string());
            let seconds = start.elapsed().as_secs_f64();
            // `{:?}`: the shortest form that parses back to the same f64 (valid JSON when finite).
            let extra = if per_seed {
                let values: Vec<String> = bests.iter().map(|v| format!("{v:?}")).collect();
                format!(",\"first_seed\":{first_seed},\"per_seed\":[{}]", values.join(","))
            } else {
                String::new()
            };
            println!(
                "{{\"bench\":\"hpo_quality\",\"function\":\"{name}\",\"sampler\":\"{sampler_name}\",\"seeds\":{seeds},\"trials\":{TRIALS},\"median_best\":{:.6},\"optuna_5_tpe\":{optuna_value},\"seconds\":{seconds:.3}{extra}}}",
                median(bests),
            );
        }
    }
}
