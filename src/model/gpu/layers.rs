//! The launches of the network's other layers on a [`Gpu`]: the embedding,
//! the radial MLP, the gates and the pooling (kernels in anisonet.cu), and
//! the gate's element tables, built once from the architecture.
//!
//! Each is one thread per output element, its sum in the order of
//! [`crate::model::network`], which the engine's tests compare against.

use super::{grid, kernel, Buffer, Gpu, GpuError, GpuReal, KernelParams, Slice, BLOCK};
use crate::model::arch::{Act, GateArch};
use crate::model::normalize::Normalize2Mom;

/// The embedding kernels' parameters (`EmbedParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbedParams {
    pub weight: u64,
    pub bias: u64,
    pub species_z: u64,
    pub species_mass: u64,
    pub species_of: u64,
    pub species_ptr: u64,
    pub species_nodes: u64,
    pub x0_pre: u64,
    pub z_pre: u64,
    pub z: u64,
    pub x: u64,
    pub gx: u64,
    pub dz: u64,
    pub masked: u64,
    pub dweight: u64,
    pub dbias: u64,
    pub em: i32,
    pub elements: i32,
    pub species: i32,
    pub nodes: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for EmbedParams {
    const NAME: &'static str = "EmbedParams";
}

/// The radial MLP kernels' parameters (`MlpParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MlpParams {
    pub input: u64,
    pub weight: u64,
    pub out: u64,
    pub pre: u64,
    pub g: u64,
    pub partial: u64,
    pub alpha: f64,
    pub silu: f64,
    pub rows: i32,
    pub inner: i32,
    pub cols: i32,
    pub k_chunk: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for MlpParams {
    const NAME: &'static str = "MlpParams";
}

/// The gate kernels' parameters (`GateParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GateParams {
    pub x: u64,
    pub out: u64,
    pub g: u64,
    pub elems: u64,
    pub silu: f64,
    pub tanh: f64,
    pub sigmoid: f64,
    pub nodes: i32,
    pub din: i32,
    pub dout: i32,
    pub unused: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for GateParams {
    const NAME: &'static str = "GateParams";
}

/// The pooling kernels' parameters (`PoolParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolParams {
    pub x: u64,
    pub raw: u64,
    pub gx: u64,
    pub graph_ptr: u64,
    pub graph_nodes: u64,
    pub node_graph: u64,
    pub graphs: i32,
    pub nodes: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for PoolParams {
    const NAME: &'static str = "PoolParams";
}

/// A batch's species and their nodes, as the embedding reads them.
#[derive(Clone, Copy)]
pub struct Species<E> {
    /// Z − 1 of each species.
    pub z: Slice<i32>,
    pub mass: Slice<E>,
    pub of: Slice<i32>,
    /// The nodes of species s: `nodes[ptr[s]..ptr[s + 1]]`.
    pub ptr: Slice<i32>,
    pub nodes: Slice<i32>,
}

/// What the embedding writes per species: pre-activations and the node attributes.
#[derive(Clone, Copy)]
pub struct Embedded<E> {
    pub x0_pre: Slice<E>,
    pub z_pre: Slice<E>,
    pub z: Slice<E>,
}

/// The embedding: per species x0_pre, z_pre and z = relu(z_pre); per node relu(x0_pre) (one launch).
pub fn embed_forward<E: GpuReal>(
    gpu: &Gpu,
    (weight, bias): (Slice<E>, Slice<E>),
    species: Species<E>,
    embedded: Embedded<E>,
    x: Slice<E>,
) -> Result<(), GpuError> {
    let (em, count, nodes) = (bias.len(), species.z.len(), species.of.len());
    assert!(embedded.z.len() >= count * em && x.len() >= nodes * em);
    let params = EmbedParams {
        weight: weight.ptr(),
        bias: bias.ptr(),
        species_z: species.z.ptr(),
        species_mass: species.mass.ptr(),
        species_of: species.of.ptr(),
        x0_pre: embedded.x0_pre.ptr(),
        z_pre: embedded.z_pre.ptr(),
        z: embedded.z.ptr(),
        x: x.ptr(),
        em: em as i32,
        elements: (weight.len() / em.max(1)) as i32,
        species: count as i32,
        nodes: nodes as i32,
        ..EmbedParams::default()
    };
    gpu.launch(&kernel::<E>("embed_forward"), grid((count + nodes) * em), BLOCK, 0, &params)
}

