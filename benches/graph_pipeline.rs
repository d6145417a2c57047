//! The whole graph pipeline on a data file, stage by stage: read, clean,
//! symmetry (crystal system + target irreps), neighbour lists (5 Å,
//! self-edges), node/edge features in batches of 12 (one-hot Z, mass
//! attributes, edge lengths). Single-threaded and on all cores; one JSON
//! line per measurement. `structures_per_s` covers read + clean + neighbour
//! lists + features + targets; `with_symmetry_structures_per_s` adds the
//! crystal-system analysis (done once per data set: the graph cache keeps it).
//!
//! Data: `--dataset PATH`, else env `ANISOSTUDY_DATASET`, else the shared MP file.

use std::path::PathBuf;
use std::time::Instant;

use anisostudy::data::dataset::{classify, clean_frames, read_frames};
use anisostudy::data::graph::{mass_attributes, one_hot};
use anisostudy::data::{build_graphs, GraphBatch, GraphOptions, LoadOptions, Source};

fn dataset_path() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args.iter().position(|a| a == "--dataset").and_then(|k| args.get(k + 1)) {
        return path.into();
    }
    match std::env::var("ANISOSTUDY_DATASET") {
        Ok(path) => path.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz").into(),
    }
}

/// Seconds per stage of one pass, and the pass's counts.
struct Pass {
    read: f64,
    clean: f64,
    symmetry: f64,
    neighbours: f64,
    features: f64,
    structures: usize,
    edges: usize,
}

impl Pass {
    fn without_symmetry(&self) -> f64 {
        self.read + self.clean + self.neighbours + self.features
    }
}

fn pass(source: &Source) -> Pass {
    let options = LoadOptions::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let seconds = clock.elapsed().as_secs_f64();
        clock = Instant::now();
        seconds
    };
    let frames = read_frames(source, &options.dielectric_key).expect("readable data");
    let read = lap();
    let (kept, _report) = clean_frames(frames, "bench", &options).expect("clean data");
    let clean = lap();
    let entries = classify(kept, "bench", options.symprec).expect("symmetry analysis");
    let symmetry = lap();
    let graphs = build_graphs(&entries, &GraphOptions::default());
    let neighbours = lap();
    let mut edges = 0;
    for chunk in graphs.chunks(12) {
        let batch = GraphBatch::new(chunk);
        let lengths: Vec<f64> =
            batch.edge_vec.iter().map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()).collect();
        std::hint::black_box((
            one_hot(&batch.numbers),
            mass_attributes(&batch.numbers),
            lengths,
            &batch.targets_irreps,
        ));
        edges += batch.num_edges();
    }
    let features = lap();
    Pass { read, clean, symmetry, neighbours, features, structures: graphs.len(), edges }
}

fn measure(source: &Source, threads: usize, repeats: usize) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let best = pool.install(|| {
        (0..repeats)
            .map(|_| pass(source))
            .min_by(|a, b| a.without_symmetry().total_cmp(&b.without_symmetry()))
    });
    let best = best.expect("at least one pass");
    let (plain, full) = (best.without_symmetry(), best.without_symmetry() + best.symmetry);
    let line = serde_json::json!({
        "bench": "graph_pipeline",
        "threads": threads,
        "structures": best.structures,
        "edges": best.edges,
        "seconds": plain,
        "structures_per_s": best.structures as f64 / plain,
        "edges_per_s": best.edges as f64 / plain,
        "with_symmetry_seconds": full,
        "with_symmetry_structures_per_s": best.structures as f64 / full,
        "stage_seconds": {
            "read": best.read,
            "clean": best.clean,
            "symmetry": best.symmetry,
            "neighbour_lists": best.neighbours,
            "features_batches_of_12": best.features,
        },
    });
    println!("{line}");
}

fn main() {
    let path = dataset_path();
    if !path.exists() {
        let note = format!("{} not found; pass --dataset PATH or set ANISOSTUDY_DATASET", path.display());
        println!("{}", serde_json::json!({"bench": "graph_pipeline", "skipped": note}));
        return;
    }
    let source = Source::File(path);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    measure(&source, 1, 3);
    if cores > 1 {
        measure(&source, cores, 3);
    }
}
