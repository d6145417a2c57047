//! The training loop: AdamW on the MSE of the six loss components, learning
//! rate `lr · γ^epoch`, a seeded shuffle per epoch, early stopping on the
//! validation loss, the best parameters restored at the end, and a checkpoint
//! after every epoch from which [`Trainer::resume`] continues bit-identically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Result};
use dfdx::prelude::*;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::batch::{epoch_order, irreps_to_cartesian6_matrix, mse_with_gradient, Batch};
use super::checkpoint::{self, Checkpoint, EpochRecord, FinalMetrics, StopReason, Tensors, TrainState};
use super::config::TrainConfig;
use super::metrics::Metrics;
use super::optim::AdamW;
use crate::data::{Graph, Split};
use crate::error::InputError;
use crate::model::{AnisoNet, ComputeDevice, HostState, ModelConfig, ModelFloat, ModelKind, Precision};

/// Graphs and the split a run trains, validates and tests on.
#[derive(Clone, Debug)]
pub struct TrainData {
    pub graphs: Vec<Graph>,
    pub split: Split,
}

impl TrainData {
    /// Every part must be non-empty and point into `graphs`.
    pub fn validate(&self) -> Result<()> {
        for (name, part) in
            [("train", &self.split.train), ("val", &self.split.val), ("test", &self.split.test)]
        {
            if part.is_empty() {
                return Err(InputError::new("split", format!("the {name} part is empty"))
                    .with_hint("use more structures or a split file with structures in every part")
                    .into());
            }
            if let Some(&k) = part.iter().find(|&&k| k >= self.graphs.len()) {
                return Err(anyhow!("split {name}: position {k} but only {} graphs", self.graphs.len()));
            }
        }
        Ok(())
    }

    /// Mean number of edges per atom over the training graphs (self-edges
    /// included, as the model's neighbour sum counts them); at least 1.
    pub fn mean_neighbors(&self) -> f64 {
        let (edges, atoms) = self.split.train.iter().fold((0usize, 0usize), |(e, a), &k| {
            (e + self.graphs[k].num_edges(), a + self.graphs[k].num_nodes())
        });
        if atoms == 0 {
            1.0
        } else {
            (edges as f64 / atoms as f64).max(1.0)
        }
    }

    /// Mean ε_poly (trace / 3) of the training structures' targets.
    pub fn mean_eps_poly(&self) -> f64 {
        let sum: f64 = self.split.train.iter().map(|&k| self.graphs[k].target_irreps[0]).sum();
        // The 0e component of ε in e3nn's basis is trace / √3.
        sum / 3f64.sqrt() / self.split.train.len().max(1) as f64
    }

    /// SHA-256 (hex) of the split and of every used structure's frame, edge
    /// count and target: a resumed run must see the same data.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.split.train, &self.split.val, &self.split.test] {
            h.update((part.len() as u64).to_le_bytes());
            for &k in part.iter() {
                let g = &self.graphs[k];
                h.update((g.frame as u64).to_le_bytes());
                h.update((g.num_edges() as u64).to_le_bytes());
                for v in g.target_irreps {
                    h.update(v.to_le_bytes());
                }
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the per-epoch callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// End the run now; the checkpoint of this epoch is already written.
    Stop,
}

/// Intermediate values after each epoch (for progress display and pruning).
#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    /// 1-based number of the epoch just finished.
    pub epoch: usize,
    pub max_epochs: usize,
    pub lr: f64,
    /// Mean training loss over the epoch's structures.
    pub train_loss: f64,
    pub val: Metrics,
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    pub epochs_without_improvement: usize,
    /// Wall time of the epoch (training and validation), s.
    pub seconds: f64,
    /// Edges of the training structures, processed once each this epoch.
    pub train_edges: usize,
}

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOutcome {
    pub stop: StopReason,
    pub epochs_run: usize,
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    /// Metrics of the restored best parameters; `None` when interrupted.
    pub result: Option<FinalMetrics>,
    pub history: Vec<EpochRecord>,
    /// Training wall time over all sessions, s.
    pub wall_seconds: f64,
    pub num_params: usize,
    pub checkpoint: Option<PathBuf>,
}

