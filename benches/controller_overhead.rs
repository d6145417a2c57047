//! Controller overhead per trial with a trivial `command` objective: the
//! wall time of a run divided by its trials, for trials that do nothing but
//! print their objective. First the scheduler alone (a fixed queue of
//! commands), then whole studies: sampler, pruner checks and the SQLite
//! database included. Prints JSON lines.
//!
//!     cargo bench --bench controller_overhead [-- --trials 200]

use std::time::Instant;

use anisostudy::exec::devices::Machine;
use anisostudy::exec::devices::{Device, Slot};
use anisostudy::exec::scheduler::{run, Dispatch, SchedulerConfig, StopLevel, TrialSpec};
use anisostudy::exec::QueueController;
use anisostudy::study;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let trials: u64 = match args.iter().position(|a| a == "--trials") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(200),
        None => 200,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let commands: [(&str, &str, Vec<String>); 2] = [
        ("echo", "/bin/echo", vec![r#"{"objective": 1}"#.to_owned()]),
        ("sh_echo", "sh", vec!["-c".to_owned(), r#"echo '{"objective": 1}'"#.to_owned()]),
    ];
    for (name, program, args) in &commands {
        for (slots, dispatch) in [(1, Dispatch::Async), (2, Dispatch::Async), (2, Dispatch::Deterministic)] {
            let config = SchedulerConfig {
                slots: (0..slots).map(|index| Slot { index, device: Device::Cpu, threads: 1 }).collect(),
                dispatch,
                trial_timeout: None,
                retries: 0,
                trials_dir: dir.path().join(format!("{name}-{slots}-{dispatch:?}")),
            };
            let specs = (0..trials).map(|number| TrialSpec {
                number,
                program: program.to_string(),
                args: args.clone(),
                env: Vec::new(),
                workdir: None,
            });
            let mut controller = QueueController::new(specs);
            let (_stop_tx, stop) = tokio::sync::watch::channel(StopLevel::Run);
            let started = Instant::now();
            let summary = runtime.block_on(run(&config, &mut controller, stop))?;
            let elapsed = started.elapsed().as_secs_f64();
            anyhow::ensure!(summary.complete as u64 == trials, "only {} trials completed", summary.complete);
            println!(
                "{{\"bench\": \"controller_overhead\", \"command\": \"{name}\", \"slots\": {slots}, \"dispatch\": \"{dispatch:?}\", \"trials\": {trials}, \"ms_per_trial\": {:.3}, \"ms_per_trial_per_slot\": {:.3}}}",
                elapsed * 1e3 / trials as f64,
                elapsed * 1e3 * slots as f64 / trials as f64,
            );
        }
    }
    for (sampler, mode) in [("random", "async"), ("tpe", "async"), ("tpe", "deterministic")] {
        let text = format!(
            "name: overhead\nseed: 1\nmode: {mode}\n\
             objective:\n  command: >-\n    /bin/echo '{{\"objective\": {{x}}}}'\n\
             phases:\n  - name: search\n    sampler: {{type: {sampler}}}\n    n_trials: {trials}\n\
             \x20   space:\n      x: {{type: float, low: 0.0, high: 1.0}}\n      k: {{type: int, low: 1, high: 8}}\n\
             resources:\n  devices: cpu\n  trials_per_device: 2\n"
        );
        let plan = study::load_str(&text, "overhead.yaml", dir.path(), &[])?;
        let results = dir.path().join(format!("study-{sampler}-{mode}"));
        let machine = Machine::detect();
        let (_stop_tx, stop) = tokio::sync::watch::channel(StopLevel::Run);
        let started = Instant::now();
        let summary = runtime.block_on(study::run_plan(&plan, &results, &machine, stop))?;
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(summary.complete as u64 == trials, "only {} trials completed", summary.complete);
        println!(
            "{{\"bench\": \"controller_overhead\", \"controller\": \"study+sqlite\", \"sampler\": \"{sampler}\", \"mode\": \"{mode}\", \"slots\": 2, \"trials\": {trials}, \"ms_per_trial\": {:.3}}}",
            elapsed * 1e3 / trials as f64,
        );
    }
    Ok(())
}
