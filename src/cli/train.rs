//! `study train`: train one AnisoNet and print a JSON summary.
//!
//! Options come from flags, from a YAML file (`--config FILE`, keys are the
//! flag names: `em-dim: 16`), or both (flags win); what neither sets takes
//! the published optimum.
//!
//! Accuracy check against the Python reference (which reaches, on the test
//! split, ε_poly MAE 0.873, a_r MAE 0.167 and 4 of 201 unphysical in 45 min
//! on 2 cores), from the repository root:
//!
//! ```text
//! cargo build --release
//! target/release/study train --dataset ../shared/data/mp_dielectric_2k.extxyz \
//!     --split-file ../shared/data/mp_dielectric_2k.split.json --em-dim 16 --layers 2 --lmax 2 \
//!     --mul 16 --lr 0.003 --weight-decay 0.03 --batch-size 12 --epochs 100 --dtype f32 \
//!     --out results/accuracy_equivariant          # and --model scalar --out results/accuracy_scalar
//! ```
//!
//! The summary's `test` block holds the figures to compare. Add
//! `--max-grad-norm none` to train exactly as the reference does (same
//! losses step for step: `tests/train_reference.rs`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{load_graphs, CacheOptions, GraphOptions, LoadOptions, Source, Split, SplitRatios};
use crate::error::InputError;
use crate::model::{ComputeDevice, ModelConfig, ModelError, ModelKind, OutputMode, Precision};
use crate::train::{self, checkpoint, Control, EpochReport, TrainConfig, TrainData, TrainOutcome};

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    match s {
        "equivariant" => Ok(ModelKind::Equivariant),
        "scalar" => Ok(ModelKind::Scalar),
        _ => Err(format!("'{s}' is not a model kind; use equivariant or scalar")),
    }
}

fn parse_dtype(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "f64" => Ok(Precision::F64),
        _ => Err(format!("'{s}' is not a precision; use f32 or f64")),
    }
}

fn parse_output(s: &str) -> Result<OutputMode, String> {
    match s {
        "raw" => Ok(OutputMode::Raw),
        "physical" => Ok(OutputMode::Physical),
        _ => Err(format!("'{s}' is not an output mode; use raw or physical")),
    }
}

/// `--max-grad-norm`: a positive number, or `none` for no limit (the reference).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradNormLimit(pub Option<f64>);

impl std::str::FromStr for GradNormLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(GradNormLimit(None));
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(GradNormLimit(Some(v))),
            _ => Err(format!("'{s}' is not a gradient-norm limit; use a positive number or none")),
        }
    }
}

