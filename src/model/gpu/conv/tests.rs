//! The emulated kernels against the fused CPU network's `tp_forward` and
//! `tp_backward`, on graphs with the hard cases, and against themselves
//! across block sizes and tiles.

use std::mem::{offset_of, size_of};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::arch::ConvArch;
use crate::model::gpu::emulated::c_layout;
use crate::model::kernels::{tp_backward, tp_forward, Real, TpCtx};
use crate::model::{Architecture, ModelConfig, ModelKind};

#[test]
fn parameter_structs_have_the_c_layout() {
    assert_eq!(
        c_layout("TpConvParams"),
        [
            size_of::<TpConvParams>(),
            offset_of!(TpConvParams, h),
            offset_of!(TpConvParams, sh),
            offset_of!(TpConvParams, w),
            offset_of!(TpConvParams, g),
            offset_of!(TpConvParams, out),
            offset_of!(TpConvParams, edge_ptr),
            offset_of!(TpConvParams, edge_list),
            offset_of!(TpConvParams, edge_peer),
            offset_of!(TpConvParams, entry_ptr),
            offset_of!(TpConvParams, entry_sh),
            offset_of!(TpConvParams, entry_c),
            offset_of!(TpConvParams, ins),
            offset_of!(TpConvParams, pw),
            offset_of!(TpConvParams, elems),
            offset_of!(TpConvParams, block_ins_ptr),
            offset_of!(TpConvParams, block_ins),
            offset_of!(TpConvParams, nodes),
            offset_of!(TpConvParams, din),
            offset_of!(TpConvParams, dmid),
            offset_of!(TpConvParams, sh_dim),
            offset_of!(TpConvParams, nw),
            offset_of!(TpConvParams, a_len),
            offset_of!(TpConvParams, tile),
            offset_of!(TpConvParams, outputs),
            offset_of!(TpConvParams, accumulate),
            offset_of!(TpConvParams, unused),
        ]
    );
    assert_eq!(
        c_layout("TpIns"),
        [
            size_of::<TpIns>(),
            offset_of!(TpIns, x_off),
            offset_of!(TpIns, mul),
            offset_of!(TpIns, d1),
            offset_of!(TpIns, a_off),
            offset_of!(TpIns, d3),
            offset_of!(TpIns, w_off),
            offset_of!(TpIns, mid_off),
            offset_of!(TpIns, umid),
        ]
    );
}

/// Edges grouped both ways, from (source, destination) pairs.
fn edge_index(nodes: usize, mut pairs: Vec<(usize, usize)>) -> EdgeIndex {
    pairs.sort_by_key(|&(s, d)| (d, s));
    let src: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    let dst: Vec<usize> = pairs.iter().map(|p| p.1).collect();
    let ptr = |key: &dyn Fn(usize) -> usize| {
        let mut p = vec![0usize; nodes + 1];
        for e in 0..pairs.len() {
            p[key(e) + 1] += 1;
        }
        for n in 0..nodes {
            p[n + 1] += p[n];
        }
        p
    };
    let dst_ptr = ptr(&|e| dst[e]);
    let src_ptr = ptr(&|e| src[e]);
    let mut by_src: Vec<usize> = (0..pairs.len()).collect();
    by_src.sort_by_key(|&e| (src[e], e));
    EdgeIndex { src, dst, dst_ptr, src_ptr, by_src }
}

/// Node 0 has no incoming edge, node 1 has 45 (more than a block of 32
/// threads), node 2 sends to itself, and the rest is random.
fn hard_graph(rng: &mut ChaCha8Rng) -> EdgeIndex {
    let nodes = 9;
    let mut pairs: Vec<(usize, usize)> = (0..45).map(|_| (rng.gen_range(0..nodes), 1)).collect();
    pairs.push((2, 2));
    for _ in 0..40 {
        pairs.push((rng.gen_range(0..nodes), rng.gen_range(2..nodes)));
    }
    edge_index(nodes, pairs)
}

