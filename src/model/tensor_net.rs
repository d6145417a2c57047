//! AnisoNet written with dfdx's tensor operations, for any dfdx device.
//!
//! The CPU runs the fused network of [`super::network`]: hand-written kernels
//! and backward pass. This module computes the same function from dfdx ops
//! and lets dfdx's autograd find the gradient, so it runs wherever dfdx has
//! kernels: on CUDA in a `cuda` build. On the CPU it is the independent
//! check that both agree (tests), and a second backend behind one interface,
//! [`DeviceEngine`].
//!
//! Features are one tensor per irrep block, shape `(nodes, 2l+1, mul)`
//! (m-major, as the fused layout). The neighbour sum gathers each node's
//! incoming edges into a padded `(nodes × max_in_degree)` grid and sums over
//! it; the mean over atoms is a `(structures, nodes)` matrix product.
//!
//! dfdx 0.13's CPU `slice` backward assigns its gradient instead of adding
//! it, so the slices taken of one tensor never overlap here (parameters,
//! per-edge weights, gate channels); a tensor used more than once is handed
//! out through [`TapeSink::fork`].

use std::cell::RefCell;
use std::sync::Arc;

use dfdx::prelude::*;

use super::arch::{Act, Fctp, GateArch, Irreps, NUM_ELEMENTS, SELF_CONNECTION_WEIGHT};
use super::config::ModelError;
use super::gpu::optim::{AdamStep, HostState};
use super::kernels::Real;
use super::network::{Network, Prepared};

type T1<E, D, T> = Tensor<(usize,), E, D, T>;
type T2<E, D, T> = Tensor<(usize, usize), E, D, T>;
type T3<E, D, T> = Tensor<(usize, usize, usize), E, D, T>;
/// Σ_m2 C[m1,m2,m3] Y_m2 per edge for one (l_in, l_edge, l_out).
type Coupling<E, D> = ((usize, usize, usize), T3<E, D, NoneTape>);

/// Precisions the tensor network runs in on device `D`.
pub trait TensorFloat: Real + Dtype {}
impl<E: Real + Dtype> TensorFloat for E {}

/// Collects the tapes of traced tensors that are used more than once.
/// [`TapeSink::fork`] moves a tensor's tape here and hands out tape-less
/// copies, so a copy that ends up unused (a block no path reads) drops no
/// recorded operation; the collected tape joins the output at the end.
struct TapeSink<T>(RefCell<T>);

impl<T: Default> TapeSink<T> {
    fn new() -> Self {
        TapeSink(RefCell::new(T::default()))
    }

    /// One more use of `x`. Gradients meet at the tensor's id, whichever copy is used.
    fn fork<S: Shape, E: Dtype, D: Storage<E>>(&self, x: &mut Tensor<S, E, D, T>) -> Tensor<S, E, D, T>
    where
        T: Tape<E, D>,
    {
        let copy = x.retaped::<T>();
        let (plain, tape) = std::mem::replace(x, copy).split_tape();
        let mut sink = self.0.borrow_mut();
        *sink = std::mem::take(&mut *sink).merge(tape);
        plain.retaped::<T>()
    }

    /// `x` with every collected operation on its tape.
    fn attach<S: Shape, E: Dtype, D: Storage<E>>(self, x: Tensor<S, E, D, T>) -> Tensor<S, E, D, T>
    where
        T: Tape<E, D>,
    {
        let (x, tape) = x.split_tape();
        x.put_tape(tape.merge(self.0.into_inner()))
    }
}

