//! Training and inference throughput of the trainer at the published
//! configuration (em 48, 2 gate layers, lmax 3, mul 48, 15 basis, 100 radial
//! neurons, batch 12) on the MP data (`--dataset PATH`, env
//! `ANISOSTUDY_DATASET`, default `../shared/data/mp_dielectric_2k.extxyz`):
//! 120 training structures (10 optimiser steps per epoch).
//!
//! Prints JSON lines: `train_step` (forward + backward + AdamW, edges/s, f32
//! and f64), `train_step_profile` (seconds per batch in forward, backward and
//! AdamW), `inference` (edges/s, f32) and `peak_rss` (VmHWM after the f32
//! training, before anything else ran), then `determinism` (two steps with 1
//! and with 2 threads give bit-identical parameters).
//!
//! cargo bench --bench train_step [-- --dataset PATH --epochs N --skip-f64 --no-tune]
//! (`--no-tune` leaves glibc's allocator thresholds alone, see `model::alloc`).

use std::time::Instant;

use anisostudy::data::dataset::{clean, read_frames};
use anisostudy::data::{build_graphs, GraphOptions, LoadOptions, Source, Split};
use anisostudy::model::{ModelConfig, ModelFloat, Precision};
use anisostudy::train::batch::Batch;
use anisostudy::train::{TrainConfig, TrainData, Trainer};
use dfdx::prelude::*;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

const TRAIN: usize = 120;
const HELD_OUT: usize = 12;

fn status_kb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// The first 144 cleaned structures of the data set: 120 train, 12 val, 12 test.
fn load(path: &str) -> Result<TrainData, String> {
    let source = Source::File(path.into());
    let options = LoadOptions::default();
    let mut frames = read_frames(&source, &options.dielectric_key).map_err(|e| e.to_string())?;
    frames.truncate(200);
    let dataset = clean(frames, path, &options).map_err(|e| e.to_string())?;
    let entries = &dataset.entries[..(TRAIN + 2 * HELD_OUT).min(dataset.entries.len())];
    if entries.len() < TRAIN + 2 * HELD_OUT {
        return Err(format!("only {} usable structures in the first 200 frames", entries.len()));
    }
    let graphs = build_graphs(entries, &GraphOptions::default());
    let split = Split {
        train: (0..TRAIN).collect(),
        val: (TRAIN..TRAIN + HELD_OUT).collect(),
        test: (TRAIN + HELD_OUT..TRAIN + 2 * HELD_OUT).collect(),
    };
    Ok(TrainData { graphs, split })
}

