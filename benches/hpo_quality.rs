//! Quality of the samplers: the median over 20 seeds of the best value after
//! 100 trials, for random search and univariate / multivariate TPE, on
//! Branin, Hartmann-6, a mixed AnisoNet-like space, and a family of integer
//! spaces with tied objectives (`int5_l1`, `int_steps`, `int_plateau`,
//! `anisonet_rounded`; see `hpo::test_functions`). Prints one JSON line per
//! (function, sampler), with Optuna 5.0's TPE result for reference.
//!
//!     cargo bench --bench hpo_quality
//!     HPO_QUALITY_SEEDS=200 HPO_QUALITY_FUNCTIONS=int5_l1,int_steps,int_plateau,anisonet_rounded \
//!         cargo bench --bench hpo_quality
//!
//! For the integer family Optuna's own runs, seed by seed, are in
//! `benches/optuna/tpe_reference.json` (seeds 0–199, made by
//! `benches/optuna/tpe_reference.py`; `HPO_QUALITY_OPTUNA=FILE` reads
//! another). Each line then adds `ours_lower` (P(ours < Optuna) over all
//! pairs of seeds, ties ½) and `p_ours_worse`, the one-sided Mann–Whitney
//! p-value of "ours is worse". Over 200 seeds:
//!
//! | function | mode | median ours / Optuna | ours_lower | p_ours_worse (before the tie rule) |
//! |---|---|---|---:|---:|
//! | int5_l1 | univariate | 3 / 3 | 0.465 | 0.106 (0.759) |
//! | int5_l1 | multivariate | 2 / 2 | 0.540 | 0.934 (0.000) |
//! | int_steps | univariate | 1 / 1 | 0.484 | 0.266 (0.159) |
//! | int_steps | multivariate | 0 / 1 | 0.546 | 0.965 (0.007) |
//! | int_plateau | univariate | 0 / 0 | 0.534 | 0.918 (0.979) |
//! | int_plateau | multivariate | 0 / 0 | 0.505 | 0.610 (0.048) |
//! | anisonet_rounded | univariate | 0.1 / 0.1 | 0.493 | 0.398 (0.777) |
//! | anisonet_rounded | multivariate | 0 / 0 | 0.528 | 0.987 (0.033) |
//!
//! "Before" is the tie rule that ordered equal observations the same way in
//! every dimension (see `hpo::samplers::tpe`, "Rule by rule").
//! `HPO_QUALITY_WORKERS=2` keeps two trials in flight (constant liar), as
//! `study run` does on two slots: on `int5_l1` that costs multivariate TPE
//! a mean best of 2.16 against 1.99 sequential (univariate 3.10 against
//! 3.09), so compare sequential runs with sequential ones.
//!
//! With workers above 1, Optuna's own parallel runs are the fairer
//! reference: `benches/optuna/tpe_reference_<mode><workers>.json` (made by
//! `tpe_reference.py --workers N --mode MODE`: N trials in flight with
//! Optuna's constant liar, dispatched as here). When that file is there each
//! line adds `optuna_parallel` (its median), `p_ours_worse_than_parallel`
//! and `p_optuna_parallel_worse`, what the same parallelism costs Optuna
//! against its sequential runs (the tables in docs/benchmarks.md).
//!
//! The run ends with an `hpo_quality_summary` line: the rows where ours is
//! worse at p < 0.05, row by row (`worse`) and after Holm's correction over
//! the run's rows (`worse_holm`), against sequential Optuna and against
//! Optuna as parallel as the run. Sixteen rows at α = 0.05 give about one
//! "worse" row by chance, so `worse_holm` is the verdict.
//!
//! With `HPO_QUALITY_PER_SEED=1` each line also carries `first_seed` and
//! `per_seed`, the best value of every seed in order, for comparing whole
//! distributions rather than medians alone.
//!
//! A 20-seed median is noisy: Optuna 5.0 itself gives −3.228, −3.209,
//! −3.208 and −3.199 on Hartmann-6 (multivariate) for seeds 0–19, 20–39,
//! 40–59 and 60–79. Over seeds 0–99 it gets Hartmann-6 −2.992 (univariate)
//! and −3.190 (multivariate), mixed 0.00088 (multivariate); compare with
//! `HPO_QUALITY_SEEDS=100`. Over seeds 0–999 it gets Branin 0.4436 (0.4204
//! multivariate), Hartmann-6 −2.985 (−3.179), mixed 0.0042 (0.0016); compare
//! with `HPO_QUALITY_SEEDS=1000` (about a minute on two cores). The tie rule
//! leaves Branin and Hartmann-6 unchanged to the last digit (continuous: no
//! ties) and mixed level (1000 seeds: medians 0.00452 and 0.00133, from
//! 0.00427 and 0.00156; Mann–Whitney p = 0.24 and 0.14 for "worse").

