//! Architecture bookkeeping: the irreps of every layer, tensor-product
//! instructions, path weights and the flat parameter layout, following e3nn's
//! gate_points network. Pure index arithmetic, no numerics.
//!
//! Features of a block `mul × (l, p)` are stored m-major inside the block
//! (`[m][u]`, u = channel) so kernels vectorise over channels; e3nn stores
//! `[u][m]`, see [`to_e3nn_layout`].

use super::config::{ModelConfig, ModelError, ModelKind};
pub use crate::e3::{Irrep, Irreps, MulIr, Parity};

/// The invariant scalar, `0e`.
const SCALAR: Irrep = Irrep::new(0, Parity::Even);

/// A Convolution's output is `sin(π/8)·self-connection + cos(π/8)·message`
/// (e3nn's gate_points): two parts of unit variance give a sum of unit
/// variance. Named once here for every engine that computes it.
pub const SELF_CONNECTION_WEIGHT: f64 = 0.3826834323650898;
/// See [`SELF_CONNECTION_WEIGHT`].
pub const MESSAGE_WEIGHT: f64 = 0.9238795325112867;

/// Whether some `a ⊗ b` path reaches `target`.
fn path_exists(a: &Irreps, b: &Irreps, target: Irrep) -> bool {
    a.0.iter().any(|x| b.0.iter().any(|y| x.ir.tensor_product(y.ir).any(|ir| ir == target)))
}

/// One weighted path of a [`Fctp`]: weights `[mul_in][attr][mul_out]` at `weight_offset`.
#[derive(Clone, Debug)]
pub struct FctpPath {
    pub block_in: usize,
    pub block_out: usize,
    pub weight_offset: usize,
    /// e3nn 'element' normalisation: 1/√(Σ mul_in·attr over paths into block_out).
    pub norm: f64,
}

/// FullyConnectedTensorProduct(x, attr → out) where attr = attr_dim × 0e:
/// out_w = Σ_{u,v} W[u,v,w] x_u z_v · norm for every x block with the output's irrep.
#[derive(Clone, Debug)]
pub struct Fctp {
    pub irreps_in: Irreps,
    pub irreps_out: Irreps,
    pub attr_dim: usize,
    pub paths: Vec<FctpPath>,
    pub weight_numel: usize,
}

impl Fctp {
    fn new(irreps_in: &Irreps, attr_dim: usize, irreps_out: &Irreps) -> Fctp {
        let irreps_in = irreps_in.simplify();
        let irreps_out = irreps_out.simplify();
        let mut paths = Vec::new();
        let mut offset = 0;
        for (i, bi) in irreps_in.0.iter().enumerate() {
            for (o, bo) in irreps_out.0.iter().enumerate() {
                if bi.ir == bo.ir {
                    paths.push(FctpPath { block_in: i, block_out: o, weight_offset: offset, norm: 0.0 });
                    offset += bi.mul * attr_dim * bo.mul;
                }
            }
        }
        for k in 0..paths.len() {
            let fan_in: usize = paths
                .iter()
                .filter(|p| p.block_out == paths[k].block_out)
                .map(|p| irreps_in.0[p.block_in].mul * attr_dim)
                .sum();
            paths[k].norm = 1.0 / (fan_in as f64).sqrt();
        }
        Fctp { irreps_in, irreps_out, attr_dim, paths, weight_numel: offset }
    }

    /// Per output component: whether any path reaches it (e3nn `output_mask`).
    pub fn output_mask(&self) -> Vec<bool> {
        let mut mask = Vec::with_capacity(self.irreps_out.dim());
        for (o, b) in self.irreps_out.0.iter().enumerate() {
            let hit = self.paths.iter().any(|p| p.block_out == o);
            mask.extend(std::iter::repeat_n(hit, b.dim()));
        }
        mask
    }
}

/// One "uvu" instruction of the edge tensor product: input block ⊗ SH degree
/// → `mul` channels starting at `u0` of the (simplified) mid block.
#[derive(Clone, Debug)]
pub struct TpInstruction {
    pub block_in: usize,
    /// SH degree l2 (the SH block index).
    pub l_edge: usize,
    pub block_mid: usize,
    pub u0: usize,
    pub mul: usize,
    pub l_in: usize,
    pub l_out: usize,
    pub path_weight: f64,
    /// Offset of this instruction's `mul` weights in the per-edge weight vector.
    pub weight_offset: usize,
    /// Index of this instruction's output in e3nn's sorted (unsimplified) irreps_mid.
    pub e3nn_i_out: usize,
}