/// The constant inputs of one batch, on the device.
struct DeviceBatch<E: Dtype, D: Device<E>> {
    nodes: usize,
    edges: usize,
    /// Largest number of edges into one node.
    max_in: usize,
    /// Z − 1 per node, the column of the embedding.
    element: Tensor<(usize,), usize, D>,
    /// Atomic mass per node, repeated over the embedding width: `(nodes, em)`.
    mass: T2<E, D, NoneTape>,
    /// Source node of every edge (edges sorted by destination).
    src: Tensor<(usize,), usize, D>,
    /// `(nodes × max_in)` edge indices of each node's incoming edges, padded with edge 0…
    grid: Tensor<(usize,), usize, D>,
    /// …and 1 for a real edge, 0 for padding: `(nodes × max_in)`.
    grid_mask: T1<E, D, NoneTape>,
    /// Per (l_in, l_edge, l_out) of the instructions: Σ_m2 C[m1,m2,m3] Y_m2(edge),
    /// shape `(edges, 2l_out+1, 2l_in+1)`.
    coupling: Vec<Coupling<E, D>>,
    /// Radial basis `(edges, num_basis)`.
    basis: T2<E, D, NoneTape>,
    /// `(structures, nodes)`: 1/atoms where the node belongs to the structure.
    pool: T2<E, D, NoneTape>,
}

/// AnisoNet on device `D`: the pooled head output per structure, differentiable.
pub struct TensorNet<E: TensorFloat, D: Device<E>> {
    net: Arc<Network<E>>,
    dev: D,
}

impl<E: TensorFloat, D: Device<E>> TensorNet<E, D> {
    pub fn new(net: Arc<Network<E>>, dev: D) -> Self {
        TensorNet { net, dev }
    }

    fn upload(&self, prep: &Prepared<E>) -> DeviceBatch<E, D> {
        let cfg = &self.net.arch.config;
        let (n, e, em) = (prep.num_nodes, prep.edges.src.len(), cfg.em_dim);
        let dev = &self.dev;
        let element: Vec<usize> = prep.species_of.iter().map(|&s| prep.species_z[s] as usize - 1).collect();
        let mass: Vec<E> = prep
            .species_of
            .iter()
            .flat_map(|&s| std::iter::repeat_n(E::of(prep.species_mass[s]), em))
            .collect();
        let ptr = &prep.edges.dst_ptr;
        let max_in = (0..n).map(|i| ptr[i + 1] - ptr[i]).max().unwrap_or(0);
        let mut grid = vec![0usize; n * max_in];
        let mut grid_mask = vec![E::zero(); n * max_in];
        for i in 0..n {
            for (k, edge) in (ptr[i]..ptr[i + 1]).enumerate() {
                grid[i * max_in + k] = edge;
                grid_mask[i * max_in + k] = E::one();
            }
        }
        // Edge attributes per SH degree, then the coupling of every (l1, l2, l3).
        let sh_dim = (cfg.lmax + 1) * (cfg.lmax + 1);
        let mut coupling: Vec<Coupling<E, D>> = Vec::new();
        for conv in &self.net.arch.convs {
            for ins in &conv.tp.instructions {
                let key = (ins.l_in, ins.l_edge, ins.l_out);
                if e == 0 || coupling.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let (d1, d2, d3) = (2 * key.0 + 1, 2 * key.1 + 1, 2 * key.2 + 1);
                let y: Vec<E> = (0..e)
                    .flat_map(|k| prep.sh[k * sh_dim + key.1 * key.1..][..d2].iter().copied())
                    .collect();
                let c = crate::e3::wigner::wigner_3j(key.0 as u32, key.1 as u32, key.2 as u32);
                // c is [m1][m2][m3]; as a (m2, m1·m3) matrix.
                let mut cm = vec![E::zero(); d2 * d1 * d3];
                for (i, &v) in c.iter().enumerate() {
                    let (m1, m2, m3) = (i / (d2 * d3), (i / d3) % d2, i % d3);
                    cm[m2 * d1 * d3 + m1 * d3 + m3] = E::of(v);
                }
                let y = dev.tensor_from_vec(y, (e, d2));
                let cm = dev.tensor_from_vec(cm, (d2, d1 * d3));
                let a = y.matmul(cm).reshape_like(&(e, d1, d3)).permute::<_, Axes3<0, 2, 1>>().contiguous();
                coupling.push((key, a));
            }
        }
        let mut pool = vec![E::zero(); prep.num_graphs * n];
        for (i, &g) in prep.node_graph.iter().enumerate() {
            pool[g * n + i] = E::of(1.0 / prep.graph_size[g] as f64);
        }
        DeviceBatch {
            nodes: n,
            edges: e,
            max_in,
            element: dev.tensor_from_vec(element, (n,)),
            mass: dev.tensor_from_vec(mass, (n, em)),
            src: dev.tensor_from_vec(prep.edges.src.clone(), (e,)),
            grid: dev.tensor_from_vec(grid, (n * max_in,)),
            grid_mask: dev.tensor_from_vec(grid_mask, (n * max_in,)),
            coupling,
            basis: dev.tensor_from_vec(prep.basis.clone(), (e, cfg.num_basis)),
            pool: dev.tensor_from_vec(pool, (prep.num_graphs, n)),
        }
    }

