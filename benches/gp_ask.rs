//! Time of one `ask` of the GP sampler once a study holds 100 COMPLETE
//! trials, on one core, as the study itself got there (the GP proposed
//! trials 10–99). Times the next 20 asks (each told before the next), and
//! the same with 3 trials running (the batch acquisition), and prints one
//! JSON line per (function, running). The target is 50 ms.
//!
//!     cargo bench --bench gp_ask
//!     GP_ASK_TRIALS=300 cargo bench --bench gp_ask    # how it grows
//!     # Optuna 5.0's GPSampler under the same protocol, on the same machine:
//!     OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_ask_time.py
//!
//! (target/gp-venv: `python3 -m venv target/gp-venv && target/gp-venv/bin/pip
//! install optuna==5.0.0 scipy torch`.)

use std::time::Instant;

use anisostudy::hpo::samplers::GpConfig;
use anisostudy::hpo::test_functions::{branin, branin_space, hartmann6, hartmann6_space, mixed, mixed_space};
use anisostudy::hpo::{
    Ask, MemoryStore, Outcome, Params, Phase, SamplerConfig, SearchSpace, Study, StudyConfig,
};

const TIMED: u64 = 20;

fn measure(name: &str, space: SearchSpace, f: fn(&Params) -> f64, running: usize) {
    let history: u64 = std::env::var("GP_ASK_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let phase = Phase::new("gp", space, SamplerConfig::Gp(GpConfig::default()), Some(history + TIMED + 10));
    let config = StudyConfig {
        seed: 1,
        direction: Default::default(),
        directions: Vec::new(),
        phases: vec![phase],
        pruner: Default::default(),
    };
    let mut study = Study::new(MemoryStore::default(), config).expect("valid study");
    let ask = |study: &mut Study<MemoryStore>| match study.ask().expect("ask") {
        Ask::Trial(trial) => trial,
        _ => panic!("the phase ended early"),
    };
    for _ in 0..history {
        let trial = ask(&mut study);
        study.tell(trial.number, Outcome::Complete(f(&trial.params))).expect("tell");
    }
    let mut in_flight: std::collections::VecDeque<_> = (0..running).map(|_| ask(&mut study)).collect();
    let mut times = Vec::new();
    for _ in 0..TIMED {
        let start = Instant::now();
        let trial = ask(&mut study);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        in_flight.push_back(trial);
        let oldest = in_flight.pop_front().expect("a trial in flight");
        study.tell(oldest.number, Outcome::Complete(f(&oldest.params))).expect("tell");
    }
    times.sort_by(f64::total_cmp);
    let median = 0.5 * (times[times.len() / 2 - 1] + times[times.len() / 2]);
    println!(
        "{{\"bench\":\"gp_ask\",\"function\":\"{name}\",\"complete_trials\":{history},\"running\":{running},\"asks\":{TIMED},\"median_ms\":{median:.2},\"max_ms\":{:.2}}}",
        times[times.len() - 1]
    );
}

fn main() {
    for running in [0, 3] {
        measure("branin", branin_space(), branin, running);
        measure("hartmann6", hartmann6_space(), hartmann6, running);
        measure("mixed", mixed_space(), mixed, running);
    }
}
