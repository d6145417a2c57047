//! The model's input: one graph per structure (atoms are nodes, periodic
//! neighbours within the cutoff are edges), and batches of graphs.
//!
//! Nodes store only Z; [`one_hot`] and [`mass_attributes`] expand them to the
//! model's two length-118 node vectors (column Z − 1 holds 1, or the atomic
//! mass in u), as the reference implementation does.

use rayon::prelude::*;

use super::dataset::Entry;
use crate::crystal::elements::atomic_mass;
use crate::crystal::neighbors::NeighborSearch;
use crate::crystal::symmetry::CrystalSystem;
use crate::e3::cartesian::Mat3;

/// Length of the node feature and attribute vectors: one column per element.
pub const NUM_ELEMENTS: usize = 118;

/// How graphs are built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphOptions {
    /// Neighbour cutoff, Å (default 5, as the paper).
    pub cutoff: f64,
    /// Include the edge i → i with a zero vector for every atom (default true,
    /// as the reference implementation).
    pub self_edges: bool,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self { cutoff: 5.0, self_edges: true }
    }
}

/// One structure as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// 0-based frame number in the source.
    pub frame: usize,
    pub id: Option<String>,
    /// Z of each node (atom).
    pub numbers: Vec<u8>,
    /// Edge e goes from node `edge_src[e]` to node `edge_dst[e]`.
    pub edge_src: Vec<u32>,
    pub edge_dst: Vec<u32>,
    /// r_dst − r_src + periodic shift, Å (zero for self-edges).
    pub edge_vec: Vec<[f64; 3]>,
    /// ε∞, symmetric Cartesian 3×3.
    pub target_cartesian: Mat3,
    /// ε∞ as irreps 0e+2e (6 numbers).
    pub target_irreps: [f64; 6],
    pub crystal_system: CrystalSystem,
}

impl Graph {
    pub fn num_nodes(&self) -> usize {
        self.numbers.len()
    }

    pub fn num_edges(&self) -> usize {
        self.edge_src.len()
    }
}

/// The graph of one data-set entry.
pub fn build_graph(entry: &Entry, options: &GraphOptions) -> Graph {
    graph_with(&mut NeighborSearch::new(), entry, options)
}

/// Graphs of all entries, in entry order, built on all cores.
pub fn build_graphs(entries: &[Entry], options: &GraphOptions) -> Vec<Graph> {
    entries.par_iter().map_init(NeighborSearch::new, |search, e| graph_with(search, e, options)).collect()
}

fn graph_with(search: &mut NeighborSearch, entry: &Entry, options: &GraphOptions) -> Graph {
    let edges = search.neighbor_list(&entry.structure, options.cutoff, options.self_edges);
    Graph {
        frame: entry.frame,
        id: entry.id.clone(),
        numbers: entry.structure.numbers.clone(),
        edge_src: edges.src,
        edge_dst: edges.dst,
        edge_vec: edges.vectors,
        target_cartesian: entry.tensor,
        target_irreps: entry.irreps,
        crystal_system: entry.crystal_system,
    }
}

/// One-hot node features, `numbers.len() × 118` row-major: 1 in column Z − 1.
pub fn one_hot(numbers: &[u8]) -> Vec<f64> {
    let mut out = vec![0.0; numbers.len() * NUM_ELEMENTS];
    for (row, &z) in out.chunks_exact_mut(NUM_ELEMENTS).zip(numbers) {
        row[usize::from(z) - 1] = 1.0;
    }
    out
}

/// Mass node attributes, `numbers.len() × 118` row-major: the atomic mass (u)
/// of Z in column Z − 1, zero elsewhere.
pub fn mass_attributes(numbers: &[u8]) -> Vec<f64> {
    let mut out = vec![0.0; numbers.len() * NUM_ELEMENTS];
    for (row, &z) in out.chunks_exact_mut(NUM_ELEMENTS).zip(numbers) {
        row[usize::from(z) - 1] = atomic_mass(z);
    }
    out
}

/// Several graphs as one disconnected graph: nodes and edges concatenated,
/// edge indices shifted by each graph's node offset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphBatch {
    /// Z of every node.
    pub numbers: Vec<u8>,
    /// Graph (position in the batch) of every node.
    pub node_graph: Vec<u32>,
    /// Nodes of graph g are `node_offsets[g]..node_offsets[g + 1]`.
    pub node_offsets: Vec<usize>,
    pub edge_src: Vec<u32>,
    pub edge_dst: Vec<u32>,
    /// Å.
    pub edge_vec: Vec<[f64; 3]>,
    /// Per graph: ε∞ Cartesian 3×3.
    pub targets_cartesian: Vec<Mat3>,
    /// Per graph: ε∞ irreps 0e+2e.
    pub targets_irreps: Vec<[f64; 6]>,
    pub crystal_systems: Vec<CrystalSystem>,
    /// Per graph: frame number in the source.
    pub frames: Vec<usize>,
}