    fn param<T: Tape<E, D>>(&self, sink: &TapeSink<T>, p: &mut T1<E, D, T>, name: &str) -> T1<E, D, T> {
        let entry = self.net.arch.param(name);
        sink.fork(p).slice((entry.offset..entry.offset + entry.numel(),))
    }

    fn zeros<T: Tape<E, D>>(&self, shape: (usize, usize, usize)) -> T3<E, D, T> {
        self.dev.zeros_like(&shape).retaped::<T>()
    }

    /// The pooled head output `(structures, 6)` (the fused network's `Cache::raw`)
    /// for parameters `p` (flat layout), recorded on `p`'s tape.
    pub fn forward<T: Tape<E, D>>(&self, prep: &Prepared<E>, mut p: T1<E, D, T>) -> T2<E, D, T> {
        let arch = &self.net.arch;
        let batch = self.upload(prep);
        let sink = TapeSink::new();
        let (n, em) = (batch.nodes, arch.config.em_dim);
        // Embedding: x = relu(W[:, Z] + b) and the attribute z = relu(mass·W[:, Z] + b).
        let w = self.param(&sink, &mut p, "em.weight").reshape_like(&(em, NUM_ELEMENTS));
        let w = w.permute::<_, Axes2<1, 0>>().contiguous();
        let mut wz: T2<E, D, T> = w.gather(batch.element.clone());
        let mut bias = self.param(&sink, &mut p, "em.bias").broadcast_like::<_, Axis<0>>(&(n, em));
        let x0 = (sink.fork(&mut wz) + sink.fork(&mut bias)).relu();
        let mut z = (wz * batch.mass.clone() + bias).relu();
        let mut x = vec![x0.reshape_like(&(n, 1, em))];
        for (k, conv) in arch.convs.iter().enumerate() {
            let out = self.convolution(&sink, k, &batch, &mut p, &mut z, x);
            x = match arch.gates.get(k) {
                Some(gate) => self.gate(&sink, gate, &conv.irreps_out, out),
                None => out,
            };
        }
        // The head's 6 components per node (0e+2e, or 6x0e), averaged per structure.
        let mut head: Option<T2<E, D, T>> = None;
        for block in x {
            let (_, d, mul) = *block.shape();
            let flat = block.reshape_like(&(n, d * mul));
            head = Some(match head {
                None => flat,
                Some(h) => (h, flat).concat_along(Axis::<1>),
            });
        }
        let head = head.expect("the head has output blocks");
        sink.attach(batch.pool.retaped::<T>().matmul(head))
    }

