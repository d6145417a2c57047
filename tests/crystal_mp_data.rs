//! The shared Materials Project file: every frame reads, with its tensor, and
//! the crystal systems match the published labelling (moyo, symprec 0.01).

use std::collections::BTreeMap;
use std::path::Path;

use anisostudy::crystal::symmetry::DEFAULT_SYMPREC;
use anisostudy::crystal::{crystal_system, read_structures, CrystalSystem, ExtxyzOptions, Frame};

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
