//! End-to-end behaviour of the trainer on a small synthetic data set.

use super::*;
use crate::data::{load_graphs, CacheOptions, GraphOptions, LoadOptions, Source, Split, SplitRatios};
use crate::model::{ComputeDevice, ModelConfig, ModelFloat, ModelKind, Precision};
use batch::Batch;

fn data(n: usize) -> TrainData {
    let source = Source::Synthetic { n, seed: 5 };
    let (set, _) =
        load_graphs(&source, &LoadOptions::default(), &GraphOptions::default(), &CacheOptions { dir: None })
            .expect("synthetic data");
    let split = Split::random(set.graphs.len(), &SplitRatios::default(), 1).unwrap();
    TrainData { graphs: set.graphs, split }
}

fn tiny(kind: ModelKind, dtype: Precision) -> ModelConfig {
    ModelConfig {
        kind,
        em_dim: 4,
        layers: 1,
        lmax: 1,
        mul: 2,
        num_basis: 4,
        radial_neurons: 5,
        dtype,
        ..Default::default()
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig { batch_size: 4, epochs, lr: 0.01, patience: 10, seed: 3, ..Default::default() }
}

/// Everything a run reports except wall-clock times.
fn comparable(reports: &[EpochReport], outcome: &TrainOutcome) -> String {
    let mut r: Vec<serde_json::Value> = reports.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    for v in &mut r {
        v["seconds"] = 0.into();
    }
    let mut o = serde_json::to_value(outcome).unwrap();
    o["wall_seconds"] = 0.into();
    o["checkpoint"] = serde_json::Value::Null;
    if o["result"].is_object() {
        o["result"]["inference_edges_per_s"] = serde_json::Value::Null;
    }
    for h in o["history"].as_array_mut().unwrap() {
        h["seconds"] = 0.into();
    }
    format!("{}\n{}", serde_json::to_string(&r).unwrap(), o)
}

fn run_collect(model: &ModelConfig, data: &TrainData, epochs: usize) -> String {
    let mut reports = vec![];
    let outcome = train(model, &config(epochs), data, ComputeDevice::Cpu, None, None, |r| {
        reports.push(r.clone());
        Control::Continue
    })
    .unwrap();
    comparable(&reports, &outcome)
}

#[test]
fn training_lowers_the_loss_and_reports_metrics() {
    let data = data(40);
    let model = tiny(ModelKind::Equivariant, Precision::F64);
    let mut reports = vec![];
    let outcome = train(&model, &config(6), &data, ComputeDevice::Cpu, None, None, |r| {
        reports.push(r.clone());
        Control::Continue
    })
    .unwrap();
    assert_eq!(outcome.stop, StopReason::MaxEpochs);
    assert_eq!(reports.len(), 6);
    // Epoch losses of 32 training structures in batches of 4 jump from one
    // epoch to the next (a batch of heavy elements); the trend is the point.
    let later = reports[1..].iter().map(|r| r.train_loss).fold(f64::INFINITY, f64::min);
    assert!(later < reports[0].train_loss, "{later} vs {}", reports[0].train_loss);
    assert!((reports[1].lr - 0.01 * 0.98).abs() < 1e-15);
    let result = outcome.result.unwrap();
    // The restored parameters are the best epoch's: the final validation loss is the best one.
    assert_eq!(Some(result.val.loss), outcome.best_val_loss);
    assert_eq!(result.test.overall.count, data.split.test.len());
    assert_eq!(result.test.by_system.iter().map(|(_, g)| g.count).sum::<usize>(), data.split.test.len());
}

#[test]
fn early_stopping_after_patience() {
    let data = data(24);
    let model = tiny(ModelKind::Scalar, Precision::F32);
    // A huge learning rate makes the validation loss stop improving quickly.
    let config = TrainConfig { lr: 0.5, patience: 1, epochs: 40, ..config(40) };
    let outcome =
        train(&model, &config, &data, ComputeDevice::Cpu, None, None, |_| Control::Continue).unwrap();
    assert_eq!(outcome.stop, StopReason::EarlyStopping);
    assert_eq!(outcome.epochs_run, outcome.best_epoch.unwrap() + 1);
    assert!(outcome.epochs_run < 40);
}

/// Same seed, same bytes: also with a different number of worker threads.
/// The radial MLP of 15 → 100 (as published) makes its matrix products large
/// enough for the threaded gemm path.
#[test]
fn deterministic_across_runs_and_thread_counts() {
    let data = data(24);
    // gemm threads products with m·n·k > 200,000: edges × 15 × 100 for a batch of 4.
    let edges: usize = data.split.train.iter().map(|&k| data.graphs[k].num_edges()).sum();
    let per_batch = 4 * edges / data.split.train.len();
    assert!(per_batch * 15 * 100 > 200_000, "{per_batch} edges per batch");
    for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
        let model = ModelConfig { num_basis: 15, radial_neurons: 100, ..tiny(kind, Precision::F32) };
        let a = run_collect(&model, &data, 2);
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let b = pool(1).install(|| run_collect(&model, &data, 2));
        let c = pool(3).install(|| run_collect(&model, &data, 2));
        assert_eq!(a, b, "{kind:?}: 1 thread differs");
        assert_eq!(a, c, "{kind:?}: 3 threads differ");
    }
}