    /// FullyConnectedTensorProduct(x, z) of `f` with weights `w`. The input comes as
    /// pieces `(block of f.irreps_in, first channel, (nodes, 2l+1, channels))`,
    /// so a block assembled from several sources needs no concatenation.
    fn fctp<T: Tape<E, D>>(
        &self,
        sink: &TapeSink<T>,
        f: &Fctp,
        mut w: T1<E, D, T>,
        mut pieces: Vec<(usize, usize, T3<E, D, T>)>,
        z: &mut T2<E, D, T>,
        n: usize,
    ) -> Vec<T3<E, D, T>> {
        let v = f.attr_dim;
        let mut out: Vec<Option<T3<E, D, T>>> = f.irreps_out.0.iter().map(|_| None).collect();
        for path in &f.paths {
            let nw = f.irreps_out.0[path.block_out].mul;
            for (block, u0, x) in pieces.iter_mut().filter(|(b, _, _)| *b == path.block_in) {
                let (_, d, nu) = *x.shape();
                let start = path.weight_offset + *u0 * v * nw;
                // W[u][v][w] → (v, u·w), then per node M[u][w] = norm Σ_v z[v] W[u][v][w].
                let wp = sink.fork(&mut w).slice((start..start + nu * v * nw,)).reshape_like(&(nu, v, nw));
                let wp = wp.permute::<_, Axes3<1, 0, 2>>().reshape_like(&(v, nu * nw));
                let m = (sink.fork(z).matmul(wp) * E::of(path.norm)).reshape_like(&(n, nu, nw));
                let y = sink.fork(x).matmul(m);
                debug_assert_eq!(*y.shape(), (n, d, nw), "block {block}");
                let slot = &mut out[path.block_out];
                *slot = Some(match slot.take() {
                    None => y,
                    Some(acc) => acc + y,
                });
            }
        }
        out.into_iter()
            .zip(&f.irreps_out.0)
            .map(|(o, b)| o.unwrap_or_else(|| self.zeros((n, b.ir.dim(), b.mul))))
            .collect()
    }

    fn convolution<T: Tape<E, D>>(
        &self,
        sink: &TapeSink<T>,
        k: usize,
        batch: &DeviceBatch<E, D>,
        p: &mut T1<E, D, T>,
        z: &mut T2<E, D, T>,
        mut x: Vec<T3<E, D, T>>,
    ) -> Vec<T3<E, D, T>> {
        let cfg = &self.net.arch.config;
        let conv = &self.net.arch.convs[k];
        let prefix = self.net.arch.conv_prefix(k);
        let n = batch.nodes;
        let pieces =
            |x: &mut Vec<T3<E, D, T>>| x.iter_mut().enumerate().map(|(b, t)| (b, 0, sink.fork(t))).collect();
        let sc = self.fctp(
            sink,
            &conv.sc,
            self.param(sink, p, &format!("{prefix}.sc.weight")),
            pieces(&mut x),
            z,
            n,
        );
        let mut h = self.fctp(
            sink,
            &conv.lin1,
            self.param(sink, p, &format!("{prefix}.lin1.weight")),
            pieces(&mut x),
            z,
            n,
        );
        // Edge tensor product "uvu", each instruction summed over the incoming edges.
        let mut mid_pieces = Vec::new();
        let e = batch.edges;
        if e > 0 {
            let dims = &conv.radial_dims;
            let mut radial: T2<E, D, T> = batch.basis.retaped::<T>();
            for j in 0..dims.len() - 1 {
                let wj = self
                    .param(sink, p, &format!("{prefix}.fc.layer{j}.weight"))
                    .reshape_like(&(dims[j], dims[j + 1]));
                let mut o = radial.matmul(wj) * E::of(1.0 / (dims[j] as f64).sqrt());
                if j + 2 < dims.len() {
                    o = sink.fork(&mut o) * o.sigmoid() * E::of(self.net.norm.silu);
                }
                radial = o;
            }
            let mut gathered: Vec<Option<T3<E, D, T>>> = h.iter().map(|_| None).collect();
            let scale = 1.0 / cfg.num_neighbors.sqrt();
            let (grid_len, max_in) = (n * batch.max_in, batch.max_in);
            for ins in &conv.tp.instructions {
                let (d3, mul) = (2 * ins.l_out + 1, ins.mul);
                let at_src = gathered[ins.block_in]
                    .get_or_insert_with(|| sink.fork(&mut h[ins.block_in]).gather(batch.src.clone()));
                let key = (ins.l_in, ins.l_edge, ins.l_out);
                let a =
                    &batch.coupling.iter().find(|(k, _)| *k == key).expect("coupling of every instruction").1;
                let t = a.retaped::<T>().matmul(sink.fork(at_src));
                let w = sink.fork(&mut radial).slice((.., ins.weight_offset..ins.weight_offset + mul));
                let msg = t * w.broadcast_like::<_, Axis<1>>(&(e, d3, mul)) * E::of(ins.path_weight * scale);
                let mask = batch.grid_mask.clone().broadcast_like::<_, Axes2<1, 2>>(&(grid_len, d3, mul));
                let summed = (msg.gather(batch.grid.clone()) * mask)
                    .reshape_like(&(n, max_in, d3, mul))
                    .sum::<(usize, usize, usize), Axis<1>>();
                mid_pieces.push((ins.block_mid, ins.u0, summed));
            }
        }
        let lin2 = self.fctp(
            sink,
            &conv.lin2,
            self.param(sink, p, &format!("{prefix}.lin2.weight")),
            mid_pieces,
            z,
            n,
        );
        // out = sin(π/8)·sc + c·lin2, c = cos(π/8) where sc reaches the block, else 1.
        let offsets = conv.irreps_out.offsets();
        sc.into_iter()
            .zip(lin2)
            .zip(offsets)
            .map(|((s, l), off)| s * E::of(SELF_CONNECTION_WEIGHT) + l * E::of(conv.lin2_scale[off]))
            .collect()
    }