use anisostudy::hpo::pareto;
use anisostudy::hpo::samplers::{GpConfig, Nsga2Config, TpeConfig};
use anisostudy::hpo::test_functions::{
    anisonet_budget, anisonet_budget_constraints, anisonet_rounded, anisonet_rounded_space,
    anisonet_tradeoff, binh_korn, binh_korn_constraints, binh_korn_space, branin, branin_space, categorical6,
    categorical6_space, conditional, conditional_space, dtlz2, gramacy, gramacy_constraints, gramacy_space,
    hartmann6, hartmann6_space, int5_l1, int5_space, int_plateau, int_plateau_space, int_steps,
    int_steps_space, mixed, mixed5, mixed5_space, mixed_space, styblinski_tang, styblinski_tang_space,
    tanaka, tanaka_constraints, tanaka_space, zdt1, zdt2, zdt3, zdt_space,
};
use anisostudy::hpo::{
    violation, Ask, Direction, MemoryStore, Outcome, Params, Phase, SamplerConfig, SearchSpace, Study,
    StudyConfig, Trial,
};
use anisostudy::report::stats::{holm_adjusted, MannWhitney};

/// Seeds per (function, sampler); `HPO_QUALITY_SEEDS` and
/// `HPO_QUALITY_FIRST_SEED` (default 0) choose others.
const DEFAULT_SEEDS: u64 = 20;
const TRIALS: u64 = 100;

/// How trials run in parallel: as `study run` dispatches them.
#[derive(Clone, Copy, PartialEq)]
enum Dispatch {
    /// Each new trial is asked while the `workers − 1` before it still run,
    /// then the oldest is told.
    Async,
    /// `mode: deterministic`: a batch of `workers` trials is asked in turn
    /// (each sees its batch's earlier ones running), then all are told.
    Batches,
}

impl Dispatch {
    /// The study file's `mode` of this dispatch.
    fn mode(self) -> &'static str {
        match self {
            Dispatch::Async => "async",
            Dispatch::Batches => "deterministic",
        }
    }
}

/// The best value after [`TRIALS`] trials with `workers` trials in flight,
/// and how many trials were asked with a point a running trial already had.
fn best_after(
    space: &SearchSpace,
    objective: fn(&Params) -> f64,
    sampler: &SamplerConfig,
    seed: u64,
    workers: usize,
    dispatch: Dispatch,
) -> (f64, usize) {
    let (bests, repeats) = bests_at(space, objective, None, sampler, seed, workers, dispatch, &[TRIALS]);
    (bests[0], repeats)
}

/// The best value among the first `budgets[i]` trials (by number) of one
/// run of the largest budget, and the repeats as in [`best_after`]. A
/// sampler does not know the budget, so these are runs of each budget.
#[allow(clippy::too_many_arguments)]
fn bests_at(
    space: &SearchSpace,
    objective: fn(&Params) -> f64,
    constraints: Option<fn(&Params) -> Vec<f64>>,
    sampler: &SamplerConfig,
    seed: u64,
    workers: usize,
    dispatch: Dispatch,
    budgets: &[u64],
) -> (Vec<f64>, usize) {
    let trials = *budgets.iter().max().expect("a budget");
    let phase = Phase::new("search", space.clone(), sampler.clone(), Some(trials));
    let config = StudyConfig {
        seed,
        direction: Default::default(),
        directions: Vec::new(),
        phases: vec![phase],
        pruner: Default::default(),
    };
    let mut study = Study::new(MemoryStore::default(), config).expect("valid study");
    let mut in_flight: std::collections::VecDeque<Trial> = std::collections::VecDeque::new();
    let mut repeats = 0;
    let mut values: Vec<(u64, f64)> = Vec::new();
    loop {
        while in_flight.len() < workers {
            match study.ask().expect("ask") {
                Ask::Trial(trial) => {
                    repeats += usize::from(in_flight.iter().any(|t| t.params == trial.params));
                    in_flight.push_back(trial);
                }
                _ => break,
            }
        }
        let told = if dispatch == Dispatch::Batches { in_flight.len() } else { 1 };
        if in_flight.is_empty() {
            break;
        }
        for trial in in_flight.drain(..told) {
            let value = objective(&trial.params);
            // A constrained problem's trial carries its constraint values;
            // only feasible values count.
            let feasible = match constraints.map(|c| c(&trial.params)) {
                Some(c) => {
                    study.set_constraints(trial.number, &c).expect("constraints");
                    violation(&c) <= 0.0
                }
                None => true,
            };
            values.push((trial.number, if feasible { value } else { f64::INFINITY }));
            study.tell(trial.number, Outcome::Complete(value)).expect("tell");
        }
    }
    let best =
        |budget: u64| values.iter().filter(|(n, _)| *n < budget).map(|v| v.1).fold(f64::INFINITY, f64::min);
    (budgets.iter().map(|&b| best(b)).collect(), repeats)
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

/// Optuna's per-seed best values from `benches/optuna/tpe_reference.py`,
/// by function and sampler label.
type OptunaRuns = serde_json::Map<String, serde_json::Value>;

fn optuna_runs(first_seed: u64, seeds: u64) -> Option<OptunaRuns> {
    let path = std::env::var("HPO_QUALITY_OPTUNA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/benches/optuna/tpe_reference.json").into());
    read_runs(&path, first_seed, seeds)
}

