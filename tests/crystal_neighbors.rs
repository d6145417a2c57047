//! Periodic neighbour lists: the reference implementation's edges, brute-force
//! agreement on random triclinic cells, and invariance under rotation,
//! translation and change of cell.

use anisostudy::crystal::neighbors::{
    brute_force_neighbor_list, neighbor_list, NeighborList, NeighborSearch,
};
use anisostudy::crystal::Structure;
use proptest::prelude::*;

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

/// A triclinic cell from lengths (Å) and angles (degrees), then rotated by the
/// unit quaternion `q` so no axis is special; `None` for a degenerate cell.
fn cell(lengths: [f64; 3], angles: [f64; 3], q: [f64; 4]) -> Option<[[f64; 3]; 3]> {
    let [a, b, c] = lengths;
    let [alpha, beta, gamma] = angles.map(f64::to_radians);
    let cx = c * beta.cos();
    let cy = c * (alpha.cos() - beta.cos() * gamma.cos()) / gamma.sin();
    let cz2 = c * c - cx * cx - cy * cy;
    if cz2 < (0.2 * c) * (0.2 * c) {
        return None;
    }
    let rows = [[a, 0.0, 0.0], [b * gamma.cos(), b * gamma.sin(), 0.0], [cx, cy, cz2.sqrt()]];
    let r = rotation(q);
    Some(rows.map(|v| rotate(&r, v)))
}

fn rotation(q: [f64; 4]) -> [[f64; 3]; 3] {
    let n = q.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    let [w, x, y, z] = q.map(|v| v / n);
    [
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
        [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
        [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)],
    ]
}

fn rotate(r: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2])
}

fn structure(lattice: [[f64; 3]; 3], fractional: &[[f64; 3]]) -> Structure {
    let mut s = Structure { lattice, numbers: vec![6; fractional.len()], positions: vec![] };
    s.positions = fractional.iter().map(|&f| s.to_cartesian(f)).collect();
    s
}

/// Sorted edge lengths of each atom (self-edge excluded).
fn lengths_per_atom(s: &Structure, cutoff: f64) -> Vec<Vec<f64>> {
    let list = neighbor_list(s, cutoff, false);
    let mut per_atom = vec![Vec::new(); s.len()];
    for (e, &src) in list.src.iter().enumerate() {
        let v = list.vectors[e];
        per_atom[src as usize].push((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt());
    }
    per_atom.iter_mut().for_each(|l| l.sort_by(f64::total_cmp));
    per_atom
}

/// Equal up to rounding, ignoring lengths within `slack` of the cutoff (which
/// rounding may put on either side of it).
fn same_lengths(a: &[f64], b: &[f64], cutoff: f64) -> bool {
    let slack = 1e-9;
    let keep = |l: &[f64]| l.iter().copied().filter(|&x| x < cutoff - slack).collect::<Vec<_>>();
    let (a, b) = (keep(a), keep(b));
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-9)
}

/// Edges of the cell list and of the brute-force search agree as multisets
/// (up to edges within 1e-9 Å of the cutoff).
fn assert_matches_brute_force(s: &Structure, cutoff: f64, self_edges: bool) -> Result<(), TestCaseError> {
    let fast = NeighborSearch::new().neighbor_list(s, cutoff, self_edges);
    let slow = brute_force_neighbor_list(s, cutoff, self_edges);
    assert_sorted_by_src(&fast);
    let clear = |l: &NeighborList| {
        let mut out = NeighborList::new();
        for e in 0..l.len() {
            let v = l.vectors[e];
            if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt() < cutoff - 1e-9 {
                out.src.push(l.src[e]);
                out.dst.push(l.dst[e]);
                out.vectors.push(v);
            }
        }
        out
    };
    let (fast, slow) = (clear(&fast), clear(&slow));
    prop_assert_eq!(fast.len(), slow.len());
    assert_same_edges(&fast, &slow, 1e-9);
    Ok(())
}

fn atoms(max: usize) -> impl Strategy<Value = Vec<[f64; 3]>> {
    prop::collection::vec(prop::array::uniform3(-0.5..1.5f64), 1..=max)
}

fn quaternion() -> impl Strategy<Value = [f64; 4]> {
    prop::array::uniform4(-1.0..1.0f64)
        .prop_filter("non-zero", |q| q.iter().map(|x| x * x).sum::<f64>() > 0.01)
}

