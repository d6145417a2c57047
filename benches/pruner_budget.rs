//! What the pruners buy: the best value a search reaches against the steps
//! (epochs) it spends, for no pruning, the median pruner, ASHA and
//! Hyperband, on learning curves over the bench's test functions.
//!
//!     cargo bench --bench pruner_budget
//!     PRUNER_BUDGET_SEEDS=100 cargo bench --bench pruner_budget
//!
//! A trial's curve over steps t = 1 … 81 is
//! y(t) = f(x) + a(x) · exp(−(t − 1) / τ(x)), where f is the function
//! (Branin, Hartmann-6, the mixed AnisoNet-like space) and a ∈ [0.5, 3]·s_f
//! and τ ∈ [2, 30] steps come from the trial's parameters (a sine hash), so
//! curves cross: a setting that starts badly may end best, the case that
//! separates cautious pruners from greedy ones. Each trial reports every
//! step and stops when its pruner says so. Searches are TPE (multivariate:
//! Optuna 5's defaults), sequential, with the same seeds for every pruner.
//!
//! With Optuna's own runs of the same curves (`benches/optuna/pruner_reference.json`,
//! made by `benches/optuna/pruner_reference.py`; `PRUNER_BUDGET_OPTUNA=FILE`
//! reads another) each line adds Optuna's median and the one-sided
//! Mann–Whitney p-value that ours is worse, and the run ends with a
//! `pruner_budget_summary` line: the rows worse at p < 0.05, alone and after
//! Holm's correction.
//!
//! Each search runs until it has spent 40 full trials' worth of steps
//! (40 × 81); each line is one (function, pruner): the median over seeds of
//! the best COMPLETE value reached within 10, 20 and 40 full trials' worth
//! (a pruned trial's values do not count, as in a study). Pruners spend the
//! same budget on more, shorter trials. Hyperband's `max_resource` is
//! `auto` (81 once a trial completes).

use anisostudy::hpo::samplers::TpeConfig;
use anisostudy::hpo::test_functions::{branin, branin_space, hartmann6, hartmann6_space, mixed, mixed_space};
use anisostudy::hpo::{
    Ask, Direction, HyperbandPruner, MedianPruner, MemoryStore, Outcome, Params, Phase, PrunerConfig,
    SamplerConfig, SearchSpace, Study, StudyConfig, SuccessiveHalvingPruner,
};
use anisostudy::report::stats::{holm_adjusted, MannWhitney};

const STEPS: u64 = 81;

type Function = fn(&Params) -> f64;

/// A number in [0, 1) from the trial's parameters (numbers, by name) and a
/// salt: the fractional part of a sine, as `benches/optuna/pruner_reference.py`
/// computes it for Optuna's runs on the same curves.
fn unit(params: &Params, salt: f64) -> f64 {
    let phase: f64 = params
        .values()
        .enumerate()
        .map(|(k, value)| (k + 1) as f64 * 78.233 * value.as_f64().expect("numeric parameters"))
        .sum();
    ((salt * 12.9898 + phase).sin() * 43758.5453).fract().abs()
}

/// The value at step `t` (1-based) of the curve of `params`.
fn curve(f: Function, scale: f64, params: &Params, t: u64) -> f64 {
    let a = (0.5 + 2.5 * unit(params, 1.0)) * scale;
    let tau = 2.0 + 28.0 * unit(params, 2.0);
    f(params) + a * (-((t - 1) as f64) / tau).exp()
}

/// Budgets, in full trials' worth of steps.
const BUDGETS: [u64; 3] = [10, 20, 40];

