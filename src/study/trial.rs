//! The built-in objective's trial file: what the controller hands to
//! `study trial` for one trial, as versioned JSON in
//! `<results>/<study>/trials/<n>/trial.json`.
//!
//! It holds everything the trial needs and nothing it must look up: the
//! model and training configuration with the trial's parameters already
//! applied, the trial's seed, the objective metric and how to build the data
//! (through the graph cache shared by all trials of the results folder).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::file::{DatasetSpec, Metric};
use super::validate::StudyPlan;
use crate::data::{
    load_graphs, CacheOptions, CleaningOptions, CleaningReport, GraphOptions, LoadOptions, Source, Split,
    SplitRatios,
};
use crate::error::InputError;
use crate::hpo::Params;
use crate::model::ModelConfig;
use crate::train::{TrainConfig, TrainData};

/// Bump when a field changes meaning; `study trial` refuses other versions.
pub const TRIAL_FILE_VERSION: u32 = 1;
/// Name of the trial file inside a trial's folder.
pub const TRIAL_FILE: &str = "trial.json";
/// Folder of a trial's training checkpoint inside its folder.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// One trial of the built-in objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialFile {
    pub version: u32,
    pub study: String,
    pub trial: u64,
    /// The trial's own seed (initialisation and shuffles, unless fixed).
    pub seed: u64,
    /// The validation metric reported per epoch and as the objective.
    pub metric: Metric,
    /// `num_neighbors` is filled from the training graphs when `None`.
    pub model: ModelConfig,
    pub num_neighbors: Option<f64>,
    pub training: TrainConfig,
    pub data: DataSource,
}

/// How to build a trial's graphs and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// Absolute path of the data file, or `None` for the synthetic set.
    pub path: Option<PathBuf>,
    pub synthetic_size: usize,
    pub synthetic_seed: u64,
    pub dielectric_key: String,
    pub min_diagonal: f64,
    pub max_eps_poly: f64,
    pub drop_duplicates: bool,
    pub cutoff: f64,
    /// Fixed split (frame numbers), instead of the random one.
    pub split_file: Option<PathBuf>,
    /// Random split: train, val, test ratios and the shuffle's seed.
    pub split_ratios: [f64; 3],
    pub split_seed: u64,
    /// Graph cache folder shared by the study's trials.
    pub cache_dir: Option<PathBuf>,
}

impl DataSource {
    /// The data of `plan` with neighbour cutoff `cutoff` Å, cached in `cache_dir`.
    pub fn of_plan(plan: &StudyPlan, cutoff: f64, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let spec: DatasetSpec =
            plan.file.dataset.clone().context("the built-in objective needs a `dataset`")?;
        let absolute = |p: &Path| std::path::absolute(plan.base_dir.join(p));
        let split = spec.split.clone().unwrap_or_default();
        Ok(DataSource {
            path: spec.path.as_deref().map(absolute).transpose()?,
            synthetic_size: spec.synthetic.as_ref().map_or(0, |s| s.size),
            synthetic_seed: spec.synthetic.as_ref().map_or(0, |s| s.seed),
            dielectric_key: spec.dielectric_key.clone(),
            min_diagonal: spec.cleaning.min_diagonal,
            max_eps_poly: spec.cleaning.max_eps_poly,
            drop_duplicates: spec.cleaning.drop_duplicates,
            cutoff,
            split_file: spec.split_file.as_deref().map(absolute).transpose()?,
            split_ratios: [split.train, split.valid, split.test],
            split_seed: split.seed.unwrap_or(plan.config.seed),
            cache_dir,
        })
    }

    fn source(&self) -> Source {
        match &self.path {
            Some(path) => Source::File(path.clone()),
            None => Source::Synthetic { n: self.synthetic_size, seed: self.synthetic_seed },
        }
    }

    /// Reads the data through the graph cache (built on first use) and
    /// splits it. Returns the data and what it is (displayed: one line).
    pub fn load(&self) -> anyhow::Result<(TrainData, DataSummary)> {
        let load_options = LoadOptions {
            dielectric_key: self.dielectric_key.clone(),
            cleaning: CleaningOptions {
                min_diagonal: self.min_diagonal,
                max_eps_poly: self.max_eps_poly,
                drop_duplicates: self.drop_duplicates,
                ..CleaningOptions::default()
            },
            ..LoadOptions::default()
        };
        let graph_options = GraphOptions { cutoff: self.cutoff, ..GraphOptions::default() };
        let cache = CacheOptions { dir: self.cache_dir.clone() };
        let (set, _) = load_graphs(&self.source(), &load_options, &graph_options, &cache)?;
        let split = match &self.split_file {
            Some(path) => Split::from_json_file(path, &set.frames(), set.report.frames_read)?,
            None => {
                let [train, val, test] = self.split_ratios;
                Split::random(set.graphs.len(), &SplitRatios { train, val, test }, self.split_seed)?
            }
        };
        let summary = DataSummary {
            source: set.source.clone(),
            structures: set.graphs.len(),
            cleaning: set.report.clone(),
            split: split.sizes(),
            split_file: self.split_file.clone(),
        };
        Ok((TrainData { graphs: set.graphs, split }, summary))
    }
}

