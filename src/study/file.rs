//! The study file's schema: what a user writes in YAML.
//!
//! Every struct rejects unknown keys, so a typo is an error instead of a
//! silently ignored setting. Defaults are the published AnisoNet optimum
//! (em 48, 2 layers, l_max 3, mul 48, 15 basis functions, 100 radial
//! neurons, lr 0.003, weight decay 0.03, batch 12, 120 epochs, decay 0.98,
//! patience 30, float32). The reference of every key is `docs/study-file.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::hpo::{Direction, ParamValue};
pub use crate::model::{ModelKind, OutputMode, Precision};

/// A whole study file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Names the study and its results folder (`<results>/<name>/`).
    pub name: String,
    /// Seeds every draw of the study together with the trial number.
    #[serde(default)]
    pub seed: u64,
    /// The data the built-in objective trains on (unused by a `command` objective).
    #[serde(default)]
    pub dataset: Option<DatasetSpec>,
    /// Fixed model hyperparameters; a searched or swept one overrides its value.
    #[serde(default)]
    pub model: ModelSpec,
    /// Fixed training hyperparameters; a searched or swept one overrides its value.
    #[serde(default)]
    pub training: TrainingSpec,
    /// One objective (a map), or several: a list of metrics, or a command
    /// with `directions`.
    #[serde(default, deserialize_with = "objective_map_or_list", serialize_with = "objective_as_written")]
    pub objective: ObjectiveSpec,
    /// Bounds a trial must meet to count: the best trial is the best
    /// feasible one, and samplers rank infeasible trials last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintSpec>,
    /// What samplers learn from trials that failed for resources (out of
    /// memory, a time limit).
    #[serde(default, skip_serializing_if = "Failures::is_default")]
    pub failures: Failures,
    /// Ordered search phases (e.g. TPE, then a grid around the best trial).
    #[serde(default)]
    pub phases: Vec<PhaseSpec>,
    /// A product of fixed values (an ablation), instead of `phases`.
    #[serde(default)]
    pub sweep: Option<SweepSpec>,
    #[serde(default)]
    pub pruner: PrunerSpec,
    #[serde(default)]
    pub resources: ResourcesSpec,
    #[serde(default)]
    pub mode: Mode,
}

/// Where the structures and tensors come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Generated structures and tensors (for smoke tests), instead of `path`.
    #[serde(default)]
    pub synthetic: Option<SyntheticSpec>,
    /// An extxyz file, relative to the study file's folder.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Per-frame key holding the 9 tensor components, row-major.
    #[serde(default = "default_dielectric_key")]
    pub dielectric_key: String,
    #[serde(default)]
    pub cleaning: CleaningSpec,
    /// Random split ratios; default 80:10:10 seeded by the study seed.
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// A JSON file with `train`, `valid`, `test` index lists, instead of `split`.
    #[serde(default)]
    pub split_file: Option<PathBuf>,
}

fn default_dielectric_key() -> String {
    "dielectric".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Number of structures.
    pub size: usize,
    #[serde(default)]
    pub seed: u64,
}

/// The paper's cleaning: repeated entries, unphysical tensors and outliers go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningSpec {
    pub drop_duplicates: bool,
    /// Drop tensors with a diagonal element below this.
    pub min_diagonal: f64,
    /// Drop entries whose ε_poly (trace / 3) exceeds this.
    pub max_eps_poly: f64,
}