/// A training run of an [`AnisoNet`] in precision `E` on borrowed data.
pub struct Trainer<'d, E: ModelFloat>
where
    Cpu: Device<E>,
{
    pub model: AnisoNet<E>,
    pub optimizer: AdamW<E>,
    pub config: TrainConfig,
    pub state: TrainState,
    /// The best validation parameters. Where the engine keeps the run on
    /// its device ([`AnisoNet::resident`]), these, `model.params` and the
    /// optimiser's moments are host copies brought up to date only for a
    /// checkpoint and at the end.
    best_params: Vec<E>,
    data: &'d TrainData,
    val_batches: Vec<Batch>,
    test_batches: Vec<Batch>,
    dir: Option<PathBuf>,
    data_spec: Option<serde_json::Value>,
    fingerprint: String,
    /// Row of irreps → (xx, yy, zz, xy, xz, yz), for the scalar model's loss.
    cartesian6: Tensor<(Const<6>, Const<6>), E, Cpu>,
}

fn precision_of<E>() -> Precision {
    if std::mem::size_of::<E>() == 4 {
        Precision::F32
    } else {
        Precision::F64
    }
}

fn config_error(field: &str, problem: String) -> anyhow::Error {
    InputError::new(field.to_string(), problem).into()
}

impl<'d, E: ModelFloat> Trainer<'d, E>
where
    Cpu: Device<E>,
    StandardNormal: Distribution<E>,
{
    /// A fresh run: parameters from `config.seed`. `model_config.dtype` must be `E`.
    pub fn new(model_config: &ModelConfig, config: &TrainConfig, data: &'d TrainData) -> Result<Self> {
        config.validate().map_err(|p| config_error(p.field, p.problem))?;
        model_config.validate().map_err(|e| config_error("model", e.to_string()))?;
        if model_config.dtype != precision_of::<E>() {
            return Err(anyhow!(
                "model dtype {:?} but the trainer runs in {:?}",
                model_config.dtype,
                precision_of::<E>()
            ));
        }
        data.validate()?;
        let model_config = model_for_run(model_config, config, data);
        let model = AnisoNet::<E>::new(&model_config, &Cpu::default(), config.seed)?;
        let best_params = model.params.flat.as_vec();
        let mut optimizer = AdamW::new(config.lr, config.weight_decay);
        optimizer.settings.max_grad_norm = config.max_grad_norm;
        Ok(Self::assemble(model, optimizer, config.clone(), TrainState::new(), best_params, data))
    }

    fn assemble(
        model: AnisoNet<E>,
        optimizer: AdamW<E>,
        config: TrainConfig,
        state: TrainState,
        best_params: Vec<E>,
        data: &'d TrainData,
    ) -> Self {
        let kind = model.arch().config.kind;
        let chunks = |part: &[usize]| -> Vec<Batch> {
            part.chunks(config.batch_size).map(|c| Batch::new(kind, &data.graphs, c)).collect()
        };
        let (val_batches, test_batches) = (chunks(&data.split.val), chunks(&data.split.test));
        let b = irreps_to_cartesian6_matrix();
        let cartesian6 =
            model.device.tensor_from_vec(b.iter().flatten().map(|&v| E::of(v)).collect(), (Const, Const));
        Trainer {
            model,
            optimizer,
            config,
            state,
            best_params,
            data,
            val_batches,
            test_batches,
            dir: None,
            data_spec: None,
            fingerprint: data.fingerprint(),
            cartesian6,
        }
    }

    /// Write a checkpoint into `dir` after every epoch; `data_spec` records how
    /// the data was built (free-form JSON, stored in the sidecar).
    pub fn checkpoint_to(mut self, dir: &Path, data_spec: Option<serde_json::Value>) -> Self {
        self.dir = Some(dir.to_path_buf());
        self.data_spec = data_spec;
        self
    }

    /// Continues the run checkpointed in `dir` on `data` (which must be the same data).
    pub fn resume(dir: &Path, data: &'d TrainData) -> Result<Self> {
        let (ck, tensors) = checkpoint::load::<E>(dir)?;
        if ck.model.dtype != precision_of::<E>() {
            return Err(anyhow!(
                "checkpoint dtype {:?} but the trainer runs in {:?}",
                ck.model.dtype,
                precision_of::<E>()
            ));
        }
        data.validate()?;
        if ck.data_fingerprint != data.fingerprint() {
            return Err(InputError::new(
                dir.display().to_string(),
                "the data differs from the data this run was trained on (split or targets changed)",
            )
            .with_hint("resume with the same data set, split file and cleaning options")
            .into());
        }
        let model = AnisoNet::<E>::new(&ck.model, &Cpu::default(), ck.training.seed)?;
        if model.arch().num_params != ck.num_params {
            return Err(anyhow!(
                "checkpoint has {} parameters, the model {}",
                ck.num_params,
                model.arch().num_params
            ));
        }
        let mut model = model;
        model.params.flat.copy_from(&tensors.params);
        let mut optimizer = AdamW::new(ck.training.lr, ck.training.weight_decay);
        optimizer.settings.max_grad_norm = ck.training.max_grad_norm;
        optimizer.step = ck.state.optimizer_step;
        if optimizer.step > 0 {
            optimizer.m = tensors.adam_m;
            optimizer.v = tensors.adam_v;
        }
        let mut trainer = Self::assemble(model, optimizer, ck.training, ck.state, tensors.best_params, data);
        trainer.dir = Some(dir.to_path_buf());
        trainer.data_spec = ck.data;
        Ok(trainer)
    }

    pub fn num_params(&self) -> usize {
        self.model.arch().num_params
    }

    fn kind(&self) -> ModelKind {
        self.model.arch().config.kind
    }

    /// Computes on `device` from now on. An engine that keeps a training
    /// run on its device gets the run's state there, for every step after.
    pub fn use_device(&mut self, device: ComputeDevice) -> Result<()> {
        self.model.use_device(device)?;
        if let Some(resident) = self.model.resident() {
            let state = HostState {
                params: self.model.params.flat.as_vec(),
                m: self.optimizer.m.clone(),
                v: self.optimizer.v.clone(),
                best: self.best_params.clone(),
            };
            resident.load(&state)?;
        }
        Ok(())
    }

    /// The host copies of a run kept on the device brought up to date.
    fn fetch_from_device(&mut self) -> Result<()> {
        let Some(resident) = self.model.resident() else { return Ok(()) };
        let state = resident.store()?;
        self.model.params.flat.copy_from(&state.params);
        self.best_params = state.best;
        if self.optimizer.step > 0 {
            (self.optimizer.m, self.optimizer.v) = (state.m, state.v);
        }
        Ok(())
    }

    /// One optimiser step on `batch`; returns the batch's loss (MSE of the six components).
    pub fn train_step(&mut self, batch: &Batch) -> Result<f64> {
        if self.model.resident().is_some() {
            let adam = self.optimizer.next_step();
            let kind = self.kind();
            let mut loss = |outputs: &[[f64; 6]]| mse_with_gradient(kind, outputs, &batch.targets);
            return Ok(self.model.resident_step(&batch.input, &mut loss, &adam)?);
        }
        let n = batch.targets.len();
        let target = self
            .model
            .device
            .tensor_from_vec(batch.targets.iter().flatten().map(|&v| E::of(v)).collect(), (n, Const::<6>));
        let params = self.model.params.flat.clone().traced(Gradients::leaky());
        let pred = self.model.forward(&batch.input, params)?;
        let loss = match self.kind() {
            ModelKind::Equivariant => mse_loss(pred, target),
            ModelKind::Scalar => mse_loss(pred.matmul(self.cartesian6.clone()), target),
        };
        let value = loss.array().to64();
        let grads = loss.backward();
        self.model.backward_fault()?;
        self.optimizer.update(&mut self.model.params, &grads);
        Ok(value)
    }

    /// ε (irreps 0e+2e) for every structure of `batches`, in order.
    pub fn predict(&self, batches: &[Batch]) -> Result<Vec<[f64; 6]>> {
        let mut out = Vec::new();
        for b in batches {
            if self.model.resident().is_some() {
                out.extend(self.model.resident_predict(&b.input)?);
            } else {
                out.extend(self.model.predict(&b.input)?);
            }
        }
        Ok(out)
    }

    fn evaluate(&self, batches: &[Batch], positions: &[usize]) -> Result<Metrics> {
        Ok(Metrics::compute(self.kind(), &self.data.graphs, positions, &self.predict(batches)?))
    }

    /// One epoch of training (epoch index `epoch`, 0-based); returns the mean
    /// loss per structure and the edges processed.
    fn train_epoch(&mut self, epoch: usize) -> Result<(f64, usize)> {
        self.optimizer.settings.lr = self.config.lr_at(epoch);
        let order = epoch_order(&self.data.split.train, self.config.seed, epoch);
        let kind = self.kind();
        let (mut total, mut edges) = (0.0, 0);
        for chunk in order.chunks(self.config.batch_size) {
            let batch = Batch::new(kind, &self.data.graphs, chunk);
            let loss = self.train_step(&batch)?;
            if !loss.is_finite() {
                return Err(anyhow!(
                    "training diverged in epoch {}: the batch loss is {loss}; lower the learning rate",
                    epoch + 1
                ));
            }
            total += loss * chunk.len() as f64;
            edges += batch.num_edges();
        }
        Ok((total / order.len() as f64, edges))
    }

    fn save(&mut self) -> Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        self.fetch_from_device()?;
        let Some(dir) = &self.dir else { return Ok(()) };
        let ck = Checkpoint {
            format_version: checkpoint::FORMAT_VERSION,
            model: self.model.arch().config.clone(),
            training: self.config.clone(),
            num_params: self.num_params(),
            data_fingerprint: self.fingerprint.clone(),
            data: self.data_spec.clone(),
            state: self.state.clone(),
        };
        let tensors = Tensors {
            params: self.model.params.flat.as_vec(),
            best_params: self.best_params.clone(),
            adam_m: self.optimizer.m.clone(),
            adam_v: self.optimizer.v.clone(),
        };
        checkpoint::save(dir, &ck, &tensors)
    }

    fn outcome(&self, stop: StopReason) -> TrainOutcome {
        TrainOutcome {
            stop,
            epochs_run: self.state.epochs_done,
            best_epoch: self.state.best_epoch,
            best_val_loss: self.state.best_val_loss,
            result: self.state.result.clone(),
            history: self.state.history.clone(),
            wall_seconds: self.state.elapsed_seconds,
            num_params: self.num_params(),
            checkpoint: self.dir.clone(),
        }
    }

    /// Trains until `epochs`, early stopping, or `on_epoch` returning [`Control::Stop`];
    /// then (unless stopped by the callback) restores the best parameters and
    /// evaluates them on the validation and test parts.
    pub fn run(&mut self, mut on_epoch: impl FnMut(&EpochReport) -> Control) -> Result<TrainOutcome> {
        let session = Instant::now();
        let elapsed_before = self.state.elapsed_seconds;
        let stop = loop {
            if let Some(stop) = self.state.stop {
                break stop;
            }
            if self.state.epochs_done >= self.config.epochs {
                break StopReason::MaxEpochs;
            }
            if self.state.epochs_without_improvement >= self.config.patience {
                break StopReason::EarlyStopping;
            }
            let epoch = self.state.epochs_done;
            let start = Instant::now();
            let lr = self.config.lr_at(epoch);
            let (train_loss, train_edges) = self.train_epoch(epoch)?;
            let val = self.evaluate(&self.val_batches, &self.data.split.val)?;
            if self.state.best_val_loss.is_none_or(|best| val.loss < best) {
                self.state.best_val_loss = Some(val.loss);
                self.state.best_epoch = Some(epoch + 1);
                self.state.epochs_without_improvement = 0;
                match self.model.resident() {
                    Some(resident) => resident.keep_best()?,
                    None => self.best_params = self.model.params.flat.as_vec(),
                }
            } else {
                self.state.epochs_without_improvement += 1;
            }
            let seconds = start.elapsed().as_secs_f64();
            self.state.epochs_done = epoch + 1;
            self.state.optimizer_step = self.optimizer.step;
            self.state.elapsed_seconds = elapsed_before + session.elapsed().as_secs_f64();
            self.state.history.push(EpochRecord {
                epoch: epoch + 1,
                lr,
                train_loss,
                val_loss: val.loss,
                val_eps_poly_mae: val.overall.eps_poly_mae,
                val_anisotropy_mae: val.overall.anisotropy_mae,
                val_unphysical: val.overall.unphysical,
                seconds,
            });
            self.save()?;
            let report = EpochReport {
                epoch: epoch + 1,
                max_epochs: self.config.epochs,
                lr,
                train_loss,
                val,
                best_epoch: self.state.best_epoch,
                best_val_loss: self.state.best_val_loss,
                epochs_without_improvement: self.state.epochs_without_improvement,
                seconds,
                train_edges,
            };
            if on_epoch(&report) == Control::Stop {
                return Ok(self.outcome(StopReason::Interrupted));
            }
        };
        self.finish(stop)?;
        self.state.elapsed_seconds = elapsed_before + session.elapsed().as_secs_f64();
        self.save()?;
        Ok(self.outcome(stop))
    }

    /// Restores the best parameters and evaluates them (once; a finished run keeps its result).
    fn finish(&mut self, stop: StopReason) -> Result<()> {
        match self.model.resident() {
            Some(resident) => {
                resident.restore_best()?;
                self.fetch_from_device()?;
            }
            None => self.model.params.flat.copy_from(&self.best_params),
        }
        if self.state.result.is_none() {
            let val = self.evaluate(&self.val_batches, &self.data.split.val)?;
            let started = std::time::Instant::now();
            let test_predictions = self.predict(&self.test_batches)?;
            let seconds = started.elapsed().as_secs_f64();
            let edges: usize = self.test_batches.iter().map(|b| b.num_edges()).sum();
            let inference_edges_per_s = (seconds > 0.0 && edges > 0).then(|| edges as f64 / seconds);
            let test =
                Metrics::compute(self.kind(), &self.data.graphs, &self.data.split.test, &test_predictions);
            self.state.result = Some(FinalMetrics { val, test, test_predictions, inference_edges_per_s });
        }
        self.state.stop = Some(stop);
        Ok(())
    }
}

