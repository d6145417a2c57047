//! The edge tensor-product convolution on a [`Gpu`]: its tables, built once
//! per network and uploaded once, the graph's edge lists, and the launches
//! of its three kernels (forward, weight gradient, input gradient).
//!
//! The tables turn the instruction list into what a thread needs to own one
//! output element: which instruction, which m and which u it is. The
//! arithmetic, and its order, is that of [`crate::model::kernels`]'s
//! `tp_forward` / `tp_backward`, which the tests compare against.

use super::{
    ints, kernel, Accumulate, Buffer, Gpu, GpuError, GpuReal, KernelParams, Packing, Plain, Section, Slice,
};
use crate::model::arch::EdgeTp;
use crate::model::kernels::{EdgeIndex, TpTables};

/// One instruction as the kernels read it (`TpIns` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TpIns {
    pub x_off: i32,
    pub mul: i32,
    pub d1: i32,
    pub a_off: i32,
    pub d3: i32,
    pub w_off: i32,
    pub mid_off: i32,
    pub umid: i32,
}
// SAFETY: eight i32, no padding.
unsafe impl Plain for TpIns {}

/// The convolution kernels' parameters (`TpConvParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TpConvParams {
    pub h: u64,
    pub sh: u64,
    pub w: u64,
    pub g: u64,
    pub out: u64,
    pub edge_ptr: u64,
    pub edge_list: u64,
    pub edge_peer: u64,
    pub entry_ptr: u64,
    pub entry_sh: u64,
    pub entry_c: u64,
    pub ins: u64,
    pub pw: u64,
    pub elems: u64,
    pub block_ins_ptr: u64,
    pub block_ins: u64,
    pub nodes: i32,
    pub din: i32,
    pub dmid: i32,
    pub sh_dim: i32,
    pub nw: i32,
    pub a_len: i32,
    pub tile: i32,
    pub outputs: i32,
    pub accumulate: i32,
    pub unused: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for TpConvParams {
    const NAME: &'static str = "TpConvParams";
}

/// Shared memory a block may use for its tile of A_e (the GPU's default
/// per-block limit without opting in).
const SHARED_BYTES: usize = 48 << 10;

/// The tables of one convolution's tensor product, on the device.
pub struct TpConv<E> {
    din: usize,
    dmid: usize,
    nw: usize,
    sh_dim: usize,
    a_len: usize,
    /// Threads per block.
    block: u32,
    /// Edges per tile of A_e in shared memory.
    tile: usize,
    entry_ptr: Buffer<i32>,
    entry_sh: Buffer<i32>,
    entry_c: Buffer<E>,
    ins: Buffer<TpIns>,
    pw: Buffer<E>,
    /// (instruction, m3, u) of each neighbour-sum element, instruction −1 where none writes it.
    mid_elems: Buffer<i32>,
    /// (instruction, 0, u) of each weight.
    weight_elems: Buffer<i32>,
    /// (input block, m1, u) of each input element.
    input_elems: Buffer<i32>,
    block_ins_ptr: Buffer<i32>,
    block_ins: Buffer<i32>,
}

/// A batch's edges on the device: by destination (the stored order) and by source.
#[derive(Clone, Copy)]
pub struct TpGraph {
    nodes: usize,
    edges: usize,
    dst_ptr: Slice<i32>,
    src: Slice<i32>,
    src_ptr: Slice<i32>,
    by_src: Slice<i32>,
    dst: Slice<i32>,
}

/// Where [`TpGraph::pack`] put a batch's edge lists.
#[derive(Clone, Copy)]
pub struct TpGraphSections {
    nodes: usize,
    edges: usize,
    lists: [Section<i32>; 5],
}

impl TpGraph {
    /// The edge lists as sections of a packed upload.
    pub fn pack(packing: &mut Packing, edges: &EdgeIndex) -> TpGraphSections {
        let mut list = |v: &[usize]| packing.push(&ints(v.iter().copied()));
        TpGraphSections {
            nodes: edges.dst_ptr.len() - 1,
            edges: edges.src.len(),
            lists: [
                list(&edges.dst_ptr),
                list(&edges.src),
                list(&edges.src_ptr),
                list(&edges.by_src),
                list(&edges.dst),
            ],
        }
    }

    /// The edge lists in a buffer of their own (one upload).
    pub fn upload(gpu: &Gpu, edges: &EdgeIndex) -> Result<(Buffer<u8>, TpGraph), GpuError> {
        let mut packing = Packing::default();
        let sections = TpGraph::pack(&mut packing, edges);
        let buffer = gpu.upload_packed(&packing)?;
        let graph = sections.of(&buffer);
        Ok((buffer, graph))
    }
}

impl TpGraphSections {
    /// The graph inside `buffer`, the upload of its packing.
    pub fn of(&self, bytes: impl Into<Slice<u8>>) -> TpGraph {
        let bytes = bytes.into();
        let [dst_ptr, src, src_ptr, by_src, dst] = self.lists.map(|l| l.of(bytes));
        TpGraph { nodes: self.nodes, edges: self.edges, dst_ptr, src, src_ptr, by_src, dst }
    }
}