/// The edge tensor product of a Convolution.
#[derive(Clone, Debug)]
pub struct EdgeTp {
    /// e3nn's sorted, unsimplified irreps_mid (as the fixture prints it).
    pub irreps_mid_e3nn: Irreps,
    /// Simplified irreps_mid: the layout of the neighbour sum.
    pub irreps_mid: Irreps,
    pub instructions: Vec<TpInstruction>,
    pub weight_numel: usize,
}

/// One Convolution (e3nn gate_points), irreps in → out.
#[derive(Clone, Debug)]
pub struct ConvArch {
    pub irreps_in: Irreps,
    pub irreps_out: Irreps,
    pub sc: Fctp,
    pub lin1: Fctp,
    pub lin2: Fctp,
    pub tp: EdgeTp,
    /// Radial MLP widths [num_basis, hidden…, tp.weight_numel].
    pub radial_dims: Vec<usize>,
    /// Per output component: [`MESSAGE_WEIGHT`] where sc reaches it, else 1.
    pub lin2_scale: Vec<f64>,
}

/// The activation applied to a segment of scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Silu,
    Tanh,
    Sigmoid,
}

/// e3nn Gate after a Convolution: conv-out offsets of each role.
#[derive(Clone, Debug)]
pub struct GateArch {
    /// (offset in conv out, count, activation) of each scalar segment, in output order.
    pub scalars: Vec<(usize, usize, Act)>,
    /// (offset in conv out, count, activation) of each gate segment, one per gated block.
    pub gates: Vec<(usize, usize, Act)>,
    /// (offset in conv out, block) of each gated block, in output order.
    pub gated: Vec<(usize, MulIr)>,
    pub irreps_out: Irreps,
}

/// Parameter `name` (PyTorch state-dict name) with its shape and offset in the flat vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl ParamEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Number of elements (one-hot width of Z).
pub const NUM_ELEMENTS: usize = 118;

/// The whole network: embedding, `layers` × (Convolution, Gate), final Convolution.
#[derive(Clone, Debug)]
pub struct Architecture {
    pub config: ModelConfig,
    pub irreps_edge: Irreps,
    pub convs: Vec<ConvArch>,
    pub gates: Vec<GateArch>,
    pub params: Vec<ParamEntry>,
    pub num_params: usize,
}

fn even_odd(l: u32) -> [Irrep; 2] {
    [Irrep::new(l, Parity::Odd), Irrep::new(l, Parity::Even)]
}

