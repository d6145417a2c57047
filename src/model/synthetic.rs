//! Random graphs with the statistics of the MP dielectric data (for tests and
//! benchmarks that must run without the dataset): random elements and masses,
//! a self-edge per atom, and random neighbour vectors within the cutoff.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::input::ModelInput;

/// `num_graphs` structures of `atoms` atoms each; every atom receives
/// `edges_per_atom` incoming edges (one of them its zero-vector self-edge) from
/// random atoms of its structure, with random vectors of length < `cutoff` Å.
pub fn random_batch(
    seed: u64,
    num_graphs: usize,
    atoms: usize,
    edges_per_atom: usize,
    cutoff: f64,
) -> ModelInput {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut input = ModelInput { num_graphs, ..Default::default() };
    for g in 0..num_graphs {
        let base = input.numbers.len() as u32;
        // A few elements per structure, as in real crystals.
        let elements: Vec<u8> = (0..3).map(|_| rng.gen_range(1..=94)).collect();
        for _ in 0..atoms {
            let z = elements[rng.gen_range(0..elements.len())];
            input.numbers.push(z);
            input.masses.push(2.0 * z as f64 + 0.5);
            input.node_graph.push(g as u32);
        }
        for dst in 0..atoms as u32 {
            input.edge_src.push(base + dst);
            input.edge_dst.push(base + dst);
            input.edge_vec.push([0.0; 3]);
            for _ in 1..edges_per_atom {
                let v = loop {
                    let v: [f64; 3] = std::array::from_fn(|_| rng.gen_range(-cutoff..cutoff));
                    let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                    if r < cutoff && r > 0.5 {
                        break v;
                    }
                };
                input.edge_src.push(base + rng.gen_range(0..atoms as u32));
                input.edge_dst.push(base + dst);
                input.edge_vec.push(v);
            }
        }
    }
    input
}
