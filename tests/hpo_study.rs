//! The ask/tell core end to end: phases, resumes, grids, samplers' domains,
//! determinism, pruning and TPE's advantage over random search.

use std::collections::{BTreeMap, BTreeSet};

use anisostudy::error::InputError;
use anisostudy::hpo::samplers::{GridAxis, GridSpec, Spacing, TpeConfig};
use anisostudy::hpo::test_functions::{branin, branin_space, mixed, mixed_space};
use anisostudy::hpo::{
    Ask, Direction, Distribution, MedianPruner, MemoryStore, Outcome, ParamValue, Params, Phase,
    PrunerConfig, SamplerConfig, SearchSpace, Study, StudyConfig, Trial, TrialState,
};
use proptest::prelude::*;

fn config(seed: u64, phases: Vec<Phase>) -> StudyConfig {
    StudyConfig {
        seed,
        direction: Direction::Minimize,
        directions: Vec::new(),
        phases,
        pruner: PrunerConfig::None,
    }
}

fn tpe_phase(space: SearchSpace, n_trials: u64, multivariate: bool) -> Phase {
    let tpe = TpeConfig { multivariate, ..Default::default() };
    Phase::new("tpe", space, SamplerConfig::Tpe(tpe), Some(n_trials))
}

fn expect_trial(ask: Ask) -> Trial {
    match ask {
        Ask::Trial(trial) => trial,
        other => panic!("expected a trial, got {other:?}"),
    }
}

/// Best value after `n` trials of `objective` with `sampler`.
fn best_after(sampler: SamplerConfig, seed: u64, n: u64) -> f64 {
    let phase = Phase::new("search", branin_space(), sampler, Some(n));
    let mut study = Study::new(MemoryStore::default(), config(seed, vec![phase])).unwrap();
    while let Ask::Trial(trial) = study.ask().unwrap() {
        study.tell(trial.number, Outcome::Complete(branin(&trial.params))).unwrap();
    }
    study.best_trial().unwrap().value.unwrap()
}

#[test]
fn tpe_beats_random_search_on_branin() {
    let seeds = 0..10u64;
    let mean = |sampler: SamplerConfig| {
        seeds.clone().map(|seed| best_after(sampler.clone(), seed, 60)).sum::<f64>()
            / seeds.clone().count() as f64
    };
    let random = mean(SamplerConfig::Random);
    let tpe = mean(SamplerConfig::Tpe(TpeConfig::default()));
    let tpe_mv = mean(SamplerConfig::Tpe(TpeConfig { multivariate: true, ..Default::default() }));
    assert!(tpe < random && tpe_mv < random, "tpe {tpe}, multivariate {tpe_mv}, random {random}");
    assert!(tpe < 0.8 && tpe_mv < 0.8, "tpe {tpe}, multivariate {tpe_mv}");
}