/// Optuna's own parallel runs with `workers` in flight, dispatched as
/// `dispatch` (`benches/optuna/tpe_reference_<mode><workers>.json`, from
/// `tpe_reference.py --workers --mode`), when that file is there.
fn optuna_parallel_runs(
    workers: usize,
    dispatch: Dispatch,
    first_seed: u64,
    seeds: u64,
) -> Option<OptunaRuns> {
    let path = format!(
        "{}/benches/optuna/tpe_reference_{}{workers}.json",
        env!("CARGO_MANIFEST_DIR"),
        dispatch.mode()
    );
    read_runs(&path, first_seed, seeds)
}

fn read_runs(path: &str, first_seed: u64, seeds: u64) -> Option<OptunaRuns> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).expect("the Optuna reference is JSON");
    if json["first_seed"].as_u64() != Some(first_seed) {
        eprintln!(
            "{path}: its seeds start at {}, not {first_seed}: no per-seed comparison",
            json["first_seed"]
        );
        return None;
    }
    let mut results = json["results"].as_object()?.clone();
    for runs in results.values_mut().filter_map(|v| v.as_object_mut()) {
        for values in runs.values_mut().filter_map(|v| v.as_array_mut()) {
            values.truncate(seeds as usize);
        }
    }
    Some(results)
}

