//! `study predict`: ε∞ of structures from a trained checkpoint, or from a
//! trial of a study (its best, or one by number) without finding its folder.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::crystal::io::{read_structures, ExtxyzOptions};
use crate::crystal::symmetry::{crystal_system, DEFAULT_SYMPREC};
use crate::e3::cartesian::{irreps_to_cartesian, Mat3};
use crate::e3::sym3::{anisotropy_ratio, eigenvalues_sym3, eps_poly};
use crate::error::InputError;
use crate::model::{is_unphysical, ComputeDevice, ModelInput};
use crate::report::collect::StudyData;
use crate::screen::models;
use crate::train::checkpoint;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Predict the dielectric tensor of structures with a trained model.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Checkpoint folder written by `study train --out DIR` (its best parameters are used).
    #[arg(long, required_unless_present = "study", conflicts_with = "study")]
    pub checkpoint: Option<PathBuf>,
    /// A study (its name in --results, or its folder): predict with one of its trials.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Results folder of --study.
    #[arg(long, value_name = "DIR", default_value = "results", requires = "study")]
    pub results: PathBuf,
    /// The study's trial to predict with (a COMPLETE one).
    #[arg(long, value_name = "N", requires = "study", conflicts_with = "best")]
    pub trial: Option<u64>,
    /// The study's best trial (the default with --study).
    #[arg(long, requires = "study")]
    pub best: bool,
    /// Structures: extended XYZ (.extxyz, .xyz) or pymatgen JSON (.json).
    #[arg(long)]
    pub structures: PathBuf,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Where the network computes: cpu, cuda:N (the GPU engine on the N-th
    /// visible GPU), gpu-emulated or tensor-cuda:N (a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = str::parse::<ComputeDevice>)]
    pub device: ComputeDevice,
}

/// One structure's prediction.
#[derive(Debug, Serialize)]
struct Prediction {
    /// 0-based frame number in the file.
    frame: usize,
    id: Option<String>,
    /// ε∞, symmetric Cartesian 3×3.
    tensor: Mat3,
    /// Ascending.
    eigenvalues: [f64; 3],
    eps_poly: f64,
    anisotropy_ratio: f64,
    crystal_system: Option<&'static str>,
    /// Smallest eigenvalue below 1.
    unphysical: bool,
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Structures per model call: bounds memory on large files.
const BATCH: usize = 32;

/// The checkpoint folder the arguments name.
fn checkpoint_dir(args: &PredictArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.checkpoint {
        if !checkpoint::exists(dir) {
            return Err(InputError::new(
                format!("--checkpoint {}", dir.display()),
                format!("holds no {}", checkpoint::TENSORS_FILE),
            )
            .with_hint("give the --out folder of a `study train` run")
            .into());
        }
        return Ok(dir.clone());
    }
    let folder = crate::study::study_folder(&args.results, args.study.as_deref())?;
    let data = StudyData::load(&folder)?;
    let dir = match args.trial {
        Some(number) => models::checkpoint_of(&data, number)?,
        None => {
            let selection = models::select(&data, models::ModelChoice::Best)?;
            let best = &selection.members[0];
            eprintln!("trial {} ({}, {} {:.6})", best.trial, best.params, data.objective_name(), best.value);
            best.checkpoint.clone()
        }
    };
    Ok(dir)
}

pub fn run(args: PredictArgs) -> Result<()> {
    let dir = checkpoint_dir(&args)?;
    let (ck, mut model) = checkpoint::load_best_model(&dir)?;
    model.use_device(args.device)?;
    let frames = read_structures(&args.structures, &ExtxyzOptions::default())?;
    let cutoff = ck.model.cutoff;
    let mut inputs = Vec::with_capacity(frames.len());
    for (k, f) in frames.iter().enumerate() {
        let input = ModelInput::from_structure(&f.structure, cutoff).map_err(|e| {
            InputError::new(
                format!("{}, frame {k} (line {})", args.structures.display(), f.line),
                e.to_string(),
            )
        })?;
        inputs.push(input);
    }
    let mut irreps = Vec::with_capacity(frames.len());
    for chunk in inputs.chunks(BATCH) {
        irreps.extend(model.predict(&ModelInput::batch(chunk))?);
    }
    let predictions: Vec<Prediction> = frames
        .iter()
        .zip(&irreps)
        .enumerate()
        .map(|(k, (f, x))| {
            let tensor = irreps_to_cartesian(x);
            Prediction {
                frame: k,
                id: f.id.clone(),
                tensor,
                eigenvalues: eigenvalues_sym3(&tensor),
                eps_poly: eps_poly(&tensor),
                anisotropy_ratio: anisotropy_ratio(&tensor),
                crystal_system: crystal_system(&f.structure, DEFAULT_SYMPREC).ok().map(|c| c.name()),
                unphysical: is_unphysical(x),
            }
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&predictions)?)?,
        Format::Csv => {
            writeln!(
                out,
                "frame,id,crystal_system,eps_poly,anisotropy_ratio,eig1,eig2,eig3,unphysical,xx,xy,xz,yx,yy,yz,zx,zy,zz"
            )?;
            for p in &predictions {
                let tensor: Vec<String> = p.tensor.iter().flatten().map(|v| v.to_string()).collect();
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{}",
                    p.frame,
                    csv_field(p.id.as_deref().unwrap_or("")),
                    p.crystal_system.unwrap_or(""),
                    p.eps_poly,
                    p.anisotropy_ratio,
                    p.eigenvalues[0],
                    p.eigenvalues[1],
                    p.eigenvalues[2],
                    p.unphysical,
                    tensor.join(",")
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(super::csv_field("mp-149"), "mp-149");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