#[test]
fn tpe_then_grid_around_the_best() {
    let grid = GridSpec {
        axes: [
            ("lr", GridAxis::Factors(vec![0.5, 1.0, 2.0])),
            ("layers", GridAxis::Around { count: 3, spacing: Spacing::Linear { step: 1.0 } }),
            ("mul", GridAxis::Values(vec![32i64.into(), 48i64.into()])),
            ("l_max", GridAxis::Best),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        retry_failed: false,
        pick: None,
    };
    let phases = vec![
        tpe_phase(mixed_space(), 12, false),
        Phase::new("grid", mixed_space(), SamplerConfig::Grid(grid), None),
    ];
    let mut study = Study::new(MemoryStore::default(), config(3, phases)).unwrap();
    let mut pending = Vec::new();
    for _ in 0..12 {
        let trial = expect_trial(study.ask().unwrap());
        assert_eq!(trial.phase, 0);
        pending.push(trial);
    }
    // The grid needs the best of phase 0: it waits for the running trials.
    assert_eq!(study.ask().unwrap(), Ask::Wait);
    assert_eq!(study.current_phase().unwrap(), Some(1));
    for trial in pending.drain(..) {
        study.tell(trial.number, Outcome::Complete(mixed(&trial.params))).unwrap();
    }
    let best = study.best_trial().unwrap().params.clone();
    let mut seen = BTreeSet::new();
    loop {
        match study.ask().unwrap() {
            Ask::Trial(trial) => {
                assert_eq!(trial.phase, 1);
                assert_eq!(trial.params["l_max"], best["l_max"]);
                let lr = trial.params["lr"].as_f64().unwrap() / best["lr"].as_f64().unwrap();
                assert!([0.5, 1.0, 2.0].iter().any(|f| (lr - f).abs() < 1e-9), "lr ratio {lr}");
                assert!(seen.insert(format!("{:?}", trial.params)), "repeated {:?}", trial.params);
                study.tell(trial.number, Outcome::Complete(mixed(&trial.params))).unwrap();
            }
            Ask::Finished => break,
            Ask::Wait => panic!("nothing is running"),
        }
    }
    let layers = best["layers"].as_i64().unwrap();
    let n_layers = [layers - 1, layers, layers + 1].iter().filter(|l| (1..=4).contains(*l)).count();
    assert_eq!(seen.len(), 3 * n_layers * 2);
    assert_eq!(study.current_phase().unwrap(), None);
}

#[test]
fn resumed_studies_ask_what_an_uninterrupted_one_would() {
    let phases = || vec![tpe_phase(mixed_space(), 25, true), tpe_phase_named("more", mixed_space(), 10)];
    // Uninterrupted, with two trials in flight at a time.
    let run = |mut study: Study<MemoryStore>, stop_after: Option<usize>| {
        let mut asked = Vec::new();
        let mut in_flight: Vec<Trial> = Vec::new();
        loop {
            if stop_after == Some(asked.len()) {
                return (asked, study.into_store());
            }
            match study.ask().unwrap() {
                Ask::Trial(trial) => {
                    asked.push(trial.params.clone());
                    in_flight.push(trial);
                    if in_flight.len() == 2 {
                        let done = in_flight.remove(0);
                        study.tell(done.number, Outcome::Complete(mixed(&done.params))).unwrap();
                    }
                }
                Ask::Finished => {
                    for done in in_flight.drain(..) {
                        study.tell(done.number, Outcome::Complete(mixed(&done.params))).unwrap();
                    }
                    if study.ask().unwrap() == Ask::Finished {
                        return (asked, study.into_store());
                    }
                }
                Ask::Wait => unreachable!(),
            }
        }
    };
    let (all, _) = run(Study::new(MemoryStore::default(), config(11, phases())).unwrap(), None);
    assert_eq!(all.len(), 35);
    // Interrupted after 17 asks (one trial still RUNNING), then resumed from the store.
    let (first, store) = run(Study::new(MemoryStore::default(), config(11, phases())).unwrap(), Some(17));
    let resumed = Study::new(store, config(11, phases())).unwrap();
    assert_eq!(resumed.trials().len(), 17);
    let mut rest = Vec::new();
    let mut study = resumed;
    // The running trial finishes after the resume, as the controller would report it.
    let running: Vec<u64> =
        study.trials().iter().filter(|t| t.state == TrialState::Running).map(|t| t.number).collect();
    let mut in_flight: Vec<(u64, Params)> =
        running.iter().map(|&n| (n, study.trial(n).unwrap().params.clone())).collect();
    while let Ask::Trial(trial) = study.ask().unwrap() {
        rest.push(trial.params.clone());
        in_flight.push((trial.number, trial.params));
        if in_flight.len() == 2 {
            let (number, params) = in_flight.remove(0);
            study.tell(number, Outcome::Complete(mixed(&params))).unwrap();
        }
    }
    assert_eq!(first, all[..17]);
    assert_eq!(rest, all[17..]);
}

fn tpe_phase_named(name: &str, space: SearchSpace, n: u64) -> Phase {
    Phase::new(name, space, SamplerConfig::Tpe(TpeConfig::default()), Some(n))
}

#[test]
fn outcomes_follow_optuna() {
    let pruner = PrunerConfig::Median(MedianPruner { n_startup_trials: 2, ..Default::default() });
    let phases = vec![Phase::new("random", branin_space(), SamplerConfig::Random, Some(10))];
    let cfg = StudyConfig { seed: 1, direction: Direction::Maximize, directions: Vec::new(), phases, pruner };
    let mut study = Study::new(MemoryStore::default(), cfg).unwrap();
    for value in [1.0, 3.0] {
        let t = expect_trial(study.ask().unwrap());
        for step in 0..3 {
            study.report(t.number, step, value).unwrap();
        }
        study.tell(t.number, Outcome::Complete(value)).unwrap();
    }
    // Median at step 1 is 2: a trial at 1.5 is pruned when maximising, one at 2.5 is not.
    let weak = expect_trial(study.ask().unwrap());
    study.report(weak.number, 0, 1.0).unwrap();
    study.report(weak.number, 1, 1.5).unwrap();
    study.report(weak.number, 1, 9.0).unwrap(); // a repeated step keeps its first value
    assert!(study.should_prune(weak.number).unwrap());
    study.tell(weak.number, Outcome::Pruned).unwrap();
    assert_eq!(study.trial(weak.number).unwrap().value, Some(1.5));
    let strong = expect_trial(study.ask().unwrap());
    study.report(strong.number, 1, 2.5).unwrap();
    assert!(!study.should_prune(strong.number).unwrap());
    study.tell(strong.number, Outcome::Complete(f64::NAN)).unwrap();
    assert_eq!(study.trial(strong.number).unwrap().state, TrialState::Failed);
    assert_eq!(study.store().failure_reason(strong.number), Some("the objective value is NaN"));
    let crashed = expect_trial(study.ask().unwrap());
    study.tell(crashed.number, Outcome::Failed(Some("CUDA out of memory".into()))).unwrap();
    assert_eq!(study.store().failure_reason(crashed.number), Some("CUDA out of memory"));
    // Maximising: the best is the largest COMPLETE value.
    assert_eq!(study.best_trial().unwrap().value, Some(3.0));
    // Finished trials take no more reports or outcomes.
    assert!(study.tell(crashed.number, Outcome::Complete(1.0)).is_err());
    assert!(study.report(weak.number, 5, 1.0).is_err());
    assert!(study.tell(999, Outcome::Pruned).is_err());
}

#[test]
fn invalid_configurations_are_input_errors() {
    let bad_space =
        SearchSpace::new().with("lr", Distribution::Float { low: 0.0, high: 1.0, log: true, step: None });
    let err =
        Study::new(MemoryStore::default(), config(0, vec![tpe_phase(bad_space, 5, false)])).err().unwrap();
    let input = err.downcast_ref::<InputError>().expect("an InputError");
    assert!(input.location.contains("phase `tpe`") && input.location.contains("`lr`"), "{input}");
    let no_budget = Phase::new("r", branin_space(), SamplerConfig::Random, None);
    assert!(Study::new(MemoryStore::default(), config(0, vec![no_budget])).is_err());
    assert!(Study::new(MemoryStore::default(), config(0, vec![])).is_err());
}

#[test]
fn retry_failed_grid_points_only_when_asked() {
    for retry_failed in [false, true] {
        let grid = GridSpec {
            axes: [("layers".to_owned(), GridAxis::Values((1..=3i64).map(ParamValue::Int).collect()))].into(),
            retry_failed,
            pick: None,
        };
        let space = SearchSpace::new().int("layers", 1, 4);
        let phases = vec![Phase::new("grid", space, SamplerConfig::Grid(grid), None)];
        let mut study = Study::new(MemoryStore::default(), config(5, phases)).unwrap();
        let first = expect_trial(study.ask().unwrap());
        study.tell(first.number, Outcome::Failed(None)).unwrap();
        let mut values = vec![first.params["layers"].clone()];
        while let Ask::Trial(t) = study.ask().unwrap() {
            values.push(t.params["layers"].clone());
            study.tell(t.number, Outcome::Complete(0.0)).unwrap();
        }
        assert_eq!(values.len(), if retry_failed { 4 } else { 3 });
        assert_eq!(values.iter().map(|v| v.as_i64().unwrap()).collect::<BTreeSet<_>>().len(), 3);
    }
}

#[test]
fn tpe_is_deterministic_given_seed_and_history() {
    let asked = |seed: u64| {
        let phases = vec![tpe_phase(mixed_space(), 30, false)];
        let mut study = Study::new(MemoryStore::default(), config(seed, phases)).unwrap();
        let mut out = Vec::new();
        while let Ask::Trial(t) = study.ask().unwrap() {
            study.tell(t.number, Outcome::Complete(mixed(&t.params))).unwrap();
            out.push(t.params);
        }
        out
    };
    assert_eq!(asked(4), asked(4));
    assert_ne!(asked(4), asked(5));
}

/// Spaces with every kind of domain.
fn arb_distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        (-50.0..50.0f64, 0.1..100.0f64).prop_map(|(low, w)| Distribution::Float {
            low,
            high: low + w,
            log: false,
            step: None
        }),
        (1e-5..1.0f64, 2.0..1e4f64).prop_map(|(low, f)| Distribution::Float {
            low,
            high: low * f,
            log: true,
            step: None
        }),
        (-5.0..5.0f64, 1usize..20, 0.05..2.0f64).prop_map(|(low, k, step)| Distribution::Float {
            low,
            high: low + step * k as f64,
            log: false,
            step: Some(step)
        }),
        (-20i64..20, 1i64..40, 1i64..5).prop_map(|(low, w, step)| Distribution::Int {
            low,
            high: low + w.max(step),
            log: false,
            step
        }),
        (1i64..10, 1i64..200).prop_map(|(low, w)| Distribution::Int {
            low,
            high: low + w,
            log: true,
            step: 1
        }),
        (1usize..6).prop_map(|n| Distribution::Categorical {
            choices: (0..n as i64).map(ParamValue::Int).collect()
        }),
    ]
}

