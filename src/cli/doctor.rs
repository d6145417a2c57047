//! `study doctor`: does this binary compute AnisoNet right, and how fast, on
//! a device? The first thing to run on a new machine or cluster node, and it
//! needs nothing but the binary: small models' forward and backward passes on
//! the device against the fused CPU network (the one the reference fixtures
//! pin), their equivariance there, then the published configuration's
//! inference and training throughput.
//!
//! `--device cpu` checks the tensor-op network on dfdx's CPU device;
//! `cuda:N` runs it on a GPU in a `cuda` build; `gpu-emulated` runs the GPU
//! engine's kernels on their CPU emulation and counts the launches and
//! transfers of a training step against the engine's budget.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::e3::cartesian::{cartesian_to_irreps, irreps_to_cartesian};
use crate::e3::rotation::{apply, matmul, random_rotations, transpose};
use crate::error::InputError;
use crate::model::synthetic::random_batch;
use crate::model::HostState;
use crate::model::{
    AnisoNet, ComputeDevice, ModelConfig, ModelFloat, ModelInput, ModelKind, OutputMode, Precision,
};
use crate::train::batch::mse_with_gradient;
use crate::train::optim::AdamW;

/// Check a compute device: parity with the fused CPU network, equivariance, throughput.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The device: cuda:N (a build with `--features cuda`), gpu-emulated for
    /// the GPU engine's kernels on the CPU, or cpu for the tensor-op network
    /// on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Batches timed at the published configuration (0: no
    /// timing). Default 3, and 0 on gpu-emulated, whose timing says nothing
    /// of a GPU's.
    #[arg(long)]
    pub batches: Option<usize>,
    /// Structures per timed batch, each of the MP data's mean size.
    #[arg(long, default_value_t = 12)]
    pub structures: usize,
    /// Skip the checks and the budget and only time: for timing several
    /// processes that share one device.
    #[arg(long)]
    pub no_checks: bool,
    /// Also write the results to this file as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the timed batches (species, masses, edges, edge vectors) to this
    /// JSON file, so that another implementation can be timed on the same ones.
    #[arg(long)]
    pub export_batches: Option<PathBuf>,
}

/// What `--json` writes.
#[derive(Serialize)]
struct Report {
    device: String,
    build: &'static str,
    checks: Vec<Check>,
    budget: Option<Budget>,
    throughput: Option<Throughput>,
    passed: bool,
}

#[derive(Serialize)]
struct Budget {
    launches: u64,
    transfers: u64,
    max_launches: u64,
    max_transfers: u64,
    bytes_up: u64,
    bytes_down: u64,
    /// The packed batch: what a step must move; the rest is the pooled
    /// outputs and their gradient, at most a kilobyte.
    batch_bytes: u64,
    allocs: u64,
    /// The step's wall time outside the device's calls: the host's own work.
    host_ms: f64,
    kept: bool,
}

#[derive(Serialize)]
struct Throughput {
    batches: usize,
    structures_per_batch: usize,
    edges_per_batch: usize,
    inference_edges_per_s: f64,
    training_edges_per_s: f64,
}

/// One comparison of the device against the fused network, or of the
/// device's output against the rotated input's.
#[derive(Serialize)]
struct Check {
    name: String,
    dtype: &'static str,
    error: f64,
    limit: f64,
}

impl Check {
    /// Within its limit (a NaN error is not).
    fn passed(&self) -> bool {
        self.error <= self.limit
    }
}