impl GraphBatch {
    /// Batches `graphs` in the order given.
    pub fn new<'a>(graphs: impl IntoIterator<Item = &'a Graph>) -> Self {
        let mut batch = GraphBatch { node_offsets: vec![0], ..Default::default() };
        for (g, graph) in graphs.into_iter().enumerate() {
            let offset = batch.numbers.len() as u32;
            batch.numbers.extend_from_slice(&graph.numbers);
            batch.node_graph.extend(std::iter::repeat_n(g as u32, graph.num_nodes()));
            batch.node_offsets.push(batch.numbers.len());
            batch.edge_src.extend(graph.edge_src.iter().map(|&i| i + offset));
            batch.edge_dst.extend(graph.edge_dst.iter().map(|&i| i + offset));
            batch.edge_vec.extend_from_slice(&graph.edge_vec);
            batch.targets_cartesian.push(graph.target_cartesian);
            batch.targets_irreps.push(graph.target_irreps);
            batch.crystal_systems.push(graph.crystal_system);
            batch.frames.push(graph.frame);
        }
        batch
    }

    /// Batches the graphs at `positions` of `graphs`.
    pub fn select(graphs: &[Graph], positions: &[usize]) -> Self {
        Self::new(positions.iter().map(|&k| &graphs[k]))
    }

    pub fn num_graphs(&self) -> usize {
        self.targets_irreps.len()
    }

    pub fn num_nodes(&self) -> usize {
        self.numbers.len()
    }

    pub fn num_edges(&self) -> usize {
        self.edge_src.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crystal::Structure;

    fn entry(structure: Structure) -> Entry {
        let tensor = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        Entry {
            frame: 0,
            id: None,
            structure,
            tensor,
            irreps: crate::e3::cartesian::cartesian_to_irreps(&tensor),
            crystal_system: CrystalSystem::Cubic,
        }
    }

    /// Edges equal the reference implementation's on the fixture structures.
    #[test]
    fn edges_match_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/anisonet_tiny_forward.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vec3 = |v: &serde_json::Value| [0, 1, 2].map(|k| v[k].as_f64().unwrap());
        for s in fixture["structures"].as_array().unwrap() {
            let structure = Structure {
                lattice: [0, 1, 2].map(|k| vec3(&s["cell"][k])),
                numbers: s["numbers"].as_array().unwrap().iter().map(|z| z.as_u64().unwrap() as u8).collect(),
                positions: s["positions"].as_array().unwrap().iter().map(vec3).collect(),
            };
            let graph = build_graph(&entry(structure), &GraphOptions::default());
            let key = |src: u32, dst: u32, v: [f64; 3]| (src, dst, v.map(|x| (x * 1e6).round() as i64));
            let mut want: Vec<_> = (0..s["edge_src"].as_array().unwrap().len())
                .map(|e| {
                    let id = |name: &str| s[name][e].as_u64().unwrap() as u32;
                    key(id("edge_src"), id("edge_dst"), vec3(&s["edge_vec"][e]))
                })
                .collect();
            let mut got: Vec<_> = (0..graph.num_edges())
                .map(|e| key(graph.edge_src[e], graph.edge_dst[e], graph.edge_vec[e]))
                .collect();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn batch_offsets_nodes_and_edges() {
        let a = Structure {
            lattice: [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            numbers: vec![11],
            positions: vec![[0.0; 3]],
        };
        let b = Structure {
            lattice: [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]],
            numbers: vec![11, 17],
            positions: vec![[0.0; 3], [2.0, 2.0, 2.0]],
        };
        let graphs = [
            build_graph(&entry(a), &GraphOptions::default()),
            build_graph(&entry(b), &GraphOptions::default()),
        ];
        let batch = GraphBatch::new(&graphs);
        assert_eq!(batch.num_graphs(), 2);
        assert_eq!(batch.node_offsets, vec![0, 1, 3]);
        assert_eq!(batch.node_graph, vec![0, 1, 1]);
        assert_eq!(batch.num_edges(), graphs[0].num_edges() + graphs[1].num_edges());
        let first = graphs[0].num_edges();
        assert!(batch.edge_src[..first].iter().all(|&i| i == 0));
        assert!(batch.edge_src[first..].iter().chain(&batch.edge_dst[first..]).all(|&i| i == 1 || i == 2));
        assert_eq!(GraphBatch::select(&graphs, &[1]).numbers, vec![11, 17]);
        let attrs = mass_attributes(&batch.numbers);
        assert_eq!(attrs.len(), 3 * NUM_ELEMENTS);
        assert!((attrs[NUM_ELEMENTS + 10] - 22.98976928).abs() < 1e-6);
        assert_eq!(one_hot(&[17])[16], 1.0);
    }
}