/// Interrupt after 2 of 4 epochs, resume from the checkpoint: bit-identical to
/// an uninterrupted run.
#[test]
fn resume_continues_bit_identically() {
    let data = data(24);
    for dtype in [Precision::F32, Precision::F64] {
        let model = tiny(ModelKind::Equivariant, dtype);
        let dir = tempfile::tempdir().unwrap();
        let mut straight = vec![];
        let full = train(&model, &config(4), &data, ComputeDevice::Cpu, Some(dir.path()), None, |r| {
            straight.push(r.clone());
            Control::Continue
        })
        .unwrap();

        let dir2 = tempfile::tempdir().unwrap();
        let mut resumed = vec![];
        let first = train(&model, &config(4), &data, ComputeDevice::Cpu, Some(dir2.path()), None, |r| {
            resumed.push(r.clone());
            if r.epoch == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        assert_eq!(first.stop, StopReason::Interrupted);
        assert_eq!(first.epochs_run, 2);
        let sidecar: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir2.path().join("checkpoint.json")).unwrap())
                .unwrap();
        assert_eq!(sidecar["state"]["epochs_done"], 2);
        let rest = resume(dir2.path(), &data, ComputeDevice::Cpu, |r| {
            resumed.push(r.clone());
            Control::Continue
        })
        .unwrap();
        assert_eq!(comparable(&resumed, &rest), comparable(&straight, &full), "{dtype:?}");
        assert_eq!(rest.stop, StopReason::MaxEpochs);

        // The final tensors agree too, and a finished run resumes to the same result.
        let (_, a) = checkpoint::load::<f64>(dir.path()).unwrap();
        let (_, b) = checkpoint::load::<f64>(dir2.path()).unwrap();
        assert_eq!(a.params, b.params);
        assert_eq!(a.adam_v, b.adam_v);
        let again = resume(dir2.path(), &data, ComputeDevice::Cpu, |_| Control::Continue).unwrap();
        assert_eq!(again.result, rest.result);
    }
}

#[test]
fn resume_refuses_other_data() {
    let data24 = data(24);
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(ModelKind::Equivariant, Precision::F32);
    train(&model, &config(1), &data24, ComputeDevice::Cpu, Some(dir.path()), None, |_| Control::Continue)
        .unwrap();
    let other = data(30);
    let err = resume(dir.path(), &other, ComputeDevice::Cpu, |_| Control::Continue).unwrap_err();
    assert_eq!(crate::error::exit_code(&err), 2);
    assert!(err.to_string().contains("differs"), "{err}");
}