    /// e3nn Gate: activated scalars, then each gated block times its activated gates.
    fn gate<T: Tape<E, D>>(
        &self,
        sink: &TapeSink<T>,
        gate: &GateArch,
        irreps: &Irreps,
        mut x: Vec<T3<E, D, T>>,
    ) -> Vec<T3<E, D, T>> {
        let offsets = irreps.offsets();
        // The scalar block holding flat offset `off`, and the channel there.
        let locate = |off: usize| {
            let b = offsets.iter().rposition(|&o| o <= off).expect("offset inside the features");
            (b, off - offsets[b])
        };
        let norm = &self.net.norm;
        let act = |a: Act, t: T3<E, D, T>| match a {
            Act::Silu => {
                let mut t = t;
                sink.fork(&mut t) * t.sigmoid() * E::of(norm.silu)
            }
            Act::Tanh => t.tanh() * E::of(norm.tanh),
            Act::Sigmoid => t.sigmoid() * E::of(norm.sigmoid),
        };
        let channels = |x: &mut Vec<T3<E, D, T>>, off: usize, count: usize| {
            let (b, c) = locate(off);
            sink.fork(&mut x[b]).slice((.., .., c..c + count))
        };
        let mut out = Vec::new();
        for &(off, count, a) in &gate.scalars {
            out.push(act(a, channels(&mut x, off, count)));
        }
        for (&(goff, count, a), &(off, block)) in gate.gates.iter().zip(&gate.gated) {
            let g = act(a, channels(&mut x, goff, count));
            let (b, _) = locate(off);
            let (n, d, mul) = *x[b].shape();
            debug_assert_eq!((offsets[b], d, mul), (off, block.ir.dim(), block.mul));
            out.push(
                sink.fork(&mut x[b]) * g.reshape_like(&(n, mul)).broadcast_like::<_, Axis<1>>(&(n, d, mul)),
            );
        }
        out
    }
}

/// The backward pass of one [`DeviceEngine::forward`]: d loss / d raw per
/// structure in, d loss / d parameters (flat layout) out.
pub type RawBackward<E> = Box<dyn FnOnce(&[[f64; 6]]) -> Result<Vec<E>, ModelError>>;

/// What [`DeviceEngine::forward`] returns: the pooled head output per
/// structure and, when asked, its backward pass.
pub type EngineOutput<E> = (Vec<[f64; 6]>, Option<RawBackward<E>>);

/// A network that computes the pooled head output on some device from host
/// parameters, with its backward pass. The host applies the head.
pub trait DeviceEngine<E> {
    /// Where it computes, e.g. `cuda:0`.
    fn name(&self) -> &str;
    /// Kernel launches and host↔device transfers so far, where the engine counts them.
    fn counts(&self) -> Option<super::gpu::Counts> {
        None
    }
    /// The pooled head output per structure; with `backward`, its gradient map too.
    fn forward(
        &self,
        prep: &Prepared<E>,
        params: &[E],
        backward: bool,
    ) -> Result<EngineOutput<E>, ModelError>;
    /// The engine's hold on a training run's state, where it can keep it on
    /// its device for the whole run.
    fn resident(&self) -> Option<&dyn ResidentTraining<E>> {
        None
    }
}

