//! AnisoNet forward and backward passes on plain slices (f32 or f64).
//!
//! embedding → `layers` × (Convolution, Gate) → final Convolution → mean over
//! each structure's atoms → (scalar model: Cartesian 6 → irreps) → (physical
//! output: ε = I + softplus(T)). The backward pass is written by hand, layer
//! by layer, and is what the dfdx tape calls.

use std::collections::HashMap;
use std::f64::consts::PI;

use rayon::prelude::*;

use super::arch::{Act, Architecture, ConvArch, GateArch, NUM_ELEMENTS, SELF_CONNECTION_WEIGHT};
use super::config::{ModelError, ModelKind, OutputMode};
use super::input::ModelInput;
use super::kernels::{
    fctp_backward, fctp_forward, fctp_species_matrices, matmul, tp_backward, tp_forward, EdgeIndex, Real,
    TpCtx, TpTables, View,
};
use super::normalize::{sigmoid, Normalize2Mom};
use super::physical::{physical_backward, physical_forward};
use crate::e3::cartesian::cartesian_to_irreps;

/// Architecture plus precomputed constant tables in precision `E`.
pub struct Network<E: Real> {
    pub arch: Architecture,
    tables: Vec<TpTables<E>>,
    pub(super) norm: Normalize2Mom,
}

/// A batch prepared for the network: species, edges sorted by destination, edge embeddings.
pub struct Prepared<E> {
    pub num_nodes: usize,
    pub num_graphs: usize,
    pub node_graph: Vec<usize>,
    pub graph_size: Vec<usize>,
    /// Distinct (Z, mass) pairs of the batch.
    pub species_z: Vec<u8>,
    pub species_mass: Vec<f64>,
    pub species_of: Vec<usize>,
    pub nodes_of_species: Vec<Vec<usize>>,
    pub edges: EdgeIndex,
    /// Edge attributes [edge][(lmax+1)²]: SH × smooth cutoff (edges in destination order).
    pub sh: Vec<E>,
    /// Radial embedding [edge][num_basis]: Gaussians × √num_basis.
    pub basis: Vec<E>,
}

struct ConvCache<E> {
    x: Vec<E>,
    h: Vec<E>,
    mats_sc: Vec<Vec<E>>,
    mats_lin1: Vec<Vec<E>>,
    mats_lin2: Vec<Vec<E>>,
    /// Radial MLP: pre-activations and activations of each hidden layer.
    pre: Vec<Vec<E>>,
    act: Vec<Vec<E>>,
    w: Vec<E>,
    mid: Vec<E>,
}

/// Everything the backward pass needs, plus the hidden outputs.
pub struct Cache<E> {
    pub prep: Prepared<E>,
    x0_pre: Vec<E>,
    z_pre: Vec<E>,
    z: Vec<E>,
    convs: Vec<ConvCache<E>>,
    /// Node features after each Convolution (our m-major layout).
    pub conv_out: Vec<Vec<E>>,
    /// Node features after each Gate.
    pub gate_out: Vec<Vec<E>>,
    /// Per structure, the mean-pooled head output before the conversions (f64).
    pub raw: Vec<[f64; 6]>,
}

fn smooth_cutoff(x: f64) -> f64 {
    let u = 2.0 * (x - 1.0);
    if u > 0.0 {
        0.0
    } else if u < -1.0 {
        1.0
    } else {
        (1.0 - (PI * u).cos()) / 2.0
    }
}

/// Linear map (xx, yy, zz, xy, xz, yz) → irreps 0e+2e, as a 6×6 row-major matrix.
fn cartesian6_to_irreps() -> [[f64; 6]; 6] {
    let mut m = [[0.0; 6]; 6];
    let idx = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];
    for (c, &(i, j)) in idx.iter().enumerate() {
        let mut t = [[0.0; 3]; 3];
        t[i][j] = 1.0;
        t[j][i] = 1.0;
        let r = cartesian_to_irreps(&t);
        for k in 0..6 {
            m[k][c] = r[k];
        }
    }
    m
}

fn act_value(a: Act, x: f64, n: &Normalize2Mom) -> (f64, f64) {
    match a {
        Act::Silu => {
            let s = sigmoid(x);
            (n.silu * x * s, n.silu * (s + x * s * (1.0 - s)))
        }
        Act::Tanh => {
            let t = x.tanh();
            (n.tanh * t, n.tanh * (1.0 - t * t))
        }
        Act::Sigmoid => {
            let s = sigmoid(x);
            (n.sigmoid * s, n.sigmoid * s * (1.0 - s))
        }
    }
}

