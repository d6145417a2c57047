//! AnisoNet throughput at the published configuration (em 48, 2 gate layers,
//! lmax 3, mul 48, 15 basis, 100 radial neurons), batches of 12 structures:
//! inference and training steps (forward + backward + AdamW). Structures come
//! from the MP dataset (`--dataset PATH`, env `ANISOSTUDY_DATASET`, default
//! `../shared/data/mp_dielectric_2k.extxyz`; graphs by our 5 Å neighbour list
//! with self-edges); with `--synthetic`, or when the file is absent, from random
//! graphs with its statistics (20 atoms, 30 incoming edges per atom).
//! Prints JSON lines.
//!
//! cargo bench --bench model_forward [-- --batches N --dtype f32|f64 --synthetic --no-tune
//!                                       --device cpu|cpu-tensor|cuda:N]
//! (`--no-tune` leaves glibc's allocator thresholds alone, see `model::alloc`;
//! `--device cpu-tensor` runs the tensor-op network a GPU runs on the CPU,
//! `cuda:N` needs `--features cuda`).

use std::time::Instant;

use anisostudy::crystal::io::extxyz::read_extxyz;
use anisostudy::crystal::io::ExtxyzOptions;
use anisostudy::model::synthetic::random_batch;
use anisostudy::model::{AnisoNet, ComputeDevice, ModelConfig, ModelFloat, ModelInput, Precision};
use anisostudy::train::optim::AdamW;
use dfdx::prelude::*;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// Wall-clock and CPU timing of `batches` runs of `f`: on a shared machine the
/// CPU time, spread over the worker threads, is the load-independent figure.
fn timed(mut f: impl FnMut()) -> (f64, f64) {
    let (t, c) = (Instant::now(), cpu_seconds());
    f();
    (t.elapsed().as_secs_f64(), cpu_seconds() - c)
}

/// `batches` batches of 12 graphs from the dataset, or `None` when it cannot be read.
fn dataset_batches(path: &str, batches: usize, cutoff: f64) -> Option<Vec<ModelInput>> {
    let frames = match read_extxyz(path, &ExtxyzOptions::default()) {
        Ok(frames) => frames,
        Err(e) => {
            eprintln!("dataset {path} not usable ({e}); using synthetic graphs");
            return None;
        }
    };
    let graphs: Vec<ModelInput> =
        frames.iter().filter_map(|f| ModelInput::from_structure(&f.structure, cutoff).ok()).collect();
    if graphs.len() < 12 {
        eprintln!("dataset {path} has fewer than 12 usable structures; using synthetic graphs");
        return None;
    }
    Some(
        (0..batches)
            .map(|b| {
                ModelInput::batch(&graphs.iter().cycle().skip(b * 12).take(12).cloned().collect::<Vec<_>>())
            })
            .collect(),
    )
}

fn run<E: ModelFloat>(batches: usize, dtype: &str, dataset: Option<String>, device: &str)
where
    Cpu: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let config = ModelConfig {
        dtype: if dtype == "f64" { Precision::F64 } else { Precision::F32 },
        ..ModelConfig::default()
    };
    let dev = Cpu::default();
    let mut model = AnisoNet::<E>::new(&config, &dev, 0).expect("published configuration");
    match device {
        "cpu-tensor" => model.compute_on(Cpu::default(), "cpu-tensor"),
        d => model.use_device(d.parse::<ComputeDevice>().expect("--device")).expect("--device"),
    }
    let (source, inputs) =
        match dataset.and_then(|p| dataset_batches(&p, batches, config.cutoff).map(|b| (p, b))) {
            Some((path, b)) => (path, b),
            None => (
                "synthetic".to_string(),
                (0..batches).map(|b| random_batch(b as u64, 12, 20, 30, config.cutoff)).collect(),
            ),
        };
    let edges: usize = inputs.iter().map(|i| i.edge_src.len()).sum();
    let threads = rayon::current_num_threads();
    println!(
        "{{\"bench\":\"model_setup\",\"device\":\"{device}\",\"source\":{source:?},\"dtype\":\"{dtype}\",\"params\":{},\"batches\":{batches},\"edges_per_batch\":{},\"threads\":{threads}}}",
        model.arch().num_params,
        edges / batches
    );
    model.predict(&inputs[0]).unwrap();
    let (secs, cpu) = timed(|| {
        for input in &inputs {
            model.predict(input).unwrap();
        }
    });
    println!(
        "{{\"bench\":\"model_inference\",\"dtype\":\"{dtype}\",\"edges_per_s\":{:.0},\"edges_per_cpu_s_x_threads\":{:.0},\"s_per_batch\":{:.4},\"peak_rss_mb\":{:.0}}}",
        edges as f64 / secs,
        edges as f64 / cpu * threads as f64,
        secs / batches as f64,
        peak_rss_mb()
    );
    let mut opt = AdamW::<E>::new(3e-3, 0.03);
    let target: Tensor<(usize, Const<6>), E, Cpu> =
        dev.tensor_from_vec(vec![E::of(1.0); 72], (12, Const::<6>));
    let step = |model: &mut AnisoNet<E>, opt: &mut AdamW<E>, input| {
        let pred = model.forward(input, model.params.flat.clone().traced(Gradients::leaky())).unwrap();
        let grads = mse_loss(pred, target.clone()).backward();
        opt.update(&mut model.params, &grads);
    };
    step(&mut model, &mut opt, &inputs[0]);
    let (secs, cpu) = timed(|| {
        for input in &inputs {
            step(&mut model, &mut opt, input);
        }
    });
    println!(
        "{{\"bench\":\"model_train_step\",\"dtype\":\"{dtype}\",\"edges_per_s\":{:.0},\"edges_per_cpu_s_x_threads\":{:.0},\"s_per_batch\":{:.4},\"peak_rss_mb\":{:.0}}}",
        edges as f64 / secs,
        edges as f64 / cpu * threads as f64,
        secs / batches as f64,
        peak_rss_mb()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let batches = value("--batches").and_then(|v| v.parse().ok()).unwrap_or(10);
    if !args.iter().any(|a| a == "--no-tune") {
        anisostudy::model::alloc::tune_allocator();
    }
    let dataset = if args.iter().any(|a| a == "--synthetic") {
        None
    } else {
        Some(value("--dataset").or_else(|| std::env::var("ANISOSTUDY_DATASET").ok()).unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz").to_string()
        }))
    };
    let device = value("--device").unwrap_or_else(|| "cpu".into());
    match value("--dtype").as_deref() {
        Some("f64") => run::<f64>(batches, "f64", dataset, &device),
        _ => run::<f32>(batches, "f32", dataset, &device),
    }
}
