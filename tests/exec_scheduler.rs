//! The scheduler with real child processes: makespan against the ideal list
//! schedule, failure classification and retries, pruning, deterministic
//! batches and stop requests.

use std::time::{Duration, Instant};

use anisostudy::exec::devices::{Device, Slot};
use anisostudy::exec::protocol::Message;
use anisostudy::exec::scheduler::{
    run, Controller, Directive, Dispatch, Next, Outcome, SchedulerConfig, StopLevel, TrialReport,
};
use anisostudy::exec::QueueController;
use anisostudy::exec::TrialSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

fn sh(number: u64, script: &str) -> TrialSpec {
    TrialSpec {
        number,
        program: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
        env: Vec::new(),
        workdir: None,
    }
}

fn config(slots: usize, dir: &std::path::Path) -> SchedulerConfig {
    SchedulerConfig {
        executor: std::sync::Arc::new(anisostudy::exec::launch::Local),
        slots: (0..slots)
            .map(|index| Slot { index, device: Device::Cpu, threads: 1, host: None, seen_as: Device::Cpu })
            .collect(),
        dispatch: Dispatch::Async,
        trial_timeout: None,
        retries: 0,
        trials_dir: dir.join("trials"),
    }
}

fn never_stop() -> watch::Receiver<StopLevel> {
    let (tx, rx) = watch::channel(StopLevel::Run);
    std::mem::forget(tx);
    rx
}

/// Stops at `level` after `delay`.
fn stop_after(delay: Duration, level: StopLevel) -> watch::Receiver<StopLevel> {
    let (tx, rx) = watch::channel(StopLevel::Run);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tx.send(level);
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    rx
}

