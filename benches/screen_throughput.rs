//! `study screen` throughput and memory: a two-model ensemble (a sweep over
//! two seeds; em 16, one gate layer, l_max 2, mul 8 — the models of the
//! screening figures in docs/benchmarks.md) screens N synthetic structures (default
//! 20,000; `study data synth`, 2–40 atoms) on 1 thread and on every core.
//! Each screen is its own `study screen` process, so its peak RSS (from
//! wait4) is the screen's alone: the file is streamed, so it should not grow
//! with N beyond the ranked table (≈ 0.6 kB per structure).
//!
//!     cargo bench --bench screen_throughput [-- --n 20000 --threads 1,2]
//!
//! Prints one JSON line per thread count.

use std::path::Path;
use std::process::{Command, Stdio};

const STUDY: &str = env!("CARGO_BIN_EXE_study");

const SWEEP: &str = "name: screen_bench
seed: 3
dataset:
  synthetic: {size: 60, seed: 1}
model: {em_dim: 16, layers: 1, lmax: 2, mul: 8}
training: {epochs: 1, batch_size: 12}
objective: {metric: val_loss, direction: minimize}
sweep:
  values:
    seed: [0, 1]
resources: {devices: cpu, cpu_threads_per_trial: 1}
mode: deterministic
";

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(STUDY).args(args).current_dir(dir).output().expect("study starts");
    assert!(
        out.status.success(),
        "study {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `study ARGS` in `dir`; its stdout and peak RSS in MB.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its rusage
fn measured(dir: &Path, args: &[&str]) -> (String, f64) {
    let child = Command::new(STUDY)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("study starts");
    let pid = child.id() as libc::pid_t;
    let stdout = {
        use std::io::Read;
        let mut text = String::new();
        child.stdout.expect("piped").read_to_string(&mut text).expect("stdout");
        text
    };
    let mut status = 0;
    // SAFETY: wait4 on our own child, with pointers to locals that outlive the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "study {args:?} failed: {stdout}");
    (stdout, usage.ru_maxrss as f64 / 1024.0)
}

/// `screened N structures in S s (R/s, …` → (N, S).
fn parse_screened(stdout: &str) -> (f64, f64) {
    let line = stdout.lines().find(|l| l.starts_with("screened ")).expect("a `screened` line");
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().expect("count"), words[4].parse().expect("seconds"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = value("--n").map_or(20_000, |v| v.parse().expect("--n N"));
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = value("--threads").map_or_else(
        || if all > 1 { vec![1, all] } else { vec![1] },
        |v| v.split(',').map(|t| t.parse().expect("--threads 1,2")).collect(),
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    let d = dir.path();
    std::fs::write(d.join("sweep.yaml"), SWEEP).expect("write the study file");
    run(d, &["run", "sweep.yaml", "--results", "res"]);
    let n_text = n.to_string();
    run(d, &["data", "synth", "--n", &n_text, "--seed", "9", "--out", "s.extxyz"]);
    let megabytes = std::fs::metadata(d.join("s.extxyz")).map_or(0.0, |m| m.len() as f64 / 1e6);
    for t in threads {
        let t_text = t.to_string();
        let (stdout, rss) = measured(
            d,
            &["screen", "screen_bench", "--results", "res", "--structures", "s.extxyz", "--threads", &t_text],
        );
        let (count, seconds) = parse_screened(&stdout);
        println!(
            "{{\"bench\": \"screen\", \"structures\": {count}, \"file_mb\": {megabytes:.1}, \"models\": 2, \
             \"threads\": {t}, \"seconds\": {seconds:.2}, \"structures_per_s\": {:.0}, \"peak_rss_mb\": {rss:.0}}}",
            count / seconds.max(1e-9)
        );
    }
}