impl Default for CleaningSpec {
    fn default() -> Self {
        Self { drop_duplicates: true, min_diagonal: 1.0, max_eps_poly: 15.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitSpec {
    pub train: f64,
    pub valid: f64,
    pub test: f64,
    /// Seed of the shuffle; the study seed when absent.
    pub seed: Option<u64>,
}

impl Default for SplitSpec {
    fn default() -> Self {
        Self { train: 0.8, valid: 0.1, test: 0.1, seed: None }
    }
}

/// Model hyperparameters (AnisoNet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// Embedding width of the one-hot species and mass attributes.
    pub em_dim: u32,
    /// Gate layers (each a convolution then a gate).
    pub layers: u32,
    /// Largest rotation order of hidden features and edge harmonics (0..=4).
    pub lmax: u32,
    /// Multiplicity of every hidden irrep.
    pub mul: u32,
    /// Gaussians of the radial basis on [0, cutoff].
    pub num_basis: u32,
    /// Hidden width of the radial MLP.
    pub radial_neurons: u32,
    /// Neighbour cutoff in Å.
    pub cutoff: f64,
    /// Normalisation of the neighbour sum; the training set's mean when absent.
    pub num_neighbors: Option<f64>,
    pub dtype: Precision,
    pub output: OutputMode,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            kind: ModelKind::Equivariant,
            em_dim: 48,
            layers: 2,
            lmax: 3,
            mul: 48,
            num_basis: 15,
            radial_neurons: 100,
            cutoff: 5.0,
            num_neighbors: None,
            dtype: Precision::F32,
            output: OutputMode::Raw,
        }
    }
}

/// Training hyperparameters (AdamW, exponential decay, early stopping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSpec {
    /// Most epochs.
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub weight_decay: f64,
    /// Learning rate factor per epoch.
    pub lr_decay: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: u32,
    /// Seed of initialisation and shuffling; derived from (study seed, trial
    /// number) when absent, so every trial differs but reruns agree.
    pub seed: Option<u64>,
    /// Learn ε − ε̄·I with ε̄ the training set's mean ε_poly; false trains as the reference.
    pub center_targets: bool,
    /// Largest global L2 norm of a batch's gradient; `null`: no limit (the reference).
    pub max_grad_norm: Option<f64>,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        Self {
            epochs: 120,
            batch_size: 12,
            lr: 0.003,
            weight_decay: 0.03,
            lr_decay: 0.98,
            patience: 30,
            seed: None,
            // The trainer's own defaults, so the two cannot drift apart.
            center_targets: crate::train::config::TrainConfig::default().center_targets,
            max_grad_norm: crate::train::config::TrainConfig::default().max_grad_norm,
        }
    }
}

/// Metrics the built-in objective can optimise (all on the validation split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// MSE on the irreps, the training loss.
    #[default]
    ValLoss,
    /// MAE of ε_poly (trace / 3).
    ValEpsPolyMae,
    /// MAE of the anisotropy ratio (largest / smallest eigenvalue).
    ValAnisotropyMae,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::ValLoss => "val_loss",
            Metric::ValEpsPolyMae => "val_eps_poly_mae",
            Metric::ValAnisotropyMae => "val_anisotropy_mae",
        }
    }
}

/// What a trial optimises: a metric of the built-in trainer, or a command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// Built-in objective metric; `val_loss` when neither this nor `command` is given.
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Any executable with `{param}` placeholders; its last stdout line is
    /// `{"objective": <float>}`.
    #[serde(default)]
    pub command: Option<String>,
    /// Folder the command runs in, relative to the study file; its folder when absent.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub direction: Direction,
    /// A command with several objectives: each one's direction, in the
    /// order of its result line `{"objectives": [a, b]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<Direction>,
    /// The names of a command's several objectives (`objective_0`, … when absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Several objectives written as a list, each a metric the trial records.
    #[serde(skip)]
    pub list: Vec<MetricObjective>,
}

/// One of several objectives: a metric the trial records, and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricObjective {
    pub metric: String,
    #[serde(default)]
    pub direction: Direction,
}

impl ObjectiveSpec {
    /// Whether the study has several objectives.
    pub fn is_multi(&self) -> bool {
        !self.list.is_empty() || !self.directions.is_empty()
    }
}

/// `objective:` as a map (one objective, or a command with several) or as
/// a list of `{metric, direction}`.
fn objective_map_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectiveSpec, D::Error> {
    struct MapOrList;
    impl<'de> Visitor<'de> for MapOrList {
        type Value = ObjectiveSpec;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map (`metric` or `command`, `direction`) or a list of `{metric, direction}`")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ObjectiveSpec, A::Error> {
            ObjectiveSpec::deserialize(de::value::MapAccessDeserializer::new(map))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ObjectiveSpec, A::Error> {
            let list = Vec::<MetricObjective>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(ObjectiveSpec { list, ..Default::default() })
        }
        fn visit_unit<E: de::Error>(self) -> Result<ObjectiveSpec, E> {
            Ok(ObjectiveSpec::default())
        }
    }
    deserializer.deserialize_any(MapOrList)
}

