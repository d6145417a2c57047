//! The whole graph pipeline on a data file: read + clean (incl. crystal
//! system) + neighbour lists (5 Å, self-edges) + node/edge features + targets,
//! single-threaded and on all cores. Prints one JSON line per measurement.
//!
//! Data: `--dataset PATH`, else env `ANISOSTUDY_DATASET`, else the shared MP file.

use std::path::PathBuf;
use std::time::Instant;

use anisostudy::data::graph::{mass_attributes, one_hot};
use anisostudy::data::{build_graphs, dataset, GraphBatch, GraphOptions, LoadOptions, Source};

fn dataset_path() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    if let Some(k) = args.iter().position(|a| a == "--dataset") {
        if let Some(path) = args.get(k + 1) {
            return path.into();
        }
    }
    match std::env::var("ANISOSTUDY_DATASET") {
        Ok(path) => path.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz").into(),
    }
}

/// Seconds spent per stage in one pass, and the pass's counts.
struct Pass {
    read: f64,
    clean: f64,
    neighbours: f64,
    features: f64,
    structures: usize,
    edges: usize,
}

fn pass(source: &Source) -> Pass {
    let options = LoadOptions::default();
    let t = Instant::now();
    let frames = dataset::read_frames(source, &options.dielectric_key).expect("readable data");
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let data = dataset::clean(frames, "bench", &options).expect("clean data");
    let clean = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let graphs = build_graphs(&data.entries, &GraphOptions::default());
    let neighbours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batch = GraphBatch::new(&graphs);
    let node_features = one_hot(&batch.numbers);
    let node_attributes = mass_attributes(&batch.numbers);
    let edge_lengths: Vec<f64> = batch.edge_vec.iter().map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()).collect();
    std::hint::black_box((&node_features, &node_attributes, &edge_lengths, &batch.targets_irreps));
    let features = t.elapsed().as_secs_f64();
    Pass { read, clean, neighbours, features, structures: graphs.len(), edges: batch.num_edges() }
}

fn measure(source: &Source, threads: usize, repeats: usize) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let best = pool.install(|| {
        (0..repeats)
            .map(|_| pass(source))
            .min_by(|a, b| (a.read + a.clean + a.neighbours + a.features).total_cmp(&(b.read + b.clean + b.neighbours + b.features)))
            .expect("at least one pass")
    });
    let total = best.read + best.clean + best.neighbours + best.features;
    println!(
        "{}",
        serde_json::json!({
            "bench": "graph_pipeline",
            "threads": threads,
            "structures": best.structures,
            "edges": best.edges,
            "seconds": total,
            "structures_per_s": best.structures as f64 / total,
            "edges_per_s": best.edges as f64 / total,
            "stage_seconds": {"read": best.read, "clean_and_symmetry": best.clean, "neighbour_lists": best.neighbours, "features_and_batch": best.features},
            "neighbour_structures_per_s": best.structures as f64 / best.neighbours,
        })
    );
}

fn main() {
    let path = dataset_path();
    if !path.exists() {
        println!("{}", serde_json::json!({"bench": "graph_pipeline", "skipped": format!("{} not found; pass --dataset PATH or set ANISOSTUDY_DATASET", path.display())}));
        return;
    }
    let source = Source::File(path);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    measure(&source, 1, 3);
    if cores > 1 {
        measure(&source, cores, 3);
    }
}