/// The best COMPLETE value reached within each of [`BUDGETS`] (× [`STEPS`]
/// steps), searching until the largest is spent.
fn search(f: Function, scale: f64, space: &SearchSpace, pruner: PrunerConfig, seed: u64) -> [f64; 3] {
    let limit = BUDGETS[2] * STEPS;
    // Optuna 5's default TPE for one objective is multivariate.
    let tpe = TpeConfig { multivariate: true, ..TpeConfig::default() };
    let phase = Phase::new("tpe", space.clone(), SamplerConfig::Tpe(tpe), Some(limit));
    // Optuna's runs name their studies so, for the same Hyperband brackets.
    let pruner = match pruner {
        PrunerConfig::Hyperband(hyperband) => {
            PrunerConfig::Hyperband(hyperband.for_study(&format!("pruner_budget_{seed}")))
        }
        other => other,
    };
    let config = StudyConfig {
        seed,
        direction: Direction::Minimize,
        directions: Vec::new(),
        phases: vec![phase],
        pruner,
    };
    let mut study = Study::new(MemoryStore::default(), config).expect("a valid study");
    let (mut steps, mut best) = (0, f64::INFINITY);
    let mut reached = [f64::INFINITY; 3];
    while steps < limit {
        let Ask::Trial(trial) = study.ask().expect("ask") else { break };
        let mut outcome = Outcome::Pruned;
        for t in 1..=STEPS {
            let value = curve(f, scale, &trial.params, t);
            steps += 1;
            study.report(trial.number, t, value).expect("report");
            if t == STEPS {
                outcome = Outcome::Complete(value);
            } else if study.should_prune(trial.number).expect("should_prune") {
                break;
            }
        }
        if let Outcome::Complete(value) = outcome {
            best = best.min(value);
        }
        study.tell(trial.number, outcome).expect("tell");
        for (k, budget) in BUDGETS.iter().enumerate() {
            if steps <= budget * STEPS {
                reached[k] = best;
            }
        }
    }
    reached
}

/// Optuna's per-seed results (`benches/optuna/pruner_reference.json`):
/// "function/pruner" → the best values at each budget, seed by seed.
fn optuna_reference() -> Option<serde_json::Value> {
    let path = std::env::var("PRUNER_BUDGET_OPTUNA").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/optuna/pruner_reference.json").into()
    });
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?.get("results").cloned()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn main() {
    let seeds: u64 = std::env::var("PRUNER_BUDGET_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let functions: [(&str, Function, f64, SearchSpace); 3] = [
        ("branin", branin, 10.0, branin_space()),
        ("hartmann6", hartmann6, 1.0, hartmann6_space()),
        ("mixed", mixed, 0.1, mixed_space()),
    ];
    let pruners = [
        ("none", PrunerConfig::None),
        ("median", PrunerConfig::Median(MedianPruner::default())),
        (
            "asha",
            PrunerConfig::SuccessiveHalving(SuccessiveHalvingPruner {
                min_resource: Some(1),
                reduction_factor: 3,
                min_early_stopping_rate: 0,
            }),
        ),
        ("hyperband", PrunerConfig::Hyperband(HyperbandPruner::default())),
    ];
    let optuna = optuna_reference();
    let mut p_worse = Vec::new();
    for (name, f, scale, space) in &functions {
        for (pruner_name, pruner) in &pruners {
            let runs: Vec<[f64; 3]> =
                (0..seeds).map(|seed| search(*f, *scale, space, *pruner, seed)).collect();
            let mut line = format!(
                "{{\"bench\": \"pruner_budget\", \"function\": \"{name}\", \"pruner\": \"{pruner_name}\", \"seeds\": {seeds}"
            );
            for (k, budget) in BUDGETS.iter().enumerate() {
                let ours: Vec<f64> = runs.iter().map(|r| r[k]).collect();
                line += &format!(", \"median_best_at_{budget}\": {:.6}", median(&ours));
                let reference = optuna.as_ref().and_then(|o| {
                    o.get(format!("{name}/{pruner_name}"))?
                        .get(format!("best_at_{budget}"))?
                        .as_array()
                        .cloned()
                });
                if let Some(reference) = reference {
                    let theirs: Vec<f64> = reference.iter().filter_map(|v| v.as_f64()).collect();
                    let test = MannWhitney::of(&ours, &theirs);
                    line += &format!(
                        ", \"optuna_at_{budget}\": {:.6}, \"p_ours_worse_at_{budget}\": {:.4}",
                        median(&theirs),
                        test.p_a_larger
                    );
                    p_worse.push((format!("{name}/{pruner_name}@{budget}"), test.p_a_larger));
                }
            }
            println!("{line}}}");
        }
    }
    if !p_worse.is_empty() {
        let adjusted = holm_adjusted(&p_worse.iter().map(|p| p.1).collect::<Vec<_>>());
        let worse: Vec<&str> = p_worse.iter().filter(|p| p.1 < 0.05).map(|p| p.0.as_str()).collect();
        let worse_holm: Vec<&str> =
            p_worse.iter().zip(&adjusted).filter(|(_, &q)| q < 0.05).map(|(p, _)| p.0.as_str()).collect();
        println!(
            "{{\"bench\": \"pruner_budget_summary\", \"rows\": {}, \"worse\": {worse:?}, \"worse_holm\": {worse_holm:?}}}",
            p_worse.len()
        );
    }
}