/// Writes `objective:` back in the form it was written in.
fn objective_as_written<S: serde::Serializer>(
    spec: &ObjectiveSpec,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if spec.list.is_empty() {
        spec.serialize(serializer)
    } else {
        spec.list.serialize(serializer)
    }
}

/// One constraint: a bound on a metric of the trial, or a value the trial
/// reports itself (feasible when ≤ 0, as in Optuna).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintSpec {
    /// A metric of the trial: one the built-in trainer records, or one a
    /// command prints on a `{"metrics": {…}}` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Feasible when the metric is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Feasible when the metric is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// A value the command reports in its result line's `constraints` list
    /// (the named entries in order), feasible when ≤ 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What samplers learn from a trial that failed for resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failures {
    /// Nothing: failed trials are left out, as in Optuna.
    #[default]
    Ignore,
    /// It is infeasible, with a violation larger than any measured one, so
    /// the sampler steers away from settings that run out of memory or time.
    Infeasible,
}

impl Failures {
    fn is_default(&self) -> bool {
        *self == Failures::default()
    }
}

/// One search phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub name: String,
    pub sampler: SamplerSpec,
    /// Parameter name → distribution. A grid may leave it out (its values
    /// define it); a grid around the best trial inherits the previous phase's.
    #[serde(default)]
    pub space: BTreeMap<String, ParamSpec>,
    /// Trials the phase runs (required for tpe and random; a cap for grids).
    #[serde(default)]
    pub n_trials: Option<u64>,
}

/// A sampler and its options, tagged by `type`: each kind takes only its
/// own options, so a misplaced or misspelt one is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerSpec {
    Tpe(TpeOptions),
    Gp(GpOptions),
    /// NSGA-II (`hpo::samplers::nsga2`): an evolutionary search, chiefly for several objectives.
    Nsga2(Nsga2Options),
    /// GP or TPE, chosen from the phase's budget and space (`hpo::samplers::auto`).
    Auto {},
    Random {},
    Grid {
        /// Parameter → the values to try.
        values: BTreeMap<String, Vec<ParamValue>>,
        #[serde(default)]
        retry_failed: Option<bool>,
    },
    GridAroundBest {
        /// Parameter → a list of values, `best`, `{factors: [...]}` or
        /// `{count: k, spacing: linear, step: s}` / `{count: k, spacing: log, ratio: r}`.
        axes: BTreeMap<String, serde_yaml::Value>,
        #[serde(default)]
        retry_failed: Option<bool>,
        /// After phases with several objectives: the Pareto trial to centre on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pick: Option<PickSpec>,
    },
}

impl SamplerSpec {
    /// Every `type`.
    pub const KINDS: &'static [&'static str] =
        &["tpe", "gp", "nsga2", "auto", "random", "grid", "grid_around_best"];

    /// The `type` as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerSpec::Tpe(_) => "tpe",
            SamplerSpec::Gp(_) => "gp",
            SamplerSpec::Nsga2(_) => "nsga2",
            SamplerSpec::Auto {} => "auto",
            SamplerSpec::Random {} => "random",
            SamplerSpec::Grid { .. } => "grid",
            SamplerSpec::GridAroundBest { .. } => "grid_around_best",
        }
    }
}

/// The TPE sampler's options; absent ones take [`crate::hpo::samplers::TpeConfig`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpeOptions {
    pub n_startup_trials: Option<usize>,
    pub n_ei_candidates: Option<usize>,
    pub multivariate: Option<bool>,
    /// Running trials count as bad ones (default on; in deterministic mode, a
    /// batch's earlier proposals).
    pub constant_liar: Option<bool>,
    pub prior_weight: Option<f64>,
    pub consider_endpoints: Option<bool>,
    pub consider_magic_clip: Option<bool>,
}