impl<'de> Deserialize<'de> for GradNormLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => v.to_string().parse(),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Train one AnisoNet (defaults: the published optimum).
#[derive(Debug, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainArgs {
    /// YAML file of options; keys are the flag names (`em-dim: 16`). Flags override it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Readout: equivariant (irreps 0e+2e) or scalar (six Cartesian components) [default: equivariant].
    #[arg(long, value_parser = parse_kind)]
    pub model: Option<ModelKind>,
    /// Width of the element embedding [default: 48].
    #[arg(long)]
    pub em_dim: Option<usize>,
    /// Convolution + gate layers [default: 2].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Largest spherical-harmonic degree, 0..=4 [default: 3].
    #[arg(long)]
    pub lmax: Option<usize>,
    /// Multiplicity of every hidden irrep [default: 48].
    #[arg(long)]
    pub mul: Option<usize>,
    /// Gaussian radial basis functions [default: 15].
    #[arg(long)]
    pub num_basis: Option<usize>,
    /// Hidden width of the radial MLP [default: 100].
    #[arg(long)]
    pub radial_neurons: Option<usize>,
    /// Neighbour cutoff, Å [default: 5].
    #[arg(long)]
    pub cutoff: Option<f64>,
    /// Divisor (squared) of the neighbour sum [default: mean edges per atom of the training structures].
    #[arg(long)]
    pub num_neighbors: Option<f64>,
    /// Structures per optimiser step [default: 12].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Largest number of epochs [default: 120].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Initial learning rate [default: 0.003].
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay [default: 0.03].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate factor per epoch [default: 0.98].
    #[arg(long)]
    pub lr_decay: Option<f64>,
    /// Early-stopping patience in epochs [default: 30].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Seed of the initial parameters and the shuffles [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Learn ε − ε̄·I (ε̄: mean training ε_poly); false trains as the reference [default: false].
    #[arg(long, value_name = "BOOL")]
    pub center_targets: Option<bool>,
    /// Largest global L2 norm of a batch's gradient, or none (the reference) [default: 10].
    #[arg(long, value_name = "NORM|none")]
    pub max_grad_norm: Option<GradNormLimit>,
    /// Precision: f32 or f64 [default: f32].
    #[arg(long, value_parser = parse_dtype)]
    pub dtype: Option<Precision>,
    /// raw (the paper) or physical (eigenvalues forced above 1) [default: raw].
    #[arg(long, value_parser = parse_output)]
    pub output: Option<OutputMode>,
    /// Data file (extxyz or pymatgen JSON with tensors), or `synthetic` [default: synthetic].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Structures of the synthetic set [default: 1000].
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the synthetic set and of the random 80/10/10 split [default: 0].
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Fixed split: JSON {"train", "val", "test"} of 0-based frame numbers.
    #[arg(long)]
    pub split_file: Option<PathBuf>,
    /// Folder of the graph cache [default: results/.cache].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Build the graphs without the cache.
    #[arg(long)]
    #[serde(default)]
    pub no_cache: bool,
    /// Checkpoint folder [default: results/train].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run checkpointed in --out with its recorded options.
    #[arg(long)]
    #[serde(default)]
    pub resume: bool,
    /// Where the network computes: cpu, cuda:N (the GPU engine on the N-th
    /// visible GPU), gpu-emulated (its kernels on the CPU, for checks) or
    /// tensor-cuda:N (dfdx's network, a build with `--features cuda`)
    /// [default: cpu]. Allowed with --resume.
    #[arg(long, value_parser = str::parse::<ComputeDevice>)]
    #[serde(skip)]
    pub device: Option<ComputeDevice>,
}

/// How the data was built: recorded in the checkpoint so `--resume` rebuilds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DataSpec {
    dataset: String,
    n: usize,
    data_seed: u64,
    split_file: Option<PathBuf>,
    cutoff: f64,
    cache_dir: Option<PathBuf>,
}

const KEYS_HINT: &str = "keys are the flag names without the leading dashes, e.g. `em-dim: 16`, `dtype: f64`";

