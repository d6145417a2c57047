//! `study trial FILE` (internal): one trial of the built-in objective, as
//! the study controller launches it.
//!
//! Reads the trial file the controller wrote (`trials/<n>/trial.json`, see
//! [`crate::study::trial`]), loads the data through the shared graph cache,
//! trains, and speaks the protocol of [`crate::exec::protocol`] on stdout:
//! `start`, then per epoch `epoch` (its metrics) and `intermediate` (the
//! objective metric, for the pruner), then `metrics` (validation and test
//! metrics, overall and per crystal system), `artifact` (the test split's
//! predictions, `test_predictions.csv`) and `final`; or `error`.
//!
//! A checkpoint is written into `trials/<n>/checkpoint/` after every epoch.
//! Closing stdin (the controller's graceful stop), the controller going
//! away, or SIGTERM (what Slurm sends a job step when its job is pre-empted,
//! at the start of a grace period) ends the trial after the running epoch
//! without a result; run again, it resumes from that checkpoint. Pruning is the controller's: it kills
//! the trial. Threads: `ANISOSTUDY_THREADS` (set per slot by the controller).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use crate::exec::devices::{parse_device, Device};
use crate::exec::protocol::{emit, Message, Number};
use crate::model::{ComputeDevice, ModelError};
use crate::study::file::Metric;
use crate::study::trial::{TrialFile, CHECKPOINT_DIR};
use crate::train::{self, checkpoint, predictions, Control, EpochReport, Metrics, StopReason};

/// Run one trial of the built-in objective (launched by `study run`).
#[derive(Debug, Args)]
pub struct TrialArgs {
    /// The trial file the controller wrote: `<results>/<study>/trials/<n>/trial.json`.
    pub file: PathBuf,
}

/// Where this trial computes: its slot's device (`ANISOSTUDY_DEVICE`, set by
/// the controller). A GPU slot's GPU is the only one `CUDA_VISIBLE_DEVICES`
/// leaves visible, so it is CUDA ordinal 0 here.
fn slot_device() -> Result<ComputeDevice> {
    let Ok(text) = std::env::var("ANISOSTUDY_DEVICE") else { return Ok(ComputeDevice::Cpu) };
    match parse_device(&text).map_err(|e| anyhow::anyhow!("ANISOSTUDY_DEVICE: {e}"))? {
        Device::Cpu => Ok(ComputeDevice::Cpu),
        Device::Cuda(_) => Ok(ComputeDevice::Cuda(0)),
        Device::GpuEmulated => Ok(ComputeDevice::GpuEmulated),
    }
}

/// Why a trial gives up, as the `error` line's `kind`.
fn error_kind(err: &anyhow::Error) -> &'static str {
    if err.chain().any(|c| c.downcast_ref::<ModelError>().is_some()) {
        "model"
    } else if crate::error::exit_code(err) == 2 {
        "input"
    } else {
        "runtime"
    }
}

pub fn run(args: TrialArgs) -> Result<()> {
    let mut out = std::io::stdout();
    let spec = TrialFile::read(&args.file)?;
    let device = std::env::var("ANISOSTUDY_DEVICE").ok();
    let _ = emit(
        &mut out,
        &Message::Start { trial: Some(spec.trial), device: device.clone(), pid: Some(std::process::id()) },
    );
    let dir = crate::paths::folder_of(&args.file).to_path_buf();
    match train_trial(&spec, &dir, &mut out) {
        Ok(()) => Ok(()),
        Err(err) => {
            let message = format!("{err:#}");
            let (kind, message) = if message.contains("training diverged") {
                ("nan_loss", format!("diverged (NaN loss): {message}"))
            } else {
                (error_kind(&err), message)
            };
            let _ = emit(&mut out, &Message::Error { kind: Some(kind.to_owned()), message });
            Err(err)
        }
    }
}