fn arb_space() -> impl Strategy<Value = SearchSpace> {
    prop::collection::vec(arb_distribution(), 1..4).prop_map(|dists| SearchSpace {
        params: dists.into_iter().enumerate().map(|(i, d)| (format!("p{i}"), d)).collect(),
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sampled_values_lie_in_their_domains(space in arb_space(), seed in 0u64..1000, sampler in 0usize..3) {
        prop_assert!(space.validate().is_ok());
        let sampler = match sampler {
            0 => SamplerConfig::Random,
            1 => SamplerConfig::Tpe(TpeConfig { n_startup_trials: 4, ..Default::default() }),
            _ => SamplerConfig::Tpe(TpeConfig { n_startup_trials: 4, multivariate: true, ..Default::default() }),
        };
        let phase = Phase::new("p", space.clone(), sampler, Some(20));
        let mut study = Study::new(MemoryStore::default(), config(seed, vec![phase])).unwrap();
        while let Ask::Trial(t) = study.ask().unwrap() {
            prop_assert!(space.contains(&t.params), "{:?} outside {:?}", t.params, space);
            // A value depending on every parameter, so TPE has something to learn.
            let value: f64 = t.params.values().map(|v| v.as_f64().unwrap_or(0.0).abs().sqrt()).sum();
            let outcome = if t.number % 7 == 3 { Outcome::Pruned } else { Outcome::Complete(value) };
            study.tell(t.number, outcome).unwrap();
        }
    }

    #[test]
    fn grids_cover_every_combination_once(
        sizes in prop::collection::vec(1usize..4, 1..4),
        seed in 0u64..1000,
        batch in 1usize..5,
        tell_order in prop::collection::vec(any::<u8>(), 64),
    ) {
        let axes: BTreeMap<String, GridAxis> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("p{i}"), GridAxis::Values((0..n as i64).map(ParamValue::Int).collect())))
            .collect();
        let space = SearchSpace {
            params: sizes.iter().enumerate().map(|(i, _)| (format!("p{i}"), Distribution::Int { low: 0, high: 5, log: false, step: 1 })).collect(),
            ..Default::default()
        };
        let total: usize = sizes.iter().product();
        let phases = vec![Phase::new("grid", space.clone(), SamplerConfig::Grid(GridSpec { axes, retry_failed: false, pick: None }), None)];
        let mut study = Study::new(MemoryStore::default(), config(seed, phases)).unwrap();
        let mut seen = BTreeSet::new();
        let mut in_flight: Vec<u64> = Vec::new();
        let mut picks = tell_order.iter().cycle();
        loop {
            // Ask up to `batch` trials before telling any (parallel workers).
            let mut finished = false;
            for _ in 0..batch {
                match study.ask().unwrap() {
                    Ask::Trial(t) => {
                        prop_assert!(seen.insert(format!("{:?}", t.params)), "repeated {:?}", t.params);
                        in_flight.push(t.number);
                    }
                    _ => { finished = true; break; }
                }
            }
            if in_flight.is_empty() && finished {
                break;
            }
            let i = *picks.next().unwrap() as usize % in_flight.len().max(1);
            if !in_flight.is_empty() {
                let number = in_flight.remove(i);
                study.tell(number, Outcome::Complete(number as f64)).unwrap();
            }
        }
        prop_assert_eq!(seen.len(), total);
    }
}