/// The model a run with `config` on `data` trains (and checkpoints): `model`
/// with the isotropic offset of centred targets.
pub fn model_for_run(model: &ModelConfig, config: &TrainConfig, data: &TrainData) -> ModelConfig {
    let mut model = model.clone();
    if config.center_targets {
        model.eps_offset = data.mean_eps_poly();
    }
    model
}

/// Trains a model in the precision `model.dtype` asks for, computing on
/// `device`, checkpointing into `dir` when given.
pub fn train(
    model: &ModelConfig,
    config: &TrainConfig,
    data: &TrainData,
    device: ComputeDevice,
    dir: Option<&Path>,
    data_spec: Option<serde_json::Value>,
    on_epoch: impl FnMut(&EpochReport) -> Control,
) -> Result<TrainOutcome> {
    fn go<E: ModelFloat>(
        model: &ModelConfig,
        config: &TrainConfig,
        data: &TrainData,
        device: ComputeDevice,
        dir: Option<&Path>,
        data_spec: Option<serde_json::Value>,
        on_epoch: impl FnMut(&EpochReport) -> Control,
    ) -> Result<TrainOutcome>
    where
        Cpu: Device<E>,
        StandardNormal: Distribution<E>,
    {
        let mut trainer = Trainer::<E>::new(model, config, data)?;
        trainer.use_device(device)?;
        if let Some(dir) = dir {
            trainer = trainer.checkpoint_to(dir, data_spec);
        }
        trainer.run(on_epoch)
    }
    match model.dtype {
        Precision::F32 => go::<f32>(model, config, data, device, dir, data_spec, on_epoch),
        Precision::F64 => go::<f64>(model, config, data, device, dir, data_spec, on_epoch),
    }
}

/// Continues the run checkpointed in `dir`, in its own precision, on `device`.
pub fn resume(
    dir: &Path,
    data: &TrainData,
    device: ComputeDevice,
    on_epoch: impl FnMut(&EpochReport) -> Control,
) -> Result<TrainOutcome> {
    fn go<E: ModelFloat>(
        dir: &Path,
        data: &TrainData,
        device: ComputeDevice,
        on_epoch: impl FnMut(&EpochReport) -> Control,
    ) -> Result<TrainOutcome>
    where
        Cpu: Device<E>,
        StandardNormal: Distribution<E>,
    {
        let mut trainer = Trainer::<E>::resume(dir, data)?;
        trainer.use_device(device)?;
        trainer.run(on_epoch)
    }
    match checkpoint::precision(dir)? {
        Precision::F32 => go::<f32>(dir, data, device, on_epoch),
        Precision::F64 => go::<f64>(dir, data, device, on_epoch),
    }
}
