//! `study data`: inspect a dielectric data set, write the synthetic one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::crystal::elements;
use crate::crystal::io::write_extxyz_file;
use crate::crystal::symmetry::CrystalSystem;
use crate::data::{
    load_graphs, synthetic, CacheOptions, CacheStatus, CleaningOptions, CleaningReport, GraphOptions,
    GraphSet, LoadOptions, Source, Split, SplitRatios,
};
use crate::e3::sym3::{anisotropy_ratio, eps_poly};
use crate::error::InputError;

/// Inspect dielectric data sets and write the synthetic one.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read, clean and graph a data set, and summarise it: drops by reason,
    /// elements, crystal systems, ε_poly and a_r, edges, split sizes.
    Inspect(InspectArgs),
    /// Write the synthetic data set as extended XYZ (readable by ASE).
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Data file (extxyz or pymatgen JSON with a tensor per structure), or
    /// `synthetic` for the embedded synthetic set.
    pub source: String,
    /// Number of structures of the synthetic set.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of the synthetic set and of the random 80/10/10 split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Neighbour cutoff of the graph edges, Å.
    #[arg(long, default_value_t = 5.0)]
    pub cutoff: f64,
    /// Per-frame extxyz key that holds the 9 tensor components, row-major.
    #[arg(long, default_value = "dielectric")]
    pub dielectric_key: String,
    /// Fixed split (JSON with "train", "val", "test" lists of 0-based frame
    /// numbers) to check and count instead of the random split.
    #[arg(long)]
    pub split_file: Option<PathBuf>,
    /// Drop tensors with any diagonal element below this value.
    #[arg(long, default_value_t = 1.0)]
    pub min_diagonal: f64,
    /// Drop tensors whose ε_poly (trace / 3) is above this value.
    #[arg(long, default_value_t = 15.0)]
    pub max_eps_poly: f64,
    /// Keep repeated structures instead of dropping all but the first.
    #[arg(long)]
    pub keep_duplicates: bool,
    /// Folder of the graph cache.
    #[arg(long, default_value = "results/.cache")]
    pub cache_dir: PathBuf,
    /// Build the graphs without reading or writing the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of structures to write.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (extended XYZ; ε∞ under the key `dielectric`).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Inspect(args) => inspect(args),
        DataCommand::Synth(args) => synth(args),
    }
}

fn synth(args: SynthArgs) -> Result<()> {
    if args.n == 0 {
        return Err(InputError::new("--n", "must be at least 1").into());
    }
    let frames = synthetic::generate(args.n, args.seed);
    write_extxyz_file(&args.out, &frames).map_err(|e| {
        InputError::new(args.out.display().to_string(), format!("cannot write the file: {e}"))
            .with_hint("check that the folder exists and is writable")
    })?;
    eprintln!("wrote {} synthetic structures (seed {}) to {}", args.n, args.seed, args.out.display());
    Ok(())
}

fn inspect(args: InspectArgs) -> Result<()> {
    if !(args.cutoff.is_finite() && args.cutoff > 0.0) {
        return Err(InputError::new("--cutoff", format!("{} is not a positive length", args.cutoff))
            .with_hint("the paper uses 5 (Å)")
            .into());
    }
    if args.source == "synthetic" && args.n == 0 {
        return Err(InputError::new("--n", "must be at least 1").into());
    }
    let source = Source::parse(&args.source, args.n, args.seed);
    let load_options = LoadOptions {
        dielectric_key: args.dielectric_key.clone(),
        cleaning: CleaningOptions {
            min_diagonal: args.min_diagonal,
            max_eps_poly: args.max_eps_poly,
            drop_duplicates: !args.keep_duplicates,
            ..CleaningOptions::default()
        },
        ..LoadOptions::default()
    };
    let graph_options = GraphOptions { cutoff: args.cutoff, ..GraphOptions::default() };
    let cache = CacheOptions { dir: (!args.no_cache).then(|| args.cache_dir.clone()) };
    let (set, status) = load_graphs(&source, &load_options, &graph_options, &cache)?;
    let split = match &args.split_file {
        Some(path) => (
            format!("file {}", path.display()),
            Split::from_json_file(path, &set.frames(), set.report.frames_read)?,
        ),
        None => (
            format!("random 80/10/10, seed {}", args.seed),
            Split::random(set.graphs.len(), &SplitRatios::default(), args.seed)?,
        ),
    };
    let summary = Summary::new(&set, &status, args.cutoff, split);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        summary.print();
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Stats {
    min: f64,
    median: f64,
    mean: f64,
    max: f64,
}

impl Stats {
    fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) };
        Some(Self { min: values[0], median, mean: values.iter().sum::<f64>() / n as f64, max: values[n - 1] })
    }
}

#[derive(Debug, Serialize)]
struct ElementCount {
    element: &'static str,
    structures: usize,
    atoms: usize,
}

#[derive(Debug, Serialize)]
struct SystemCount {
    system: &'static str,
    structures: usize,
}

