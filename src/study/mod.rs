//! Study files: the YAML a user writes to describe a search or a sweep.
//!
//! [`load`] reads a file, applies `--set key.path=value` overrides, checks
//! it and converts it into a [`StudyPlan`]: the ask/tell configuration for
//! [`crate::hpo::Study`], the objective, the device pool and the scheduling
//! settings for [`crate::exec`]. Every problem is an
//! [`InputError`](crate::error::InputError) naming the file, line and column
//! (or the `--set` flag), what is wrong and a hint. The keys are documented
//! in `docs/study-file.md`.

pub(crate) mod definition;
pub mod external;
pub mod file;
pub(crate) mod import;
pub(crate) mod load;
pub(crate) mod run;
mod stored;
pub mod trial;
pub(crate) mod validate;

use std::path::Path;

pub use file::StudyFile;
pub use load::{load_file, parse_str, LoadedFile, Locator};
pub use run::{preview_trial, run_plan, run_plan_observed, study_dir, Observer, Quiet};
pub use stored::{open_study, study_folder};
pub use validate::{validate, Hyperparameters, Objective, StudyPlan, HYPERPARAMETERS};

use crate::error::InputError;

/// Reads, overrides and validates the study file at `path`.
pub fn load(path: &Path, overrides: &[String]) -> Result<StudyPlan, InputError> {
    validate(load_file(path, overrides)?)
}

/// Parses and validates study-file text (`label` names it in errors);
/// relative paths resolve against `base_dir`.
pub fn load_str(
    source: &str,
    label: &str,
    base_dir: &Path,
    overrides: &[String],
) -> Result<StudyPlan, InputError> {
    let (file, locator) = parse_str(source, label, overrides)?;
    validate(LoadedFile { file, base_dir: base_dir.to_path_buf(), locator })
}
