//! The engine on the CPU emulation against the fused CPU network, forward
//! and backward, and its launch and transfer budget.

use std::sync::atomic::{AtomicBool, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::gpu::optim::{AdamSettings, AdamStep, HostState};
use crate::model::gpu::{Backend, DevicePtr, Emulated};
use crate::model::input::ModelInput;
use crate::model::{ModelConfig, ModelKind};

fn worst(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}

/// A batch of `graphs` random crystals-like graphs: random species among
/// `elements`, random neighbours within the cutoff.
fn batch(rng: &mut ChaCha8Rng, graphs: usize, elements: &[u8]) -> ModelInput {
    let mut input = ModelInput::default();
    let mut first = 0u32;
    for g in 0..graphs {
        let atoms = if g == 0 { 1 } else { rng.gen_range(2..6) };
        for _ in 0..atoms {
            let z = elements[rng.gen_range(0..elements.len())];
            input.numbers.push(z);
            input.masses.push(z as f64 * 1.9 + 0.3);
            input.node_graph.push(g as u32);
        }
        for a in 0..atoms as u32 {
            for _ in 0..rng.gen_range(1..5) {
                let b = rng.gen_range(0..atoms as u32);
                input.edge_src.push(first + a);
                input.edge_dst.push(first + b);
                let v: [f64; 3] = std::array::from_fn(|_| rng.gen_range(-2.0..2.0));
                input.edge_vec.push(v);
            }
        }
        first += atoms as u32;
    }
    input.num_graphs = graphs;
    input
}

fn check<E: GpuReal>(config: &ModelConfig, tolerance: f64, seed: u64) {
    let arch = crate::model::Architecture::new(config).unwrap();
    let net = Arc::new(Network::<E>::new(arch));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params: Vec<E> = (0..net.arch.num_params).map(|_| E::of(rng.gen_range(-1.0..1.0))).collect();
    let input = batch(&mut rng, 4, &[1, 8, 14]);
    let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
    let (raw, back) = engine.forward(&net.prepare(&input).unwrap(), &params, true).unwrap();
    let (_, cache) = net.forward(&params, net.prepare(&input).unwrap());
    let flat = |r: &[[f64; 6]]| r.iter().flatten().copied().collect::<Vec<f64>>();
    let err = worst(&flat(&raw), &flat(&cache.raw));
    assert!(err <= tolerance, "{config:?}: raw off by {err:e}");
    let g_out: Vec<[E; 6]> =
        (0..raw.len()).map(|_| std::array::from_fn(|_| E::of(rng.gen_range(-1.0..1.0)))).collect();
    let graw: Vec<[f64; 6]> =
        cache.raw.iter().zip(&g_out).map(|(r, g)| net.head_backward(r, &g.map(|v| v.to64()))).collect();
    let got = back.unwrap()(&graw).unwrap();
    let want = net.backward(&params, &cache, &g_out);
    let to64 = |v: &[E]| v.iter().map(|x| x.to64()).collect::<Vec<f64>>();
    for p in &net.arch.params {
        let r = p.offset..p.offset + p.numel();
        assert!(want[r.clone()].iter().any(|v| *v != E::zero()), "d {} is zero: a trivial case", p.name);
        let err = worst(&to64(&got[r.clone()]), &to64(&want[r]));
        assert!(err <= tolerance, "l_max {} {:?}: d {} off by {err:e}", config.lmax, config.kind, p.name);
    }
}

fn configs() -> Vec<ModelConfig> {
    let mut out = Vec::new();
    for lmax in 0..=4 {
        for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
            if kind == ModelKind::Equivariant && lmax == 0 {
                continue;
            }
            let layers = if lmax % 2 == 0 { 2 } else { 1 };
            out.push(ModelConfig {
                kind,
                lmax,
                em_dim: 6,
                mul: 3,
                layers,
                radial_neurons: 7,
                radial_layers: 1 + lmax % 2,
                output: crate::model::config::OutputMode::Raw,
                ..ModelConfig::default()
            });
        }
    }
    out
}