/// The host's part of a training step: from six numbers per structure (the
/// pooled head output, or the model's output), the loss and its gradient
/// with respect to them.
pub type StepLoss<'a> = &'a mut dyn FnMut(&[[f64; 6]]) -> (f64, Vec<[f64; 6]>);

/// A training run whose parameters, gradient, optimiser moments and best
/// parameters live on the engine's device between steps, so that a step
/// moves the batch and a few bytes a structure, never the parameters.
pub trait ResidentTraining<E> {
    /// Puts the run's state on the device, replacing any there.
    fn load(&self, state: &HostState<E>) -> Result<(), ModelError>;
    /// The run's state, brought to the host (for a checkpoint).
    fn store(&self) -> Result<HostState<E>, ModelError>;
    /// One step: forward, `loss` of the pooled head outputs on the host,
    /// backward, then AdamW on the device.
    fn train_step(&self, prep: &Prepared<E>, loss: StepLoss<'_>, adam: &AdamStep) -> Result<f64, ModelError>;
    /// The pooled head output per structure with the run's parameters.
    fn predict(&self, prep: &Prepared<E>) -> Result<Vec<[f64; 6]>, ModelError>;
    /// The parameters become the best so far.
    fn keep_best(&self) -> Result<(), ModelError>;
    /// The best parameters become the parameters.
    fn restore_best(&self) -> Result<(), ModelError>;
}

/// [`TensorNet`] on a dfdx device, behind [`DeviceEngine`].
pub struct TensorEngine<E: TensorFloat, D: Device<E>> {
    net: TensorNet<E, D>,
    name: String,
}

impl<E: TensorFloat, D: Device<E>> TensorEngine<E, D> {
    pub fn new(net: Arc<Network<E>>, dev: D, name: impl Into<String>) -> Self {
        TensorEngine { net: TensorNet::new(net, dev), name: name.into() }
    }
}

fn rows(values: Vec<impl Real>) -> Vec<[f64; 6]> {
    values.chunks(6).map(|c| std::array::from_fn(|k| c[k].to64())).collect()
}

impl<E: TensorFloat, D: Device<E> + 'static> DeviceEngine<E> for TensorEngine<E, D> {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(
        &self,
        prep: &Prepared<E>,
        params: &[E],
        backward: bool,
    ) -> Result<EngineOutput<E>, ModelError> {
        let dev = &self.net.dev;
        let leaf = dev.tensor_from_vec(params.to_vec(), (params.len(),));
        if !backward {
            return Ok((rows(self.net.forward(prep, leaf).as_vec()), None));
        }
        let raw = self.net.forward(prep, leaf.clone().traced(Gradients::leaky()));
        let values = rows(raw.retaped::<NoneTape>().as_vec());
        let dev = dev.clone();
        let back: RawBackward<E> = Box::new(move |grad_raw: &[[f64; 6]]| {
            let g: Vec<E> = grad_raw.iter().flatten().map(|&v| E::of(v)).collect();
            let g = dev.tensor_from_vec(g, (grad_raw.len(), 6));
            let grads = (raw * g).sum::<(), Axes2<0, 1>>().backward();
            Ok(grads.get(&leaf).as_vec())
        });
        Ok((values, Some(back)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork that is never used (a block no path reads) must not take the
    /// operations recorded before it along when it is dropped.
    #[test]
    fn an_unused_fork_drops_no_recorded_operation() {
        let dev = Cpu::default();
        let leaf = dev.tensor_from_vec(vec![1.0f64, 2.0], (2,));
        let sink = TapeSink::new();
        let mut x = leaf.clone().traced(Gradients::leaky()) * 3.0;
        drop(sink.fork(&mut x));
        let y = sink.fork(&mut x) * 2.0;
        let grads = sink.attach(y.sum::<(), _>()).backward();
        assert_eq!(grads.get(&leaf).as_vec(), vec![6.0, 6.0]);
    }
}