fn random<E: Real>(rng: &mut ChaCha8Rng, len: usize) -> Vec<E> {
    (0..len).map(|_| E::of(rng.gen_range(-1.0..1.0))).collect()
}

fn convs(lmax: usize, kind: ModelKind) -> Vec<ConvArch> {
    let config = ModelConfig { kind, lmax, em_dim: 5, mul: 3, layers: 1, ..ModelConfig::default() };
    Architecture::new(&config).unwrap().convs
}

/// What a convolution computes on one graph: mid, dh (from a nonzero
/// start, as the kernel accumulates) and dw.
struct Results<E> {
    mid: Vec<E>,
    dh: Vec<E>,
    dw: Vec<E>,
}

struct Case<E> {
    conv: ConvArch,
    edges: EdgeIndex,
    h: Vec<E>,
    sh: Vec<E>,
    w: Vec<E>,
    g: Vec<E>,
    dh0: Vec<E>,
    scale: E,
}

impl<E: GpuReal> Case<E> {
    fn new(conv: ConvArch, edges: EdgeIndex, rng: &mut ChaCha8Rng) -> Case<E> {
        let n = edges.dst_ptr.len() - 1;
        let e = edges.src.len();
        let (din, dmid) = (conv.irreps_in.dim(), conv.tp.irreps_mid.dim());
        let sh_dim = {
            let l = conv.tp.instructions.iter().map(|i| i.l_edge).max().unwrap_or(0);
            (l + 1) * (l + 1)
        };
        let nw = conv.tp.weight_numel;
        Case {
            h: random(rng, n * din),
            sh: random(rng, e * sh_dim),
            w: random(rng, e * nw),
            g: random(rng, n * dmid),
            dh0: random(rng, n * din),
            scale: E::of(1.0 / 3.0f64.sqrt()),
            conv,
            edges,
        }
    }

    fn sh_dim(&self) -> usize {
        self.sh.len() / self.edges.src.len().max(1)
    }

    fn on_cpu(&self) -> Results<E> {
        let tables = TpTables::new(&self.conv.tp);
        let in_offsets = self.conv.irreps_in.offsets();
        let n = self.edges.dst_ptr.len() - 1;
        let ctx = TpCtx {
            tp: &self.conv.tp,
            tables: &tables,
            din: self.conv.irreps_in.dim(),
            in_offsets: &in_offsets,
            mid_offsets: self.conv.tp.irreps_mid.offsets(),
            h: &self.h,
            sh: &self.sh,
            sh_dim: self.sh_dim(),
            w: &self.w,
            edges: &self.edges,
            scale: self.scale,
            gmid: &self.g,
        };
        let mut mid = vec![E::zero(); n * self.conv.tp.irreps_mid.dim()];
        tp_forward(&ctx, &mut mid);
        let mut dh = self.dh0.clone();
        let mut dw = vec![E::zero(); self.w.len()];
        tp_backward(&ctx, &mut dh, &mut dw);
        Results { mid, dh, dw }
    }

    fn on_gpu(&self, gpu: &Gpu, block: u32, tile: Option<usize>) -> Results<E> {
        let tables = TpTables::new(&self.conv.tp);
        let din = self.conv.irreps_in.dim();
        let mut conv =
            TpConv::new(gpu, &self.conv.tp, &tables, &self.conv.irreps_in.offsets(), din, self.scale, block)
                .unwrap();
        if let Some(tile) = tile {
            conv = conv.with_tile(tile);
        }
        let (_edges, graph) = TpGraph::upload(gpu, &self.edges).unwrap();
        let n = self.edges.dst_ptr.len() - 1;
        let (h, sh, w, g) = (
            gpu.upload(&self.h).unwrap(),
            gpu.upload(&self.sh).unwrap(),
            gpu.upload(&self.w).unwrap(),
            gpu.upload(&self.g).unwrap(),
        );
        let mid = gpu.alloc::<E>(n * self.conv.tp.irreps_mid.dim()).unwrap();
        let dh = gpu.upload(&self.dh0).unwrap();
        let dw = gpu.alloc::<E>(self.w.len()).unwrap();
        let s = |b: &Buffer<E>| b.slice();
        conv.forward(gpu, &graph, s(&h), s(&sh), s(&w), s(&mid)).unwrap();
        let args = TpConvBackward {
            h: s(&h),
            sh: s(&sh),
            w: s(&w),
            g: s(&g),
            dh: (s(&dh), Accumulate::Add),
            dw: s(&dw),
        };
        conv.backward(gpu, &graph, args).unwrap();
        Results {
            mid: gpu.download(&mid).unwrap(),
            dh: gpu.download(&dh).unwrap(),
            dw: gpu.download(&dw).unwrap(),
        }
    }
}