/// The gradients [`embed_backward`] starts from, its workspace, and what it writes.
#[derive(Clone, Copy)]
pub struct EmbedGrads<E> {
    /// The node features' gradient.
    pub gx: Slice<E>,
    /// The attributes' gradient.
    pub dz: Slice<E>,
    /// Workspace of 2 · species · em values.
    pub masked: Slice<E>,
    /// The parameters' gradients (overwritten, every element).
    pub dweight: Slice<E>,
    pub dbias: Slice<E>,
}

/// The embedding's parameter gradients from the node features' and the
/// attributes' gradients (two launches).
pub fn embed_backward<E: GpuReal>(
    gpu: &Gpu,
    species: Species<E>,
    embedded: Embedded<E>,
    grads: EmbedGrads<E>,
) -> Result<(), GpuError> {
    let EmbedGrads { gx, dz, masked, dweight, dbias } = grads;
    let (em, count) = (dbias.len(), species.z.len());
    assert!(masked.len() >= 2 * count * em && dz.len() >= count * em);
    let params = EmbedParams {
        species_z: species.z.ptr(),
        species_mass: species.mass.ptr(),
        species_ptr: species.ptr.ptr(),
        species_nodes: species.nodes.ptr(),
        x0_pre: embedded.x0_pre.ptr(),
        z_pre: embedded.z_pre.ptr(),
        gx: gx.ptr(),
        dz: dz.ptr(),
        masked: masked.ptr(),
        dweight: dweight.ptr(),
        dbias: dbias.ptr(),
        em: em as i32,
        elements: (dweight.len() / em.max(1)) as i32,
        species: count as i32,
        nodes: species.of.len() as i32,
        ..EmbedParams::default()
    };
    gpu.launch(&kernel::<E>("embed_species_grad"), grid(count * em), BLOCK, 0, &params)?;
    gpu.launch(&kernel::<E>("embed_param_grad"), grid(dweight.len() + em), BLOCK, 0, &params)
}

/// The tiled GEMM's shape in anisonet.cu: a block of `GEMM_THREADS` owns a
/// `GEMM_TILE`² tile of the product, with slabs of `GEMM_K` in shared memory.
const GEMM_TILE: usize = 32;
const GEMM_K: usize = 16;
const GEMM_THREADS: u32 = 128;

/// Edges one block of the weight gradient sums (a constant: the chunks'
/// sums are added in order, so it sets the result's rounding).
pub const MLP_EDGE_CHUNK: usize = 2048;

/// The chunks of `rows` edges the weight gradient sums separately (1: none).
pub fn mlp_chunks(rows: usize) -> usize {
    if rows > MLP_EDGE_CHUNK {
        rows.div_ceil(MLP_EDGE_CHUNK)
    } else {
        1
    }
}

/// Launches kernel `name` over the tiles of an `m × n` product, each tile
/// once per chunk of `chunks`.
fn launch_gemm<E: GpuReal>(
    gpu: &Gpu,
    name: &str,
    (m, n, chunks): (usize, usize, usize),
    params: &MlpParams,
) -> Result<(), GpuError> {
    let blocks = m.div_ceil(GEMM_TILE) * n.div_ceil(GEMM_TILE) * chunks;
    // Two slabs of GEMM_K rows, each padded by one (GEMM_LD in anisonet.cu).
    let shared = 2 * GEMM_K * (GEMM_TILE + 1) * std::mem::size_of::<E>();
    gpu.launch(&kernel::<E>(name), blocks.min(1 << 16) as u32, GEMM_THREADS, shared as u32, params)
}

