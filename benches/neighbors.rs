//! Periodic neighbour search on the shared Materials Project file (5 Å,
//! self-edges included, as the model's graphs use it), single-threaded and on
//! all cores. Prints one JSON line per configuration.
//!
//! Dataset: `--dataset PATH`, else env `ANISOSTUDY_DATASET`, else
//! `../shared/data/mp_dielectric_2k.extxyz`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anisostudy::crystal::{read_structures, ExtxyzOptions, NeighborList, NeighborSearch, Structure};

const CUTOFF: f64 = 5.0;
const MIN_TIME: Duration = Duration::from_secs(2);

fn dataset_path() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--dataset") {
        if let Some(path) = args.get(i + 1) {
            return PathBuf::from(path);
        }
    }
    match std::env::var_os("ANISOSTUDY_DATASET") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz")),
    }
}

/// Searches every structure once with one reused scratch space; returns the edge count.
fn search_all(structures: &[Structure], search: &mut NeighborSearch, list: &mut NeighborList) -> usize {
    let mut edges = 0;
    for s in structures {
        search.fill(s, CUTOFF, true, list);
        edges += list.len();
    }
    edges
}

/// Repeats passes over the file on `threads` threads until `MIN_TIME` has passed.
fn measure(structures: &[Structure], threads: usize) -> (usize, usize, f64) {
    let chunk = structures.len().div_ceil(threads);
    let start = Instant::now();
    let (mut done, mut edges) = (0, 0);
    while start.elapsed() < MIN_TIME {
        edges += std::thread::scope(|scope| {
            let workers: Vec<_> = structures
                .chunks(chunk)
                .map(|part| {
                    scope
                        .spawn(move || search_all(part, &mut NeighborSearch::new(), &mut NeighborList::new()))
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker panicked")).sum::<usize>()
        });
        done += structures.len();
    }
    (done, edges, start.elapsed().as_secs_f64())
}

fn main() {
    let path = dataset_path();
    if !path.exists() {
        println!(
            "{{\"bench\":\"neighbors\",\"skipped\":true,\"reason\":\"dataset not found: {}; pass --dataset PATH or set ANISOSTUDY_DATASET\"}}",
            path.display()
        );
        return;
    }
    let frames = match read_structures(&path, &ExtxyzOptions::default()) {
        Ok(frames) => frames,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    };
    let structures: Vec<Structure> = frames.into_iter().map(|f| f.structure).collect();
    let atoms: usize = structures.iter().map(Structure::len).sum();

    // Warm up caches and the allocator.
    search_all(&structures, &mut NeighborSearch::new(), &mut NeighborList::new());

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut configurations = vec![1];
    if cores > 1 {
        configurations.push(cores);
    }
    for threads in configurations {
        let (done, edges, seconds) = measure(&structures, threads);
        println!(
            "{{\"bench\":\"neighbors\",\"cutoff_angstrom\":{CUTOFF},\"self_edges\":true,\"threads\":{threads},\"structures\":{},\"atoms\":{atoms},\"edges_per_structure\":{:.1},\"structures_per_s\":{:.0},\"edges_per_s\":{:.0},\"seconds\":{seconds:.3}}}",
            structures.len(),
            edges as f64 / done as f64,
            done as f64 / seconds,
            edges as f64 / seconds,
        );
    }
}