/// The GP sampler's options; absent ones take [`crate::hpo::samplers::GpConfig`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpOptions {
    pub n_startup_trials: Option<usize>,
    pub deterministic_objective: Option<bool>,
    pub n_preliminary_samples: Option<u32>,
    pub n_local_search: Option<usize>,
    pub n_qmc_samples: Option<u32>,
}

/// The NSGA-II sampler's options; absent ones take [`crate::hpo::samplers::Nsga2Config`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nsga2Options {
    pub population_size: Option<usize>,
    pub crossover_prob: Option<f64>,
    pub swapping_prob: Option<f64>,
    pub mutation_prob: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    Float,
    Int,
    Categorical,
}

/// One parameter's distribution, as Optuna's `FloatDistribution`,
/// `IntDistribution` and `CategoricalDistribution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: ParamKind,
    #[serde(default)]
    pub low: Option<f64>,
    #[serde(default)]
    pub high: Option<f64>,
    #[serde(default)]
    pub log: bool,
    #[serde(default)]
    pub step: Option<f64>,
    #[serde(default)]
    pub choices: Option<Vec<ParamValue>>,
    /// Only in trials where each named parameter has this value (or one of
    /// these values): a conditional parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<BTreeMap<String, OneOrMany>>,
}

/// One value, or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    Many(Vec<ParamValue>),
    One(ParamValue),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<ParamValue> {
        match self {
            OneOrMany::Many(values) => values.clone(),
            OneOrMany::One(value) => vec![value.clone()],
        }
    }
}

/// A product of fixed values, e.g. l_max × model kind × seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Parameter → values; every combination runs once.
    pub values: BTreeMap<String, Vec<ParamValue>>,
    /// A finished study (its name in the results folder) whose best trial
    /// gives the hyperparameters the sweep does not set.
    #[serde(default)]
    pub best_of: Option<String>,
    /// With `best_of` a study with several objectives: its Pareto trial to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<PickSpec>,
}

/// Which trial of a Pareto set stands for it where one trial is needed:
/// `knee`, or `{objective: NAME}` (the best of the set in that objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PickSpec {
    Knee,
    Objective(String),
}

/// Early stopping of unpromising trials from their intermediate values,
/// tagged by `type`: each pruner takes only its own options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrunerSpec {
    None {},
    Median(MedianOptions),
    /// Asynchronous successive halving.
    Asha(AshaOptions),
    /// Brackets of successive halving (Optuna's HyperbandPruner).
    Hyperband(HyperbandOptions),
}

impl Default for PrunerSpec {
    fn default() -> Self {
        PrunerSpec::None {}
    }
}

impl PrunerSpec {
    /// Every `type`.
    pub const KINDS: &'static [&'static str] = &["none", "median", "asha", "hyperband"];
}

/// The kinds among `kinds` (the `type`s of a tagged section `T`) that have
/// an option `key`, asked of `T` itself: its options are defined nowhere else.
pub fn option_owners<T: serde::de::DeserializeOwned>(kinds: &[&'static str], key: &str) -> Vec<&'static str> {
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Vec::new();
    }
    kinds
        .iter()
        .copied()
        .filter(|kind| match serde_yaml::from_str::<T>(&format!("{{type: {kind}, {key}: null}}")) {
            Ok(_) => true,
            Err(err) => !err.to_string().contains("unknown field"),
        })
        .collect()
}

/// The median pruner's options; absent ones take [`crate::hpo::MedianPruner`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MedianOptions {
    pub n_startup_trials: Option<usize>,
    pub n_warmup_steps: Option<u64>,
    pub interval_steps: Option<u64>,
    pub n_min_trials: Option<usize>,
}

/// ASHA's options; absent ones take [`crate::hpo::SuccessiveHalvingPruner`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AshaOptions {
    pub min_resource: Option<u64>,
    pub reduction_factor: Option<u64>,
    pub min_early_stopping_rate: Option<u32>,
}

/// Hyperband's options; absent ones take [`crate::hpo::HyperbandPruner`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperbandOptions {
    pub min_resource: Option<u64>,
    /// A number of steps, or `auto`.
    pub max_resource: Option<StepsOrAuto>,
    pub reduction_factor: Option<u64>,
}