pub fn run(args: DoctorArgs) -> Result<()> {
    let device: ComputeDevice = args.device.parse().map_err(|problem: String| {
        InputError::new("--device", problem).with_hint("e.g. `--device cuda:0`, or `--device cpu`")
    })?;
    if let ComputeDevice::Cuda(ordinal) = device {
        // A GPU this node cannot open is a wrong --device, not a fault of the run.
        let gpu = crate::model::gpu::Gpu::cuda(ordinal).map_err(|e| {
            InputError::new("--device", e.to_string())
                .with_hint("`--device gpu-emulated` checks the GPU engine's kernels on the CPU")
        })?;
        drop(gpu);
    }
    if let ComputeDevice::TensorCuda(_) = device {
        if !cfg!(feature = "cuda") {
            return Err(InputError::new("--device", format!("{device} needs a build with CUDA support"))
                .with_hint(
                    "build it with `scripts/cuda-build.sh` (no GPU or system CUDA needed) or \
                     `cargo build --release --features cuda`; `--device cpu` checks this build",
                )
                .into());
        }
    }
    let build = if cfg!(feature = "cuda") { "cuda" } else { "cpu only" };
    println!("study {} ({build} build), device {device}", env!("CARGO_PKG_VERSION"));
    match device {
        ComputeDevice::Cpu => {
            println!("  cpu: the tensor-op network on dfdx's CPU device, against the fused CPU network")
        }
        ComputeDevice::GpuEmulated => println!(
            "  gpu-emulated: the GPU engine's kernels on their CPU emulation, against the fused CPU network"
        ),
        ComputeDevice::Cuda(_) => {
            println!("  {device}: the GPU engine's kernels, against the fused CPU network")
        }
        ComputeDevice::TensorCuda(_) => {
            println!("  {device}: the tensor-op network on dfdx's CUDA device, against the fused CPU network")
        }
    }

    let mut checks = Vec::new();
    let mut budget = None;
    if !args.no_checks {
        checks.extend(parity::<f64>(device, "f64", 1e-9)?);
        checks.extend(parity::<f32>(device, "f32", 1e-4)?);
        checks.push(equivariance::<f64>(device, "f64", 1e-9)?);
        checks.push(equivariance::<f32>(device, "f32", 1e-4)?);
        checks.push(reproducible::<f64>(device, "f64")?);
        checks.push(reproducible::<f32>(device, "f32")?);
        println!("\n  {:<44} {:<5} {:>9} {:>7}", "check", "dtype", "rel. err", "limit");
        for c in &checks {
            let verdict = if c.passed() { "ok" } else { "FAILED" };
            println!("  {:<44} {:<5} {:>9.1e} {:>7.0e}  {verdict}", c.name, c.dtype, c.error, c.limit);
        }
        if matches!(device, ComputeDevice::GpuEmulated | ComputeDevice::Cuda(_)) {
            budget = Some(launch_budget(device)?);
        }
    }
    let failed =
        checks.iter().filter(|c| !c.passed()).count() + budget.as_ref().map_or(0, |b| usize::from(!b.kept));
    let batches = args.batches.unwrap_or(if device == ComputeDevice::GpuEmulated { 0 } else { 3 });
    let throughput = (batches > 0).then(|| throughput(device, batches, &args)).transpose()?;
    let count = checks.len();
    if let Some(path) = &args.json {
        let report =
            Report { device: device.to_string(), build, passed: failed == 0, checks, budget, throughput };
        write_json(path, &report)?;
    }
    if failed > 0 {
        bail!(
            "{failed} checks failed on {device}: its results would not match the CPU's, or it ran over its budget"

        );
    }
    if count > 0 {
        println!("\nall {count} checks passed on {device}");
    }
    Ok(())
}