#[test]
fn the_emulated_engine_matches_the_cpu_network_in_f64() {
    for (i, config) in configs().iter().enumerate() {
        check::<f64>(config, 1e-12, i as u64);
    }
}

#[test]
fn the_emulated_engine_matches_the_cpu_network_in_f32() {
    for (i, config) in configs().iter().enumerate() {
        check::<f32>(config, 1e-5, 10 + i as u64);
    }
}

/// A batch of the MP data's sizes, whose edges the radial MLP's weight
/// gradient sums in several chunks, still matches the CPU network.
#[test]
fn a_batch_of_several_edge_chunks_matches_the_cpu_network() {
    let config =
        ModelConfig { lmax: 2, em_dim: 6, mul: 3, layers: 1, radial_neurons: 7, ..ModelConfig::default() };
    let net = Arc::new(Network::<f64>::new(crate::model::Architecture::new(&config).unwrap()));
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let params: Vec<f64> = (0..net.arch.num_params).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let input = crate::model::synthetic::random_batch(2, 4, 18, 34, config.cutoff);
    assert!(layers::mlp_chunks(input.edge_src.len()) > 1, "{} edges", input.edge_src.len());
    let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
    let (raw, back) = engine.forward(&net.prepare(&input).unwrap(), &params, true).unwrap();
    let (_, cache) = net.forward(&params, net.prepare(&input).unwrap());
    let g_out: Vec<[f64; 6]> =
        (0..raw.len()).map(|_| std::array::from_fn(|_| rng.gen_range(-1.0..1.0))).collect();
    let graw: Vec<[f64; 6]> = cache.raw.iter().zip(&g_out).map(|(r, g)| net.head_backward(r, g)).collect();
    let got = back.unwrap()(&graw).unwrap();
    let want = net.backward(&params, &cache, &g_out);
    // Sums over thousands of edges, the chunks' in another order than the CPU's.
    assert!(worst(&got, &want) <= 1e-10, "off by {:e}", worst(&got, &want));
}

/// The published configuration: em 48, two gate layers, l_max 3, mul 48.
fn published() -> ModelConfig {
    ModelConfig { lmax: 3, em_dim: 48, mul: 48, layers: 2, ..ModelConfig::default() }
}

#[test]
fn a_training_step_at_the_published_configuration_keeps_the_budget() {
    let net = Arc::new(Network::<f32>::new(crate::model::Architecture::new(&published()).unwrap()));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let params: Vec<f32> = (0..net.arch.num_params).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let input = batch(&mut rng, 2, &[3, 8]);
    let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
    let before = engine.counts();
    let prep = net.prepare(&input).unwrap();
    let (raw, back) = engine.forward(&prep, &params, true).unwrap();
    let grads = back.unwrap()(&vec![[1.0; 6]; raw.len()]).unwrap();
    let after = engine.counts();
    assert_eq!(grads.len(), net.arch.num_params);
    let launches = after.launches - before.launches;
    let transfers = (after.uploads - before.uploads) + (after.downloads - before.downloads);
    println!("one training step at the published configuration: {launches} launches, {transfers} transfers");
    assert!(launches <= 100, "{launches} launches in a training step");
    assert_eq!(transfers, 4, "batch and parameters up, outputs down, their gradient up, gradients down");
}

#[test]
fn two_runs_are_bit_identical() {
    let config = ModelConfig { lmax: 2, em_dim: 6, mul: 3, layers: 2, ..ModelConfig::default() };
    let net = Arc::new(Network::<f64>::new(crate::model::Architecture::new(&config).unwrap()));
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let params: Vec<f64> = (0..net.arch.num_params).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let input = batch(&mut rng, 3, &[1, 6, 8]);
    let run = || {
        let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
        let (raw, back) = engine.forward(&net.prepare(&input).unwrap(), &params, true).unwrap();
        let grads = back.unwrap()(&vec![[0.5, -1.0, 2.0, 0.25, 1.0, -0.75]; raw.len()]).unwrap();
        (
            raw.into_iter().flatten().map(f64::to_bits).collect::<Vec<_>>(),
            grads.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
        )
    };
    assert!(run() == run(), "two runs differ");
}