/// A number of steps, or the word `auto` (checked by validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepsOrAuto {
    Steps(u64),
    Word(String),
}

/// Where and how trials run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesSpec {
    pub devices: DevicesSpec,
    /// Trials sharing one device; default 1 per GPU, cores / threads on CPU.
    pub trials_per_device: Option<u32>,
    pub cpu_threads_per_trial: u32,
    /// Wall-clock limit of one trial attempt: seconds, or "90s", "30m", "2h".
    pub trial_timeout: Option<TimeoutSpec>,
    /// Extra attempts of a failed trial.
    pub retries: u32,
    /// What runs the trials: this machine, job steps of a Slurm allocation,
    /// a Slurm batch job per trial, or an outside driver through `study
    /// ask` and `study tell`.
    pub executor: ExecutorKind,
    /// What one trial's job step (or job) asks for, with `executor: slurm`
    /// (or `slurm-jobs`).
    pub slurm: Option<crate::exec::slurm::SlurmSpec>,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        Self {
            devices: DevicesSpec::Named("auto".to_owned()),
            trials_per_device: None,
            cpu_threads_per_trial: 1,
            trial_timeout: None,
            retries: 0,
            executor: ExecutorKind::Local,
            slurm: None,
        }
    }
}

/// `resources.executor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// The CPUs and GPUs of the machine `study run` runs on.
    #[default]
    Local,
    /// Job steps on the nodes of the Slurm allocation `study run` runs in.
    Slurm,
    /// A Slurm batch job per trial, submitted and followed by `study run`
    /// wherever `sbatch` works.
    #[serde(rename = "slurm-jobs")]
    SlurmJobs,
    /// Someone else: a workflow engine or script asks for trials
    /// (`study ask`), runs them as its own jobs and tells their results
    /// (`study tell`); `study run` is refused.
    External,
}

impl ExecutorKind {
    pub const NAMES: [&'static str; 4] = ["local", "slurm", "slurm-jobs", "external"];
}

/// `auto`, `cpu` or a list such as `[cuda:0, cuda:1]`, checked by validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DevicesSpec {
    Named(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for DevicesSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DevicesVisitor;
        impl<'de> Visitor<'de> for DevicesVisitor {
            type Value = DevicesSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`auto`, `cpu` or a list of devices such as [cuda:0, cuda:1]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DevicesSpec, E> {
                Ok(DevicesSpec::Named(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DevicesSpec, A::Error> {
                let mut list = Vec::new();
                while let Some(device) = seq.next_element::<String>()? {
                    list.push(device);
                }
                Ok(DevicesSpec::List(list))
            }
        }
        deserializer.deserialize_any(DevicesVisitor)
    }
}

/// Longest accepted trial timeout: a year, in seconds.
const MAX_TIMEOUT_S: f64 = 365.0 * 24.0 * 3600.0;

/// A duration in seconds: a number, or a string with unit s, m or h.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeoutSpec {
    Seconds(f64),
    Text(String),
}

impl TimeoutSpec {
    /// The duration in seconds, or why it cannot be read.
    pub fn seconds(&self) -> Result<f64, String> {
        let value = match self {
            TimeoutSpec::Seconds(s) => *s,
            TimeoutSpec::Text(text) => {
                let text = text.trim();
                let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
                    Some((i, _)) => (&text[..i], &text[i..]),
                    None => (text, "s"),
                };
                let factor = match unit {
                    "s" => 1.0,
                    "m" | "min" => 60.0,
                    "h" => 3600.0,
                    _ => return Err(format!("unknown unit `{unit}` in `{text}`")),
                };
                let number: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration"))?;
                number * factor
            }
        };
        if !(value.is_finite() && value > 0.0) {
            Err(format!("the timeout must be positive, got {value} s"))
        } else if value > MAX_TIMEOUT_S {
            Err(format!("{value} s is longer than a year"))
        } else {
            Ok(value)
        }
    }
}

/// How trials are handed to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A free device gets the next trial at once.
    #[default]
    Async,
    /// Batches as large as the device pool, each sampled after the previous
    /// one finished: parameters and results do not depend on timing. A
    /// study whose sampling and pruning never read finished trials (see
    /// `StudyConfig::depends_on_finish_order`) needs no batches and starts
    /// trials as a free slot asks, with the same results.
    Deterministic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_numbers_and_units() {
        let secs = |t: TimeoutSpec| t.seconds();
        assert_eq!(secs(TimeoutSpec::Seconds(90.0)), Ok(90.0));
        assert_eq!(secs(TimeoutSpec::Text("90s".into())), Ok(90.0));
        assert_eq!(secs(TimeoutSpec::Text("1.5h".into())), Ok(5400.0));
        assert_eq!(secs(TimeoutSpec::Text("30m".into())), Ok(1800.0));
        assert!(secs(TimeoutSpec::Text("2 weeks".into())).is_err());
        assert!(secs(TimeoutSpec::Seconds(0.0)).is_err());
        assert!(secs(TimeoutSpec::Seconds(1e30)).is_err());
    }