fn small(kind: ModelKind, lmax: usize, dtype: Precision) -> ModelConfig {
    ModelConfig {
        kind,
        em_dim: 6,
        layers: 2,
        lmax,
        mul: 4,
        num_basis: 6,
        radial_neurons: 12,
        num_neighbors: 8.0,
        dtype,
        ..Default::default()
    }
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// Moves `model`'s network to `device` (`cpu`: the tensor-op network on the CPU).
fn place<E: ModelFloat>(model: &mut AnisoNet<E>, device: ComputeDevice) -> Result<()>
where
    Cpu: Device<E>,
{
    match device {
        ComputeDevice::Cpu => model.compute_on(Cpu::default(), "cpu-tensor"),
        device => model.use_device(device)?,
    }
    Ok(())
}

/// The output and the gradient of Σ ⟨output, weights⟩ with respect to the parameters.
fn output_and_gradient<E: ModelFloat>(
    model: &AnisoNet<E>,
    input: &ModelInput,
    weights: &[f64],
) -> (Vec<f64>, Vec<f64>)
where
    Cpu: Device<E>,
{
    let out =
        model.forward(input, model.params.flat.clone().traced(Gradients::leaky())).expect("valid input");
    let values: Vec<f64> = out.retaped::<NoneTape>().as_vec().iter().map(|v| v.to64()).collect();
    let w = model
        .device
        .tensor_from_vec(weights.iter().map(|&v| E::of(v)).collect(), (values.len() / 6, Const::<6>));
    let grads = (out * w).sum::<(), _>().backward();
    (values, grads.get(&model.params.flat).as_vec().iter().map(|v| v.to64()).collect())
}

/// The device against the fused CPU network, in value and parameter gradient,
/// for an equivariant and a scalar model.
fn parity<E: ModelFloat>(device: ComputeDevice, dtype: &'static str, limit: f64) -> Result<Vec<Check>>
where
    Cpu: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let precision = if dtype == "f64" { Precision::F64 } else { Precision::F32 };
    let models = [
        ("equivariant, l_max 2", small(ModelKind::Equivariant, 2, precision)),
        (
            "equivariant physical, l_max 3",
            ModelConfig {
                output: OutputMode::Physical,
                eps_offset: 3.0,
                ..small(ModelKind::Equivariant, 3, precision)
            },
        ),
        ("scalar, l_max 1", small(ModelKind::Scalar, 1, precision)),
    ];
    let mut checks = Vec::new();
    for (seed, (name, config)) in models.into_iter().enumerate() {
        let seed = seed as u64 + 1;
        let fused = AnisoNet::<E>::new(&config, &Cpu::default(), seed)?;
        let mut on_device = AnisoNet::<E>::new(&config, &Cpu::default(), seed)?;
        place(&mut on_device, device)?;
        let input = random_batch(seed, 3, 5, 7, config.cutoff);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let weights: Vec<f64> = (0..input.num_graphs * 6).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (out_f, grad_f) = output_and_gradient(&fused, &input, &weights);
        let (out_d, grad_d) = output_and_gradient(&on_device, &input, &weights);
        checks.push(Check { name: format!("{name}: output"), dtype, error: rel(&out_d, &out_f), limit });
        checks.push(Check { name: format!("{name}: gradient"), dtype, error: rel(&grad_d, &grad_f), limit });
    }
    Ok(checks)
}

/// The device's output for rotated and inverted inputs against the rotated
/// output: the largest error over 8 rotations and their inversions.
fn equivariance<E: ModelFloat>(device: ComputeDevice, dtype: &'static str, limit: f64) -> Result<Check>
where
    Cpu: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let precision = if dtype == "f64" { Precision::F64 } else { Precision::F32 };
    let mut model = AnisoNet::<E>::new(&small(ModelKind::Equivariant, 3, precision), &Cpu::default(), 5)?;
    place(&mut model, device)?;
    let input = random_batch(6, 2, 5, 8, 5.0);
    let base = model.predict(&input)?;
    let mut worst = 0.0f64;
    for r in random_rotations(8, 8) {
        for r in [r, r.map(|row| row.map(|v| -v))] {
            let mut moved = input.clone();
            moved.edge_vec = input.edge_vec.iter().map(|v| apply(&r, *v)).collect();
            for (got, b) in model.predict(&moved)?.iter().zip(&base) {
                let want = cartesian_to_irreps(&matmul(&matmul(&r, &irreps_to_cartesian(b)), &transpose(&r)));
                worst = worst.max(rel(got, &want));
            }
        }
    }
    Ok(Check { name: "equivariance: 8 rotations and inversions".into(), dtype, error: worst, limit })
}

/// The GPU engine's launches and host↔device transfers in one training step
/// of the published configuration (a run kept on the device, as trials
/// train), against its budget; whether it kept it.
fn launch_budget(device: ComputeDevice) -> Result<Budget> {
    const LAUNCHES: u64 = 100;
    const TRANSFERS: u64 = 3;
    let config = ModelConfig { dtype: Precision::F32, ..ModelConfig::default() };
    let mut model = AnisoNet::<f32>::new(&config, &Cpu::default(), 0)?;
    place(&mut model, device)?;
    let mut opt = start_run(&model)?;
    let engine = model.engine.clone();
    let counts = || engine.as_ref().and_then(|e| e.counts()).unwrap_or_default();
    let input = random_batch(1, 12, 4, 6, config.cutoff);
    // The first step grows the run's buffers; the second is every step after.
    train_step(&mut model, &mut opt, &input)?;
    let before = counts();
    model.resident_predict(&input)?;
    let batch_bytes = counts().since(&before).bytes_up;
    let (before, start) = (counts(), Instant::now());
    train_step(&mut model, &mut opt, &input)?;
    let (step, wall) = (counts().since(&before), start.elapsed());
    let host_ms = (wall.as_secs_f64() - step.device_ns as f64 * 1e-9) * 1e3;
    let extra = (step.bytes_up + step.bytes_down).saturating_sub(batch_bytes);
    let kept =
        step.launches <= LAUNCHES && step.transfers() <= TRANSFERS && extra <= 1024 && step.allocs == 0;
    println!(
        "\n  one training step of the published configuration (12 structures), kept on the device:\n  \
         {} kernel launches (budget {LAUNCHES}), {} host-device transfers (budget {TRANSFERS}), \
         {} allocations (budget 0)\n  the batch ({batch_bytes} B) and {extra} B more (budget 1024), \
         {host_ms:.2} ms of host work outside the device's calls  {}",
        step.launches,
        step.transfers(),
        step.allocs,
        if kept { "ok" } else { "FAILED" }
    );
    Ok(Budget {
        launches: step.launches,
        transfers: step.transfers(),
        max_launches: LAUNCHES,
        max_transfers: TRANSFERS,
        bytes_up: step.bytes_up,
        bytes_down: step.bytes_down,
        batch_bytes,
        allocs: step.allocs,
        host_ms,
        kept,
    })
}

/// Puts a fresh training run on the model's device where its engine keeps
/// runs there; the optimiser a trial would use.
fn start_run(model: &AnisoNet<f32>) -> Result<AdamW<f32>> {
    if let Some(resident) = model.resident() {
        let params = model.params.flat.as_vec();
        resident.load(&HostState { best: params.clone(), params, ..HostState::default() })?;
    }
    Ok(AdamW::<f32>::new(3e-3, 0.03))
}

/// One training step as a trial takes it: kept on the device where the
/// engine keeps runs there, else through the tape with AdamW on the host.
fn train_step(model: &mut AnisoNet<f32>, opt: &mut AdamW<f32>, input: &ModelInput) -> Result<()> {
    let targets = vec![[1.0; 6]; input.num_graphs];
    if model.resident().is_some() {
        let adam = opt.next_step();
        let mut loss = |out: &[[f64; 6]]| mse_with_gradient(ModelKind::Equivariant, out, &targets);
        model.resident_step(input, &mut loss, &adam)?;
        return Ok(());
    }
    let target =
        model.device.tensor_from_vec(vec![1.0f32; 6 * input.num_graphs], (input.num_graphs, Const::<6>));
    let pred = model.forward(input, model.params.flat.clone().traced(Gradients::leaky()))?;
    let grads = mse_loss(pred, target).backward();
    opt.update(&mut model.params, &grads);
    Ok(())
}

/// Two runs of the same forward and backward pass on the device: the same bits, or not.
fn reproducible<E: ModelFloat>(device: ComputeDevice, dtype: &'static str) -> Result<Check>
where
    Cpu: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let precision = if dtype == "f64" { Precision::F64 } else { Precision::F32 };
    let config = small(ModelKind::Equivariant, 3, precision);
    let input = random_batch(9, 3, 5, 7, config.cutoff);
    let weights: Vec<f64> = (0..input.num_graphs * 6).map(|i| (i as f64 * 0.37).sin()).collect();
    let run = || -> Result<Vec<u64>> {
        let mut model = AnisoNet::<E>::new(&config, &Cpu::default(), 4)?;
        place(&mut model, device)?;
        let (out, grad) = output_and_gradient(&model, &input, &weights);
        Ok(out.iter().chain(&grad).map(|v| v.to_bits()).collect())
    };
    let (first, second) = (run()?, run()?);
    let differing = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    Ok(Check {
        name: "two runs: values and gradients differing".into(),
        dtype,
        error: differing as f64,
        limit: 0.0,
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").map_err(|e| {
        InputError::new(path.display().to_string(), format!("cannot be written: {e}"))
            .with_hint("give a file in a folder that exists and is writable")
    })?;
    Ok(())
}

/// Atoms per structure and edges per atom (self-edges included, 5 Å) of the
/// MP dielectric data (`study data inspect`: 17.6 and 34.3): the timed
/// batches have its sizes.
const MP_ATOMS: usize = 18;
const MP_EDGES_PER_ATOM: usize = 34;

/// Inference and training steps (as a trial takes them) of the published
/// configuration in f32 on batches of random graphs of the MP data's sizes.
fn throughput(device: ComputeDevice, batches: usize, args: &DoctorArgs) -> Result<Throughput> {
    let structures = args.structures.max(1);
    let config = ModelConfig { dtype: Precision::F32, ..ModelConfig::default() };
    let mut model = AnisoNet::<f32>::new(&config, &Cpu::default(), 0)?;
    place(&mut model, device)?;
    let inputs: Vec<ModelInput> = (0..=batches)
        .map(|b| random_batch(b as u64, structures, MP_ATOMS, MP_EDGES_PER_ATOM, config.cutoff))
        .collect();
    let edges: usize = inputs[1..].iter().map(|i| i.edge_src.len()).sum();
    if let Some(path) = &args.export_batches {
        let batches: Vec<serde_json::Value> = inputs
            .iter()
            .map(|i| {
                serde_json::json!({
                    "numbers": i.numbers, "masses": i.masses, "node_graph": i.node_graph,
                    "num_graphs": i.num_graphs, "edge_src": i.edge_src, "edge_dst": i.edge_dst,
                    "edge_vec": i.edge_vec,
                })
            })
            .collect();
        let about = "AnisoNet batches timed by `study doctor`: the first warms up, the rest are timed";
        write_json(path, &serde_json::json!({ "about": about, "config": config, "batches": batches }))
            .with_context(|| "exporting the timed batches")?;
    }
    model.predict(&inputs[0])?;
    let start = Instant::now();
    for input in &inputs[1..] {
        model.predict(input)?;
    }
    let inference = edges as f64 / start.elapsed().as_secs_f64();
    let mut opt = start_run(&model)?;
    train_step(&mut model, &mut opt, &inputs[0])?;
    let start = Instant::now();
    for input in &inputs[1..] {
        train_step(&mut model, &mut opt, input)?;
    }
    let training = edges as f64 / start.elapsed().as_secs_f64();
    println!(
        "\n  published configuration, f32, {batches} batches of {structures} structures ({} edges each):\n  \
         inference {inference:.0} edges/s, training {training:.0} edges/s",
        edges / batches
    );
    Ok(Throughput {
        batches,
        structures_per_batch: structures,
        edges_per_batch: edges / batches,
        inference_edges_per_s: inference,
        training_edges_per_s: training,
    })
}