/// The tensor file is the commit point: a stale or damaged sidecar does not
/// stop a resume, a damaged tensor file is reported as bad input.
#[test]
fn checkpoint_survives_a_stale_sidecar() {
    let data = data(24);
    let model = tiny(ModelKind::Equivariant, Precision::F32);
    let dir = tempfile::tempdir().unwrap();
    let stop_after_one = |r: &EpochReport| if r.epoch == 1 { Control::Stop } else { Control::Continue };
    train(&model, &config(2), &data, ComputeDevice::Cpu, Some(dir.path()), None, stop_after_one).unwrap();
    std::fs::write(dir.path().join("checkpoint.json"), "{ half written").unwrap();
    let done = resume(dir.path(), &data, ComputeDevice::Cpu, |_| Control::Continue).unwrap();
    assert_eq!(done.epochs_run, 2);
    let sidecar: Checkpoint =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(sidecar.state.epochs_done, 2);
    assert_eq!(sidecar.state.stop, Some(StopReason::MaxEpochs));
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let err = resume(dir.path(), &data, ComputeDevice::Cpu, |_| Control::Continue).unwrap_err();
    assert_eq!(crate::error::exit_code(&err), 2);
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// `center_targets` stores the training split's mean ε_poly in the model (and
/// so in its checkpoint, for resume and predict); off keeps the reference's 0.
#[test]
fn centred_targets_set_the_models_offset() {
    let data = data(24);
    let mean = data
        .split
        .train
        .iter()
        .map(|&k| {
            let t = &data.graphs[k].target_cartesian;
            (t[0][0] + t[1][1] + t[2][2]) / 3.0
        })
        .sum::<f64>()
        / data.split.train.len() as f64;
    assert!((data.mean_eps_poly() - mean).abs() < 1e-12, "{} vs {mean}", data.mean_eps_poly());
    for centre in [true, false] {
        let model = tiny(ModelKind::Scalar, Precision::F64);
        let config = TrainConfig { center_targets: centre, ..config(1) };
        let trainer = Trainer::<f64>::new(&model, &config, &data).unwrap();
        let want = if centre { data.mean_eps_poly() } else { 0.0 };
        assert_eq!(trainer.model.arch().config.eps_offset, want);
        let dir = tempfile::tempdir().unwrap();
        train(&model, &config, &data, ComputeDevice::Cpu, Some(dir.path()), None, |_| Control::Continue)
            .unwrap();
        assert_eq!(checkpoint::load_checkpoint(dir.path()).unwrap().model.eps_offset, want);
    }
}

/// The tensor-op network (what a CUDA device runs) trains as the fused CPU
/// network does: in f64 the same losses to rounding, epoch after epoch.
#[test]
fn training_through_a_device_engine_follows_the_fused_network() {
    let data = data(24);
    let model = tiny(ModelKind::Equivariant, Precision::F64);
    let losses = |engine: bool| -> Vec<f64> {
        let mut trainer = Trainer::<f64>::new(&model, &config(3), &data).unwrap();
        if engine {
            trainer.model.compute_on(dfdx::prelude::Cpu::default(), "cpu-tensor");
        }
        let mut out = vec![];
        trainer
            .run(|r| {
                out.push(r.train_loss);
                out.push(r.val.loss);
                Control::Continue
            })
            .unwrap();
        out
    };
    let (fused, engine) = (losses(false), losses(true));
    assert_eq!(fused.len(), 6);
    for (a, b) in fused.iter().zip(&engine) {
        assert!((a - b).abs() <= 1e-9 * a.abs(), "fused {a} vs engine {b}");
    }
}

#[test]
fn the_dfdx_cuda_device_needs_a_cuda_build() {
    let data = data(12);
    let model = tiny(ModelKind::Equivariant, Precision::F32);
    if cfg!(feature = "cuda") {
        return;
    }
    let err =
        train(&model, &config(1), &data, ComputeDevice::TensorCuda(0), None, None, |_| Control::Continue);
    let message = format!("{:#}", err.unwrap_err());
    assert!(message.contains("--features cuda"), "{message}");
}

#[test]
fn a_gpu_without_a_driver_is_an_error_naming_the_driver() {
    // SAFETY: only tries to load the library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        println!("note: an NVIDIA driver is present here; the no-driver error is not checked");
        return;
    }
    let data = data(12);
    let model = tiny(ModelKind::Equivariant, Precision::F32);
    let err = train(&model, &config(1), &data, ComputeDevice::Cuda(0), None, None, |_| Control::Continue);
    let message = format!("{:#}", err.unwrap_err());
    assert!(message.contains("no NVIDIA driver"), "{message}");
}