fn train_trial(spec: &TrialFile, dir: &Path, out: &mut impl std::io::Write) -> Result<()> {
    crate::model::alloc::tune_allocator();
    use_threads();
    let mut model = spec.model.clone();
    model.validate()?;
    let stop = watch_stdin();
    let (data, about) = spec.data.load()?;
    eprintln!("data: {about}");
    model.num_neighbors = spec.num_neighbors.unwrap_or_else(|| data.mean_neighbors());

    let _guard = TrialPid::take(dir)?;
    let ck_dir = dir.join(CHECKPOINT_DIR);
    let resumable = checkpoint::exists(&ck_dir)
        && match checkpoint::load_checkpoint(&ck_dir) {
            Ok(ck)
                if ck.model == train::model_for_run(&model, &spec.training, &data)
                    && ck.training == spec.training =>
            {
                true
            }
            _ => {
                eprintln!("the checkpoint in {} is for other settings; starting over", ck_dir.display());
                std::fs::remove_dir_all(&ck_dir).ok();
                false
            }
        };

    let metric = spec.metric;
    if resumable {
        // Repeat what the checkpoint has seen, so a controller that died
        // before recording it learns it now (it keeps the first value of a step).
        let ck = checkpoint::load_checkpoint(&ck_dir)?;
        eprintln!("resuming from epoch {}", ck.state.epochs_done);
        for e in &ck.state.history {
            let value = match metric {
                Metric::ValLoss => Some(e.val_loss),
                Metric::ValEpsPolyMae => e.val_eps_poly_mae,
                Metric::ValAnisotropyMae => e.val_anisotropy_mae,
            };
            let _ = emit(
                out,
                &Message::Intermediate { step: e.epoch as u64, value: Number(value.unwrap_or(f64::NAN)) },
            );
        }
    }
    let mut gone = false;
    let mut on_epoch = |r: &EpochReport| {
        let sent = emit(out, &epoch_message(r)).and_then(|()| {
            emit(
                out,
                &Message::Intermediate { step: r.epoch as u64, value: Number(value_of(metric, &r.val)) },
            )
        });
        gone |= sent.is_err();
        if gone || stop.load(Ordering::SeqCst) || TERMINATED.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let device = slot_device()?;
    let outcome = if resumable {
        train::resume(&ck_dir, &data, device, &mut on_epoch)?
    } else {
        train::train(&model, &spec.training, &data, device, Some(&ck_dir), None, &mut on_epoch)?
    };
    if outcome.stop == StopReason::Interrupted {
        eprintln!("stopped after epoch {}; the checkpoint resumes it", outcome.epochs_run);
        return Ok(());
    }
    let result = outcome.result.as_ref().context("a finished run has its final metrics")?;
    let mut metrics = std::collections::BTreeMap::new();
    for (split, m) in [("val", &result.val), ("test", &result.test)] {
        add_metrics(&mut metrics, split, m);
    }
    metrics.insert("epochs_run".to_owned(), Number(outcome.epochs_run as f64));
    if let Some(best) = outcome.best_epoch {
        metrics.insert("best_epoch".to_owned(), Number(best as f64));
    }
    metrics.insert("num_params".to_owned(), Number(outcome.num_params as f64));
    metrics.insert("train_seconds".to_owned(), Number(outcome.wall_seconds));
    if let Some(rate) = result.inference_edges_per_s {
        metrics.insert("inference_edges_per_s".to_owned(), Number(rate));
    }
    if let Some(gb) = peak_memory_gb() {
        metrics.insert("peak_memory_gb".to_owned(), Number(gb));
    }
    let _ = emit(out, &Message::Metrics { metrics });
    // (A run finished by an older build kept no predictions in its checkpoint.)
    if !result.test_predictions.is_empty() {
        let rows = predictions::prediction_rows(&data.graphs, &data.split.test, &result.test_predictions);
        predictions::write_csv(&dir.join(predictions::TEST_PREDICTIONS_FILE), &rows)?;
        let _ = emit(
            out,
            &Message::Artifact {
                kind: predictions::TEST_PREDICTIONS_KIND.to_owned(),
                path: predictions::TEST_PREDICTIONS_FILE.to_owned(),
            },
        );
    }
    let _ = emit(
        out,
        &Message::Final {
            objective: Number(value_of(metric, &result.val)),
            objectives: None,
            constraints: None,
        },
    );
    Ok(())
}

/// The peak resident memory of this trial process so far, GB (host memory;
/// a GPU's own memory is not counted).
fn peak_memory_gb() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given and touches nothing else.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    // SAFETY: zero-initialised, and filled in on success.
    let usage = unsafe { usage.assume_init() };
    // Linux reports kibibytes.
    ok.then(|| usage.ru_maxrss as f64 * 1024.0 / 1e9)
}

