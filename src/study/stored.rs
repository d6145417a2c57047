//! Finding a study that ran: by its name in a results folder, by its
//! folder, or as the one study a results folder holds.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::InputError;
use crate::storage::{Database, SqliteStore};

/// The study folder's database: `study` names a folder of `results` or is a
/// folder itself; without it, `results` must hold exactly one study.
pub fn open_study(results: &Path, study: Option<&str>) -> Result<SqliteStore> {
    let dir = study_folder(results, study)?;
    Database::open_read_only(dir.join("study.db"))?.open_only_study()
}

/// The folder of a study (it holds `study.db`): `study` names a folder of
/// `results` or is a folder itself; without it, `results` must hold exactly
/// one study. Every miss is an [`InputError`] that says what to give.
pub fn study_folder(results: &Path, study: Option<&str>) -> Result<PathBuf> {
    let named_folder = study.is_some_and(|name| Path::new(name).join("study.db").is_file());
    if !named_folder && !results.is_dir() {
        return Err(InputError::new(results.display().to_string(), "no such results folder")
            .with_hint("give the folder `study run` wrote to with --results DIR (default: results)")
            .into());
    }
    let dir = match study {
        Some(name) if Path::new(name).join("study.db").is_file() => PathBuf::from(name),
        Some(name) => results.join(name),
        None if results.join("study.db").is_file() => results.to_path_buf(),
        None => {
            let mut found: Vec<String> = std::fs::read_dir(results)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().join("study.db").is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.as_slice() {
                [one] => results.join(one),
                [] => {
                    return Err(InputError::new(results.display().to_string(), "holds no study")
                        .with_hint("run one with `study run FILE`, or give --results DIR")
                        .into())
                }
                names => {
                    return Err(InputError::new(results.display().to_string(), "holds several studies")
                        .with_hint(format!("name one of them: {}", names.join(", ")))
                        .into())
                }
            }
        }
    };
    if !dir.join("study.db").is_file() {
        return Err(InputError::new(dir.display().to_string(), "is not a study folder (no study.db)")
            .with_hint("give the study's name as `study run` printed it, and the same --results")
            .into());
    }
    Ok(dir)
}
