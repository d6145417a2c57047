//! Periodic neighbour lists: the reference implementation's edges, brute-force
//! agreement on random triclinic cells, and invariance under rotation,
//! translation and change of cell.

use anisostudy::crystal::neighbors::{neighbor_list, NeighborList};
use anisostudy::crystal::Structure;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/anisonet_tiny_forward.json");

/// Edges as sorted (src, dst, vector) triples, for comparison as multisets.
fn edge_multiset(list: &NeighborList) -> Vec<(u32, u32, [f64; 3])> {
    let mut edges: Vec<_> = (0..list.len()).map(|e| (list.src[e], list.dst[e], list.vectors[e])).collect();
    edges.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.partial_cmp(&b.2).unwrap()));
    edges
}

fn assert_same_edges(actual: &NeighborList, expected: &NeighborList, tolerance: f64) {
    let (a, e) = (edge_multiset(actual), edge_multiset(expected));
    assert_eq!(a.len(), e.len(), "edge counts differ");
    // Match each expected edge to an unused actual edge with the same ends and vector.
    let mut used = vec![false; a.len()];
    for (src, dst, v) in &e {
        let found = (0..a.len()).find(|&k| {
            !used[k]
                && a[k].0 == *src
                && a[k].1 == *dst
                && (0..3).all(|c| (a[k].2[c] - v[c]).abs() <= tolerance)
        });
        match found {
            Some(k) => used[k] = true,
            None => panic!("edge {src} → {dst} {v:?} is missing"),
        }
    }
}

fn assert_sorted_by_src(list: &NeighborList) {
    assert!(list.src.windows(2).all(|w| w[0] <= w[1]), "edges are not sorted by source");
}

#[test]
fn reproduces_reference_edges() {
    let Ok(text) = std::fs::read_to_string(FIXTURE) else {
        eprintln!("note: {FIXTURE} is absent; skipping");
        return;
    };
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let as_vec3 = |v: &serde_json::Value| -> [f64; 3] { std::array::from_fn(|k| v[k].as_f64().unwrap()) };
    for (k, s) in fixture["structures"].as_array().unwrap().iter().enumerate() {
        let structure = Structure {
            lattice: std::array::from_fn(|r| as_vec3(&s["cell"][r])),
            numbers: s["numbers"].as_array().unwrap().iter().map(|z| z.as_u64().unwrap() as u8).collect(),
            positions: s["positions"].as_array().unwrap().iter().map(as_vec3).collect(),
        };
        let expected = NeighborList {
            src: s["edge_src"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
            dst: s["edge_dst"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
            vectors: s["edge_vec"].as_array().unwrap().iter().map(as_vec3).collect(),
        };
        let actual = neighbor_list(&structure, 5.0, true);
        assert_sorted_by_src(&actual);
        assert_eq!(actual.len(), expected.len(), "structure {k}");
        assert_same_edges(&actual, &expected, 1e-6);
    }
}