impl<E: GpuReal> TpConv<E> {
    /// `in_offsets`: the input irreps' block offsets; `scale`: 1/√num_neighbors;
    /// `block`: threads per block (results do not depend on it).
    pub fn new(
        gpu: &Gpu,
        tp: &EdgeTp,
        tables: &TpTables<E>,
        in_offsets: &[usize],
        din: usize,
        scale: E,
        block: u32,
    ) -> Result<TpConv<E>, GpuError> {
        let lmax_edge = tp.instructions.iter().map(|i| i.l_edge).max().unwrap_or(0);
        let sh_dim = (lmax_edge + 1) * (lmax_edge + 1);
        // A_e: each distinct (l1, l2, l3) as a d1 × d3 table, its terms by entry.
        let mut a_off = Vec::new();
        let (mut entry_ptr, mut entry_sh, mut entry_c) = (vec![0usize], Vec::new(), Vec::new());
        for triple in &tables.triples {
            let (l1, l2, l3) = triple.l;
            let (d1, d3) = (2 * l1 + 1, 2 * l3 + 1);
            a_off.push(entry_ptr.len() - 1);
            for m1 in 0..d1 {
                for m3 in 0..d3 {
                    // In the CPU kernel's order: increasing m2.
                    for &(n1, m2, n3, coef) in &triple.nonzeros {
                        if (n1 as usize, n3 as usize) == (m1, m3) {
                            entry_sh.push(l2 * l2 + m2 as usize);
                            entry_c.push(coef);
                        }
                    }
                    entry_ptr.push(entry_sh.len());
                }
            }
        }
        let a_len = entry_ptr.len() - 1;
        let mid_offsets = tp.irreps_mid.offsets();
        let dmid = tp.irreps_mid.dim();
        let nw = tp.weight_numel;
        let mut ins = Vec::new();
        let mut pw = Vec::new();
        let mut mid_elems = vec![[-1i32, 0, 0]; dmid];
        let mut weight_elems = vec![[-1i32, 0, 0]; nw];
        for (i, (s, &t)) in tp.instructions.iter().zip(&tables.triple_of).enumerate() {
            let umid = tp.irreps_mid.0[s.block_mid].mul;
            let record = TpIns {
                x_off: in_offsets[s.block_in] as i32,
                mul: s.mul as i32,
                d1: (2 * s.l_in + 1) as i32,
                a_off: a_off[t] as i32,
                d3: (2 * s.l_out + 1) as i32,
                w_off: s.weight_offset as i32,
                mid_off: (mid_offsets[s.block_mid] + s.u0) as i32,
                umid: umid as i32,
            };
            for m3 in 0..2 * s.l_out + 1 {
                for u in 0..s.mul {
                    let j = mid_offsets[s.block_mid] + m3 * umid + s.u0 + u;
                    assert_eq!(mid_elems[j][0], -1, "two instructions write neighbour-sum element {j}");
                    mid_elems[j] = [i as i32, m3 as i32, u as i32];
                }
            }
            for u in 0..s.mul {
                weight_elems[s.weight_offset + u] = [i as i32, 0, u as i32];
            }
            ins.push(record);
            pw.push(scale * E::of(s.path_weight));
        }
        // Input elements, and per input block the instructions reading it, in order.
        let blocks = in_offsets.len();
        let mut input_elems = vec![[0i32; 3]; din];
        let mut block_ins_ptr = vec![0usize];
        let mut block_ins = Vec::new();
        for b in 0..blocks {
            let readers: Vec<_> =
                tp.instructions.iter().enumerate().filter(|(_, s)| s.block_in == b).collect();
            block_ins.extend(readers.iter().map(|(i, _)| *i));
            block_ins_ptr.push(block_ins.len());
            let end = in_offsets.get(b + 1).copied().unwrap_or(din);
            let mul = readers.first().map(|(_, s)| s.mul);
            for (k, elem) in input_elems[in_offsets[b]..end].iter_mut().enumerate() {
                let (m1, u) = match mul {
                    Some(mul) => (k / mul, k % mul),
                    None => (0, 0),
                };
                *elem = [b as i32, m1 as i32, u as i32];
            }
        }
        let bytes_per_edge = a_len.max(1) * std::mem::size_of::<E>();
        let tile = (SHARED_BYTES / bytes_per_edge).clamp(1, 32);
        let flat = |v: Vec<[i32; 3]>| v.into_iter().flatten().collect::<Vec<i32>>();
        Ok(TpConv {
            din,
            dmid,
            nw,
            sh_dim,
            a_len,
            block,
            tile,
            entry_ptr: gpu.upload(&ints(entry_ptr))?,
            entry_sh: gpu.upload(&ints(entry_sh))?,
            entry_c: gpu.upload(&entry_c)?,
            ins: gpu.upload(&ins)?,
            pw: gpu.upload(&pw)?,
            mid_elems: gpu.upload(&flat(mid_elems))?,
            weight_elems: gpu.upload(&flat(weight_elems))?,
            input_elems: gpu.upload(&flat(input_elems))?,
            block_ins_ptr: gpu.upload(&ints(block_ins_ptr))?,
            block_ins: gpu.upload(&ints(block_ins))?,
        })
    }

