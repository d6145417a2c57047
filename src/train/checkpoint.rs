//! Checkpoints of a training run, one folder each:
//!
//! - `model.safetensors`: tensors `params` (current parameters, flat layout of
//!   [`crate::model::Architecture::params`]), `best_params` (the parameters of
//!   the best validation loss so far), `adamw.m` and `adamw.v` (AdamW moments),
//!   all flat, in the run's precision; its metadata holds `format` and the
//!   whole [`Checkpoint`] as JSON under `checkpoint`.
//! - `checkpoint.json`: the same [`Checkpoint`], for people and tools.
//!
//! Each file is written to a temporary name and renamed, the tensors first:
//! the safetensors file is the commit point and carries its own copy of the
//! state, so a crash between the two renames still leaves a consistent,
//! resumable checkpoint (the sidecar is then one epoch behind).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::metrics::Metrics;
use crate::error::InputError;
use crate::model::{AnisoNet, AnyAnisoNet, Architecture, ModelConfig, ModelFloat, Precision};

/// Bump when the meaning or layout of a field changes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT: &str = "anisostudy-train-1";
pub const TENSORS_FILE: &str = "model.safetensors";
pub const SIDECAR_FILE: &str = "checkpoint.json";

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All `epochs` ran.
    MaxEpochs,
    /// `patience` epochs passed without a lower validation loss.
    EarlyStopping,
    /// The per-epoch callback asked to stop; the run can be resumed.
    Interrupted,
}

/// One finished epoch, as kept in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_eps_poly_mae: Option<f64>,
    pub val_anisotropy_mae: Option<f64>,
    pub val_unphysical: usize,
    pub seconds: f64,
}

/// Validation and test metrics of the restored best parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    pub val: Metrics,
    pub test: Metrics,
    /// ε predicted for each test structure (irreps 0e+2e), in the order of
    /// the split's test positions: kept for parity plots of the best model.
    #[serde(default)]
    pub test_predictions: Vec<[f64; 6]>,
    /// Edges per second of the best model's prediction of the test split,
    /// on the run's device: the inference cost a screen pays (a run
    /// finished by an older build did not measure it).
    #[serde(default)]
    pub inference_edges_per_s: Option<f64>,
}

/// Where a run stands between epochs: everything that, with the tensors,
/// makes the rest of the run identical to an uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished; the next epoch's index (0-based). Its shuffle is
    /// `epoch_order(train, training.seed, epochs_done)`, so no RNG state is kept.
    pub epochs_done: usize,
    /// AdamW steps taken (bias correction).
    pub optimizer_step: u64,
    pub best_val_loss: Option<f64>,
    /// 1-based epoch whose parameters are `best_params`.
    pub best_epoch: Option<usize>,
    /// Early-stopping counter: epochs since the best validation loss.
    pub epochs_without_improvement: usize,
    /// Set once the run has ended (not for an interruption).
    pub stop: Option<StopReason>,
    /// Training wall time so far, over all sessions, s.
    pub elapsed_seconds: f64,
    pub history: Vec<EpochRecord>,
    pub result: Option<FinalMetrics>,
}

impl TrainState {
    pub fn new() -> TrainState {
        TrainState {
            epochs_done: 0,
            optimizer_step: 0,
            best_val_loss: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            stop: None,
            elapsed_seconds: 0.0,
            history: vec![],
            result: None,
        }
    }
}

impl Default for TrainState {
    fn default() -> Self {
        Self::new()
    }
}

/// The sidecar: configuration and state of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format_version: u32,
    pub model: ModelConfig,
    pub training: TrainConfig,
    pub num_params: usize,
    /// SHA-256 of the split and targets the run trains on; resume checks it.
    pub data_fingerprint: String,
    /// How the caller built the data (e.g. the CLI's data options), to rebuild it on resume.
    pub data: Option<serde_json::Value>,
    pub state: TrainState,
}

/// The tensors of a checkpoint in precision `E`.
pub struct Tensors<E> {
    pub params: Vec<E>,
    pub best_params: Vec<E>,
    pub adam_m: Vec<E>,
    pub adam_v: Vec<E>,
}