/// The emulation, with launches refused from a given moment on: a device
/// lost between the forward and the backward pass.
struct LostAfter {
    inner: Emulated,
    lost: AtomicBool,
}

impl Backend for LostAfter {
    fn name(&self) -> &str {
        "gpu-emulated"
    }
    fn alloc(&self, bytes: usize) -> Result<DevicePtr, GpuError> {
        self.inner.alloc(bytes)
    }
    fn free(&self, ptr: DevicePtr) {
        self.inner.free(ptr)
    }
    fn upload(&self, dst: DevicePtr, bytes: &[u8]) -> Result<(), GpuError> {
        self.inner.upload(dst, bytes)
    }
    fn download(&self, src: DevicePtr, bytes: &mut [u8]) -> Result<(), GpuError> {
        self.inner.download(src, bytes)
    }
    fn launch(
        &self,
        kernel: &str,
        grid: u32,
        block: u32,
        shared: u32,
        params: &[u8],
    ) -> Result<(), GpuError> {
        if self.lost.load(Ordering::SeqCst) {
            let message = "the device was lost".to_string();
            return Err(GpuError::Launch { device: self.name().into(), kernel: kernel.into(), message });
        }
        self.inner.launch(kernel, grid, block, shared, params)
    }
}

#[test]
fn a_device_lost_in_the_backward_pass_is_an_error_of_the_step_not_a_panic() {
    use dfdx::prelude::*;
    let config = ModelConfig { lmax: 1, em_dim: 4, mul: 2, layers: 1, ..ModelConfig::default() };
    let mut model = crate::model::AnisoNet::<f64>::new(&config, &Cpu::default(), 1).unwrap();
    let backend = Arc::new(LostAfter { inner: Default::default(), lost: Default::default() });
    model.engine = Some(Arc::new(GpuEngine::new(Gpu::new(backend.clone()), model.net.clone()).unwrap()));
    let input = batch(&mut ChaCha8Rng::seed_from_u64(5), 2, &[1, 8]);
    let pred = model.forward(&input, model.params.flat.clone().traced(Gradients::leaky())).unwrap();
    backend.lost.store(true, Ordering::SeqCst);
    let grads = pred.square().sum().backward();
    let fault = model.backward_fault().unwrap_err().to_string();
    assert!(fault.contains("the device was lost"), "{fault}");
    assert!(grads.get(&model.params.flat).as_vec().iter().all(|g| *g == 0.0), "no partial gradient is kept");
    assert!(model.backward_fault().is_ok(), "a fault is reported once");
}

/// A training step of a run kept on the device, at the published
/// configuration on a batch of 12 structures: the batch up, a kilobyte
/// more in all, no allocation once the buffers have grown, and the host's
/// own time (outside the device's calls) printed.
#[test]
fn a_training_step_kept_on_the_device_moves_the_batch_and_a_kilobyte() {
    let net = Arc::new(Network::<f32>::new(crate::model::Architecture::new(&published()).unwrap()));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let params: Vec<f32> = (0..net.arch.num_params).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let input = batch(&mut rng, 12, &[3, 8, 14]);
    let prep = net.prepare(&input).unwrap();
    let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
    engine.load(&HostState { params: params.clone(), best: params, ..HostState::default() }).unwrap();
    let mut loss = |raw: &[[f64; 6]]| (0.0, vec![[1.0; 6]; raw.len()]);
    let settings = AdamSettings { max_grad_norm: Some(1.0), ..AdamSettings::new(1e-3, 0.03) };
    let adam = |step| AdamStep { settings, step };
    engine.train_step(&prep, &mut loss, &adam(1)).unwrap();
    let (before, start) = (engine.counts(), std::time::Instant::now());
    engine.train_step(&prep, &mut loss, &adam(2)).unwrap();
    let (step, wall) = (engine.counts().since(&before), start.elapsed());
    let mut packing = Packing::default();
    engine.inner.pack(&mut packing, &prep, None);
    let batch = packing.len() as u64;
    let host_ms = wall.as_secs_f64() * 1e3 - step.device_ns as f64 / 1e6;
    println!(
        "a step kept on the device: {} launches, {} transfers, batch {batch} B, {} B up and {} B down in all, \
         {} allocations, {host_ms:.2} ms of host work",
        step.launches,
        step.transfers(),
        step.bytes_up,
        step.bytes_down,
        step.allocs
    );
    assert_eq!(step.allocs, 0, "no allocation in a step");
    assert_eq!(step.transfers(), 3, "the batch up, the outputs down, their gradient up");
    assert!(step.bytes_up + step.bytes_down <= batch + 1024, "{step:?} for a batch of {batch} B");
    assert!(step.launches <= 100, "{} launches", step.launches);
    let state = engine.store().unwrap();
    assert!(state.m.iter().any(|&m| m != 0.0), "AdamW ran on the device");
}

