//! Controller overhead per trial with a trivial `command` objective: the
//! wall time of a run divided by its trials, for trials that do nothing but
//! print their objective. First the scheduler alone (a fixed queue of
//! commands), then whole studies: sampler, pruner checks and the SQLite
//! database included. Last, when a Slurm cluster answers (`bash
//! tests/slurm/cluster.sh up`), the same study through the Slurm executor:
//! every trial a job step (`srun`) in an allocation, next to the local
//! executor on one slot. Prints JSON lines.
//!
//!     cargo bench --bench controller_overhead [-- --trials 200 --slurm-trials 50]

use std::time::Instant;

use anisostudy::exec::devices::Machine;
use anisostudy::exec::devices::{Device, Slot};
use anisostudy::exec::scheduler::{run, Dispatch, SchedulerConfig, StopLevel};
use anisostudy::exec::QueueController;
use anisostudy::exec::TrialSpec;
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
                executor: std::sync::Arc::new(anisostudy::exec::launch::Local),
                slots: (0..slots)
                    .map(|index| Slot {
                        index,
                        device: Device::Cpu,
                        threads: 1,
                        host: None,
                        seen_as: Device::Cpu,
                    })
                    .collect(),
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
    let slurm_trials: u64 = match args.iter().position(|a| a == "--slurm-trials") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(50),
        None => 50,
    };
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
    slurm_overhead(&runtime, dir.path(), slurm_trials)
}

/// Per trial through Slurm (spawn + job step + protocol + database) on one
/// slot and on 2 nodes × 2 GPUs, next to the local executor on one slot.
fn slurm_overhead(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    trials: u64,
) -> anyhow::Result<()> {
    let up = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%P"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        eprintln!(
            "note: no Slurm cluster answers (bash tests/slurm/cluster.sh up); the Slurm figures are skipped"
        );
        return Ok(());
    }
    let cases: [(&str, &[&str], &str, u64); 3] = [
        ("local", &[], "devices: cpu\n  trials_per_device: 1", 1),
        ("slurm", &["-N1", "--ntasks-per-node=1"], "executor: slurm\n  slurm: {gpus_per_trial: 0}", 1),
        ("slurm", &["-N2", "--ntasks-per-node=2", "--gres=gpu:2"], "executor: slurm", 4),
    ];
    for (executor, salloc, resources, slots) in cases {
        let job = if salloc.is_empty() {
            None
        } else {
            let out = std::process::Command::new("salloc").arg("--no-shell").args(salloc).output()?;
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            let id = text.split("Granted job allocation ").nth(1).and_then(|r| r.split_whitespace().next());
            Some(id.ok_or_else(|| anyhow::anyhow!("salloc {salloc:?}: {text}"))?.to_owned())
        };
        match &job {
            Some(id) => std::env::set_var("SLURM_JOB_ID", id),
            None => std::env::remove_var("SLURM_JOB_ID"),
        }
        let text = format!(
            "name: overhead\nseed: 1\n\
             objective:\n  command: >-\n    /bin/echo '{{\"objective\": {{x}}}}'\n\
             phases:\n  - name: search\n    sampler: {{type: random}}\n    n_trials: {trials}\n\
             \x20   space:\n      x: {{type: float, low: 0.0, high: 1.0}}\n\
             resources:\n  {resources}\n"
        );
        let plan = study::load_str(&text, "overhead.yaml", dir, &[])?;
        let results = dir.join(format!("{executor}-{slots}"));
        let (_stop_tx, stop) = tokio::sync::watch::channel(StopLevel::Run);
        let started = Instant::now();
        let summary = runtime.block_on(study::run_plan(&plan, &results, &Machine::detect(), stop));
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(id) = &job {
            let _ = std::process::Command::new("scancel").arg(id).status();
        }
        let summary = summary?;
        anyhow::ensure!(summary.complete as u64 == trials, "only {} trials completed", summary.complete);
        println!(
            "{{\"bench\": \"controller_overhead\", \"controller\": \"study+sqlite\", \"executor\": \"{executor}\", \"slots\": {slots}, \"trials\": {trials}, \"ms_per_trial\": {:.1}, \"ms_per_trial_per_slot\": {:.1}}}",
            elapsed * 1e3 / trials as f64,
            elapsed * 1e3 * slots as f64 / trials as f64,
        );
    }
    std::env::remove_var("SLURM_JOB_ID");
    Ok(())
}