fn bytes_of<E: ModelFloat>(values: &[E]) -> Vec<u8>
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
{
    if std::mem::size_of::<E>() == 4 {
        values.iter().flat_map(|v| (v.to64() as f32).to_le_bytes()).collect()
    } else {
        values.iter().flat_map(|v| v.to64().to_le_bytes()).collect()
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Saves a checkpoint into `dir` (created if needed).
pub fn save<E: ModelFloat>(dir: &Path, checkpoint: &Checkpoint, tensors: &Tensors<E>) -> Result<()>
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
{
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the checkpoint folder {}", dir.display()))?;
    let dtype = if std::mem::size_of::<E>() == 4 { StDtype::F32 } else { StDtype::F64 };
    let n = tensors.params.len();
    let zeros = vec![E::zero(); n];
    let moment = |m: &'_ Vec<E>| if m.len() == n { bytes_of(m) } else { bytes_of(&zeros) };
    let named = [
        ("params", bytes_of(&tensors.params)),
        ("best_params", bytes_of(&tensors.best_params)),
        ("adamw.m", moment(&tensors.adam_m)),
        ("adamw.v", moment(&tensors.adam_v)),
    ];
    let mut views = Vec::new();
    for (name, bytes) in &named {
        views.push((name.to_string(), TensorView::new(dtype, vec![n], bytes)?));
    }
    let json = serde_json::to_string_pretty(checkpoint)?;
    let meta =
        HashMap::from([("format".to_string(), FORMAT.to_string()), ("checkpoint".to_string(), json.clone())]);
    let bytes = ::safetensors::serialize(views, &Some(meta))?;
    write_atomic(&dir.join(TENSORS_FILE), &bytes)?;
    write_atomic(&dir.join(SIDECAR_FILE), json.as_bytes())
}

/// Whether `dir` holds a checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join(TENSORS_FILE).is_file()
}

fn bad(path: &Path, problem: impl Into<String>) -> anyhow::Error {
    InputError::new(path.display().to_string(), problem)
        .with_hint("point to a folder written by `study train --out DIR`")
        .into()
}

/// Reads the state of the checkpoint in `dir` (from the tensor file, the commit point).
pub fn load_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let path = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| bad(&path, format!("cannot read the checkpoint: {e}")))?;
    checkpoint_of(&path, &bytes)
}

fn checkpoint_of(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(path, format!("not a training checkpoint (metadata format is not {FORMAT:?})")));
    }
    let checkpoint: Checkpoint = serde_json::from_str(info.get("checkpoint").map_or("", String::as_str))
        .map_err(|e| bad(path, format!("unreadable checkpoint state: {e}")))?;
    if checkpoint.format_version != FORMAT_VERSION {
        return Err(bad(
            path,
            format!("checkpoint format {} but this build reads {FORMAT_VERSION}", checkpoint.format_version),
        ));
    }
    Ok(checkpoint)
}

/// Reads the checkpoint in `dir` with its tensors in precision `E`.
pub fn load<E: ModelFloat>(dir: &Path) -> Result<(Checkpoint, Tensors<E>)>
where
    dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
{
    let path = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| bad(&path, format!("cannot read the checkpoint: {e}")))?;
    let checkpoint = checkpoint_of(&path, &bytes)?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(&path, e.to_string()))?;
    let read = |name: &str| -> Result<Vec<E>> {
        let t = tensors.tensor(name).map_err(|_| bad(&path, format!("tensor {name:?} is missing")))?;
        if t.shape() != [checkpoint.num_params] {
            return Err(bad(
                &path,
                format!("tensor {name:?} has shape {:?}, expected [{}]", t.shape(), checkpoint.num_params),
            ));
        }
        Ok(match t.dtype() {
            StDtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| E::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            StDtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|c| E::of(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            other => {
                return Err(bad(&path, format!("tensor {name:?} has dtype {other:?}, expected F32 or F64")))
            }
        })
    };
    let out = Tensors {
        params: read("params")?,
        best_params: read("best_params")?,
        adam_m: read("adamw.m")?,
        adam_v: read("adamw.v")?,
    };
    Ok((checkpoint, out))
}

/// The precision a checkpoint was trained in.
pub fn precision(dir: &Path) -> Result<Precision> {
    Ok(load_checkpoint(dir)?.model.dtype)
}

/// The model of the checkpoint in `dir` with its best-validation parameters,
/// in the precision it was trained in.
pub fn load_best_model(dir: &Path) -> Result<(Checkpoint, AnyAnisoNet)> {
    fn build<E: ModelFloat>(dir: &Path) -> Result<(Checkpoint, AnisoNet<E>)>
    where
        dfdx::prelude::Cpu: dfdx::prelude::Device<E>,
    {
        let (ck, tensors) = load::<E>(dir)?;
        let arch = Architecture::new(&ck.model)?;
        if arch.num_params != ck.num_params {
            return Err(anyhow::anyhow!(
                "checkpoint has {} parameters, the model {}",
                ck.num_params,
                arch.num_params
            ));
        }
        let model = AnisoNet::from_flat(arch, tensors.best_params, &dfdx::prelude::Cpu::default());
        Ok((ck, model))
    }
    Ok(match precision(dir)? {
        Precision::F32 => {
            let (ck, m) = build::<f32>(dir)?;
            (ck, AnyAnisoNet::F32(m))
        }
        Precision::F64 => {
            let (ck, m) = build::<f64>(dir)?;
            (ck, AnyAnisoNet::F64(m))
        }
    })
}