/// A random integer matrix with determinant ±1: a product of shears and a swap.
fn unimodular() -> impl Strategy<Value = [[i64; 3]; 3]> {
    (prop::collection::vec((0..3usize, 0..3usize, -2..=2i64), 1..6), any::<bool>()).prop_map(
        |(shears, swap)| {
            let mut m = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
            for (i, j, k) in shears {
                if i != j {
                    let row = m[j];
                    for c in 0..3 {
                        m[i][c] += k * row[c];
                    }
                }
            }
            if swap {
                m.swap(0, 1);
            }
            m
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn cell_list_matches_brute_force(
        lengths in prop::array::uniform3(0.7..9.0f64),
        angles in prop::array::uniform3(55.0..125.0f64),
        q in quaternion(),
        fractional in atoms(6),
        cutoff in 0.5..6.0f64,
        self_edges in any::<bool>(),
    ) {
        let Some(lattice) = cell(lengths, angles, q) else { return Ok(()) };
        assert_matches_brute_force(&structure(lattice, &fractional), cutoff, self_edges)?;
    }

    #[test]
    fn cell_list_matches_brute_force_on_large_skewed_cells(
        lengths in prop::array::uniform3(4.0..22.0f64),
        angles in prop::array::uniform3(55.0..125.0f64),
        q in quaternion(),
        u in unimodular(),
        fractional in atoms(40),
        cutoff in 1.0..5.5f64,
    ) {
        let Some(lattice) = cell(lengths, angles, q) else { return Ok(()) };
        let s = structure(lattice, &fractional);
        // The same crystal in a skewed basis: many bins, thin planes.
        let skewed = std::array::from_fn(|i| std::array::from_fn(|c| (0..3).map(|k| u[i][k] as f64 * lattice[k][c]).sum()));
        assert_matches_brute_force(&Structure { lattice: skewed, ..s }, cutoff, true)?;
    }

    #[test]
    fn edge_lengths_are_invariant_under_rotation_translation_and_change_of_cell(
        lengths in prop::array::uniform3(1.5..8.0f64),
        angles in prop::array::uniform3(60.0..120.0f64),
        q in quaternion(),
        spin in quaternion(),
        shift in prop::array::uniform3(-20.0..20.0f64),
        u in unimodular(),
        repeat in prop::array::uniform3(1..=2usize),
        fractional in atoms(5),
        cutoff in 1.0..5.0f64,
    ) {
        let Some(lattice) = cell(lengths, angles, q) else { return Ok(()) };
        let s = structure(lattice, &fractional);
        let reference = lengths_per_atom(&s, cutoff);

        // Rigid motion: rotate cell and atoms, then translate the atoms.
        let r = rotation(spin);
        let moved = Structure {
            lattice: s.lattice.map(|v| rotate(&r, v)),
            numbers: s.numbers.clone(),
            positions: s.positions.iter().map(|&p| {
                let p = rotate(&r, p);
                [p[0] + shift[0], p[1] + shift[1], p[2] + shift[2]]
            }).collect(),
        };
        for (a, b) in lengths_per_atom(&moved, cutoff).iter().zip(&reference) {
            prop_assert!(same_lengths(a, b, cutoff), "rigid motion changed {:?} into {:?}", b, a);
        }

        // Another basis of the same lattice.
        let rebased = Structure {
            lattice: std::array::from_fn(|i| std::array::from_fn(|c| (0..3).map(|k| u[i][k] as f64 * lattice[k][c]).sum())),
            ..s.clone()
        };
        for (a, b) in lengths_per_atom(&rebased, cutoff).iter().zip(&reference) {
            prop_assert!(same_lengths(a, b, cutoff), "change of basis changed {:?} into {:?}", b, a);
        }

        // A supercell: every copy of an atom has the original atom's neighbours.
        let mut supercell = Structure {
            lattice: std::array::from_fn(|k| lattice[k].map(|x| x * repeat[k] as f64)),
            numbers: vec![],
            positions: vec![],
        };
        let mut original = vec![];
        for i in 0..repeat[0] {
            for j in 0..repeat[1] {
                for k in 0..repeat[2] {
                    for (atom, f) in fractional.iter().enumerate() {
                        let g = [f[0] + i as f64, f[1] + j as f64, f[2] + k as f64];
                        supercell.positions.push(s.to_cartesian(g));
                        supercell.numbers.push(6);
                        original.push(atom);
                    }
                }
            }
        }
        for (a, &atom) in lengths_per_atom(&supercell, cutoff).iter().zip(&original) {
            prop_assert!(same_lengths(a, &reference[atom], cutoff), "supercell changed {:?} into {:?}", reference[atom], a);
        }
    }
}

#[test]
fn long_axis_with_vacuum_and_tiny_cells() {
    // A layer with 20 Å of vacuum along c.
    let layer = structure(
        [[3.2, 0.0, 0.0], [-1.6, 2.77, 0.0], [0.0, 0.0, 24.0]],
        &[[1.0 / 3.0, 2.0 / 3.0, 0.1], [2.0 / 3.0, 1.0 / 3.0, 0.16], [0.0, 0.0, 0.04]],
    );
    assert_matches_brute_force(&layer, 5.0, true).unwrap();
    // A cell far smaller than the cutoff: thousands of images per atom.
    let tiny = structure([[0.9, 0.1, 0.0], [0.2, 1.1, 0.1], [0.0, -0.3, 0.8]], &[[0.0; 3], [0.5, 0.4, 0.3]]);
    assert_matches_brute_force(&tiny, 5.0, true).unwrap();
    // One atom in a cubic cell: the shells of the simple cubic lattice.
    let cubic = structure([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], &[[0.2, 0.7, 0.1]]);
    let count = neighbor_list(&cubic, 2.05, false).len();
    let expected = (-2i32..=2)
        .flat_map(|x| (-2i32..=2).flat_map(move |y| (-2i32..=2).map(move |z| x * x + y * y + z * z)))
        .filter(|&d2| d2 > 0 && (d2 as f64) < 2.05 * 2.05)
        .count();
    assert_eq!(count, expected);
}

#[test]
fn reused_buffers_give_the_same_lists() {
    let a = structure(
        [[4.0, 0.0, 0.0], [0.0, 4.5, 0.0], [0.3, 0.0, 5.0]],
        &[[0.0; 3], [0.5, 0.5, 0.5], [0.1, 0.7, 0.3]],
    );
    let b = structure([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 9.0]], &[[0.1, 0.2, 0.3]]);
    let mut search = NeighborSearch::new();
    let mut out = NeighborList::new();
    for s in [&a, &b, &a] {
        search.fill(s, 5.0, true, &mut out);
        assert_eq!(out, neighbor_list(s, 5.0, true));
    }
}
