//! From the data layer's graphs to the model's batches: [`ModelInput`], the
//! loss targets, and each epoch's seeded order of the training structures.

use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::crystal::elements::atomic_mass;
use crate::data::{Graph, GraphBatch};
use crate::e3::cartesian::{irreps_to_cartesian, Mat3};
use crate::model::{ModelInput, ModelKind};

/// The six independent Cartesian components, in the scalar model's order.
pub const CARTESIAN6: [(usize, usize); 6] = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];

/// The model's input for a batch of graphs: masses from the IUPAC table.
pub fn model_input(batch: &GraphBatch) -> ModelInput {
    ModelInput {
        numbers: batch.numbers.clone(),
        masses: batch.numbers.iter().map(|&z| atomic_mass(z)).collect(),
        node_graph: batch.node_graph.clone(),
        num_graphs: batch.num_graphs(),
        edge_src: batch.edge_src.clone(),
        edge_dst: batch.edge_dst.clone(),
        edge_vec: batch.edge_vec.clone(),
    }
}

/// (xx, yy, zz, xy, xz, yz) of a symmetric tensor.
pub fn cartesian6(t: &Mat3) -> [f64; 6] {
    CARTESIAN6.map(|(i, j)| t[i][j])
}

/// The 6 × 6 matrix `B` with `cartesian6(irreps_to_cartesian(x)) = x · B` for a
/// row of irreps 0e+2e: the scalar model's loss compares Cartesian components.
pub fn irreps_to_cartesian6_matrix() -> [[f64; 6]; 6] {
    let mut b = [[0.0; 6]; 6];
    for (k, row) in b.iter_mut().enumerate() {
        let mut unit = [0.0; 6];
        unit[k] = 1.0;
        *row = cartesian6(&irreps_to_cartesian(&unit));
    }
    b
}

/// The six numbers the loss compares for one structure, given ε as irreps
/// 0e+2e: the irreps themselves (equivariant model, as the paper) or the
/// Cartesian components xx, yy, zz, xy, xz, yz (scalar model, its raw output).
pub fn loss_components(kind: ModelKind, irreps: &[f64; 6]) -> [f64; 6] {
    match kind {
        ModelKind::Equivariant => *irreps,
        ModelKind::Scalar => cartesian6(&irreps_to_cartesian(irreps)),
    }
}

/// The training loss, the mean squared error of the [`loss_components`]
/// over a batch, and its gradient with respect to the model's outputs
/// (irreps 0e+2e per structure), in f64: the host's part of a training
/// step whose network runs where the parameters live.
pub fn mse_with_gradient(
    kind: ModelKind,
    outputs: &[[f64; 6]],
    targets: &[[f64; 6]],
) -> (f64, Vec<[f64; 6]>) {
    assert_eq!(outputs.len(), targets.len(), "one target per output");
    let count = (6 * outputs.len()) as f64;
    let b = irreps_to_cartesian6_matrix();
    let mut loss = 0.0;
    let grads = outputs
        .iter()
        .zip(targets)
        .map(|(out, target)| {
            let diff: [f64; 6] = std::array::from_fn(|j| loss_components(kind, out)[j] - target[j]);
            loss += diff.iter().map(|d| d * d).sum::<f64>();
            let g = diff.map(|d| 2.0 * d / count);
            match kind {
                ModelKind::Equivariant => g,
                ModelKind::Scalar => std::array::from_fn(|k| (0..6).map(|j| b[k][j] * g[j]).sum()),
            }
        })
        .collect();
    (loss / count, grads)
}

/// One batch ready for the model, with its targets in loss components.
#[derive(Clone, Debug)]
pub struct Batch {
    pub input: ModelInput,
    /// Per structure, the six target numbers of [`loss_components`].
    pub targets: Vec<[f64; 6]>,
    /// Positions of the structures in the data set's graph list.
    pub positions: Vec<usize>,
}

impl Batch {
    pub fn new(kind: ModelKind, graphs: &[Graph], positions: &[usize]) -> Batch {
        let batch = GraphBatch::select(graphs, positions);
        Batch {
            input: model_input(&batch),
            targets: batch.targets_irreps.iter().map(|t| loss_components(kind, t)).collect(),
            positions: positions.to_vec(),
        }
    }

    pub fn num_edges(&self) -> usize {
        self.input.edge_src.len()
    }
}

/// The order of `positions` in epoch `epoch`: Fisher–Yates with ChaCha8 seeded
/// by `seed` on stream `epoch`, so any epoch's order can be rebuilt on resume.
pub fn epoch_order(positions: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = positions.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e3::cartesian::cartesian_to_irreps;

    #[test]
    fn cartesian6_matrix_matches_the_change_of_basis() {
        let t = [[2.0, 0.3, -0.1], [0.3, 3.0, 0.7], [-0.1, 0.7, 4.0]];
        let x = cartesian_to_irreps(&t);
        let b = irreps_to_cartesian6_matrix();
        let via: [f64; 6] = std::array::from_fn(|c| (0..6).map(|k| x[k] * b[k][c]).sum());
        for (a, w) in via.iter().zip(cartesian6(&t)) {
            assert!((a - w).abs() < 1e-12);
        }
        assert_eq!(
            loss_components(ModelKind::Scalar, &x).map(|v| (v * 1e9).round()),
            via.map(|v| (v * 1e9).round())
        );
        assert_eq!(loss_components(ModelKind::Equivariant, &x), x);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let positions: Vec<usize> = (10..60).collect();
        let a = epoch_order(&positions, 7, 3);
        assert_eq!(a, epoch_order(&positions, 7, 3));
        assert_ne!(a, epoch_order(&positions, 7, 4));
        assert_ne!(a, epoch_order(&positions, 8, 3));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, positions);
    }
}