/// Twenty steps of a run kept on the device at the published
/// configuration, AdamW with the norm limit biting, against the CPU
/// network with the host's AdamW: the losses of the two, step by step.
fn twenty_steps_at_the_published_configuration<E: GpuReal + crate::model::ModelFloat>() -> Vec<(f64, f64)>
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
{
    use crate::train::batch::mse_with_gradient;
    use crate::train::optim::AdamW;
    let net = Arc::new(Network::<E>::new(crate::model::Architecture::new(&published()).unwrap()));
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let start: Vec<E> = (0..net.arch.num_params).map(|_| E::of(rng.gen_range(-1.0..1.0))).collect();
    let input = batch(&mut rng, 3, &[3, 8, 14]);
    let targets: Vec<[f64; 6]> = (0..3).map(|_| std::array::from_fn(|_| rng.gen_range(1.0..3.0))).collect();
    let kind = ModelKind::Equivariant;
    let optimiser = || {
        let mut adam = AdamW::<E>::new(1e-3, 0.03);
        adam.settings.max_grad_norm = Some(1.0);
        adam
    };

    let (mut host, mut params, mut cpu) = (optimiser(), start.clone(), vec![]);
    for _ in 0..20 {
        let (out, cache) = net.forward(&params, net.prepare(&input).unwrap());
        let out: Vec<[f64; 6]> = out.iter().map(|o| o.map(|v| v.to64())).collect();
        let (loss, grad) = mse_with_gradient(kind, &out, &targets);
        let g_out: Vec<[E; 6]> = grad.iter().map(|g| g.map(E::of)).collect();
        let grad = net.backward(&params, &cache, &g_out);
        host.step_slices(&mut params, &grad);
        cpu.push(loss);
    }

    let engine = GpuEngine::new(Gpu::emulated(), net.clone()).unwrap();
    engine.load(&HostState { params: start.clone(), best: start, ..HostState::default() }).unwrap();
    let (mut adam, prep) = (optimiser(), net.prepare(&input).unwrap());
    let mut loss = |raw: &[[f64; 6]]| {
        let out: Vec<[f64; 6]> = raw.iter().map(|r| net.head_forward(r)).collect();
        let (value, grad) = mse_with_gradient(kind, &out, &targets);
        (value, raw.iter().zip(&grad).map(|(r, g)| net.head_backward(r, g)).collect())
    };
    let device = (0..20).map(|_| engine.train_step(&prep, &mut loss, &adam.next_step()).unwrap());
    let pairs: Vec<(f64, f64)> = device.zip(cpu).collect();
    assert!(pairs[19].1 < pairs[0].1, "the loss falls: {pairs:?}");
    pairs
}

#[test]
fn twenty_steps_at_the_published_configuration_follow_the_cpu_in_f64() {
    for (k, (got, want)) in twenty_steps_at_the_published_configuration::<f64>().into_iter().enumerate() {
        assert!((got - want).abs() <= 1e-9 * want.abs(), "step {k}: {got} on the device, {want} on the cpu");
    }
}

#[test]
fn twenty_steps_at_the_published_configuration_follow_the_cpu_in_f32() {
    for (k, (got, want)) in twenty_steps_at_the_published_configuration::<f32>().into_iter().enumerate() {
        assert!((got - want).abs() <= 1e-4 * want.abs(), "step {k}: {got} on the device, {want} on the cpu");
    }
}