/// Makespan of greedy list scheduling (each job, in order, to the slot
/// that frees first) with zero overhead: the ideal for this job order.
fn list_schedule_makespan(durations: &[f64], slots: usize) -> f64 {
    let mut free = vec![0.0f64; slots];
    for d in durations {
        let slot = (0..slots).min_by(|&a, &b| free[a].total_cmp(&free[b])).unwrap();
        free[slot] += d;
    }
    free.into_iter().fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn makespan_is_within_5_percent_of_the_list_scheduling_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let durations: Vec<f64> = (0..20).map(|_| (rng.gen_range(0.2..1.0f64) * 100.0).round() / 100.0).collect();
    let trials = durations
        .iter()
        .enumerate()
        .map(|(i, d)| sh(i as u64, &format!("sleep {d}; echo '{{\"objective\": {d}}}'")));
    let mut controller = QueueController::new(trials);
    let summary = run(&config(4, dir.path()), &mut controller, never_stop()).await.unwrap();
    assert_eq!(summary.complete, 20);
    for (i, d) in durations.iter().enumerate() {
        assert_eq!(controller.reports[&(i as u64)].outcome, Outcome::Complete(*d));
    }
    let ideal = list_schedule_makespan(&durations, 4);
    let measured = summary.makespan.as_secs_f64();
    println!(
        "{{\"test\": \"makespan\", \"slots\": 4, \"trials\": 20, \"ideal_s\": {ideal:.3}, \"measured_s\": {measured:.3}, \"ratio\": {:.4}}}",
        measured / ideal
    );
    assert!(measured >= ideal * 0.99, "faster than the sleeps themselves: {measured} < {ideal}");
    assert!(
        measured <= ideal * 1.05,
        "makespan {measured:.3} s is more than 5% above the bound {ideal:.3} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hanging_crashing_and_garbage_trials_are_recorded_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = [
        r#"echo '{"objective": 0.5}'"#,
        "echo starting; echo boom >&2; exit 3",
        "sleep 30",
        "kill -9 $$",
        r#"echo '{"objective": NaN}'"#,
        r#"echo 'loss: 0.3'; echo '{"objective": "high"}'"#,
        r#"echo '{"v": 1, "type": "error", "kind": "oom", "message": "CUDA out of memory"}'; exit 1"#,
        r#"if [ "$ANISOSTUDY_ATTEMPT" = 2 ]; then echo '{"objective": 2}'; else exit 1; fi"#,
        "echo 'no objective here'",
    ];
    let mut controller = QueueController::new(scripts.iter().enumerate().map(|(i, s)| sh(i as u64, s)));
    let mut config = config(4, dir.path());
    config.trial_timeout = Some(Duration::from_millis(800));
    config.retries = 1;
    let started = Instant::now();
    let summary = run(&config, &mut controller, never_stop()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "the hanging trial was not killed in time");

    let reason = |n: u64| match &controller.reports[&n].outcome {
        Outcome::Failed(reason) => reason.clone(),
        other => panic!("trial {n}: {other:?}"),
    };
    assert_eq!(controller.reports[&0].outcome, Outcome::Complete(0.5));
    assert_eq!(reason(1), "exited with code 3; stderr: boom");
    assert_eq!(reason(2), "timed out after 0.8 s (killed)");
    assert!(reason(3).starts_with("killed by signal 9"), "{}", reason(3));
    assert!(reason(4).contains("not a finite number"), "{}", reason(4));
    assert!(
        reason(5).contains("without a final objective line") && reason(5).contains("high"),
        "{}",
        reason(5)
    );
    assert_eq!(reason(6), "exited with code 1; oom: CUDA out of memory");
    assert_eq!(controller.reports[&7].outcome, Outcome::Complete(2.0));
    assert!(reason(8).contains("last line: `no objective here`"), "{}", reason(8));

    // Every failure was retried once; the flaky trial needed its retry.
    for n in [1, 2, 3, 4, 5, 6, 8] {
        assert_eq!(controller.reports[&n].attempts, 2, "trial {n}");
    }
    assert_eq!(controller.reports[&0].attempts, 1);
    assert_eq!(controller.reports[&7].attempts, 2);
    assert_eq!(summary.retries, 8);
    assert_eq!((summary.complete, summary.failed), (2, 7));
    assert_eq!(controller.retries.iter().filter(|(n, ..)| *n == 1).count(), 1);

    // Logs of both attempts are kept.
    let trial1 = dir.path().join("trials/1");
    assert_eq!(std::fs::read_to_string(trial1.join("stdout.log")).unwrap(), "starting\n");
    assert_eq!(std::fs::read_to_string(trial1.join("stderr.2.log")).unwrap(), "boom\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_prunes_a_trial_at_an_intermediate_value() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"for i in 1 2 3 4 5 6 7 8 9 10; do echo "{\"step\": $i, \"value\": $i}"; sleep 0.2; done; echo '{"objective": 0}'"#;
    let rule = Box::new(|_: u64, message: &Message| match message {
        Message::Intermediate { step, .. } if *step >= 2 => Directive::Prune,
        _ => Directive::Continue,
    });
    let mut controller = QueueController::new([sh(0, script)]).with_prune_rule(rule);
    let started = Instant::now();
    let summary = run(&config(1, dir.path()), &mut controller, never_stop()).await.unwrap();
    assert_eq!(controller.reports[&0].outcome, Outcome::Pruned);
    assert_eq!(summary.pruned, 1);
    assert!(started.elapsed() < Duration::from_secs(1), "the pruned trial kept running");
    let steps: Vec<u64> = controller
        .messages
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Intermediate { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [1, 2]);
}

/// A trial that reports and ends at once: the prune decided on its report
/// holds, though its process finished before the word reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_pruned_as_it_ends_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo '{"step": 1, "value": 3}'; echo '{"step": 2, "value": 2}'; echo '{"objective": 2}'"#;
    let rule = Box::new(|_: u64, message: &Message| match message {
        Message::Intermediate { step: 1, .. } => Directive::Prune,
        _ => Directive::Continue,
    });
    let trials = (0..20).map(|n| sh(n, script));
    let mut controller = QueueController::new(trials).with_prune_rule(rule);
    let summary = run(&config(4, dir.path()), &mut controller, never_stop()).await.unwrap();
    assert_eq!(summary.pruned, 20, "{summary:?}");
    assert!(controller.reports.values().all(|r| r.outcome == Outcome::Pruned));
}