impl<E: Real> Network<E> {
    pub fn new(arch: Architecture) -> Network<E> {
        let tables = arch.convs.iter().map(|c| TpTables::new(&c.tp)).collect();
        Network { arch, tables, norm: Normalize2Mom::get() }
    }

    /// Species, sorted edges and edge embeddings of a batch.
    pub fn prepare(&self, input: &ModelInput) -> Result<Prepared<E>, ModelError> {
        input.validate()?;
        let cfg = &self.arch.config;
        let n = input.numbers.len();
        let mut key_to_species: HashMap<(u8, u64), usize> = HashMap::new();
        let mut species_z = Vec::new();
        let mut species_mass = Vec::new();
        let mut nodes_of_species: Vec<Vec<usize>> = Vec::new();
        let species_of: Vec<usize> = (0..n)
            .map(|i| {
                let key = (input.numbers[i], input.masses[i].to_bits());
                let s = *key_to_species.entry(key).or_insert_with(|| {
                    species_z.push(input.numbers[i]);
                    species_mass.push(input.masses[i]);
                    nodes_of_species.push(Vec::new());
                    species_z.len() - 1
                });
                nodes_of_species[s].push(i);
                s
            })
            .collect();
        let num_edges = input.edge_src.len();
        let mut order: Vec<usize> = (0..num_edges).collect();
        order.sort_by_key(|&e| (input.edge_dst[e], e));
        let src: Vec<usize> = order.iter().map(|&e| input.edge_src[e] as usize).collect();
        let dst: Vec<usize> = order.iter().map(|&e| input.edge_dst[e] as usize).collect();
        let mut dst_ptr = vec![0usize; n + 1];
        for &d in &dst {
            dst_ptr[d + 1] += 1;
        }
        let mut src_ptr = vec![0usize; n + 1];
        for &s in &src {
            src_ptr[s + 1] += 1;
        }
        for i in 0..n {
            dst_ptr[i + 1] += dst_ptr[i];
            src_ptr[i + 1] += src_ptr[i];
        }
        let mut fill = src_ptr.clone();
        let mut by_src = vec![0usize; num_edges];
        for (e, &s) in src.iter().enumerate() {
            by_src[fill[s]] = e;
            fill[s] += 1;
        }
        let lmax = cfg.lmax;
        let sh_dim = (lmax + 1) * (lmax + 1);
        let nb = cfg.num_basis;
        let step = cfg.cutoff / (nb - 1) as f64;
        let mut sh = vec![E::zero(); num_edges * sh_dim];
        let mut basis = vec![E::zero(); num_edges * nb];
        let mut y = vec![0.0f64; sh_dim];
        for (k, &e) in order.iter().enumerate() {
            let v = input.edge_vec[e];
            let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            crate::e3::spherical_harmonics::spherical_harmonics_into(lmax as u32, v, &mut y);
            let c = smooth_cutoff(r / cfg.cutoff);
            for (o, &yv) in sh[k * sh_dim..(k + 1) * sh_dim].iter_mut().zip(&y) {
                *o = E::of(c * yv);
            }
            for (i, o) in basis[k * nb..(k + 1) * nb].iter_mut().enumerate() {
                let d = (r - i as f64 * step) / step;
                *o = E::of((-d * d).exp() / 1.12 * (nb as f64).sqrt());
            }
        }
        let mut graph_size = vec![0usize; input.num_graphs];
        for &g in &input.node_graph {
            graph_size[g as usize] += 1;
        }
        Ok(Prepared {
            num_nodes: n,
            num_graphs: input.num_graphs,
            node_graph: input.node_graph.iter().map(|&g| g as usize).collect(),
            graph_size,
            species_z,
            species_mass,
            species_of,
            nodes_of_species,
            edges: EdgeIndex { src, dst, dst_ptr, src_ptr, by_src },
            sh,
            basis,
        })
    }