fn main() {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seeds = env("HPO_QUALITY_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first_seed = env("HPO_QUALITY_FIRST_SEED").unwrap_or(0);
    let per_seed = env("HPO_QUALITY_PER_SEED").is_some_and(|v| v != 0);
    let only = std::env::var("HPO_QUALITY_FUNCTIONS").ok();
    let workers = env("HPO_QUALITY_WORKERS").unwrap_or(1).max(1) as usize;
    let dispatch = match std::env::var("HPO_QUALITY_MODE").as_deref() {
        Ok("deterministic") => Dispatch::Batches,
        Ok("async") | Err(_) => Dispatch::Async,
        Ok(other) => panic!("HPO_QUALITY_MODE is `async` or `deterministic`, not `{other}`"),
    };
    let budgets = std::env::var("HPO_QUALITY_BUDGETS").ok().map(|budgets| -> Vec<u64> {
        budgets
            .split(',')
            .map(|b| b.trim().parse().expect("HPO_QUALITY_BUDGETS is a list of trial counts, e.g. 30,50,100"))
            .collect()
    });
    if env("HPO_QUALITY_MULTI").is_some_and(|v| v != 0) {
        let budgets = budgets.unwrap_or_else(|| vec![50, 100]);
        return multi_objective_table(&budgets, first_seed, seeds, only.as_deref());
    }
    if env("HPO_QUALITY_CONSTRAINED").is_some_and(|v| v != 0) {
        let budgets = budgets.unwrap_or_else(|| vec![30, 50, 100]);
        return constrained_table(&budgets, first_seed, seeds, workers, dispatch, only.as_deref());
    }
    if let Some(budgets) = budgets {
        return budget_table(&budgets, first_seed, seeds, workers, dispatch, only.as_deref());
    }
    let liar = env("HPO_QUALITY_LIAR").is_none_or(|v| v != 0);
    let optuna_runs = optuna_runs(first_seed, seeds);
    let parallel_runs =
        (workers > 1).then(|| optuna_parallel_runs(workers, dispatch, first_seed, seeds)).flatten();
    type Problem = (&'static str, SearchSpace, fn(&Params) -> f64, Option<[f64; 2]>);
    let problems: [Problem; 9] = [
        ("branin", branin_space(), branin, Some([0.448, 0.417])),
        ("hartmann6", hartmann6_space(), hartmann6, Some([-2.996, -3.228])),
        ("mixed", mixed_space(), mixed, Some([0.0052, 0.00018])),
        ("mixed5", mixed5_space(), mixed5, None),
        ("int5_l1", int5_space(), int5_l1, None),
        ("int_steps", int_steps_space(), int_steps, None),
        ("int_plateau", int_plateau_space(), int_plateau, None),
        ("anisonet_rounded", anisonet_rounded_space(), anisonet_rounded, None),
        ("conditional", conditional_space(), conditional, None),
    ];
    let samplers = [
        ("random", SamplerConfig::Random, None),
        ("tpe", SamplerConfig::Tpe(TpeConfig { constant_liar: liar, ..Default::default() }), Some(0)),
        (
            "tpe_multivariate",
            SamplerConfig::Tpe(TpeConfig { multivariate: true, constant_liar: liar, ..Default::default() }),
            Some(1),
        ),
    ];
    // (row, p of "ours is worse") against sequential Optuna and against
    // Optuna as parallel as this run, for the closing summary.
    let (mut against_sequential, mut against_parallel) = (Vec::new(), Vec::new());
    for (name, space, objective, optuna_median) in &problems {
        if only.as_deref().is_some_and(|names| !names.split(',').any(|n| n == *name)) {
            continue;
        }
        for (sampler_name, sampler, optuna_index) in &samplers {
            let start = std::time::Instant::now();
            let runs: Vec<(f64, usize)> = (first_seed..first_seed + seeds)
                .map(|seed| best_after(space, *objective, sampler, seed, workers, dispatch))
                .collect();
            let bests: Vec<f64> = runs.iter().map(|r| r.0).collect();
            let repeats = runs.iter().map(|r| r.1).sum::<usize>() as f64 / (seeds * TRIALS) as f64;
            let seconds = start.elapsed().as_secs_f64();
            let seeds_of = |runs: &Option<OptunaRuns>| -> Option<Vec<f64>> {
                let values = runs.as_ref()?.get(*name)?.get(*sampler_name)?.as_array()?;
                let values: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                (values.len() == bests.len()).then_some(values)
            };
            let optuna = seeds_of(&optuna_runs);
            let optuna_value = match (&optuna, optuna_index) {
                (Some(values), _) => format!("{:.6}", median(values.clone())),
                (None, Some(i)) => optuna_median.map_or("null".to_owned(), |m| m[*i].to_string()),
                (None, None) => "null".to_owned(),
            };
            // Mann–Whitney of our seeds against Optuna's: how often ours is
            // lower (ties ½), and the one-sided p of "ours is worse".
            let comparison = optuna.as_ref().map_or(String::new(), |values| {
                let test = MannWhitney::of(&bests, values);
                against_sequential.push((format!("{name}/{sampler_name}"), test.p_a_larger));
                format!(",\"ours_lower\":{:.3},\"p_ours_worse\":{:.4}", test.a_lower, test.p_a_larger)
            });
            // Against Optuna with as many trials in flight (its constant liar
            // on), and how much that parallelism costs Optuna itself.
            let parallel = match (seeds_of(&parallel_runs), &optuna) {
                (Some(values), sequential) => {
                    let ours = MannWhitney::of(&bests, &values);
                    against_parallel.push((format!("{name}/{sampler_name}"), ours.p_a_larger));
                    let cost = sequential.as_ref().map_or(String::new(), |seq| {
                        format!(
                            ",\"p_optuna_parallel_worse\":{:.4}",
                            MannWhitney::of(&values, seq).p_a_larger
                        )
                    });
                    format!(
                        ",\"optuna_parallel\":{:.6},\"p_ours_worse_than_parallel\":{:.4}{cost}",
                        median(values.clone()),
                        ours.p_a_larger
                    )
                }
                (None, _) => String::new(),
            };
            // `{:?}`: the shortest form that parses back to the same f64 (valid JSON when finite).
            let extra = if per_seed {
                let values: Vec<String> = bests.iter().map(|v| format!("{v:?}")).collect();
                format!(",\"first_seed\":{first_seed},\"per_seed\":[{}]", values.join(","))
            } else {
                String::new()
            };
            println!(
                "{{\"bench\":\"hpo_quality\",\"function\":\"{name}\",\"sampler\":\"{sampler_name}\",\"seeds\":{seeds},\"trials\":{TRIALS},\"workers\":{workers},\"mode\":\"{}\",\"liar\":{liar},\"repeats\":{repeats:.4},\"median_best\":{:.6},\"optuna_5_tpe\":{optuna_value}{comparison}{parallel},\"seconds\":{seconds:.3}{extra}}}",
                dispatch.mode(),
                median(bests),
            );
        }
    }
    println!(
        "{{\"bench\":\"hpo_quality_summary\",\"workers\":{workers},\"mode\":\"{}\",\"against_sequential\":{},\"against_parallel\":{}}}",
        dispatch.mode(),
        worse_rows(&against_sequential),
        worse_rows(&against_parallel),
    );
}

/// The rows where ours is significantly worse at α = 0.05, row by row
/// (`worse`) and for the whole table after Holm's correction (`worse_holm`),
/// as a JSON object.
fn worse_rows(tests: &[(String, f64)]) -> String {
    let p: Vec<f64> = tests.iter().map(|t| t.1).collect();
    let names = |significant: &dyn Fn(usize) -> bool| -> String {
        let rows: Vec<String> = tests
            .iter()
            .enumerate()
            .filter(|(i, _)| significant(*i))
            .map(|(_, t)| format!("\"{}\"", t.0))
            .collect();
        format!("[{}]", rows.join(","))
    };
    let holm = holm_adjusted(&p);
    format!(
        "{{\"tests\":{},\"worse\":{},\"worse_holm\":{}}}",
        tests.len(),
        names(&|i| p[i] < 0.05),
        names(&|i| holm[i] < 0.05)
    )
}

/// Optuna's per-seed bests at each budget, `benches/optuna/<stem><suffix>.json`
/// (from `gp_reference.py`), by function then budget.
fn budget_runs(
    stem: &str,
    workers: usize,
    dispatch: Dispatch,
    first_seed: u64,
    seeds: u64,
) -> Option<OptunaRuns> {
    let suffix = match (workers, dispatch) {
        (1, _) => String::new(),
        (w, Dispatch::Async) => format!("_async{w}"),
        (_, Dispatch::Batches) => return None,
    };
    read_runs(
        &format!("{}/benches/optuna/{stem}{suffix}.json", env!("CARGO_MANIFEST_DIR")),
        first_seed,
        seeds,
    )
}

/// The GP sampler at several budgets against Optuna's GPSampler and both
/// TPEs (`HPO_QUALITY_BUDGETS=30,50,100`): one `hpo_quality_budget` line
/// per (function, budget) with the medians and one-sided Mann–Whitney
/// p-values, then an `hpo_quality_budget_summary` line with the verdicts
/// after Holm's correction over the table:
///
/// - `gp_worse_than_optuna_gp`: the rows where ours is worse than Optuna's GP;
/// - `optuna_gp_beats_optuna_tpe`: where Optuna's GP beats Optuna's TPE,
///   and there `gp_not_better_than_tpe`, the rows where ours does not beat
///   both TPEs (ours and Optuna's);
/// - `tpe_better_than_gp`: where our TPE beats our GP.
fn budget_table(
    budgets: &[u64],
    first_seed: u64,
    seeds: u64,
    workers: usize,
    dispatch: Dispatch,
    only: Option<&str>,
) {
    type Problem = (&'static str, SearchSpace, fn(&Params) -> f64);
    let problems: [Problem; 7] = [
        ("branin", branin_space(), branin),
        ("hartmann6", hartmann6_space(), hartmann6),
        ("mixed", mixed_space(), mixed),
        ("int5_l1", int5_space(), int5_l1),
        ("anisonet_rounded", anisonet_rounded_space(), anisonet_rounded),
        ("styblinski_tang", styblinski_tang_space(), styblinski_tang),
        ("categorical6", categorical6_space(), categorical6),
    ];
    let gp = SamplerConfig::Gp(GpConfig::default());
    let tpe = SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() });
    let optuna_gp = budget_runs("gp_reference", workers, dispatch, first_seed, seeds);
    let optuna_tpe = budget_runs("tpe_budgets", workers, dispatch, first_seed, seeds);
    let reference = |runs: &Option<OptunaRuns>, name: &str, budget: u64| -> Option<Vec<f64>> {
        let values = runs.as_ref()?.get(name)?.get(budget.to_string())?.as_array()?;
        Some(values.iter().filter_map(|v| v.as_f64()).collect())
    };
    // (row, p) for each verdict of the summary.
    let (mut worse, mut optuna_gp_wins, mut tpe_wins) = (Vec::new(), Vec::new(), Vec::new());
    for (name, space, objective) in &problems {
        if only.is_some_and(|names| !names.split(',').any(|n| n == *name)) {
            continue;
        }
        let start = std::time::Instant::now();
        let run = |sampler: &SamplerConfig| -> Vec<Vec<f64>> {
            (first_seed..first_seed + seeds)
                .map(|seed| bests_at(space, *objective, None, sampler, seed, workers, dispatch, budgets).0)
                .collect()
        };
        let (ours_gp, ours_tpe) = (run(&gp), run(&tpe));
        let seconds = start.elapsed().as_secs_f64();
        for (i, &budget) in budgets.iter().enumerate() {
            let row = format!("{name}/{budget}");
            let gp_b: Vec<f64> = ours_gp.iter().map(|r| r[i]).collect();
            let tpe_b: Vec<f64> = ours_tpe.iter().map(|r| r[i]).collect();
            let (ogp, otpe) = (reference(&optuna_gp, name, budget), reference(&optuna_tpe, name, budget));
            let med = |v: &Option<Vec<f64>>| {
                v.as_ref().map_or("null".to_owned(), |v| format!("{:.6}", median(v.clone())))
            };
            let mut fields = vec![
                format!("\"gp\":{:.6}", median(gp_b.clone())),
                format!("\"tpe_multivariate\":{:.6}", median(tpe_b.clone())),
                format!("\"optuna_gp\":{}", med(&ogp)),
                format!("\"optuna_tpe\":{}", med(&otpe)),
            ];
            let p_tpe_better = MannWhitney::of(&gp_b, &tpe_b).p_a_larger;
            fields.push(format!("\"p_tpe_better_than_gp\":{p_tpe_better:.4}"));
            tpe_wins.push((row.clone(), p_tpe_better));
            if let Some(ogp) = &ogp {
                let p = MannWhitney::of(&gp_b, ogp).p_a_larger;
                fields.push(format!("\"optuna_gp_seeds\":{},\"p_gp_worse_than_optuna_gp\":{p:.4},\"p_gp_better_than_optuna_gp\":{:.4}", ogp.len(), MannWhitney::of(ogp, &gp_b).p_a_larger));
                worse.push((row.clone(), p));
                if let Some(otpe) = &otpe {
                    let p_optuna = MannWhitney::of(otpe, ogp).p_a_larger;
                    let p_vs_otpe = MannWhitney::of(otpe, &gp_b).p_a_larger;
                    let p_vs_tpe = MannWhitney::of(&tpe_b, &gp_b).p_a_larger;
                    fields.push(format!("\"p_optuna_gp_better_than_optuna_tpe\":{p_optuna:.4},\"p_gp_better_than_optuna_tpe\":{p_vs_otpe:.4},\"p_gp_better_than_tpe\":{p_vs_tpe:.4}"));
                    optuna_gp_wins.push((row.clone(), p_optuna, p_vs_otpe.max(p_vs_tpe)));
                }
            }
            println!(
                "{{\"bench\":\"hpo_quality_budget\",\"function\":\"{name}\",\"budget\":{budget},\"seeds\":{seeds},\"workers\":{workers},\"mode\":\"{}\",{},\"seconds\":{seconds:.1}}}",
                dispatch.mode(),
                fields.join(",")
            );
        }
    }
    let significant = |tests: &[(String, f64)]| -> Vec<String> {
        let holm = holm_adjusted(&tests.iter().map(|t| t.1).collect::<Vec<_>>());
        tests.iter().zip(holm).filter(|(_, p)| *p < 0.05).map(|(t, _)| format!("\"{}\"", t.0)).collect()
    };
    let gp_rows: Vec<(String, f64)> = optuna_gp_wins.iter().map(|(r, p, _)| (r.clone(), *p)).collect();
    let gp_wins = significant(&gp_rows);
    // Where Optuna's GP wins, ours should beat both TPEs: the rows where it does not.
    let ours_there: Vec<(String, f64)> = optuna_gp_wins
        .iter()
        .filter(|(r, _, _)| gp_wins.contains(&format!("\"{r}\"")))
        .map(|(r, _, p)| (r.clone(), *p))
        .collect();
    let beaten = significant(&ours_there);
    let not_better: Vec<String> =
        ours_there.iter().map(|t| format!("\"{}\"", t.0)).filter(|r| !beaten.contains(r)).collect();
    println!(
        "{{\"bench\":\"hpo_quality_budget_summary\",\"workers\":{workers},\"mode\":\"{}\",\"seeds\":{seeds},\"rows\":{},\"gp_worse_than_optuna_gp\":[{}],\"optuna_gp_beats_optuna_tpe\":[{}],\"gp_not_better_than_tpe\":[{}],\"tpe_better_than_gp\":[{}]}}",
        dispatch.mode(),
        worse.len(),
        significant(&worse).join(","),
        gp_wins.join(","),
        not_better.join(","),
        significant(&tpe_wins).join(",")
    );
}

/// Constrained problems (`HPO_QUALITY_CONSTRAINED=1`): the best feasible
/// value at each budget, ours against Optuna 5.0 with the same sampler and
/// its constraints (`Trial.set_constraint`): multivariate TPE against
/// `benches/optuna/constrained_tpe.json`, the GP against
/// `constrained_gp.json` (made by `gp_reference.py --functions
/// gramacy,anisonet_budget`). One `hpo_quality_constrained` line per
/// (function, budget, sampler) with the medians, the share of seeds with a
/// feasible trial and the one-sided Mann–Whitney p-values both ways (no
/// feasible trial ranks last), then a summary with the rows where ours is
/// worse or better after Holm's correction. `HPO_QUALITY_FUNCTIONS` and
/// `HPO_QUALITY_SAMPLERS` (`tpe_multivariate`, `gp`) choose rows.
fn constrained_table(
    budgets: &[u64],
    first_seed: u64,
    seeds: u64,
    workers: usize,
    dispatch: Dispatch,
    only: Option<&str>,
) {
    let samplers_only = std::env::var("HPO_QUALITY_SAMPLERS").ok();
    let chosen = |list: Option<&str>, name: &str| list.is_none_or(|l| l.split(',').any(|n| n == name));
    type Problem = (&'static str, SearchSpace, fn(&Params) -> f64, fn(&Params) -> Vec<f64>);
    let problems: [Problem; 2] = [
        ("gramacy", gramacy_space(), gramacy, gramacy_constraints),
        ("anisonet_budget", anisonet_rounded_space(), anisonet_budget, anisonet_budget_constraints),
    ];
    let samplers = [
        (
            "tpe_multivariate",
            SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }),
            "constrained_tpe",
        ),
        ("gp", SamplerConfig::Gp(GpConfig::default()), "constrained_gp"),
    ];
    // Optuna's seeds, a budget without a feasible trial (null) as infinity.
    let reference = |stem: &str, name: &str, budget: u64| -> Option<Vec<f64>> {
        let runs = budget_runs(stem, workers, dispatch, first_seed, seeds)?;
        let values = runs.get(name)?.get(budget.to_string())?.as_array()?.clone();
        Some(values.iter().map(|v| v.as_f64().unwrap_or(f64::INFINITY)).collect())
    };
    let feasible_share = |v: &[f64]| v.iter().filter(|x| x.is_finite()).count() as f64 / v.len() as f64;
    let (mut worse, mut better) = (Vec::new(), Vec::new());
    for (name, space, objective, constraints) in &problems {
        for (label, sampler, stem) in &samplers {
            if !chosen(only, name) || !chosen(samplers_only.as_deref(), label) {
                continue;
            }
            let start = std::time::Instant::now();
            let ours: Vec<Vec<f64>> = (first_seed..first_seed + seeds)
                .map(|seed| {
                    bests_at(space, *objective, Some(*constraints), sampler, seed, workers, dispatch, budgets)
                        .0
                })
                .collect();
            let seconds = start.elapsed().as_secs_f64();
            for (i, &budget) in budgets.iter().enumerate() {
                let row = format!("{name}/{budget}/{label}");
                let mine: Vec<f64> = ours.iter().map(|r| r[i]).collect();
                let mut fields = vec![
                    format!("\"ours\":{:.6}", median(mine.clone())),
                    format!("\"ours_feasible\":{:.2}", feasible_share(&mine)),
                ];
                if let Some(optuna) = reference(stem, name, budget) {
                    let p_worse = MannWhitney::of(&mine, &optuna).p_a_larger;
                    let p_better = MannWhitney::of(&optuna, &mine).p_a_larger;
                    fields.push(format!(
                        "\"optuna\":{:.6},\"optuna_feasible\":{:.2},\"optuna_seeds\":{},\"p_ours_worse\":{p_worse:.4},\"p_ours_better\":{p_better:.4}",
                        median(optuna.clone()),
                        feasible_share(&optuna),
                        optuna.len()
                    ));
                    worse.push((row.clone(), p_worse));
                    better.push((row, p_better));
                }
                println!(
                    "{{\"bench\":\"hpo_quality_constrained\",\"function\":\"{name}\",\"budget\":{budget},\"sampler\":\"{label}\",\"seeds\":{seeds},\"workers\":{workers},{},\"seconds\":{seconds:.1}}}",
                    fields.join(",")
                );
            }
        }
    }
    let significant = |tests: &[(String, f64)]| -> Vec<String> {
        let holm = holm_adjusted(&tests.iter().map(|t| t.1).collect::<Vec<_>>());
        tests.iter().zip(holm).filter(|(_, p)| *p < 0.05).map(|(t, _)| format!("\"{}\"", t.0)).collect()
    };
    println!(
        "{{\"bench\":\"hpo_quality_constrained_summary\",\"seeds\":{seeds},\"workers\":{workers},\"rows\":{},\"ours_worse\":[{}],\"ours_better\":[{}]}}",
        worse.len(),
        significant(&worse).join(","),
        significant(&better).join(",")
    );
}

