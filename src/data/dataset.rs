//! Dielectric data sets: a file (extxyz or pymatgen JSON) or the synthetic
//! set, read, cleaned and labelled with the crystal system.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::clean::{
    symmetrised, tensor_drop_reason, CleaningOptions, CleaningReport, DropReason, DuplicateFinder,
};
use super::synthetic;
use crate::crystal::io::{read_structures, ExtxyzOptions, Frame};
use crate::crystal::symmetry::{crystal_system, CrystalSystem};
use crate::crystal::Structure;
use crate::e3::cartesian::{cartesian_to_irreps, Mat3};
use crate::error::InputError;

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An extxyz or pymatgen-JSON file with a dielectric tensor per structure.
    File(PathBuf),
    /// The embedded synthetic set: `n` structures from `seed`.
    Synthetic { n: usize, seed: u64 },
}

impl Source {
    /// `synthetic` (with `n`, `seed`) or a path.
    pub fn parse(arg: &str, n: usize, seed: u64) -> Self {
        if arg == "synthetic" {
            Source::Synthetic { n, seed }
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// SHA-256 identifying the data: of the file's bytes, or of the synthetic
    /// generator version, n and seed.
    pub fn digest(&self) -> Result<[u8; 32]> {
        Ok(match self {
            Source::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
                Sha256::digest(&bytes).into()
            }
            Source::Synthetic { n, seed } => {
                let mut hasher = Sha256::new();
                hasher.update(b"synthetic");
                hasher.update(synthetic::GENERATOR_VERSION.to_le_bytes());
                hasher.update((*n as u64).to_le_bytes());
                hasher.update(seed.to_le_bytes());
                hasher.finalize().into()
            }
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Synthetic { n, seed } => write!(f, "synthetic (n = {n}, seed = {seed})"),
        }
    }
}

fn unreadable(path: &Path, err: std::io::Error) -> anyhow::Error {
    InputError::new(path.display().to_string(), format!("cannot read the file: {err}"))
        .with_hint("check the path, or use `synthetic` for the embedded data set")
        .into()
}

/// How to read and clean a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Per-frame extxyz key of the 9 tensor components (row-major).
    pub dielectric_key: String,
    pub cleaning: CleaningOptions,
    /// Symmetry tolerance (Å) for the crystal system.
    pub symprec: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { dielectric_key: "dielectric".into(), cleaning: CleaningOptions::default(), symprec: 0.01 }
    }
}

/// One cleaned structure with its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// 0-based frame number in the source (what split files refer to).
    pub frame: usize,
    pub id: Option<String>,
    pub structure: Structure,
    /// ε∞, symmetric Cartesian 3×3.
    pub tensor: Mat3,
    /// ε∞ as irreps 0e+2e (6 numbers, e3nn "ij=ji" basis).
    pub irreps: [f64; 6],
    pub crystal_system: CrystalSystem,
}

/// A cleaned data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Human-readable name of the source.
    pub source: String,
    pub entries: Vec<Entry>,
    pub report: CleaningReport,
}

impl Dataset {
    /// Frame number of each entry, in entry order.
    pub fn frames(&self) -> Vec<usize> {
        self.entries.iter().map(|e| e.frame).collect()
    }
}

/// Raw frames of a source (tensor required in every frame).
pub fn read_frames(source: &Source, dielectric_key: &str) -> Result<Vec<Frame>> {
    match source {
        Source::File(path) => {
            if !path.exists() {
                return Err(InputError::new(path.display().to_string(), "no such file")
                    .with_hint("check the path, or use `synthetic` for the embedded data set")
                    .into());
            }
            let options =
                ExtxyzOptions { dielectric_key: dielectric_key.to_string(), require_dielectric: true };
            Ok(read_structures(path, &options)?)
        }
        Source::Synthetic { n, seed } => Ok(synthetic::generate(*n, *seed)),
    }
}

/// Reads and cleans a data set.
pub fn load(source: &Source, options: &LoadOptions) -> Result<Dataset> {
    let frames = read_frames(source, &options.dielectric_key)?;
    clean(frames, &source.to_string(), options)
}

/// A frame that passed the cleaning, before its symmetry analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanFrame {
    /// 0-based frame number in the source.
    pub frame: usize,
    pub id: Option<String>,
    /// 1-based line of the frame in its file.
    pub line: usize,
    pub structure: Structure,
    /// ε∞, symmetrised.
    pub tensor: Mat3,
}

/// Cleans frames and finds each kept structure's crystal system. `origin`
/// names the source in error messages.
pub fn clean(frames: Vec<Frame>, origin: &str, options: &LoadOptions) -> Result<Dataset> {
    let (kept, report) = clean_frames(frames, origin, options)?;
    let entries = classify(kept, origin, options.symprec)?;
    Ok(Dataset { source: origin.to_string(), entries, report })
}