/// Runs 60 trials of an integer L1 objective in batches of `width` (each
/// trial asked while its batch's earlier ones run, all told after the
/// batch), as deterministic mode does; returns every batch's points.
fn batched(multivariate: bool, seed: u64, width: usize) -> Vec<Vec<Params>> {
    let space = (0..3).fold(SearchSpace::new(), |s, i| s.int(&format!("x{i}"), 0, 4));
    let objective =
        |p: &Params| -> f64 { (0..3).map(|i| (p[&format!("x{i}")].as_f64().unwrap() - 2.0).abs()).sum() };
    let mut study =
        Study::new(MemoryStore::default(), config(seed, vec![tpe_phase(space, 60, multivariate)])).unwrap();
    let mut batches = Vec::new();
    loop {
        let mut batch = Vec::new();
        while batch.len() < width {
            match study.ask().unwrap() {
                Ask::Trial(trial) => batch.push(trial),
                _ => break,
            }
        }
        if batch.is_empty() {
            return batches;
        }
        for trial in &batch {
            study.tell(trial.number, Outcome::Complete(objective(&trial.params))).unwrap();
        }
        batches.push(batch.into_iter().map(|t| t.params).collect());
    }
}

#[test]
fn deterministic_batches_never_repeat_a_point_and_replay_bit_for_bit() {
    for multivariate in [false, true] {
        for seed in 0..5 {
            let batches = batched(multivariate, seed, 4);
            for batch in &batches {
                let distinct: BTreeSet<String> = batch.iter().map(|p| format!("{p:?}")).collect();
                assert_eq!(
                    distinct.len(),
                    batch.len(),
                    "seed {seed}, multivariate {multivariate}: {batch:?}"
                );
            }
            assert_eq!(batches, batched(multivariate, seed, 4), "the same batches again");
        }
    }
}