/// A problem with several objectives (all minimised): space, objectives,
/// constraints, and the reference point of its hypervolume.
type MultiProblem =
    (&'static str, SearchSpace, fn(&Params) -> Vec<f64>, Option<fn(&Params) -> Vec<f64>>, Vec<f64>);

/// The problems of `HPO_QUALITY_MULTI=1`, with the reference points of
/// `benches/optuna/mo_reference.py`.
fn multi_objective_problems() -> Vec<MultiProblem> {
    vec![
        ("zdt1", zdt_space(6), zdt1, None, vec![1.1, 11.0]),
        ("zdt2", zdt_space(6), zdt2, None, vec![1.1, 11.0]),
        ("zdt3", zdt_space(6), zdt3, None, vec![1.1, 11.0]),
        ("dtlz2", zdt_space(5), dtlz2, None, vec![2.5, 2.5, 2.5]),
        ("anisonet_tradeoff", anisonet_rounded_space(), anisonet_tradeoff, None, vec![15.0, 6.0]),
        ("binh_korn", binh_korn_space(), binh_korn, Some(binh_korn_constraints), vec![140.0, 50.0]),
        ("tanaka", tanaka_space(), tanaka, Some(tanaka_constraints), vec![1.2, 1.2]),
    ]
}

/// The hypervolume of the feasible Pareto set of the first `budgets[i]`
/// trials of one sequential run of the largest budget.
fn hypervolumes_at(problem: &MultiProblem, sampler: &SamplerConfig, seed: u64, budgets: &[u64]) -> Vec<f64> {
    let (_, space, objectives, constraints, reference) = problem;
    let trials = *budgets.iter().max().expect("a budget");
    let directions = vec![Direction::Minimize; reference.len()];
    let phase = Phase::new("search", space.clone(), sampler.clone(), Some(trials));
    let config = StudyConfig {
        seed,
        direction: Direction::Minimize,
        directions: directions.clone(),
        phases: vec![phase],
        pruner: Default::default(),
    };
    let mut study = Study::new(MemoryStore::default(), config).expect("valid study");
    let mut result = Vec::new();
    while let Ask::Trial(trial) = study.ask().expect("ask") {
        let values = objectives(&trial.params);
        if let Some(c) = constraints {
            study.set_constraints(trial.number, &c(&trial.params)).expect("constraints");
        }
        study.tell(trial.number, Outcome::Objectives(values)).expect("tell");
        if budgets.contains(&(trial.number + 1)) {
            let front: Vec<Vec<f64>> = study.pareto_front().iter().map(|t| t.values.clone()).collect();
            result.push(pareto::hypervolume(&front, reference));
        }
    }
    result
}

/// Several objectives (`HPO_QUALITY_MULTI=1`): the hypervolume of the
/// feasible Pareto set after 50 and 100 trials on ZDT1/2/3, DTLZ2 (three
/// objectives), the AnisoNet trade-off (mixed integer and log-float) and
/// two constrained problems (Binh and Korn, Tanaka), ours against Optuna
/// 5.0 with the same sampler: multivariate TPE (MOTPE) against
/// `benches/optuna/mo_tpe.json`, NSGA-II against `mo_nsga2.json` (made by
/// `mo_reference.py`), random search as the floor. One
/// `hpo_quality_multi` line per (problem, budget, sampler) with the
/// medians and the one-sided Mann–Whitney p-values both ways (a larger
/// hypervolume is better), then a summary with the rows where ours is
/// worse or better after Holm's correction.
fn multi_objective_table(budgets: &[u64], first_seed: u64, seeds: u64, only: Option<&str>) {
    let samplers_only = std::env::var("HPO_QUALITY_SAMPLERS").ok();
    let chosen = |list: Option<&str>, name: &str| list.is_none_or(|l| l.split(',').any(|n| n == name));
    let samplers = [
        (
            "tpe_multivariate",
            SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }),
            Some("mo_tpe"),
        ),
        ("nsga2", SamplerConfig::Nsga2(Nsga2Config::default()), Some("mo_nsga2")),
        ("random", SamplerConfig::Random, None),
    ];
    let reference = |stem: &str, name: &str, budget: u64| -> Option<Vec<f64>> {
        let runs = read_runs(
            &format!("{}/benches/optuna/{stem}.json", env!("CARGO_MANIFEST_DIR")),
            first_seed,
            seeds,
        )?;
        let values = runs.get(name)?.get(budget.to_string())?.as_array()?.clone();
        Some(values.iter().filter_map(|v| v.as_f64()).collect())
    };
    let (mut worse, mut better) = (Vec::new(), Vec::new());
    for problem in multi_objective_problems() {
        let name = problem.0;
        for (label, sampler, stem) in &samplers {
            if !chosen(only, name) || !chosen(samplers_only.as_deref(), label) {
                continue;
            }
            let start = std::time::Instant::now();
            let ours: Vec<Vec<f64>> = (first_seed..first_seed + seeds)
                .map(|seed| hypervolumes_at(&problem, sampler, seed, budgets))
                .collect();
            let seconds = start.elapsed().as_secs_f64();
            for (i, &budget) in budgets.iter().enumerate() {
                let row = format!("{name}/{budget}/{label}");
                let mine: Vec<f64> = ours.iter().map(|r| r[i]).collect();
                let mut fields = vec![format!("\"ours\":{:.6}", median(mine.clone()))];
                if let Some(optuna) = stem.and_then(|stem| reference(stem, name, budget)) {
                    let p_worse = MannWhitney::of(&optuna, &mine).p_a_larger;
                    let p_better = MannWhitney::of(&mine, &optuna).p_a_larger;
                    fields.push(format!(
                        "\"optuna\":{:.6},\"optuna_seeds\":{},\"p_ours_worse\":{p_worse:.4},\"p_ours_better\":{p_better:.4}",
                        median(optuna.clone()),
                        optuna.len()
                    ));
                    worse.push((row.clone(), p_worse));
                    better.push((row, p_better));
                }
                println!(
                    "{{\"bench\":\"hpo_quality_multi\",\"function\":\"{name}\",\"budget\":{budget},\"sampler\":\"{label}\",\"seeds\":{seeds},{},\"seconds\":{seconds:.1}}}",
                    fields.join(",")
                );
            }
        }
    }
    let significant = |tests: &[(String, f64)]| -> Vec<String> {
        let holm = holm_adjusted(&tests.iter().map(|t| t.1).collect::<Vec<_>>());
        tests.iter().zip(holm).filter(|(_, p)| *p < 0.05).map(|(t, _)| format!("\"{}\"", t.0)).collect()
    };
    println!(
        "{{\"bench\":\"hpo_quality_multi_summary\",\"seeds\":{seeds},\"rows\":{},\"ours_worse\":[{}],\"ours_better\":[{}]}}",
        worse.len(),
        significant(&worse).join(","),
        significant(&better).join(",")
    );
}