impl Architecture {
    pub fn new(config: &ModelConfig) -> Result<Architecture, ModelError> {
        config.validate()?;
        let irreps_edge = Irreps::spherical_harmonics(config.lmax as u32);
        let hidden: Vec<MulIr> =
            (0..=config.lmax as u32).flat_map(even_odd).map(|ir| MulIr::new(config.mul, ir)).collect();
        let mut irreps = Irreps(vec![MulIr::new(config.em_dim, SCALAR)]);
        let mut convs = Vec::new();
        let mut gates = Vec::new();
        for _ in 0..config.layers {
            let reach = |ir: Irrep| path_exists(&irreps, &irreps_edge, ir);
            let scalars: Vec<MulIr> = hidden.iter().copied().filter(|b| b.ir.l == 0 && reach(b.ir)).collect();
            let gated: Vec<MulIr> = hidden.iter().copied().filter(|b| b.ir.l > 0 && reach(b.ir)).collect();
            let gate_ir = if reach(SCALAR) { SCALAR } else { Irrep::new(0, Parity::Odd) };
            let gate_blocks: Vec<MulIr> = gated.iter().map(|b| MulIr::new(b.mul, gate_ir)).collect();
            // e3nn _Sortcut: the conv output is the stable sort of scalars + gates + gated.
            let mut all: Vec<(MulIr, usize)> = Vec::new();
            for (k, b) in scalars.iter().chain(&gate_blocks).chain(&gated).enumerate() {
                all.push((*b, k));
            }
            let mut sorted = all.clone();
            sorted.sort_by_key(|(b, k)| (b.ir, *k));
            let mut offset_of = vec![0; all.len()];
            let mut acc = 0;
            for (b, k) in &sorted {
                offset_of[*k] = acc;
                acc += b.dim();
            }
            let conv_out = Irreps(sorted.iter().map(|(b, _)| *b).collect()).simplify();
            let act_scalar = |ir: Irrep| if ir.p == Parity::Even { Act::Silu } else { Act::Tanh };
            let act_gate = if gate_ir.p == Parity::Even { Act::Sigmoid } else { Act::Tanh };
            let ns = scalars.len();
            let ng = gate_blocks.len();
            let gate = GateArch {
                scalars: scalars
                    .iter()
                    .enumerate()
                    .map(|(k, b)| (offset_of[k], b.mul, act_scalar(b.ir)))
                    .collect(),
                gates: gate_blocks
                    .iter()
                    .enumerate()
                    .map(|(k, b)| (offset_of[ns + k], b.mul, act_gate))
                    .collect(),
                gated: gated.iter().enumerate().map(|(k, b)| (offset_of[ns + ng + k], *b)).collect(),
                irreps_out: Irreps(scalars.iter().chain(&gated).copied().collect()).simplify(),
            };
            convs.push(ConvArch::new(config, &irreps, &irreps_edge, &conv_out));
            irreps = gate.irreps_out.clone();
            gates.push(gate);
        }
        let out = match config.kind {
            ModelKind::Equivariant => {
                Irreps(vec![MulIr::new(1, SCALAR), MulIr::new(1, Irrep::new(2, Parity::Even))])
            }
            ModelKind::Scalar => Irreps(vec![MulIr::new(6, SCALAR)]),
        };
        let last = ConvArch::new(config, &irreps, &irreps_edge, &out);
        if config.kind == ModelKind::Equivariant && !last.lin2.paths.iter().any(|p| p.block_out == 1) {
            return Err(ModelError::EquivariantNeedsLmax1);
        }
        convs.push(last);
        let mut arch =
            Architecture { config: config.clone(), irreps_edge, convs, gates, params: vec![], num_params: 0 };
        arch.layout_params();
        Ok(arch)
    }

    /// Flat parameter layout with PyTorch state-dict names (`em`, `layers.K.first.*`, `layers.L.*`).
    fn layout_params(&mut self) {
        let mut entries = Vec::new();
        let mut offset = 0;
        let mut push = |name: String, shape: Vec<usize>| {
            let e = ParamEntry { name, shape, offset };
            offset += e.numel();
            entries.push(e);
        };
        let em = self.config.em_dim;
        push("em.weight".into(), vec![em, NUM_ELEMENTS]);
        push("em.bias".into(), vec![em]);
        let n = self.convs.len();
        for (k, conv) in self.convs.iter().enumerate() {
            let prefix = if k + 1 < n { format!("layers.{k}.first") } else { format!("layers.{k}") };
            push(format!("{prefix}.sc.weight"), vec![conv.sc.weight_numel]);
            push(format!("{prefix}.lin1.weight"), vec![conv.lin1.weight_numel]);
            for (j, w) in conv.radial_dims.windows(2).enumerate() {
                push(format!("{prefix}.fc.layer{j}.weight"), vec![w[0], w[1]]);
            }
            push(format!("{prefix}.lin2.weight"), vec![conv.lin2.weight_numel]);
        }
        self.num_params = offset;
        self.params = entries;
    }

    pub fn param(&self, name: &str) -> &ParamEntry {
        self.params.iter().find(|p| p.name == name).expect("parameter name from the layout")
    }

    /// Prefix of conv `k`'s parameter names.
    pub fn conv_prefix(&self, k: usize) -> String {
        if k + 1 < self.convs.len() {
            format!("layers.{k}.first")
        } else {
            format!("layers.{k}")
        }
    }
}