/// One layer of the radial MLP over `rows` edges.
#[derive(Clone, Copy)]
pub struct MlpLayer<E> {
    pub input: Slice<E>,
    pub weight: Slice<E>,
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
}

impl<E: GpuReal> MlpLayer<E> {
    fn params(&self, norm: &Normalize2Mom) -> MlpParams {
        MlpParams {
            input: self.input.ptr(),
            weight: self.weight.ptr(),
            alpha: 1.0 / (self.inner as f64).sqrt(),
            silu: norm.silu,
            rows: self.rows as i32,
            inner: self.inner as i32,
            cols: self.cols as i32,
            k_chunk: MLP_EDGE_CHUNK as i32,
            ..MlpParams::default()
        }
    }

    /// out = x W / √inner, through SiLU where `pre` (then written) is given (one launch).
    pub fn forward(
        &self,
        gpu: &Gpu,
        norm: &Normalize2Mom,
        out: Slice<E>,
        pre: Option<Slice<E>>,
    ) -> Result<(), GpuError> {
        assert!(self.input.len() >= self.rows * self.inner && out.len() >= self.rows * self.cols);
        let params = MlpParams { out: out.ptr(), pre: pre.map_or(0, |p| p.ptr()), ..self.params(norm) };
        launch_gemm::<E>(gpu, "mlp_forward", (self.rows, self.cols, 1), &params)
    }

    /// Values of the weight gradient's per-chunk sums (0 where the edges are one chunk).
    pub fn partial_len(&self) -> usize {
        Self::partial_len_of(self.rows, self.inner, self.cols)
    }

    /// [`MlpLayer::partial_len`] of a layer of that shape.
    pub fn partial_len_of(rows: usize, inner: usize, cols: usize) -> usize {
        match mlp_chunks(rows) {
            1 => 0,
            chunks => chunks * inner * cols,
        }
    }

    /// dW (overwritten) from the output's gradient `g`, through `partial`
    /// ([`MlpLayer::partial_len`] values) where the edges are several
    /// chunks; with `input_grad` (the gradient to write and the input's
    /// pre-activations), the input's gradient through the SiLU before it
    /// (one to three launches).
    pub fn backward(
        &self,
        gpu: &Gpu,
        norm: &Normalize2Mom,
        g: Slice<E>,
        (dweight, partial): (Slice<E>, Slice<E>),
        input_grad: Option<(Slice<E>, Slice<E>)>,
    ) -> Result<(), GpuError> {
        assert!(g.len() >= self.rows * self.cols && dweight.len() >= self.inner * self.cols);
        assert!(partial.len() >= self.partial_len(), "room for the chunks' sums");
        let base = MlpParams { g: g.ptr(), ..self.params(norm) };
        let params = MlpParams { out: dweight.ptr(), partial: partial.ptr(), ..base };
        let chunks = mlp_chunks(self.rows);
        launch_gemm::<E>(gpu, "mlp_weight_grad", (self.inner, self.cols, chunks), &params)?;
        if chunks > 1 {
            let size = self.inner * self.cols;
            gpu.launch(&kernel::<E>("mlp_weight_grad_sum"), grid(size), BLOCK, 0, &params)?;
        }
        if let Some((gin, pre)) = input_grad {
            assert!(gin.len() >= self.rows * self.inner && pre.len() >= self.rows * self.inner);
            let params = MlpParams { out: gin.ptr(), pre: pre.ptr(), ..base };
            launch_gemm::<E>(gpu, "mlp_input_grad", (self.rows, self.inner, 1), &params)?;
        }
        Ok(())
    }
}

fn act_code(a: Act) -> i32 {
    match a {
        Act::Silu => 0,
        Act::Tanh => 1,
        Act::Sigmoid => 2,
    }
}

/// One gate's element tables on the device.
pub struct GateTables {
    din: usize,
    dout: usize,
    forward: Buffer<i32>,
    backward: Buffer<i32>,
}

