//! The model's input: a batch of crystal graphs, filled by the data layer.

use super::config::ModelError;
use crate::crystal::elements::{atomic_mass, is_valid};
use crate::crystal::neighbors::neighbor_list;
use crate::crystal::structure::Structure;

/// A batch of graphs. Nodes are atoms; edges `src → dst` carry
/// `edge_vec = r_dst − r_src + lattice shift` (Å); self-edges have a zero vector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelInput {
    /// Atomic number Z (1..=118) per node.
    pub numbers: Vec<u8>,
    /// Atomic mass (amu) per node: the node attribute at position Z.
    pub masses: Vec<f64>,
    /// Structure index of each node (0..num_graphs).
    pub node_graph: Vec<u32>,
    pub num_graphs: usize,
    pub edge_src: Vec<u32>,
    pub edge_dst: Vec<u32>,
    pub edge_vec: Vec<[f64; 3]>,
}

impl ModelInput {
    /// Consistency of lengths and indices; the network relies on it.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidInput(m));
        let n = self.numbers.len();
        if self.masses.len() != n || self.node_graph.len() != n {
            return bad(format!(
                "{n} atomic numbers but {} masses and {} graph indices",
                self.masses.len(),
                self.node_graph.len()
            ));
        }
        if let Some(z) = self.numbers.iter().find(|&&z| !(1..=118).contains(&z)) {
            return bad(format!("atomic number {z} outside 1..=118"));
        }
        if let Some(m) = self.masses.iter().find(|m| !m.is_finite()) {
            return bad(format!("atomic mass {m} is not finite"));
        }
        let mut seen = vec![false; self.num_graphs];
        for &g in &self.node_graph {
            match seen.get_mut(g as usize) {
                Some(s) => *s = true,
                None => return bad(format!("graph index {g} but only {} graphs", self.num_graphs)),
            }
        }
        if seen.iter().any(|s| !s) {
            return bad("a graph has no atoms".into());
        }
        let e = self.edge_src.len();
        if self.edge_dst.len() != e || self.edge_vec.len() != e {
            return bad(format!(
                "{e} edge sources but {} destinations and {} vectors",
                self.edge_dst.len(),
                self.edge_vec.len()
            ));
        }
        if let Some(i) = self.edge_src.iter().chain(&self.edge_dst).find(|&&i| i as usize >= n) {
            return bad(format!("edge endpoint {i} but only {n} atoms"));
        }
        if self.edge_vec.iter().flatten().any(|c| !c.is_finite()) {
            return bad("an edge vector is not finite".into());
        }
        Ok(())
    }

    /// The graph of one crystal: periodic neighbours closer than `cutoff` Å plus
    /// the zero-vector self-edge of every atom, masses from the IUPAC table.
    pub fn from_structure(structure: &Structure, cutoff: f64) -> Result<ModelInput, ModelError> {
        if let Some(z) = structure.numbers.iter().find(|&&z| !is_valid(z)) {
            return Err(ModelError::InvalidInput(format!("atomic number {z} outside 1..=118")));
        }
        let edges = neighbor_list(structure, cutoff, true);
        Ok(ModelInput {
            numbers: structure.numbers.clone(),
            masses: structure.numbers.iter().map(|&z| atomic_mass(z)).collect(),
            node_graph: vec![0; structure.numbers.len()],
            num_graphs: 1,
            edge_src: edges.src,
            edge_dst: edges.dst,
            edge_vec: edges.vectors,
        })
    }

    /// Concatenates graphs into one batch (node and graph indices shifted).
    pub fn batch(parts: &[ModelInput]) -> ModelInput {
        let mut out = ModelInput::default();
        for p in parts {
            let n0 = out.numbers.len() as u32;
            let g0 = out.num_graphs as u32;
            out.numbers.extend(&p.numbers);
            out.masses.extend(&p.masses);
            out.node_graph.extend(p.node_graph.iter().map(|g| g + g0));
            out.num_graphs += p.num_graphs;
            out.edge_src.extend(p.edge_src.iter().map(|i| i + n0));
            out.edge_dst.extend(p.edge_dst.iter().map(|i| i + n0));
            out.edge_vec.extend(&p.edge_vec);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_atom() -> ModelInput {
        ModelInput {
            numbers: vec![14],
            masses: vec![28.085],
            node_graph: vec![0],
            num_graphs: 1,
            edge_src: vec![0],
            edge_dst: vec![0],
            edge_vec: vec![[0.0; 3]],
        }
    }

    #[test]
    fn malformed_batches_are_errors_not_panics() {
        assert!(one_atom().validate().is_ok());
        let cases = [
            ModelInput { numbers: vec![0], ..one_atom() },
            ModelInput { masses: vec![], ..one_atom() },
            ModelInput { node_graph: vec![3], ..one_atom() },
            ModelInput { num_graphs: 2, ..one_atom() },
            ModelInput { edge_dst: vec![1], ..one_atom() },
            ModelInput { edge_vec: vec![[f64::NAN, 0.0, 0.0]], ..one_atom() },
            ModelInput { edge_vec: vec![], ..one_atom() },
        ];
        for c in cases {
            assert!(matches!(c.validate(), Err(ModelError::InvalidInput(_))), "{c:?}");
        }
    }

    #[test]
    fn batching_shifts_indices() {
        let b = ModelInput::batch(&[one_atom(), one_atom()]);
        assert_eq!(b.num_graphs, 2);
        assert_eq!(b.node_graph, vec![0, 1]);
        assert_eq!((b.edge_src.clone(), b.edge_dst.clone()), (vec![0, 1], vec![0, 1]));
        assert!(b.validate().is_ok());
    }
}