/// Times `epochs` epochs of training steps (after one warm-up step); returns edges/s.
fn train_throughput<'d, E: ModelFloat>(data: &'d TrainData, epochs: usize, dtype: &str) -> Trainer<'d, E>
where
    Cpu: Device<E>,
    StandardNormal: Distribution<E>,
{
    let precision = if dtype == "f64" { Precision::F64 } else { Precision::F32 };
    let model = ModelConfig { dtype: precision, ..ModelConfig::default() };
    let config = TrainConfig::default();
    let mut trainer = Trainer::<E>::new(&model, &config, data).expect("published configuration");
    let batches: Vec<Batch> =
        data.split.train.chunks(config.batch_size).map(|c| Batch::new(model.kind, &data.graphs, c)).collect();
    trainer.train_step(&batches[0]).unwrap();
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut edges = 0;
    for _ in 0..epochs {
        for b in &batches {
            trainer.train_step(b).unwrap();
            edges += b.num_edges();
        }
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    println!(
        "{}",
        json!({
            "bench": "train_step", "dtype": dtype, "structures": TRAIN, "batch_size": config.batch_size,
            "params": trainer.num_params(), "edges_per_epoch": edges / epochs, "epochs": epochs,
            "edges_per_s": (edges as f64 / secs).round(), "s_per_epoch": secs / epochs as f64,
            "cpu_s_per_epoch": cpu / epochs as f64, "threads": rayon::current_num_threads(),
        })
    );
    // Where a step's time goes: forward (with tape), backward, AdamW.
    let mut parts = [0.0f64; 3];
    for b in &batches {
        let n = b.targets.len();
        let target = trainer
            .model
            .device
            .tensor_from_vec(b.targets.iter().flatten().map(|&v| E::of(v)).collect(), (n, Const::<6>));
        let t0 = Instant::now();
        let pred = trainer
            .model
            .forward(&b.input, trainer.model.params.flat.clone().traced(Gradients::leaky()))
            .unwrap();
        let loss = mse_loss(pred, target);
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        trainer.optimizer.update(&mut trainer.model.params, &grads);
        let t3 = Instant::now();
        parts[0] += (t1 - t0).as_secs_f64();
        parts[1] += (t2 - t1).as_secs_f64();
        parts[2] += (t3 - t2).as_secs_f64();
    }
    let k = batches.len() as f64;
    println!(
        "{}",
        json!({
            "bench": "train_step_profile", "dtype": dtype, "s_per_batch_forward": parts[0] / k,
            "s_per_batch_backward": parts[1] / k, "s_per_batch_adamw": parts[2] / k,
        })
    );
    trainer
}

/// Parameters after two training steps at the published size, with 1 and with 2
/// worker threads: the threaded kernels must not change a single bit.
fn thread_determinism(data: &TrainData) {
    let model = ModelConfig::default();
    let config = TrainConfig::default();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| {
            let mut trainer = Trainer::<f32>::new(&model, &config, data).expect("published configuration");
            let mut losses = vec![];
            for c in data.split.train.chunks(config.batch_size).take(2) {
                losses.push(trainer.train_step(&Batch::new(model.kind, &data.graphs, c)).unwrap());
            }
            (losses, trainer.model.params.flat.as_vec())
        })
    };
    let (a, b) = (run(1), run(2));
    println!(
        "{}",
        json!({"bench": "determinism", "dtype": "f32", "steps": 2, "threads": [1, 2],
               "identical_losses": a.0 == b.0, "identical_params": a.1 == b.1})
    );
}

fn main() {
    let path = arg_value("--dataset")
        .or_else(|| std::env::var("ANISOSTUDY_DATASET").ok())
        .unwrap_or_else(|| "../shared/data/mp_dielectric_2k.extxyz".to_string());
    if std::env::args().all(|a| a != "--no-tune") {
        anisostudy::model::alloc::tune_allocator();
    }
    let epochs: usize = arg_value("--epochs").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    if !std::path::Path::new(&path).is_file() {
        println!(
            "{}",
            json!({"bench": "train_step", "skipped": format!("dataset {path} not found; pass --dataset PATH or set ANISOSTUDY_DATASET")})
        );
        return;
    }
    let data = match load(&path) {
        Ok(d) => d,
        Err(e) => {
            println!("{}", json!({"bench": "train_step", "skipped": format!("dataset {path}: {e}")}));
            return;
        }
    };
    let rss_data_mb = status_kb("VmHWM:") / 1024.0;
    let trainer = train_throughput::<f32>(&data, epochs, "f32");
    println!(
        "{}",
        json!({
            "bench": "peak_rss", "dtype": "f32", "structures": TRAIN, "batch_size": 12,
            "vm_hwm_mb": (status_kb("VmHWM:") / 1024.0).round(), "after_data_load_mb": rss_data_mb.round(),
        })
    );
    let batches: Vec<Batch> = data
        .split
        .train
        .chunks(12)
        .map(|c| Batch::new(trainer.model.arch().config.kind, &data.graphs, c))
        .collect();
    trainer.predict(&batches[..1]).unwrap();
    let edges: usize = batches.iter().map(Batch::num_edges).sum();
    let t = Instant::now();
    trainer.predict(&batches).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"bench": "inference", "dtype": "f32", "edges_per_s": (edges as f64 / secs).round(), "s_per_batch": secs / batches.len() as f64})
    );
    drop(trainer);
    if std::env::args().all(|a| a != "--skip-f64") {
        train_throughput::<f64>(&data, epochs, "f64");
    }
    thread_determinism(&data);
}