impl GateTables {
    pub fn new(gpu: &Gpu, gate: &GateArch, din: usize) -> Result<GateTables, GpuError> {
        let dout = gate.irreps_out.dim();
        let mut forward = Vec::with_capacity(3 * dout);
        let mut backward = vec![[0i32; 6]; din];
        for &(off, count, a) in &gate.scalars {
            for i in 0..count {
                backward[off + i] = [0, act_code(a), (forward.len() / 3) as i32, 0, 0, 0];
                forward.extend([(off + i) as i32, -1, act_code(a)]);
            }
        }
        for (&(goff, _, a), &(off, b)) in gate.gates.iter().zip(&gate.gated) {
            let o = forward.len() / 3;
            for m in 0..b.ir.dim() {
                for u in 0..b.mul {
                    let (i, j) = (off + m * b.mul + u, o + m * b.mul + u);
                    backward[i] = [1, act_code(a), j as i32, (goff + u) as i32, 0, 0];
                    forward.extend([i as i32, (goff + u) as i32, act_code(a)]);
                }
            }
            for u in 0..b.mul {
                backward[goff + u] =
                    [2, act_code(a), (o + u) as i32, (off + u) as i32, b.ir.dim() as i32, b.mul as i32];
            }
        }
        assert_eq!(forward.len(), 3 * dout, "gate outputs");
        Ok(GateTables {
            din,
            dout,
            forward: gpu.upload(&forward)?,
            backward: gpu.upload(&backward.concat())?,
        })
    }

    fn params(&self, norm: &Normalize2Mom, nodes: usize) -> GateParams {
        GateParams {
            silu: norm.silu,
            tanh: norm.tanh,
            sigmoid: norm.sigmoid,
            nodes: nodes as i32,
            din: self.din as i32,
            dout: self.dout as i32,
            ..GateParams::default()
        }
    }

    /// y = Gate(x) for `nodes` nodes (one launch).
    pub fn forward<E: GpuReal>(
        &self,
        gpu: &Gpu,
        norm: &Normalize2Mom,
        nodes: usize,
        x: Slice<E>,
        y: Slice<E>,
    ) -> Result<(), GpuError> {
        assert!(x.len() >= nodes * self.din && y.len() >= nodes * self.dout);
        let params =
            GateParams { x: x.ptr(), out: y.ptr(), elems: self.forward.ptr(), ..self.params(norm, nodes) };
        gpu.launch(&kernel::<E>("gate_forward"), grid(nodes * self.dout), BLOCK, 0, &params)
    }

    /// dx (overwritten) from the output's gradient `g` (one launch).
    pub fn backward<E: GpuReal>(
        &self,
        gpu: &Gpu,
        norm: &Normalize2Mom,
        nodes: usize,
        x: Slice<E>,
        g: Slice<E>,
        dx: Slice<E>,
    ) -> Result<(), GpuError> {
        assert!(g.len() >= nodes * self.dout && dx.len() >= nodes * self.din);
        let params = GateParams {
            x: x.ptr(),
            g: g.ptr(),
            out: dx.ptr(),
            elems: self.backward.ptr(),
            ..self.params(norm, nodes)
        };
        gpu.launch(&kernel::<E>("gate_backward"), grid(nodes * self.din), BLOCK, 0, &params)
    }
}

/// A batch's structures and their nodes, as the pooling reads them.
#[derive(Clone, Copy)]
pub struct Graphs {
    /// The nodes of structure g: `nodes[ptr[g]..ptr[g + 1]]`.
    pub ptr: Slice<i32>,
    pub nodes: Slice<i32>,
    pub node_graph: Slice<i32>,
}

impl Graphs {
    fn params(&self) -> PoolParams {
        PoolParams {
            graph_ptr: self.ptr.ptr(),
            graph_nodes: self.nodes.ptr(),
            node_graph: self.node_graph.ptr(),
            graphs: (self.ptr.len() - 1) as i32,
            nodes: self.node_graph.len() as i32,
            ..PoolParams::default()
        }
    }