/// The cleaning of [`super::clean`], every drop counted by reason.
pub fn clean_frames(
    frames: Vec<Frame>,
    origin: &str,
    options: &LoadOptions,
) -> Result<(Vec<CleanFrame>, CleaningReport)> {
    let mut report = CleaningReport { frames_read: frames.len(), ..Default::default() };
    let mut finder = DuplicateFinder::new(options.cleaning.duplicate_tolerance);
    let mut kept = Vec::new();
    for (index, frame) in frames.into_iter().enumerate() {
        let Some(raw) = frame.dielectric else {
            return Err(InputError::new(
                format!("{origin}, frame {index} (line {})", frame.line),
                format!("no `{}` tensor", options.dielectric_key),
            )
            .with_hint("give every frame the 9 components of ε∞, or name the right key with --dielectric-key")
            .into());
        };
        let tensor = symmetrised(&raw);
        let reason = tensor_drop_reason(&tensor, &options.cleaning).or_else(|| {
            (options.cleaning.drop_duplicates && finder.is_repeat(&frame.structure))
                .then_some(DropReason::Duplicate)
        });
        match reason {
            Some(DropReason::DiagonalBelowMin) => report.diagonal_below_min += 1,
            Some(DropReason::EpsPolyAboveMax) => report.eps_poly_above_max += 1,
            Some(DropReason::Duplicate) => report.duplicates += 1,
            None => kept.push(CleanFrame {
                frame: index,
                id: frame.id,
                line: frame.line,
                structure: frame.structure,
                tensor,
            }),
        }
    }
    report.kept = kept.len();
    Ok((kept, report))
}

/// Entries of cleaned frames: irreps of the target and the crystal system
/// (moyo at `symprec` Å), on all cores.
pub fn classify(kept: Vec<CleanFrame>, origin: &str, symprec: f64) -> Result<Vec<Entry>> {
    kept.into_par_iter()
        .map(|c| {
            let system = crystal_system(&c.structure, symprec).with_context(|| {
                format!("{origin}, frame {} (line {}): symmetry analysis failed", c.frame, c.line)
            })?;
            Ok(Entry {
                frame: c.frame,
                id: c.id,
                irreps: cartesian_to_irreps(&c.tensor),
                structure: c.structure,
                tensor: c.tensor,
                crystal_system: system,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz");

    #[test]
    fn mp_cleaning_keeps_1996_and_fits_the_split_file() {
        if !Path::new(MP).exists() {
            eprintln!("skipping: {MP} not found");
            return;
        }
        let data = load(&Source::File(MP.into()), &LoadOptions::default()).unwrap();
        assert_eq!(data.report.frames_read, 2125);
        assert_eq!(data.report.kept, 1996, "{:?}", data.report);
        assert_eq!(data.report.duplicates, 0);
        for e in &data.entries {
            assert_eq!(e.tensor[0][1], e.tensor[1][0]);
        }
        // The fixed split refers to exactly the kept frames.
        let split_file = MP.replace(".extxyz", ".split.json");
        if Path::new(&split_file).exists() {
            let split =
                crate::data::Split::from_json_file(Path::new(&split_file), &data.frames(), 2125).unwrap();
            assert_eq!(split.sizes(), [1596, 199, 201]);
        }
    }

    #[test]
    fn synthetic_cleaning_counts_every_frame() {
        let data = load(&Source::Synthetic { n: 60, seed: 2 }, &LoadOptions::default()).unwrap();
        let r = &data.report;
        assert_eq!(r.frames_read, 60);
        assert_eq!(r.kept + r.dropped(), 60);
        assert_eq!(data.entries.len(), r.kept);
        // Tighter thresholds drop more, each counted.
        let mut options = LoadOptions::default();
        options.cleaning.max_eps_poly = 3.0;
        let tight = load(&Source::Synthetic { n: 60, seed: 2 }, &options).unwrap();
        assert!(tight.report.eps_poly_above_max > r.eps_poly_above_max);
        assert!(tight.entries.iter().all(|e| crate::e3::sym3::eps_poly(&e.tensor) <= 3.0));
    }

    #[test]
    fn repeated_frames_are_dropped() {
        let mut frames = synthetic::generate(5, 4);
        frames.push(frames[1].clone());
        let data = clean(frames, "test", &LoadOptions::default()).unwrap();
        assert_eq!(data.report.duplicates, 1);
        assert!(data.entries.iter().all(|e| e.frame != 5));
    }

    #[test]
    fn missing_file_is_input_error() {
        let err = load(&Source::File("/no/such/data.extxyz".into()), &LoadOptions::default()).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(err.to_string().contains("/no/such/data.extxyz"));
    }
}