/// Records when trials start and finish.
struct Timed {
    queue: Vec<TrialSpec>,
    starts: Vec<(u64, usize, Instant)>,
    finishes: Vec<(u64, Instant)>,
}

impl Controller for Timed {
    fn next_trial(&mut self, _slot: &Slot) -> anyhow::Result<Next> {
        Ok(if self.queue.is_empty() { Next::Finished } else { Next::Launch(self.queue.remove(0)) })
    }
    fn on_start(&mut self, number: u64, slot: &Slot, _attempt: u32) -> anyhow::Result<()> {
        self.starts.push((number, slot.index, Instant::now()));
        Ok(())
    }
    fn on_message(&mut self, _: u64, _: &Message) -> anyhow::Result<Directive> {
        Ok(Directive::Continue)
    }
    fn on_finish(&mut self, number: u64, _: &TrialReport) -> anyhow::Result<()> {
        self.finishes.push((number, Instant::now()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_mode_runs_batches_as_large_as_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let sleeps = [0.1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1];
    let queue = sleeps
        .iter()
        .enumerate()
        .map(|(i, d)| sh(i as u64, &format!("sleep {d}; echo '{{\"objective\": 1}}'")));
    let mut controller = Timed { queue: queue.collect(), starts: Vec::new(), finishes: Vec::new() };
    let mut config = config(3, dir.path());
    config.dispatch = Dispatch::Deterministic;
    let summary = run(&config, &mut controller, never_stop()).await.unwrap();
    assert_eq!(summary.complete, 7);
    // Batches {0,1,2}, {3,4,5}, {6}: each starts after the previous one ended,
    // and trial i always runs on slot i mod 3.
    let finished = |n: u64| controller.finishes.iter().find(|f| f.0 == n).unwrap().1;
    for &(number, slot, start) in &controller.starts {
        assert_eq!(slot as u64, number % 3, "trial {number}");
        let batch = number / 3;
        for earlier in 0..batch * 3 {
            assert!(start >= finished(earlier), "trial {number} started before trial {earlier} ended");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_launches_nothing_more_and_lets_trials_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Trial 0 runs to its end; trial 1 waits for its stdin to close (the
    // protocol's "checkpoint and exit") and exits without a result.
    let trials = [
        sh(0, r#"sleep 0.6; echo '{"objective": 1}'"#),
        sh(1, r#"read -r line; echo checkpointed"#),
        sh(2, r#"echo '{"objective": 1}'"#),
        sh(3, r#"echo '{"objective": 1}'"#),
    ];
    let mut controller = QueueController::new(trials);
    let stop = stop_after(Duration::from_millis(300), StopLevel::Graceful);
    let summary = run(&config(2, dir.path()), &mut controller, stop).await.unwrap();
    assert!(summary.stopped);
    assert_eq!(controller.reports.len(), 2, "trials 2 and 3 must not start");
    assert_eq!(controller.reports[&0].outcome, Outcome::Complete(1.0));
    assert_eq!(controller.reports[&1].outcome, Outcome::Interrupted);
    let log = std::fs::read_to_string(dir.path().join("trials/1/stdout.log")).unwrap();
    assert_eq!(log, "checkpointed\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_stops_running_trials_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let trials = (0..4).map(|n| sh(n, "sleep 30"));
    let mut controller = QueueController::new(trials);
    let started = Instant::now();
    let stop = stop_after(Duration::from_millis(200), StopLevel::Kill);
    let summary = run(&config(2, dir.path()), &mut controller, stop).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(summary.interrupted, 2);
    assert!(controller.reports.values().all(|r| r.outcome == Outcome::Interrupted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_failure_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TrialSpec {
        number: 0,
        program: "/nonexistent/trainer".to_owned(),
        args: Vec::new(),
        env: Vec::new(),
        workdir: None,
    };
    let mut controller = QueueController::new([spec]);
    run(&config(1, dir.path()), &mut controller, never_stop()).await.unwrap();
    let Outcome::Failed(reason) = &controller.reports[&0].outcome else { panic!() };
    assert!(reason.starts_with("cannot start `/nonexistent/trainer`"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_learns_its_slot_and_folder_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"echo "$CUDA_VISIBLE_DEVICES|$OMP_NUM_THREADS|$ANISOSTUDY_DEVICE|$ANISOSTUDY_TRIAL|$ANISOSTUDY_TRIAL_DIR"; echo '{"objective": 1}'"#;
    let mut config = config(1, dir.path());
    config.slots[0].threads = 3;
    let mut controller = QueueController::new([sh(7, script)]);
    run(&config, &mut controller, never_stop()).await.unwrap();
    let trial_dir = dir.path().join("trials/7");
    let log = std::fs::read_to_string(trial_dir.join("stdout.log")).unwrap();
    assert_eq!(log.lines().next().unwrap(), format!("|3|cpu|7|{}", trial_dir.display()));
}

/// An executor whose processes queue before they start, as job steps do:
/// each waits `wait` seconds (saying why on stderr), then writes its start
/// line and runs the trial.
struct Queued {
    wait: f64,
    limit: Duration,
}

impl anisostudy::exec::launch::Executor for Queued {
    fn command(&self, spec: &TrialSpec, slot: &Slot) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        let script =
            format!("echo 'queued (nodes busy)' >&2; sleep {}; echo started; exec \"$@\"", self.wait);
        command.args(["-c", &script, "queued", &spec.program]).args(&spec.args);
        let _ = slot;
        command
    }
    fn kill(&self, child: &mut tokio::process::Child) {
        let _ = child.start_kill();
    }
    fn start_limit(&self) -> Option<Duration> {
        Some(self.limit)
    }
    fn waiting_reason(&self, stderr: &str) -> String {
        stderr.lines().last().unwrap_or("queued").to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_runs_from_the_start_and_a_start_that_never_comes_fails() {
    let dir = tempfile::tempdir().unwrap();
    let trial = || sh(0, r#"sleep 0.6; echo '{"objective": 1}'"#);
    // Queued 2.5 s, then 0.6 s of work under a 1.5 s timeout: it completes.
    let mut config = config(1, dir.path());
    config.trial_timeout = Some(Duration::from_millis(1500));
    config.executor = std::sync::Arc::new(Queued { wait: 2.5, limit: Duration::from_secs(10) });
    let mut controller = QueueController::new([trial()]);
    run(&config, &mut controller, never_stop()).await.unwrap();
    assert_eq!(controller.reports[&0].outcome, Outcome::Complete(1.0));
    assert_eq!(controller.waits.first(), Some(&(0, Some("queued".to_owned()))));
    assert!(
        controller.waits.contains(&(0, Some("queued (nodes busy)".to_owned()))),
        "{:?}",
        controller.waits
    );
    assert_eq!(controller.waits.last(), Some(&(0, None)), "it said when it started");
    // Queued past the start limit: cancelled, retried, then reported.
    config.executor = std::sync::Arc::new(Queued { wait: 30.0, limit: Duration::from_millis(1200) });
    config.retries = 1;
    let started = Instant::now();
    let mut controller = QueueController::new([trial()]);
    run(&config, &mut controller, never_stop()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "a waiting attempt was left hanging");
    assert_eq!(controller.retries.len(), 1);
    match &controller.reports[&0].outcome {
        Outcome::Failed(why) => {
            assert!(why.contains("did not start within 1 s (queued (nodes busy))"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}