impl TrainArgs {
    /// Fills what the flags left unset from the YAML file.
    fn merge_file(mut self) -> Result<TrainArgs> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let location = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InputError::new(&location, format!("cannot read the options file: {e}")))?;
        let file: TrainArgs = if text.trim().is_empty() {
            TrainArgs::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| {
                let at = e.location().map_or(location.clone(), |l| format!("{location}:{}", l.line()));
                InputError::new(at, e.to_string()).with_hint(KEYS_HINT)
            })?
        };
        macro_rules! take {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        take!(
            model,
            em_dim,
            layers,
            lmax,
            mul,
            num_basis,
            radial_neurons,
            cutoff,
            num_neighbors,
            batch_size,
            epochs,
            lr,
            weight_decay,
            lr_decay,
            patience,
            seed,
            center_targets,
            max_grad_norm,
            dtype,
            output,
            dataset,
            n,
            data_seed,
            split_file,
            cache_dir,
            out
        );
        self.no_cache |= file.no_cache;
        self.resume |= file.resume;
        Ok(self)
    }

    /// Options that a resumed run takes from its checkpoint instead.
    fn recorded_options_given(&self) -> Vec<&'static str> {
        let set = [
            ("--model", self.model.is_some()),
            ("--em-dim", self.em_dim.is_some()),
            ("--layers", self.layers.is_some()),
            ("--lmax", self.lmax.is_some()),
            ("--mul", self.mul.is_some()),
            ("--num-basis", self.num_basis.is_some()),
            ("--radial-neurons", self.radial_neurons.is_some()),
            ("--cutoff", self.cutoff.is_some()),
            ("--num-neighbors", self.num_neighbors.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--epochs", self.epochs.is_some()),
            ("--lr", self.lr.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--lr-decay", self.lr_decay.is_some()),
            ("--patience", self.patience.is_some()),
            ("--seed", self.seed.is_some()),
            ("--center-targets", self.center_targets.is_some()),
            ("--max-grad-norm", self.max_grad_norm.is_some()),
            ("--dtype", self.dtype.is_some()),
            ("--output", self.output.is_some()),
            ("--dataset", self.dataset.is_some()),
            ("--n", self.n.is_some()),
            ("--data-seed", self.data_seed.is_some()),
            ("--split-file", self.split_file.is_some()),
        ];
        set.into_iter().filter(|(_, given)| *given).map(|(name, _)| name).collect()
    }

    fn model_config(&self) -> ModelConfig {
        let d = ModelConfig::default();
        ModelConfig {
            kind: self.model.unwrap_or(d.kind),
            em_dim: self.em_dim.unwrap_or(d.em_dim),
            layers: self.layers.unwrap_or(d.layers),
            lmax: self.lmax.unwrap_or(d.lmax),
            mul: self.mul.unwrap_or(d.mul),
            num_basis: self.num_basis.unwrap_or(d.num_basis),
            radial_neurons: self.radial_neurons.unwrap_or(d.radial_neurons),
            cutoff: self.cutoff.unwrap_or(d.cutoff),
            dtype: self.dtype.unwrap_or(d.dtype),
            output: self.output.unwrap_or(d.output),
            ..d
        }
    }

    fn train_config(&self) -> TrainConfig {
        let d = TrainConfig::default();
        TrainConfig {
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            epochs: self.epochs.unwrap_or(d.epochs),
            lr: self.lr.unwrap_or(d.lr),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            lr_decay: self.lr_decay.unwrap_or(d.lr_decay),
            patience: self.patience.unwrap_or(d.patience),
            seed: self.seed.unwrap_or(d.seed),
            center_targets: self.center_targets.unwrap_or(d.center_targets),
            max_grad_norm: self.max_grad_norm.map_or(d.max_grad_norm, |l| l.0),
        }
    }

    fn data_spec(&self, cutoff: f64) -> DataSpec {
        DataSpec {
            dataset: self.dataset.clone().unwrap_or_else(|| "synthetic".into()),
            n: self.n.unwrap_or(1000),
            data_seed: self.data_seed.unwrap_or(0),
            split_file: self.split_file.clone(),
            cutoff,
            cache_dir: if self.no_cache {
                None
            } else {
                Some(self.cache_dir.clone().unwrap_or_else(|| PathBuf::from("results/.cache")))
            },
        }
    }
}

/// The flag a model-configuration error is about.
fn model_error(e: ModelError) -> anyhow::Error {
    let (flag, hint) = match &e {
        ModelError::EquivariantNeedsLmax1 => ("--lmax", "use --lmax 1 or more, or --model scalar"),
        ModelError::LmaxOutOfRange(_) => ("--lmax", "use a value in 0..=4"),
        _ => ("model options", ""),
    };
    InputError::new(flag, e.to_string()).with_hint(hint).into()
}

fn load_data(spec: &DataSpec) -> Result<TrainData> {
    if spec.dataset == "synthetic" && spec.n == 0 {
        return Err(InputError::new("--n", "must be at least 1").into());
    }
    let source = Source::parse(&spec.dataset, spec.n, spec.data_seed);
    let graph_options = GraphOptions { cutoff: spec.cutoff, ..GraphOptions::default() };
    let cache = CacheOptions { dir: spec.cache_dir.clone() };
    let (set, _) = load_graphs(&source, &LoadOptions::default(), &graph_options, &cache)?;
    let split = match &spec.split_file {
        Some(path) => Split::from_json_file(path, &set.frames(), set.report.frames_read)?,
        None => Split::random(set.graphs.len(), &SplitRatios::default(), spec.data_seed)?,
    };
    let [tr, va, te] = split.sizes();
    eprintln!("data: {} ({} structures; train {tr}, val {va}, test {te})", set.source, set.graphs.len());
    Ok(TrainData { graphs: set.graphs, split })
}