    #[test]
    fn defaults_are_the_published_optimum() {
        let m = ModelSpec::default();
        assert_eq!(
            (m.em_dim, m.layers, m.lmax, m.mul, m.num_basis, m.radial_neurons),
            (48, 2, 3, 48, 15, 100)
        );
        assert_eq!(m.dtype, Precision::F32);
        let t = TrainingSpec::default();
        assert_eq!((t.epochs, t.batch_size, t.patience), (120, 12, 30));
        assert_eq!((t.lr, t.weight_decay, t.lr_decay), (0.003, 0.03, 0.98));
    }
}

/// Each key of the study file is defined by its field above and documented
/// once, in the section tables of `docs/study-file.md`: the two must list
/// the same keys.
#[cfg(test)]
mod docs {
    use super::*;

    /// The keys of `value`'s serialised form.
    fn keys<T: Serialize>(value: &T) -> Vec<String> {
        let value = serde_yaml::to_value(value).unwrap();
        let map = value.as_mapping().expect("a mapping");
        let mut keys: Vec<String> = map.keys().map(|k| k.as_str().unwrap().to_owned()).collect();
        keys.sort();
        keys
    }

    /// The first segments of the keys in the table under `heading`.
    fn documented(heading: &str) -> Vec<String> {
        let docs = include_str!("../../docs/study-file.md");
        let section =
            docs.split(&format!("\n{heading}\n")).nth(1).expect(heading).split("\n## ").next().unwrap();
        let table = section.split("\n\n").find(|part| part.contains("|---")).unwrap();
        let mut keys: Vec<String> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| l.split('`').next().unwrap().split('.').next().unwrap().to_owned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn every_key_is_documented_in_its_section() {
        let file: StudyFile = serde_yaml::from_str("name: x").unwrap();
        let dataset: DatasetSpec = serde_yaml::from_str("path: x").unwrap();
        let phase: PhaseSpec = serde_yaml::from_str("{name: x, sampler: {type: random}}").unwrap();
        let sweep: SweepSpec = serde_yaml::from_str("values: {}").unwrap();
        let pruner: Vec<String> = ["type".to_owned()]
            .into_iter()
            .chain(keys(&MedianOptions::default()))
            .chain(keys(&AshaOptions::default()))
            .chain(keys(&HyperbandOptions::default()))
            .collect();
        // Keys left out of the serialised form while they hold their defaults.
        let quiet = ["constraints".to_owned(), "failures".to_owned()];
        let objective = keys(&ObjectiveSpec::default())
            .into_iter()
            .chain(["directions".to_owned(), "names".to_owned()])
            .collect();
        let sections = [
            ("## Top level", keys(&file).into_iter().chain(quiet).collect()),
            ("## `dataset`", keys(&dataset)),
            ("## `objective`", objective),
            ("## `phases`", keys(&phase)),
            ("## `sweep`", keys(&sweep).into_iter().chain(["pick".to_owned()]).collect()),
            ("## `pruner`", pruner),
            ("## `resources`", keys(&ResourcesSpec::default())),
        ];
        for (heading, mut fields) in sections {
            fields.sort();
            fields.dedup();
            assert_eq!(documented(heading), fields, "docs/study-file.md, {heading}");
        }
    }
}