    fn p<'a>(&self, params: &'a [E], name: &str) -> &'a [E] {
        let e = self.arch.param(name);
        &params[e.offset..e.offset + e.numel()]
    }

    /// The pooled head output `raw` of one structure as irreps 0e+2e of the
    /// tensor (the scalar model's six Cartesian components converted), plus
    /// the isotropic offset `eps_offset`·I: the input of the physical map.
    fn head_irreps(&self, raw: &[f64; 6]) -> [f64; 6] {
        let cfg = &self.arch.config;
        let mut o = *raw;
        if cfg.kind == ModelKind::Scalar {
            let m = cartesian6_to_irreps();
            o = std::array::from_fn(|k| (0..6).map(|c| m[k][c] * raw[c]).sum());
        }
        // I is pure 0e: its irreps are (√3, 0, 0, 0, 0, 0).
        o[0] += cfg.eps_offset * 3f64.sqrt();
        o
    }

    /// The model's output for one structure from its pooled head output
    /// `raw`: irreps of the tensor, then the physical map when configured.
    pub fn head_forward(&self, raw: &[f64; 6]) -> [f64; 6] {
        let o = self.head_irreps(raw);
        match self.arch.config.output {
            OutputMode::Physical => physical_forward(&o),
            OutputMode::Raw => o,
        }
    }

    /// Vector–Jacobian product of [`Network::head_forward`]: d loss / d raw.
    pub fn head_backward(&self, raw: &[f64; 6], grad_out: &[f64; 6]) -> [f64; 6] {
        let cfg = &self.arch.config;
        let mut gr = *grad_out;
        if cfg.output == OutputMode::Physical {
            gr = physical_backward(&self.head_irreps(raw), &gr);
        }
        if cfg.kind == ModelKind::Scalar {
            let m = cartesian6_to_irreps();
            gr = std::array::from_fn(|c| (0..6).map(|k| m[k][c] * gr[k]).sum());
        }
        gr
    }

    /// Forward pass: per-structure output (irreps 0e+2e of ε, e3nn basis) and the cache.
    pub fn forward(&self, params: &[E], prep: Prepared<E>) -> (Vec<[E; 6]>, Cache<E>) {
        let cfg = &self.arch.config;
        let em = cfg.em_dim;
        let ns = prep.species_z.len();
        let w_em = self.p(params, "em.weight");
        let b_em = self.p(params, "em.bias");
        // Embedding of one-hot(Z) and of the mass vector, per species.
        let mut x0_pre = vec![E::zero(); ns * em];
        let mut z_pre = vec![E::zero(); ns * em];
        for s in 0..ns {
            let zi = prep.species_z[s] as usize - 1;
            let mass = E::of(prep.species_mass[s]);
            for v in 0..em {
                x0_pre[s * em + v] = w_em[v * NUM_ELEMENTS + zi] + b_em[v];
                z_pre[s * em + v] = mass * w_em[v * NUM_ELEMENTS + zi] + b_em[v];
            }
        }
        let relu = |v: &E| v.max(E::zero());
        let z: Vec<E> = z_pre.iter().map(relu).collect();
        let mut x: Vec<E> = Vec::with_capacity(prep.num_nodes * em);
        for &s in &prep.species_of {
            x.extend(x0_pre[s * em..(s + 1) * em].iter().map(relu));
        }
        let mut convs = Vec::new();
        let mut conv_out = Vec::new();
        let mut gate_out = Vec::new();
        for (k, conv) in self.arch.convs.iter().enumerate() {
            let (out, cache) = self.conv_forward(k, conv, params, &prep, &z, x);
            convs.push(cache);
            if let Some(gate) = self.arch.gates.get(k) {
                let y = self.gate_forward(gate, conv.irreps_out.dim(), &out);
                conv_out.push(out);
                gate_out.push(y.clone());
                x = y;
            } else {
                conv_out.push(out.clone());
                x = out;
            }
        }
        // Mean over atoms of each structure (6 components: 0e+2e with mul 1, or 6x0e).
        let mut raw = vec![[0.0f64; 6]; prep.num_graphs];
        for (n, &g) in prep.node_graph.iter().enumerate() {
            for c in 0..6 {
                raw[g][c] += x[n * 6 + c].to64() / prep.graph_size[g] as f64;
            }
        }
        let outputs = raw.iter().map(|r| self.head_forward(r).map(E::of)).collect();
        let cache = Cache { prep, x0_pre, z_pre, z, convs, conv_out, gate_out, raw };
        (outputs, cache)
    }

    fn conv_forward(
        &self,
        k: usize,
        conv: &ConvArch,
        params: &[E],
        prep: &Prepared<E>,
        z: &[E],
        x: Vec<E>,
    ) -> (Vec<E>, ConvCache<E>) {
        let cfg = &self.arch.config;
        let prefix = self.arch.conv_prefix(k);
        let ns = prep.species_z.len();
        let n = prep.num_nodes;
        let din = conv.irreps_in.dim();
        let dout = conv.irreps_out.dim();
        let mats_sc = fctp_species_matrices(&conv.sc, self.p(params, &format!("{prefix}.sc.weight")), z, ns);
        let mats_lin1 =
            fctp_species_matrices(&conv.lin1, self.p(params, &format!("{prefix}.lin1.weight")), z, ns);
        let mats_lin2 =
            fctp_species_matrices(&conv.lin2, self.p(params, &format!("{prefix}.lin2.weight")), z, ns);
        let mut sc = vec![E::zero(); n * dout];
        fctp_forward(&conv.sc, &mats_sc, &x, &prep.species_of, &mut sc);
        let mut h = vec![E::zero(); n * din];
        fctp_forward(&conv.lin1, &mats_lin1, &x, &prep.species_of, &mut h);
        // Radial MLP: x ← act(x W / √fan_in), last layer linear.
        let num_edges = prep.edges.src.len();
        let dims = &conv.radial_dims;
        let mut pre = Vec::new();
        let mut act: Vec<Vec<E>> = Vec::new();
        let mut w = Vec::new();
        for j in 0..dims.len() - 1 {
            let wj = self.p(params, &format!("{prefix}.fc.layer{j}.weight"));
            let input: &[E] = if j == 0 { &prep.basis } else { &act[j - 1] };
            let mut outp = vec![E::zero(); num_edges * dims[j + 1]];
            let alpha = E::of(1.0 / (dims[j] as f64).sqrt());
            matmul(
                input,
                View::new(num_edges, dims[j]),
                wj,
                View::new(dims[j], dims[j + 1]),
                &mut outp,
                View::new(num_edges, dims[j + 1]),
                alpha,
                false,
            );
            if j + 2 < dims.len() {
                let c = E::of(self.norm.silu);
                let a: Vec<E> = outp.par_iter().map(|&v| c * v / (E::one() + (-v).exp())).collect();
                pre.push(outp);
                act.push(a);
            } else {
                w = outp;
            }
        }
        let mut mid = vec![E::zero(); n * conv.tp.irreps_mid.dim()];
        let sh_dim = (cfg.lmax + 1) * (cfg.lmax + 1);
        let scale = E::of(1.0 / cfg.num_neighbors.sqrt());
        let in_offsets = conv.irreps_in.offsets();
        let ctx = TpCtx {
            tp: &conv.tp,
            tables: &self.tables[k],
            din,
            in_offsets: &in_offsets,
            mid_offsets: conv.tp.irreps_mid.offsets(),
            h: &h,
            sh: &prep.sh,
            sh_dim,
            w: &w,
            edges: &prep.edges,
            scale,
            gmid: &[],
        };
        tp_forward(&ctx, &mut mid);
        let mut out = vec![E::zero(); n * dout];
        fctp_forward(&conv.lin2, &mats_lin2, &mid, &prep.species_of, &mut out);
        let s = E::of(SELF_CONNECTION_WEIGHT);
        let scales: Vec<E> = conv.lin2_scale.iter().map(|&c| E::of(c)).collect();
        out.par_chunks_mut(dout).zip(sc.par_chunks(dout)).for_each(|(o, scn)| {
            for ((ov, &sv), &c) in o.iter_mut().zip(scn).zip(&scales) {
                *ov = s * sv + c * *ov;
            }
        });
        (out, ConvCache { x, h, mats_sc, mats_lin1, mats_lin2, pre, act, w, mid })
    }

    fn gate_forward(&self, gate: &GateArch, din: usize, x: &[E]) -> Vec<E> {
        let dout = gate.irreps_out.dim();
        let n = x.len() / din;
        let mut y = vec![E::zero(); n * dout];
        y.par_chunks_mut(dout).zip(x.par_chunks(din)).for_each(|(yn, xn)| {
            let mut o = 0;
            for &(off, cnt, a) in &gate.scalars {
                for i in 0..cnt {
                    yn[o + i] = E::of(act_value(a, xn[off + i].to64(), &self.norm).0);
                }
                o += cnt;
            }
            for (&(goff, _, a), &(off, b)) in gate.gates.iter().zip(&gate.gated) {
                for u in 0..b.mul {
                    let gv = E::of(act_value(a, xn[goff + u].to64(), &self.norm).0);
                    for m in 0..b.ir.dim() {
                        yn[o + m * b.mul + u] = xn[off + m * b.mul + u] * gv;
                    }
                }
                o += b.dim();
            }
        });
        y
    }

    fn gate_backward(&self, gate: &GateArch, din: usize, x: &[E], g: &[E]) -> Vec<E> {
        let dout = gate.irreps_out.dim();
        let n = x.len() / din;
        let mut dx = vec![E::zero(); n * din];
        dx.par_chunks_mut(din).zip(x.par_chunks(din)).zip(g.par_chunks(dout)).for_each(|((dn, xn), gn)| {
            let mut o = 0;
            for &(off, cnt, a) in &gate.scalars {
                for i in 0..cnt {
                    dn[off + i] = gn[o + i] * E::of(act_value(a, xn[off + i].to64(), &self.norm).1);
                }
                o += cnt;
            }
            for (&(goff, _, a), &(off, b)) in gate.gates.iter().zip(&gate.gated) {
                for u in 0..b.mul {
                    let (gv, dgv) = act_value(a, xn[goff + u].to64(), &self.norm);
                    let mut acc = E::zero();
                    for m in 0..b.ir.dim() {
                        let i = m * b.mul + u;
                        dn[off + i] = gn[o + i] * E::of(gv);
                        acc += gn[o + i] * xn[off + i];
                    }
                    dn[goff + u] = acc * E::of(dgv);
                }
                o += b.dim();
            }
        });
        dx
    }

    /// Gradient of Σ_g ⟨grad_out[g], output[g]⟩ with respect to all parameters (flat layout).
    pub fn backward(&self, params: &[E], cache: &Cache<E>, grad_out: &[[E; 6]]) -> Vec<E> {
        let mut grad = vec![E::zero(); self.arch.num_params];
        self.backward_into(params, cache, grad_out, &mut grad);
        grad
    }

    /// [`Network::backward`], accumulating into `grad`.
    pub fn backward_into(&self, params: &[E], cache: &Cache<E>, grad_out: &[[E; 6]], grad: &mut [E]) {
        let cfg = &self.arch.config;
        let prep = &cache.prep;
        let em = cfg.em_dim;
        let ns = prep.species_z.len();
        let n = prep.num_nodes;
        assert_eq!(grad.len(), self.arch.num_params);
        // Head: physical and scalar conversions, then the mean over atoms.
        let graw: Vec<[f64; 6]> = cache
            .raw
            .iter()
            .zip(grad_out)
            .map(|(r, g)| self.head_backward(r, &g.map(|v| v.to64())))
            .collect();
        let mut gx = vec![E::zero(); n * 6];
        for (i, &g) in prep.node_graph.iter().enumerate() {
            for c in 0..6 {
                gx[i * 6 + c] = E::of(graw[g][c] / prep.graph_size[g] as f64);
            }
        }
        let mut dz = vec![E::zero(); ns * em];
        for k in (0..self.arch.convs.len()).rev() {
            if let Some(gate) = self.arch.gates.get(k) {
                gx = self.gate_backward(gate, self.arch.convs[k].irreps_out.dim(), &cache.conv_out[k], &gx);
            }
            gx = self.conv_backward(k, params, cache, &gx, &mut dz, grad);
        }
        // Embedding: x0 = relu(W[:,Z] + b), z = relu(mass W[:,Z] + b), per species.
        let mut dx0 = vec![E::zero(); ns * em];
        for (i, &s) in prep.species_of.iter().enumerate() {
            for v in 0..em {
                dx0[s * em + v] += gx[i * em + v];
            }
        }
        let w_off = self.arch.param("em.weight").offset;
        let b_off = self.arch.param("em.bias").offset;
        for s in 0..ns {
            let zi = prep.species_z[s] as usize - 1;
            let mass = E::of(prep.species_mass[s]);
            for v in 0..em {
                if cache.x0_pre[s * em + v] > E::zero() {
                    let d = dx0[s * em + v];
                    grad[w_off + v * NUM_ELEMENTS + zi] += d;
                    grad[b_off + v] += d;
                }
                if cache.z_pre[s * em + v] > E::zero() {
                    let d = dz[s * em + v];
                    grad[w_off + v * NUM_ELEMENTS + zi] += d * mass;
                    grad[b_off + v] += d;
                }
            }
        }
    }

    /// Backward of Convolution k: returns d loss / d input features; accumulates dz and parameter grads.
    // One function on purpose: the reverse of `conv_forward` step by step, in the order the GPU engine launches it, its cached intermediates at hand.
    fn conv_backward(
        &self,
        k: usize,
        params: &[E],
        cache: &Cache<E>,
        g: &[E],
        dz: &mut [E],
        grad: &mut [E],
    ) -> Vec<E> {
        let cfg = &self.arch.config;
        let conv = &self.arch.convs[k];
        let cc = &cache.convs[k];
        let prep = &cache.prep;
        let prefix = self.arch.conv_prefix(k);
        let n = prep.num_nodes;
        let din = conv.irreps_in.dim();
        let dout = conv.irreps_out.dim();
        let dmid = conv.tp.irreps_mid.dim();
        let range = |name: String| {
            let e = self.arch.param(&name);
            e.offset..e.offset + e.numel()
        };
        let s = E::of(SELF_CONNECTION_WEIGHT);
        let g_sc: Vec<E> = g.iter().map(|&v| s * v).collect();
        let scales: Vec<E> = conv.lin2_scale.iter().map(|&c| E::of(c)).collect();
        let mut g_l2 = g.to_vec();
        g_l2.par_chunks_mut(dout).for_each(|r| {
            for (v, &c) in r.iter_mut().zip(&scales) {
                *v *= c;
            }
        });
        let mut dx = vec![E::zero(); n * din];
        // sc and lin2
        let r = range(format!("{prefix}.sc.weight"));
        fctp_backward(
            &conv.sc,
            &params[r.clone()],
            &cache.z,
            &cc.mats_sc,
            &cc.x,
            &prep.species_of,
            &prep.nodes_of_species,
            &g_sc,
            Some(&mut dx),
            &mut grad[r],
            dz,
        );
        let mut dmid_v = vec![E::zero(); n * dmid];
        let r = range(format!("{prefix}.lin2.weight"));
        fctp_backward(
            &conv.lin2,
            &params[r.clone()],
            &cache.z,
            &cc.mats_lin2,
            &cc.mid,
            &prep.species_of,
            &prep.nodes_of_species,
            &g_l2,
            Some(&mut dmid_v),
            &mut grad[r],
            dz,
        );
        // Edge tensor product.
        let num_edges = prep.edges.src.len();
        let nw = conv.tp.weight_numel;
        let mut dh = vec![E::zero(); n * din];
        let mut dw = vec![E::zero(); num_edges * nw];
        let sh_dim = (cfg.lmax + 1) * (cfg.lmax + 1);
        let scale = E::of(1.0 / cfg.num_neighbors.sqrt());
        let in_offsets = conv.irreps_in.offsets();
        let ctx = TpCtx {
            tp: &conv.tp,
            tables: &self.tables[k],
            din,
            in_offsets: &in_offsets,
            mid_offsets: conv.tp.irreps_mid.offsets(),
            h: &cc.h,
            sh: &prep.sh,
            sh_dim,
            w: &cc.w,
            edges: &prep.edges,
            scale,
            gmid: &dmid_v,
        };
        tp_backward(&ctx, &mut dh, &mut dw);
        // Radial MLP.
        let dims = &conv.radial_dims;
        let mut gcur = dw;
        for j in (0..dims.len() - 1).rev() {
            let r = range(format!("{prefix}.fc.layer{j}.weight"));
            let input: &[E] = if j == 0 { &prep.basis } else { &cc.act[j - 1] };
            let alpha = E::of(1.0 / (dims[j] as f64).sqrt());
            matmul(
                input,
                View::new(num_edges, dims[j]).t(),
                &gcur,
                View::new(num_edges, dims[j + 1]),
                &mut grad[r.clone()],
                View::new(dims[j], dims[j + 1]),
                alpha,
                true,
            );
            if j > 0 {
                let mut gin = vec![E::zero(); num_edges * dims[j]];
                matmul(
                    &gcur,
                    View::new(num_edges, dims[j + 1]),
                    &params[r],
                    View::new(dims[j], dims[j + 1]).t(),
                    &mut gin,
                    View::new(num_edges, dims[j]),
                    alpha,
                    false,
                );
                let c = E::of(self.norm.silu);
                gin.par_iter_mut().zip(cc.pre[j - 1].par_iter()).for_each(|(gv, &v)| {
                    let sg = E::one() / (E::one() + (-v).exp());
                    *gv *= c * (sg + v * sg * (E::one() - sg));
                });
                gcur = gin;
            }
        }
        // lin1
        let r = range(format!("{prefix}.lin1.weight"));
        fctp_backward(
            &conv.lin1,
            &params[r.clone()],
            &cache.z,
            &cc.mats_lin1,
            &cc.x,
            &prep.species_of,
            &prep.nodes_of_species,
            &dh,
            Some(&mut dx),
            &mut grad[r],
            dz,
        );
        dx
    }
}