/// Progress: a bar on a terminal, one log line per epoch otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(max_epochs: usize, done: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(max_epochs as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {pos}/{len} [{bar:30}] {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_position(done as u64);
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress { bar: Some(bar) }
    }

    fn epoch(&self, r: &EpochReport) {
        let mae = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        let line = format!(
            "train {:.4}  val {:.4}  ε_poly MAE {}  a_r MAE {}  unphysical {}  lr {:.2e}  {:.1} s",
            r.train_loss,
            r.val.loss,
            mae(r.val.overall.eps_poly_mae),
            mae(r.val.overall.anisotropy_mae),
            r.val.overall.unphysical,
            r.lr,
            r.seconds
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.epoch as u64);
                bar.set_message(line);
            }
            None => eprintln!("epoch {}/{}  {line}", r.epoch, r.max_epochs),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    status: train::StopReason,
    epochs_run: usize,
    best_epoch: Option<usize>,
    best_val_loss: Option<f64>,
    val: Option<&'a train::Metrics>,
    test: Option<&'a train::Metrics>,
    wall_seconds: f64,
    num_params: usize,
    checkpoint: Option<&'a Path>,
    model: &'a ModelConfig,
    training: &'a TrainConfig,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let args = args.merge_file()?;
    crate::model::alloc::tune_allocator();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results/train"));
    let out_flag = || InputError::new(format!("--out {}", out.display()), "");
    let device = args.device.unwrap_or_default();
    let (outcome, model, training) = if args.resume {
        let given = args.recorded_options_given();
        if !given.is_empty() {
            return Err(InputError::new(
                given.join(", "),
                "--resume continues the run with the options recorded in its checkpoint",
            )
            .with_hint("drop these options, or train a new run into another --out folder")
            .into());
        }
        if !checkpoint::exists(&out) {
            return Err(InputError { problem: "holds no checkpoint to resume".into(), ..out_flag() }
                .with_hint("give the --out folder of an earlier `study train`")
                .into());
        }
        let ck = checkpoint::load_checkpoint(&out)?;
        let spec: DataSpec =
            ck.data.clone().and_then(|v| serde_json::from_value(v).ok()).ok_or_else(|| {
                InputError {
                    problem: "the checkpoint does not record how its data was built".into(),
                    ..out_flag()
                }
                .with_hint("only runs started by `study train` can be resumed from the command line")
            })?;
        let data = load_data(&spec)?;
        let progress = Progress::new(ck.training.epochs, ck.state.epochs_done);
        let outcome = train::resume(&out, &data, device, |r| {
            progress.epoch(r);
            Control::Continue
        })?;
        progress.finish();
        (outcome, ck.model, ck.training)
    } else {
        let mut model = args.model_config();
        model.validate().map_err(model_error)?;
        let training = args.train_config();
        training.validate().map_err(|p| {
            InputError::new(format!("--{}", p.field.replace('_', "-")), p.problem)
                .with_hint("the published optimum: --lr 0.003 --weight-decay 0.03 --lr-decay 0.98 --batch-size 12 --patience 30")
        })?;
        if checkpoint::exists(&out) {
            return Err(InputError { problem: "already holds a checkpoint".into(), ..out_flag() }
                .with_hint("add --resume to continue it, or choose another --out folder")
                .into());
        }
        let spec = args.data_spec(model.cutoff);
        let data = load_data(&spec)?;
        model.num_neighbors = args.num_neighbors.unwrap_or_else(|| data.mean_neighbors());
        model.validate().map_err(model_error)?;
        let progress = Progress::new(training.epochs, 0);
        let outcome = train::train(
            &model,
            &training,
            &data,
            device,
            Some(&out),
            Some(serde_json::to_value(&spec)?),
            |r| {
                progress.epoch(r);
                Control::Continue
            },
        )?;
        progress.finish();
        (outcome, model, training)
    };
    // The model as trained: num_neighbors and eps_offset filled from the data.
    let model = checkpoint::load_checkpoint(&out).map(|ck| ck.model).unwrap_or(model);
    print_summary(&outcome, &model, &training)
}

fn print_summary(outcome: &TrainOutcome, model: &ModelConfig, training: &TrainConfig) -> Result<()> {
    let summary = Summary {
        status: outcome.stop,
        epochs_run: outcome.epochs_run,
        best_epoch: outcome.best_epoch,
        best_val_loss: outcome.best_val_loss,
        val: outcome.result.as_ref().map(|r| &r.val),
        test: outcome.result.as_ref().map(|r| &r.test),
        wall_seconds: outcome.wall_seconds,
        num_params: outcome.num_params,
        checkpoint: outcome.checkpoint.as_deref(),
        model,
        training,
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