/// Largest |a − b| / max(1, |b|).
fn worst<E: Real>(a: &[E], b: &[E]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x.to64() - y.to64()).abs() / y.to64().abs().max(1.0)).fold(0.0, f64::max)
}

fn parity<E: GpuReal>(tolerance: f64) {
    let gpu = Gpu::emulated();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
        // An equivariant model needs l_max ≥ 1 to reach its 2e output.
        let lowest = if kind == ModelKind::Scalar { 0 } else { 1 };
        for lmax in lowest..=4 {
            for (k, conv) in convs(lmax, kind).into_iter().enumerate() {
                let case = Case::<E>::new(conv, hard_graph(&mut rng), &mut rng);
                let (want, got) = (case.on_cpu(), case.on_gpu(&gpu, 32, None));
                for (what, a, b) in
                    [("mid", &got.mid, &want.mid), ("dh", &got.dh, &want.dh), ("dw", &got.dw, &want.dw)]
                {
                    let err = worst(a, b);
                    assert!(err <= tolerance, "{kind:?} l_max {lmax} conv {k}: {what} off by {err:e}");
                }
                assert!(want.mid.iter().any(|v| *v != E::zero()), "a trivial case");
            }
        }
    }
}

#[test]
fn the_emulated_kernels_match_the_cpu_network_in_f64() {
    parity::<f64>(1e-12);
}

#[test]
fn the_emulated_kernels_match_the_cpu_network_in_f32() {
    parity::<f32>(1e-5);
}

#[test]
fn results_are_bit_identical_across_block_sizes_and_tiles() {
    let gpu = Gpu::emulated();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let conv = convs(3, ModelKind::Equivariant).remove(1);
    let case = Case::<f64>::new(conv, hard_graph(&mut rng), &mut rng);
    let first = case.on_gpu(&gpu, 32, None);
    for (block, tile) in [(1, Some(1)), (7, Some(3)), (64, None), (256, Some(50))] {
        let other = case.on_gpu(&gpu, block, tile);
        let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same(&first.mid, &other.mid), "mid differs at {block} threads, tile {tile:?}");
        assert!(same(&first.dh, &other.dh), "dh differs at {block} threads, tile {tile:?}");
        assert!(same(&first.dw, &other.dw), "dw differs at {block} threads, tile {tile:?}");
    }
}

#[test]
fn one_launch_forward_two_backward_and_no_transfer_between() {
    let gpu = Gpu::emulated();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let case = Case::<f64>::new(convs(2, ModelKind::Equivariant).remove(0), hard_graph(&mut rng), &mut rng);
    let before = gpu.counts();
    case.on_gpu(&gpu, 64, None);
    let after = gpu.counts();
    assert_eq!(after.launches - before.launches, 3);
    assert_eq!(after.downloads - before.downloads, 3, "the three results only");
}

#[test]
fn bad_launches_are_errors() {
    let gpu = Gpu::emulated();
    let p = TpConvParams::default();
    let err = gpu.launch("no_such_kernel", 1, 32, 0, &p).unwrap_err();
    assert!(err.to_string().contains("no such kernel"), "{err}");
    let err = gpu.launch("tp_conv_forward_f64", 1, 2048, 0, &p).unwrap_err();
    assert!(err.to_string().contains("2048 threads"), "{err}");
}