    /// raw[g] = the mean of the six head outputs over g's nodes, in f64 (one launch).
    pub fn pool<E: GpuReal>(&self, gpu: &Gpu, x: Slice<E>, raw: Slice<f64>) -> Result<(), GpuError> {
        let params = PoolParams { x: x.ptr(), raw: raw.ptr(), ..self.params() };
        assert!(x.len() >= 6 * params.nodes as usize && raw.len() >= 6 * params.graphs as usize);
        gpu.launch(&kernel::<E>("pool_forward"), grid(6 * params.graphs as usize), BLOCK, 0, &params)
    }

    /// gx[n] = graw[g(n)] / |g(n)| (one launch).
    pub fn unpool<E: GpuReal>(&self, gpu: &Gpu, graw: Slice<E>, gx: Slice<E>) -> Result<(), GpuError> {
        let params = PoolParams { raw: graw.ptr(), gx: gx.ptr(), ..self.params() };
        assert!(gx.len() >= 6 * params.nodes as usize && graw.len() >= 6 * params.graphs as usize);
        gpu.launch(&kernel::<E>("pool_backward"), grid(6 * params.nodes as usize), BLOCK, 0, &params)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;
    use crate::model::gpu::emulated::c_layout;

    #[test]
    fn parameter_structs_have_the_c_layout() {
        macro_rules! layout {
            ($t:ty, $($f:ident),*) => {
                assert_eq!(c_layout(stringify!($t)), [size_of::<$t>(), $(offset_of!($t, $f)),*], stringify!($t));
            };
        }
        layout!(
            EmbedParams,
            weight,
            bias,
            species_z,
            species_mass,
            species_of,
            species_ptr,
            species_nodes,
            x0_pre,
            z_pre,
            z,
            x,
            gx,
            dz,
            masked,
            dweight,
            dbias,
            em,
            elements,
            species,
            nodes
        );
        layout!(MlpParams, input, weight, out, pre, g, partial, alpha, silu, rows, inner, cols, k_chunk);
        layout!(GateParams, x, out, g, elems, silu, tanh, sigmoid, nodes, din, dout, unused);
        layout!(PoolParams, x, raw, gx, graph_ptr, graph_nodes, node_graph, graphs, nodes);
    }

    /// Over more edges than a chunk, the weight gradient is the chunks'
    /// fma chains added in order, whatever the launch.
    #[test]
    fn the_weight_gradient_over_many_edges_adds_fixed_chunks_in_order() {
        use rand::{Rng, SeedableRng};
        let gpu = Gpu::emulated();
        let norm = Normalize2Mom { silu: 1.6765, tanh: 1.0, sigmoid: 1.0 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (rows, inner, cols) = (2 * MLP_EDGE_CHUNK + 5, 3, 33);
        let mut random = |n: usize| (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
        let (x, w, g) = (random(rows * inner), random(inner * cols), random(rows * cols));
        let [dx, dw, dg] = [&x, &w, &g].map(|v| gpu.upload(v).unwrap());
        let layer = MlpLayer { input: dx.slice(), weight: dw.slice(), rows, inner, cols };
        assert_eq!(layer.partial_len(), 3 * inner * cols);
        let (dweight, partial) =
            (gpu.alloc::<f64>(inner * cols).unwrap(), gpu.alloc::<f64>(layer.partial_len()).unwrap());
        layer.backward(&gpu, &norm, dg.slice(), (dweight.slice(), partial.slice()), None).unwrap();
        let got = gpu.download(&dweight).unwrap();
        let alpha = 1.0 / (inner as f64).sqrt();
        for i in 0..inner {
            for j in 0..cols {
                let chunk = |c: usize| {
                    let edges = c * MLP_EDGE_CHUNK..((c + 1) * MLP_EDGE_CHUNK).min(rows);
                    edges.fold(0.0, |acc: f64, e| x[e * inner + i].mul_add(g[e * cols + j], acc))
                };
                let want = alpha * (0..3).fold(0.0, |acc, c| acc + chunk(c));
                assert_eq!(got[i * cols + j].to_bits(), want.to_bits(), "dW[{i}][{j}]");
            }
        }
    }

    /// The tiled GEMM sums every output in the order one thread alone
    /// would (an fma chain over k, ascending), at shapes that fill no tile.
    #[test]
    fn the_tiled_radial_mlp_is_the_plain_fma_chain_to_the_bit() {
        use rand::{Rng, SeedableRng};
        let gpu = Gpu::emulated();
        let norm = Normalize2Mom { silu: 1.6765, tanh: 1.0, sigmoid: 1.0 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for (rows, inner, cols) in [(1, 1, 1), (33, 10, 70), (70, 17, 31), (5, 64, 130), (130, 3, 2)] {
            let mut random = |n: usize| (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
            let (x, w, g, pre_in) =
                (random(rows * inner), random(inner * cols), random(rows * cols), random(rows * inner));
            let alpha = 1.0 / (inner as f64).sqrt();
            let chain = |n: usize, a: &dyn Fn(usize) -> f64, b: &dyn Fn(usize) -> f64| {
                (0..n).fold(0.0, |acc: f64, k| a(k).mul_add(b(k), acc))
            };
            let [dx, dw, dg, dpre] = [&x, &w, &g, &pre_in].map(|v| gpu.upload(v).unwrap());
            let layer = MlpLayer { input: dx.slice(), weight: dw.slice(), rows, inner, cols };
            let (out, pre) = (gpu.alloc::<f64>(rows * cols).unwrap(), gpu.alloc::<f64>(rows * cols).unwrap());
            layer.forward(&gpu, &norm, out.slice(), None).unwrap();
            let linear = gpu.download(&out).unwrap();
            layer.forward(&gpu, &norm, out.slice(), Some(pre.slice())).unwrap();
            let pre_out = gpu.download(&pre).unwrap();
            for e in 0..rows {
                for j in 0..cols {
                    let want = alpha * chain(inner, &|i| x[e * inner + i], &|i| w[i * cols + j]);
                    assert_eq!(
                        linear[e * cols + j].to_bits(),
                        want.to_bits(),
                        "forward ({rows}, {inner}, {cols})"
                    );
                    assert_eq!(
                        pre_out[e * cols + j].to_bits(),
                        want.to_bits(),
                        "pre ({rows}, {inner}, {cols})"
                    );
                }
            }
            let (dweight, gin) =
                (gpu.alloc::<f64>(inner * cols).unwrap(), gpu.alloc::<f64>(rows * inner).unwrap());
            let none = gpu.alloc::<f64>(0).unwrap();
            layer
                .backward(
                    &gpu,
                    &norm,
                    dg.slice(),
                    (dweight.slice(), none.slice()),
                    Some((gin.slice(), dpre.slice())),
                )
                .unwrap();
            let (dweight, gin) = (gpu.download(&dweight).unwrap(), gpu.download(&gin).unwrap());
            for i in 0..inner {
                for j in 0..cols {
                    let want = alpha * chain(rows, &|e| x[e * inner + i], &|e| g[e * cols + j]);
                    assert_eq!(
                        dweight[i * cols + j].to_bits(),
                        want.to_bits(),
                        "dW ({rows}, {inner}, {cols})"
                    );
                }
            }
            for e in 0..rows {
                for i in 0..inner {
                    let (v, acc) =
                        (pre_in[e * inner + i], chain(cols, &|j| g[e * cols + j], &|j| w[i * cols + j]));
                    let sg = 1.0 / (1.0 + (-v).exp());
                    let want = alpha * acc * (norm.silu * (sg + v * sg * (1.0 - sg)));
                    let got = gin[e * inner + i];
                    assert!(
                        (got - want).abs() <= 1e-15 * want.abs().max(1.0),
                        "dx ({rows}, {inner}, {cols})"
                    );
                }
            }
        }
    }
}