    /// The same tables with another tile of edges in shared memory (results do not depend on it).
    pub fn with_tile(mut self, tile: usize) -> Self {
        self.tile = tile.max(1);
        self
    }

    fn params(&self, graph: &TpGraph) -> TpConvParams {
        TpConvParams {
            entry_ptr: self.entry_ptr.ptr(),
            entry_sh: self.entry_sh.ptr(),
            entry_c: self.entry_c.ptr(),
            ins: self.ins.ptr(),
            pw: self.pw.ptr(),
            block_ins_ptr: self.block_ins_ptr.ptr(),
            block_ins: self.block_ins.ptr(),
            nodes: graph.nodes as i32,
            din: self.din as i32,
            dmid: self.dmid as i32,
            sh_dim: self.sh_dim as i32,
            nw: self.nw as i32,
            a_len: self.a_len as i32,
            tile: self.tile as i32,
            ..TpConvParams::default()
        }
    }

    fn shared(&self) -> u32 {
        (self.tile * self.a_len * std::mem::size_of::<E>()) as u32
    }

    fn check(&self, graph: &TpGraph, h: Slice<E>, sh: Slice<E>, w: Slice<E>) {
        assert!(h.len() >= graph.nodes * self.din, "node inputs too short");
        assert!(sh.len() >= graph.edges * self.sh_dim, "spherical harmonics too short");
        assert!(w.len() >= graph.edges * self.nw, "edge weights too short");
    }

    /// mid = Σ over each node's incoming edges (one launch).
    pub fn forward(
        &self,
        gpu: &Gpu,
        graph: &TpGraph,
        h: Slice<E>,
        sh: Slice<E>,
        w: Slice<E>,
        mid: Slice<E>,
    ) -> Result<(), GpuError> {
        self.check(graph, h, sh, w);
        assert!(mid.len() >= graph.nodes * self.dmid, "neighbour sum too short");
        let params = TpConvParams {
            h: h.ptr(),
            sh: sh.ptr(),
            w: w.ptr(),
            out: mid.ptr(),
            edge_ptr: graph.dst_ptr.ptr(),
            edge_peer: graph.src.ptr(),
            elems: self.mid_elems.ptr(),
            outputs: self.dmid as i32,
            ..self.params(graph)
        };
        gpu.launch(&kernel::<E>("tp_conv_forward"), graph.nodes as u32, self.block, self.shared(), &params)
    }

    /// With the neighbour sum's gradient `g`: `dw` per edge (overwritten) and
    /// `dh` per node (written as its [`Accumulate`] says), two launches.
    pub fn backward(&self, gpu: &Gpu, graph: &TpGraph, args: TpConvBackward<E>) -> Result<(), GpuError> {
        let TpConvBackward { h, sh, w, g, dh: (dh, accumulate), dw } = args;
        self.check(graph, h, sh, w);
        assert!(g.len() >= graph.nodes * self.dmid && dh.len() >= graph.nodes * self.din);
        assert!(dw.len() >= graph.edges * self.nw, "weight gradient too short");
        let weight = TpConvParams {
            h: h.ptr(),
            sh: sh.ptr(),
            g: g.ptr(),
            out: dw.ptr(),
            edge_ptr: graph.dst_ptr.ptr(),
            edge_peer: graph.src.ptr(),
            elems: self.weight_elems.ptr(),
            outputs: self.nw as i32,
            ..self.params(graph)
        };
        gpu.launch(
            &kernel::<E>("tp_conv_weight_grad"),
            graph.nodes as u32,
            self.block,
            self.shared(),
            &weight,
        )?;
        let input = TpConvParams {
            sh: sh.ptr(),
            w: w.ptr(),
            g: g.ptr(),
            out: dh.ptr(),
            edge_ptr: graph.src_ptr.ptr(),
            edge_list: graph.by_src.ptr(),
            edge_peer: graph.dst.ptr(),
            elems: self.input_elems.ptr(),
            outputs: self.din as i32,
            accumulate: accumulate.flag(),
            ..self.params(graph)
        };
        gpu.launch(&kernel::<E>("tp_conv_input_grad"), graph.nodes as u32, self.block, self.shared(), &input)
    }
}

/// The inputs and gradients of [`TpConv::backward`].
#[derive(Clone, Copy)]
pub struct TpConvBackward<E> {
    /// The forward pass's node features, spherical harmonics and edge weights.
    pub h: Slice<E>,
    pub sh: Slice<E>,
    pub w: Slice<E>,
    /// The neighbour sum's gradient.
    pub g: Slice<E>,
    /// The node features' gradient.
    pub dh: (Slice<E>, Accumulate),
    /// The edge weights' gradient (overwritten).
    pub dw: Slice<E>,
}

#[cfg(test)]
mod tests;