#[derive(Debug, Serialize)]
struct SplitSizes {
    kind: String,
    train: usize,
    val: usize,
    test: usize,
}

#[derive(Debug, Serialize)]
struct Summary {
    source: String,
    cache: String,
    cleaning: CleaningReport,
    distinct_elements: usize,
    most_common_elements: Vec<ElementCount>,
    crystal_systems: Vec<SystemCount>,
    eps_poly: Option<Stats>,
    anisotropy_ratio: Option<Stats>,
    atoms_per_structure: f64,
    cutoff: f64,
    edges_per_atom: f64,
    edges_per_structure: f64,
    split: SplitSizes,
}

impl Summary {
    fn new(set: &GraphSet, status: &CacheStatus, cutoff: f64, (kind, split): (String, Split)) -> Self {
        let mut elements_seen: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        for g in &set.graphs {
            let mut numbers = g.numbers.clone();
            for &z in &numbers {
                elements_seen.entry(z).or_default().1 += 1;
            }
            numbers.sort_unstable();
            numbers.dedup();
            for z in numbers {
                elements_seen.entry(z).or_default().0 += 1;
            }
        }
        let mut common: Vec<ElementCount> = elements_seen
            .iter()
            .map(|(&z, &(structures, atoms))| ElementCount {
                element: elements::symbol(z),
                structures,
                atoms,
            })
            .collect();
        common.sort_by(|a, b| b.structures.cmp(&a.structures).then(b.atoms.cmp(&a.atoms)));
        common.truncate(10);
        let crystal_systems = CrystalSystem::ALL
            .iter()
            .map(|&s| SystemCount {
                system: s.name(),
                structures: set.graphs.iter().filter(|g| g.crystal_system == s).count(),
            })
            .collect();
        let n = set.graphs.len().max(1) as f64;
        let atoms: usize = set.graphs.iter().map(|g| g.num_nodes()).sum();
        let edges: usize = set.graphs.iter().map(|g| g.num_edges()).sum();
        let [train, val, test] = split.sizes();
        Self {
            source: set.source.clone(),
            cache: match status {
                CacheStatus::Disabled => "disabled".into(),
                CacheStatus::Hit(path) => format!("read {}", path.display()),
                CacheStatus::Built(path, why) => format!("built {} ({why})", path.display()),
                CacheStatus::Unwritable(path, err) => format!("not written to {} ({err})", path.display()),
            },
            cleaning: set.report.clone(),
            distinct_elements: elements_seen.len(),
            most_common_elements: common,
            crystal_systems,
            eps_poly: Stats::of(set.graphs.iter().map(|g| eps_poly(&g.target_cartesian)).collect()),
            anisotropy_ratio: Stats::of(
                set.graphs.iter().map(|g| anisotropy_ratio(&g.target_cartesian)).collect(),
            ),
            atoms_per_structure: atoms as f64 / n,
            cutoff,
            edges_per_atom: edges as f64 / atoms.max(1) as f64,
            edges_per_structure: edges as f64 / n,
            split: SplitSizes { kind, train, val, test },
        }
    }

    fn print(&self) {
        let c = &self.cleaning;
        println!("data set          {}", self.source);
        println!("graph cache       {}", self.cache);
        println!();
        println!("frames read       {:>7}", c.frames_read);
        println!("kept              {:>7}", c.kept);
        println!("dropped           {:>7}", c.dropped());
        println!("  diagonal < min  {:>7}", c.diagonal_below_min);
        println!("  ε_poly > max    {:>7}", c.eps_poly_above_max);
        println!("  repeated        {:>7}", c.duplicates);
        println!();
        let common: Vec<String> =
            self.most_common_elements.iter().map(|e| format!("{} {}", e.element, e.structures)).collect();
        println!("distinct elements {:>7}", self.distinct_elements);
        println!("most common       {} (structures containing)", common.join(", "));
        println!();
        println!("crystal system    structures");
        for s in &self.crystal_systems {
            println!("  {:<15} {:>7}", s.system, s.structures);
        }
        println!();
        println!("{:<17} {:>9} {:>9} {:>9} {:>9}", "", "min", "median", "mean", "max");
        for (name, stats) in [("ε_poly", &self.eps_poly), ("a_r", &self.anisotropy_ratio)] {
            match stats {
                Some(s) => {
                    println!("{name:<17} {:>9.3} {:>9.3} {:>9.3} {:>9.3}", s.min, s.median, s.mean, s.max)
                }
                None => println!("{name:<17} (no structures kept)"),
            }
        }
        println!();
        println!("atoms per structure  {:>9.2}", self.atoms_per_structure);
        println!(
            "edges per atom       {:>9.2}  (cutoff {} Å, self-edges included)",
            self.edges_per_atom, self.cutoff
        );
        println!("edges per structure  {:>9.2}", self.edges_per_structure);
        println!();
        let s = &self.split;
        println!("split ({})  train {}  val {}  test {}", s.kind, s.train, s.val, s.test);
    }
}
