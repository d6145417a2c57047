//! `study screen`: rank structures without DFPT data by what a study's best
//! models predict for them (see [`crate::screen`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::crystal::symmetry::CrystalSystem;
use crate::error::InputError;
use crate::report::collect::StudyData;
use crate::screen::{self, output, Filters, ModelChoice, RankBy, ScreenOptions};

/// Rank structures by the predictions of a study's best models (an ensemble).
#[derive(Debug, Args)]
pub struct ScreenArgs {
    /// The study's name (its folder in the results folder), or the path of
    /// that folder; optional when the results folder holds one study.
    pub study: Option<String>,
    /// Results folder the study ran in.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Structure files: extended XYZ (.extxyz, .xyz) or pymatgen JSON
    /// (.json); a dielectric tensor is not needed (one that is there is
    /// kept as the reference).
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub structures: Vec<PathBuf>,
    /// Structures in the report's table and in top.extxyz.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub top: usize,
    /// Rank by: anisotropy (a_r), eps_poly, birefringence, eps_max or
    /// anisotropy_spread; highest first.
    #[arg(long, default_value = "anisotropy", value_parser = str::parse::<RankBy>)]
    pub by: RankBy,
    /// The ensemble: auto (a sweep's best cell with its seeds, a search's 5
    /// best trials), best, seeds, pareto (a study with several objectives:
    /// its Pareto set), or K (the K best trials).
    #[arg(long, default_value = "auto", value_parser = str::parse::<ModelChoice>)]
    pub models: ModelChoice,
    /// Folder of the screen's files [default: <results>/<study>/screen].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep structures whose predicted ε_poly is at least this.
    #[arg(long, value_name = "X")]
    pub min_eps_poly: Option<f64>,
    /// Keep structures whose predicted ε_poly is at most this.
    #[arg(long, value_name = "X")]
    pub max_eps_poly: Option<f64>,
    /// Drop structures whose predicted tensor has an eigenvalue below 1.
    #[arg(long)]
    pub physical_only: bool,
    /// Keep only these crystal systems (comma-separated: cubic, hexagonal,
    /// trigonal, tetragonal, orthorhombic, monoclinic, triclinic).
    #[arg(long, value_delimiter = ',', value_parser = str::parse::<CrystalSystem>)]
    pub systems: Vec<CrystalSystem>,
    /// Skip structures with more atoms than this.
    #[arg(long, value_name = "N")]
    pub max_atoms: Option<usize>,
    /// Threads [default: every core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Structures per model call.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch: usize,
    /// Per-frame key of a reference tensor in the files, if they have one.
    #[arg(long, default_value = "dielectric")]
    pub dielectric_key: String,
}

pub fn run(args: ScreenArgs) -> Result<()> {
    for (name, value) in [("--min-eps-poly", args.min_eps_poly), ("--max-eps-poly", args.max_eps_poly)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(InputError::new(name, "is not a finite number").into());
        }
    }
    if args.threads == Some(0) || args.batch == 0 {
        return Err(InputError::new("--threads/--batch", "must be at least 1").into());
    }
    for file in &args.structures {
        if !file.is_file() {
            return Err(InputError::new(file.display().to_string(), "no such file")
                .with_hint(
                    "give extended XYZ (.extxyz, .xyz) or pymatgen JSON (.json) files with --structures",
                )
                .into());
        }
    }
    let dir = crate::study::study_folder(&args.results, args.study.as_deref())?;
    let data = StudyData::load(&dir)?;
    let selection = screen::select(&data, args.models)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // The network's own parallel loops share the same number of threads.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    let options = ScreenOptions {
        by: args.by,
        filters: Filters {
            min_eps_poly: args.min_eps_poly,
            max_eps_poly: args.max_eps_poly,
            physical_only: args.physical_only,
            systems: args.systems,
            max_atoms: args.max_atoms,
        },
        top: args.top,
        threads,
        batch: args.batch,
        dielectric_key: args.dielectric_key,
        progress: true,
    };
    let trials: Vec<String> = selection.members.iter().map(|m| m.trial.to_string()).collect();
    eprintln!("models: trials {} ({})", trials.join(", "), selection.why);
    let screened = screen::screen(&selection.members, &args.structures, &options)?;
    for failure in &screened.failures {
        eprintln!("warning: skipped {failure}");
    }
    let out = args.out.unwrap_or_else(|| dir.join("screen"));
    let about = output::About {
        study: &data.info.name,
        why: &selection.why,
        members: &selection.members,
        files: &args.structures,
        options: &options,
    };
    let written = output::write(&out, &screened, &about)?;
    let c = &screened.counts;
    println!(
        "screened {} structures in {:.1} s ({:.1}/s, {} thread(s)); {} ranked by {}",
        c.read,
        screened.seconds,
        c.read as f64 / screened.seconds.max(1e-9),
        threads,
        c.ranked,
        options.by.name()
    );
    if let Some(best) = screened.ranked.first() {
        println!(
            "best: {} {} ({}), a_r {}, ε_poly {:.3}",
            best.id.as_deref().unwrap_or("-"),
            best.formula,
            best.system.map(|s| s.name()).unwrap_or("?"),
            best.stats.anisotropy.map_or("—".to_owned(), |a| format!("{a:.3}")),
            best.stats.eps_poly
        );
    }
    if let Some(o) = output::overlap(&screened.ranked, options.by, options.top) {
        println!(
            "reference tensors in the files: {} of the top {} by prediction are in the top {} by reference (chance {:.1})",
            o.found, o.n, o.n, o.chance
        );
    }
    println!(
        "wrote {} files to {}; start with {}",
        written.files.len(),
        written.dir.display(),
        written.dir.join("report.md").display()
    );
    Ok(())
}