/// The losses of `steps` training steps (AdamW, the gradient-norm limit
/// biting) on `device`, cycling over the training batches.
fn step_losses<E: ModelFloat>(
    model: &ModelConfig,
    data: &TrainData,
    device: ComputeDevice,
    steps: usize,
) -> Vec<f64>
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let config = TrainConfig { max_grad_norm: Some(0.05), ..config(1) };
    let mut trainer = Trainer::<E>::new(model, &config, data).unwrap();
    trainer.use_device(device).unwrap();
    let kind = model.kind;
    let batches: Vec<Batch> =
        data.split.train.chunks(config.batch_size).map(|c| Batch::new(kind, &data.graphs, c)).collect();
    (0..steps).map(|k| trainer.train_step(&batches[k % batches.len()]).unwrap()).collect()
}

/// Twenty steps of a run kept on the (emulated) GPU, with AdamW and the
/// norm limit as kernels, against the CPU trainer's, for both kinds of model.
fn gpu_follows_cpu<E: ModelFloat>(dtype: Precision, tolerance: f64)
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let data = data(24);
    for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
        let model = tiny(kind, dtype);
        let cpu = step_losses::<E>(&model, &data, ComputeDevice::Cpu, 20);
        let gpu = step_losses::<E>(&model, &data, ComputeDevice::GpuEmulated, 20);
        for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
            assert!((a - b).abs() <= tolerance * a.abs(), "{kind:?} {dtype:?} step {k}: cpu {a} vs gpu {b}");
        }
    }
}

#[test]
fn a_run_kept_on_the_gpu_follows_the_cpu_trainer_in_f64() {
    gpu_follows_cpu::<f64>(Precision::F64, 1e-9);
}

#[test]
fn a_run_kept_on_the_gpu_follows_the_cpu_trainer_in_f32() {
    gpu_follows_cpu::<f32>(Precision::F32, 1e-4);
}

/// A run kept on the GPU checkpoints in the portable format: interrupted
/// and resumed there it continues bit-identically, and its checkpoint
/// resumes on the CPU too.
#[test]
fn a_run_kept_on_the_gpu_resumes_there_and_on_the_cpu() {
    let data = data(24);
    let model = tiny(ModelKind::Equivariant, Precision::F64);
    let gpu = ComputeDevice::GpuEmulated;
    let dir = tempfile::tempdir().unwrap();
    let mut straight = vec![];
    let full = train(&model, &config(3), &data, gpu, Some(dir.path()), None, |r| {
        straight.push(r.clone());
        Control::Continue
    })
    .unwrap();
    let stop_after_two = |dir: &std::path::Path, reports: &mut Vec<EpochReport>| {
        train(&model, &config(3), &data, gpu, Some(dir), None, |r| {
            reports.push(r.clone());
            if r.epoch == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    };
    let (on_gpu, on_cpu) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut resumed, mut moved) = (vec![], vec![]);
    stop_after_two(on_gpu.path(), &mut resumed);
    stop_after_two(on_cpu.path(), &mut moved);
    let rest = resume(on_gpu.path(), &data, gpu, |r| {
        resumed.push(r.clone());
        Control::Continue
    })
    .unwrap();
    assert_eq!(comparable(&resumed, &rest), comparable(&straight, &full));
    let (_, a) = checkpoint::load::<f64>(dir.path()).unwrap();
    let (_, b) = checkpoint::load::<f64>(on_gpu.path()).unwrap();
    assert_eq!((a.params, a.best_params, a.adam_m), (b.params, b.best_params, b.adam_m));

    let rest = resume(on_cpu.path(), &data, ComputeDevice::Cpu, |r| {
        moved.push(r.clone());
        Control::Continue
    })
    .unwrap();
    let last = |reports: &[EpochReport]| (reports[2].train_loss, reports[2].val.loss);
    let ((a, b), (c, d)) = (last(&straight), last(&moved));
    assert!((a - c).abs() <= 1e-9 * a && (b - d).abs() <= 1e-9 * b, "{a} {b} vs {c} {d} on the cpu");
    assert_eq!(rest.stop, StopReason::MaxEpochs);
}
