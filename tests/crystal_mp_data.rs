//! The shared Materials Project file: every frame reads, with its tensor, and
//! the crystal systems match the published labelling (moyo, symprec 0.01),
//! and the neighbour lists agree with the brute-force search.

use std::collections::BTreeMap;
use std::path::Path;

use anisostudy::crystal::neighbors::brute_force_neighbor_list;
use anisostudy::crystal::symmetry::DEFAULT_SYMPREC;
use anisostudy::crystal::{
    crystal_system, read_structures, CrystalSystem, ExtxyzOptions, Frame, NeighborList, NeighborSearch,
};

const DATASET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mp_dielectric_2k.extxyz");

fn read_dataset() -> Option<Vec<Frame>> {
    if !Path::new(DATASET).exists() {
        eprintln!("note: {DATASET} is absent; skipping");
        return None;
    }
    let options = ExtxyzOptions { require_dielectric: true, ..ExtxyzOptions::default() };
    Some(read_structures(DATASET, &options).unwrap_or_else(|err| panic!("{err}")))
}

#[test]
fn reads_every_frame_with_its_tensor() {
    let Some(frames) = read_dataset() else { return };
    assert_eq!(frames.len(), 2125);
    assert!(frames.iter().all(|f| f.dielectric.is_some()));
    assert_eq!(frames[0].line, 1);
    assert_eq!(frames[0].structure.len(), 8);
    assert_eq!(frames[1].line, 11);
    assert_eq!(frames[0].dielectric.unwrap()[0], [8.47, 0.122, 0.35]);
}

#[test]
fn crystal_system_histogram_matches_reference() {
    let Some(frames) = read_dataset() else { return };
    let mut histogram = BTreeMap::new();
    for (k, frame) in frames.iter().enumerate() {
        let system = crystal_system(&frame.structure, DEFAULT_SYMPREC)
            .unwrap_or_else(|err| panic!("frame {}: {err:#}", k + 1));
        *histogram.entry(system).or_insert(0) += 1;
    }
    let expected = [
        (CrystalSystem::Cubic, 255),
        (CrystalSystem::Hexagonal, 125),
        (CrystalSystem::Trigonal, 336),
        (CrystalSystem::Tetragonal, 329),
        (CrystalSystem::Orthorhombic, 517),
        (CrystalSystem::Monoclinic, 426),
        (CrystalSystem::Triclinic, 137),
    ];
    for (system, count) in expected {
        assert_eq!(histogram.get(&system).copied().unwrap_or(0), count, "{system}: {histogram:?}");
    }
}

#[test]
fn neighbour_lists_agree_with_brute_force_on_every_structure() {
    let Some(frames) = read_dataset() else { return };
    let mut search = NeighborSearch::new();
    let mut fast = NeighborList::new();
    let mut edges = 0;
    for (k, frame) in frames.iter().enumerate() {
        search.fill(&frame.structure, 5.0, true, &mut fast);
        let slow = brute_force_neighbor_list(&frame.structure, 5.0, true);
        assert_eq!(fast.len(), slow.len(), "frame {}", k + 1);
        assert_eq!(fast.src, slow.src, "frame {}: sources differ", k + 1);
        // Same (dst, length) multiset for every source atom.
        let sorted = |l: &NeighborList| {
            let mut edges: Vec<_> = (0..l.len())
                .map(|e| (l.src[e], l.dst[e], l.vectors[e].iter().map(|x| x * x).sum::<f64>().sqrt()))
                .collect();
            edges.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)).then(x.2.total_cmp(&y.2)));
            edges
        };
        for (x, y) in sorted(&fast).iter().zip(&sorted(&slow)) {
            assert!(x.0 == y.0 && x.1 == y.1 && (x.2 - y.2).abs() < 1e-9, "frame {}: {x:?} != {y:?}", k + 1);
        }
        edges += fast.len();
    }
    // ≈ 590 edges per structure, as the reference pipeline finds.
    let mean = edges as f64 / frames.len() as f64;
    assert!((mean - 587.4).abs() < 0.1, "{mean}");
}