/// What a study's data is: source, cleaning counts and split sizes. The
/// controller stores it as the study user attribute `dataset` (for reports).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSummary {
    pub source: String,
    /// Structures after cleaning.
    pub structures: usize,
    pub cleaning: CleaningReport,
    /// Structures in train, val and test.
    pub split: [usize; 3],
    pub split_file: Option<PathBuf>,
}

impl std::fmt::Display for DataSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [tr, va, te] = self.split;
        write!(f, "{} ({} structures; train {tr}, val {va}, test {te})", self.source, self.structures)
    }
}

impl TrialFile {
    /// The trial file of trial `number` with `params` (over `base` parameters
    /// from another study) and `seed`. An error says which parameter does
    /// not fit.
    pub fn new(
        plan: &StudyPlan,
        metric: Metric,
        params: &Params,
        number: u64,
        seed: u64,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let h = plan.hyperparameters.with_params(params).map_err(anyhow::Error::msg)?;
        Ok(TrialFile {
            version: TRIAL_FILE_VERSION,
            study: plan.name.clone(),
            trial: number,
            seed,
            metric,
            model: h.model_config(),
            num_neighbors: h.model.num_neighbors,
            training: h.train_config(seed),
            data: DataSource::of_plan(plan, h.model.cutoff, cache_dir)?,
        })
    }

    /// Writes the file atomically into `dir` (created when missing).
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(TRIAL_FILE);
        let tmp = dir.join(format!(".{TRIAL_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Reads a trial file; a missing, malformed or newer file is an input error.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(&location, format!("cannot read the trial file: {e}")))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| InputError::new(&location, format!("not JSON: {e}")))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(TRIAL_FILE_VERSION as u64) {
            return Err(InputError::new(
                &location,
                format!("trial file version {version:?}, this build reads version {TRIAL_FILE_VERSION}"),
            )
            .with_hint("run the study with the build that wrote it, or delete the trial folder")
            .into());
        }
        serde_json::from_value(value)
            .map_err(|e| InputError::new(&location, format!("malformed trial file: {e}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpo::ParamValue;
    use crate::model::{ModelKind, Precision};

    const PLAN: &str = "
name: t
seed: 5
dataset: {synthetic: {size: 20, seed: 2}, split: {train: 0.6, valid: 0.2, test: 0.2}}
model: {kind: scalar, lmax: 0, dtype: f64}
training: {epochs: 2}
sweep:
  values:
    lmax: [0, 2]
";

    fn plan() -> StudyPlan {
        crate::study::load_str(PLAN, "t.yaml", Path::new("/data"), &[]).unwrap()
    }

    #[test]
    fn applies_the_trial_parameters_and_seeds() {
        let params: Params = [("lmax".to_owned(), ParamValue::Int(2))].into();
        let file = TrialFile::new(&plan(), Metric::ValEpsPolyMae, &params, 3, 99, None).unwrap();
        assert_eq!(
            (file.model.kind, file.model.lmax, file.model.dtype),
            (ModelKind::Scalar, 2, Precision::F64)
        );
        assert_eq!((file.training.epochs, file.training.seed), (2, 99), "the trial seed when none is fixed");
        assert_eq!(file.num_neighbors, None, "taken from the training graphs");
        assert_eq!(file.data.split_ratios, [0.6, 0.2, 0.2]);
        assert_eq!(file.data.split_seed, 5, "the study seed");
        let fixed: Params = [("seed".to_owned(), ParamValue::Int(1))].into();
        assert_eq!(TrialFile::new(&plan(), Metric::ValLoss, &fixed, 3, 99, None).unwrap().training.seed, 1);
        let bad: Params = [("lmax".to_owned(), ParamValue::Int(9))].into();
        let err = TrialFile::new(&plan(), Metric::ValLoss, &bad, 3, 99, None).unwrap_err();
        assert!(err.to_string().contains("lmax"), "{err}");
    }

    #[test]
    fn round_trips_and_loads_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let file = TrialFile::new(&plan(), Metric::ValLoss, &Params::new(), 0, 1, None).unwrap();
        let path = file.write(dir.path()).unwrap();
        assert_eq!(TrialFile::read(&path).unwrap(), file);
        let (data, about) = file.data.load().unwrap();
        assert_eq!(data.split.sizes(), [12, 4, 4]);
        assert!(about.to_string().contains("synthetic"));
        assert_eq!((about.structures, about.cleaning.kept, about.split), (20, 20, [12, 4, 4]));
        assert!(data.mean_neighbors() > 1.0);
    }
}