impl ConvArch {
    fn new(config: &ModelConfig, irreps_in: &Irreps, irreps_edge: &Irreps, irreps_out: &Irreps) -> ConvArch {
        let attr = config.em_dim;
        let irreps_in_s = irreps_in.simplify();
        let sc = Fctp::new(&irreps_in_s, attr, irreps_out);
        let lin1 = Fctp::new(&irreps_in_s, attr, &irreps_in_s);
        // Edge TP instructions in e3nn's creation order, then mid sorted (stable).
        let mut mid: Vec<MulIr> = Vec::new();
        let mut raw: Vec<(usize, usize, usize)> = Vec::new(); // (block_in, l_edge, mid index)
        for (i, b) in irreps_in_s.0.iter().enumerate() {
            for (j, e) in irreps_edge.0.iter().enumerate() {
                for ir in b.ir.tensor_product(e.ir) {
                    if irreps_out.count(ir) > 0 || ir == SCALAR {
                        raw.push((i, j, mid.len()));
                        mid.push(MulIr::new(b.mul, ir));
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..mid.len()).collect();
        order.sort_by_key(|&k| (mid[k].ir, k));
        let mut sorted_pos = vec![0; mid.len()];
        for (pos, &k) in order.iter().enumerate() {
            sorted_pos[k] = pos;
        }
        let mid_e3nn = Irreps(order.iter().map(|&k| mid[k]).collect());
        let mid_s = mid_e3nn.simplify();
        // Channel offset of each sorted entry inside its simplified block.
        let mut place = vec![(0usize, 0usize); mid.len()];
        let mut blk = 0usize;
        let mut u = 0usize;
        for (pos, b) in mid_e3nn.0.iter().enumerate() {
            if pos > 0 && mid_e3nn.0[pos - 1].ir != b.ir {
                blk += 1;
                u = 0;
            }
            place[pos] = (blk, u);
            u += b.mul;
        }
        let mut instructions = Vec::new();
        let mut w_off = 0;
        for &(i, j, k) in &raw {
            let pos = sorted_pos[k];
            // 'element' normalisation for uvu: fan-in = Σ mul_edge (= 1) over paths into this output.
            let fan_in = raw.iter().filter(|r| sorted_pos[r.2] == pos).count() as f64;
            let b = irreps_in_s.0[i];
            instructions.push(TpInstruction {
                block_in: i,
                l_edge: j,
                block_mid: place[pos].0,
                u0: place[pos].1,
                mul: b.mul,
                l_in: b.ir.l as usize,
                l_out: mid[k].ir.l as usize,
                path_weight: (mid[k].ir.dim() as f64 / fan_in).sqrt(),
                weight_offset: w_off,
                e3nn_i_out: pos,
            });
            w_off += b.mul;
        }
        let tp = EdgeTp {
            irreps_mid_e3nn: mid_e3nn,
            irreps_mid: mid_s.clone(),
            instructions,
            weight_numel: w_off,
        };
        let lin2 = Fctp::new(&mid_s, attr, irreps_out);
        let mut radial_dims = vec![config.num_basis];
        radial_dims.extend(std::iter::repeat_n(config.radial_neurons, config.radial_layers));
        radial_dims.push(tp.weight_numel);
        let lin2_scale = sc.output_mask().iter().map(|&m| if m { MESSAGE_WEIGHT } else { 1.0 }).collect();
        ConvArch {
            irreps_in: irreps_in_s,
            irreps_out: irreps_out.simplify(),
            sc,
            lin1,
            lin2,
            tp,
            radial_dims,
            lin2_scale,
        }
    }
}

/// Reorders one node's features from our m-major block layout to e3nn's `[u][m]`.
pub fn to_e3nn_layout(irreps: &Irreps, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (b, off) in irreps.0.iter().zip(irreps.offsets()) {
        let d = b.ir.dim();
        for u in 0..b.mul {
            for m in 0..d {
                out[off + u * d + m] = x[off + m * b.mul + u];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_convolution_mixes_by_sin_and_cos_of_an_eighth_of_pi() {
        let eighth = std::f64::consts::PI / 8.0;
        assert_eq!(SELF_CONNECTION_WEIGHT, eighth.sin());
        assert_eq!(MESSAGE_WEIGHT, eighth.cos());
    }
}