/// The objective metric of validation metrics (NaN when undefined).
fn value_of(metric: Metric, val: &Metrics) -> f64 {
    match metric {
        Metric::ValLoss => Some(val.loss),
        Metric::ValEpsPolyMae => val.overall.eps_poly_mae,
        Metric::ValAnisotropyMae => val.overall.anisotropy_mae,
    }
    .unwrap_or(f64::NAN)
}

fn epoch_message(r: &EpochReport) -> Message {
    let mut metrics = std::collections::BTreeMap::new();
    let mut put = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            metrics.insert(name.to_owned(), Number(v));
        }
    };
    put("train_loss", Some(r.train_loss));
    put("val_loss", Some(r.val.loss));
    put("val_eps_poly_mae", r.val.overall.eps_poly_mae);
    put("val_anisotropy_mae", r.val.overall.anisotropy_mae);
    put("val_unphysical", Some(r.val.overall.unphysical as f64));
    put("max_epochs", Some(r.max_epochs as f64));
    put("lr", Some(r.lr));
    put("seconds", Some(r.seconds));
    Message::Epoch { epoch: r.epoch as u64, metrics }
}

/// `<split>_loss`, `_eps_poly_mae`, `_anisotropy_mae`, `_unphysical`, and
/// per crystal system `<split>_<metric>_<system>` and `<split>_count_<system>`
/// (systems without structures are left out). Undefined values (a_r of a
/// prediction with an eigenvalue ≤ 0 is NaN) are left out too, as a
/// checkpoint's JSON keeps them (`null`), so a resumed trial records the same.
fn add_metrics(into: &mut std::collections::BTreeMap<String, Number>, split: &str, m: &Metrics) {
    let mut put = |name: String, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            into.insert(name, Number(v));
        }
    };
    put(format!("{split}_loss"), Some(m.loss));
    let mut group = |suffix: &str, g: &train::GroupMetrics, count: bool| {
        put(format!("{split}_eps_poly_mae{suffix}"), g.eps_poly_mae);
        put(format!("{split}_anisotropy_mae{suffix}"), g.anisotropy_mae);
        put(format!("{split}_unphysical{suffix}"), Some(g.unphysical as f64));
        if count {
            put(format!("{split}_count{suffix}"), Some(g.count as f64));
        }
    };
    group("", &m.overall, false);
    for (system, g) in &m.by_system {
        if g.count > 0 {
            group(&format!("_{system}"), g, true);
        }
    }
}

/// Sizes the rayon pool from `ANISOSTUDY_THREADS` (the slot's share of cores).
fn use_threads() {
    let threads = std::env::var("ANISOSTUDY_THREADS").ok().and_then(|t| t.parse::<usize>().ok());
    if let Some(n) = threads.filter(|&n| n > 0) {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
}

/// A flag set when stdin reaches its end: the controller asks the trial to
/// checkpoint and exit (or has gone away).
/// Set by SIGTERM.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// A flag that is set when stdin closes; SIGTERM sets [`TERMINATED`].
fn watch_stdin() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    let set = flag.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        set.store(true, Ordering::SeqCst);
    });
    flag
}

/// `trial.pid` in the trial folder: a new attempt waits until an earlier
/// process of the same trial (left behind by a controller that was killed,
/// finishing its epoch) has exited, so two never write one checkpoint.
struct TrialPid {
    path: PathBuf,
}

impl TrialPid {
    fn take(dir: &Path) -> Result<TrialPid> {
        let path = dir.join("trial.pid");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let pid = text.trim();
            let me = std::process::id().to_string();
            let started = Instant::now();
            while !pid.is_empty() && pid != me && Path::new("/proc").join(pid).exists() {
                if started.elapsed() > Duration::from_secs(600) {
                    anyhow::bail!("an earlier process (pid {pid}) of this trial is still running");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(TrialPid { path })
    }
}

impl Drop for TrialPid {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}
