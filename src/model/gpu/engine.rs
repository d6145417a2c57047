//! The whole network on a [`Gpu`], behind [`DeviceEngine`]: the fused
//! kernels of this module's siblings, launched in the order of the fused
//! CPU network ([`crate::model::network`]).
//!
//! Training keeps a trial's whole state on the device ([`ResidentTraining`]):
//! parameters, their gradient, AdamW's moments and the best validation
//! parameters stay there from the first step to the last, and AdamW and the
//! gradient-norm limit run as kernels ([`super::optim`]). A step then
//! crosses the bus three times: the packed batch up, the pooled outputs
//! down (48 bytes a structure), their gradient up (24 in f32), for the host
//! to apply the head and the loss. The batch and the workspace live in
//! buffers kept for the whole trial and grown only when a batch needs more,
//! so a step allocates nothing; every kernel overwrites what it writes, so
//! nothing is cleared either. Parameters come down only for a checkpoint.
//!
//! [`DeviceEngine::forward`] (parameters from the host, gradient back to
//! it) remains for the tape-driven path and the cross-checks: it packs the
//! parameters with the batch and brings the gradient down, in buffers of
//! its own. The architecture's tables are uploaded once, when the engine is
//! made.

use std::sync::{Arc, Mutex, MutexGuard};

use super::conv::{TpConv, TpConvBackward, TpGraph};
use super::fctp::{FctpBackward, FctpForward, FctpTables, SpeciesNodes, Upstream};
use super::layers::{self, EmbedGrads, Embedded, GateTables, Graphs, MlpLayer, Species};
use super::optim::{AdamStep, DeviceState, HostState};
use super::{ints, Accumulate, Buffer, Gpu, GpuError, GpuReal, Layout, Packing, Section, Slice};
use crate::model::arch::SELF_CONNECTION_WEIGHT;
use crate::model::config::ModelError;
use crate::model::kernels::TpTables;
use crate::model::network::{Network, Prepared};
use crate::model::tensor_net::{DeviceEngine, EngineOutput, RawBackward, ResidentTraining, StepLoss};

/// Threads per block of the convolution kernels (results do not depend on it).
const CONV_BLOCK: u32 = 256;

/// One convolution's tables.
struct ConvTables<E> {
    tp: TpConv<E>,
    sc: FctpTables<E>,
    lin1: FctpTables<E>,
    lin2: FctpTables<E>,
    lin2_scale: Buffer<E>,
}

struct Inner<E: GpuReal> {
    gpu: Gpu,
    net: Arc<Network<E>>,
    convs: Vec<ConvTables<E>>,
    gates: Vec<GateTables>,
    /// The training run on this engine, once [`ResidentTraining::load`] put it here.
    trial: Mutex<Option<Trial<E>>>,
}

/// A training run's memory on the device: its state, and the buffers every
/// step reuses.
struct Trial<E> {
    state: DeviceState<E>,
    packing: Packing,
    batch: Grown,
    work: Grown,
}

/// A device buffer kept between steps and grown only when a step needs
/// more (by a quarter more than asked, so that a slightly larger batch
/// later does not allocate again).
#[derive(Default)]
struct Grown {
    buffer: Option<Buffer<u8>>,
}

impl Grown {
    fn at_least(&mut self, gpu: &Gpu, bytes: usize) -> Result<Slice<u8>, GpuError> {
        if self.buffer.as_ref().is_none_or(|b| b.len() < bytes) {
            self.buffer = None;
            self.buffer = Some(gpu.alloc::<u8>(bytes + bytes / 4)?);
        }
        Ok(self.buffer.as_ref().expect("allocated above").slice())
    }
}

/// The network on a GPU, or on its CPU emulation.
pub struct GpuEngine<E: GpuReal> {
    inner: Arc<Inner<E>>,
}

fn device_error(e: GpuError) -> ModelError {
    ModelError::Device(e.to_string())
}

/// `ptr`/`list` grouping of `0..len` by `key`, each group in increasing order.
fn groups(len: usize, groups: usize, key: impl Fn(usize) -> usize) -> (Vec<i32>, Vec<i32>) {
    let mut ptr = vec![0usize; groups + 1];
    for i in 0..len {
        ptr[key(i) + 1] += 1;
    }
    for g in 0..groups {
        ptr[g + 1] += ptr[g];
    }
    let mut fill = ptr.clone();
    let mut list = vec![0usize; len];
    for i in 0..len {
        list[fill[key(i)]] = i;
        fill[key(i)] += 1;
    }
    (ints(ptr), ints(list))
}

impl<E: GpuReal> GpuEngine<E> {
    /// The engine for `net` on `gpu`, its tables uploaded.
    pub fn new(gpu: Gpu, net: Arc<Network<E>>) -> Result<GpuEngine<E>, ModelError> {
        let arch = &net.arch;
        let cfg = &arch.config;
        let scale = E::of(1.0 / cfg.num_neighbors.sqrt());
        let convs = arch
            .convs
            .iter()
            .map(|c| {
                let tables = TpTables::new(&c.tp);
                let din = c.irreps_in.dim();
                let scales: Vec<E> = c.lin2_scale.iter().map(|&v| E::of(v)).collect();
                Ok(ConvTables {
                    tp: TpConv::new(&gpu, &c.tp, &tables, &c.irreps_in.offsets(), din, scale, CONV_BLOCK)?,
                    sc: FctpTables::new(&gpu, &c.sc)?,
                    lin1: FctpTables::new(&gpu, &c.lin1)?,
                    lin2: FctpTables::new(&gpu, &c.lin2)?,
                    lin2_scale: gpu.upload(&scales)?,
                })
            })
            .collect::<Result<Vec<_>, GpuError>>()
            .map_err(device_error)?;
        let gates = arch
            .gates
            .iter()
            .zip(&arch.convs)
            .map(|(g, c)| GateTables::new(&gpu, g, c.irreps_out.dim()))
            .collect::<Result<Vec<_>, GpuError>>()
            .map_err(device_error)?;
        // The backward pass writes each parameter's gradient once and clears nothing.
        let mut written = 0;
        for (k, c) in arch.convs.iter().enumerate() {
            let prefix = arch.conv_prefix(k);
            written += [&c.sc, &c.lin1, &c.lin2].iter().map(|f| f.weight_numel).sum::<usize>();
            for j in 0..c.radial_dims.len() - 1 {
                written += arch.param(&format!("{prefix}.fc.layer{j}.weight")).numel();
            }
        }
        written += arch.param("em.weight").numel() + arch.param("em.bias").numel();
        assert_eq!(written, arch.num_params, "every parameter's gradient is written by one kernel");
        Ok(GpuEngine { inner: Arc::new(Inner { gpu, net, convs, gates, trial: Mutex::new(None) }) })
    }

    /// Launches and transfers so far.
    pub fn counts(&self) -> super::Counts {
        self.inner.gpu.counts()
    }
}

/// Where a batch went in its packed upload.
struct BatchSections<E> {
    /// The parameters, where they travel with the batch (not in a trial on the device).
    params: Option<Section<E>>,
    species_z: Section<i32>,
    species_mass: Section<E>,
    species_of: Section<i32>,
    species_ptr: Section<i32>,
    species_nodes: Section<i32>,
    graph_ptr: Section<i32>,
    graph_nodes: Section<i32>,
    node_graph: Section<i32>,
    edges: super::conv::TpGraphSections,
    sh: Section<E>,
    basis: Section<E>,
}

/// Device sections of one convolution's forward pass.
struct ConvSections<E> {
    x: Section<E>,
    sc: Section<E>,
    h: Section<E>,
    mats: [Section<E>; 3],
    pre: Vec<Section<E>>,
    act: Vec<Section<E>>,
    w: Section<E>,
    mid: Section<E>,
    out: Section<E>,
}

/// Device sections of one convolution's backward pass.
struct ConvGrads<E> {
    /// d loss / d conv out (the gate's input gradient, or the unpooled head gradient).
    g: Section<E>,
    gmid: Section<E>,
    dh: Section<E>,
    dw: Section<E>,
    /// Gradients of the radial MLP's hidden activations.
    gact: Vec<Section<E>>,
    /// d loss / d conv in.
    dx: Section<E>,
}

struct Workspace<E> {
    x0_pre: Section<E>,
    z_pre: Section<E>,
    z: Section<E>,
    convs: Vec<ConvSections<E>>,
    /// Gate outputs, which are the next convolution's input (`convs[k + 1].x`).
    raw: Section<f64>,
    grads: Option<Grads<E>>,
}

struct Grads<E> {
    graw: Section<E>,
    /// The parameters' gradient, where it is not the trial's on the device.
    params: Option<Section<E>>,
    convs: Vec<ConvGrads<E>>,
    dz: Section<E>,
    /// The FCTPs' backward workspace, one FCTP at a time.
    fctp_scratch: Section<E>,
    masked: Section<E>,
    /// The radial MLP's weight gradient by chunks of edges, one layer at a time.
    mlp_partial: Section<E>,
}

/// Where a pass finds its batch, workspace, parameters and their gradient
/// (with a backward pass).
struct Place<E> {
    batch: Slice<u8>,
    work: Slice<u8>,
    params: Slice<E>,
    grads: Option<Slice<E>>,
}

/// What the backward pass keeps of a forward pass: where the batch, the
/// workspace, the parameters and their gradient are.
struct Step<E> {
    batch: Slice<u8>,
    work: Slice<u8>,
    params: Slice<E>,
    /// With a backward pass.
    grads: Option<Slice<E>>,
    sections: BatchSections<E>,
    ws: Workspace<E>,
    species: usize,
    nodes: usize,
    edges: usize,
    graphs: usize,
}

impl<E: GpuReal> Inner<E> {
    /// The batch (with `params`, when given) into `p`.
    fn pack(&self, p: &mut Packing, prep: &Prepared<E>, params: Option<&[E]>) -> BatchSections<E> {
        let (n, ns) = (prep.num_nodes, prep.species_z.len());
        let (species_ptr, species_nodes) = groups(n, ns, |i| prep.species_of[i]);
        let (graph_ptr, graph_nodes) = groups(n, prep.num_graphs, |i| prep.node_graph[i]);
        let mass: Vec<E> = prep.species_mass.iter().map(|&m| E::of(m)).collect();
        BatchSections {
            params: params.map(|params| p.push(params)),
            species_z: p.push(&ints(prep.species_z.iter().map(|&z| z as usize - 1))),
            species_mass: p.push(&mass),
            species_of: p.push(&ints(prep.species_of.iter().copied())),
            species_ptr: p.push(&species_ptr),
            species_nodes: p.push(&species_nodes),
            graph_ptr: p.push(&graph_ptr),
            graph_nodes: p.push(&graph_nodes),
            node_graph: p.push(&ints(prep.node_graph.iter().copied())),
            edges: TpGraph::pack(p, &prep.edges),
            sh: p.push(&prep.sh),
            basis: p.push(&prep.basis),
        }
    }

    /// The workspace of a pass; `grads`: with a backward pass, and whether
    /// the parameters' gradient is written into it (else into the trial's).
    fn layout(&self, prep: &Prepared<E>, grads: Option<bool>) -> (Layout, Workspace<E>) {
        let arch = &self.net.arch;
        let em = arch.config.em_dim;
        let (n, ns, ne) = (prep.num_nodes, prep.species_z.len(), prep.edges.src.len());
        let mut l = Layout::default();
        let (x0_pre, z_pre, z) = (l.reserve(ns * em), l.reserve(ns * em), l.reserve(ns * em));
        let mut x = l.reserve(n * em);
        let mut convs = Vec::new();
        for (k, c) in arch.convs.iter().enumerate() {
            let t = &self.convs[k];
            let dims = &c.radial_dims;
            let hidden = dims.len() - 2;
            let conv = ConvSections {
                x,
                sc: l.reserve(n * c.irreps_out.dim()),
                h: l.reserve(n * c.irreps_in.dim()),
                mats: [t.sc.mats_len(ns), t.lin1.mats_len(ns), t.lin2.mats_len(ns)].map(|len| l.reserve(len)),
                pre: (0..hidden).map(|j| l.reserve(ne * dims[j + 1])).collect(),
                act: (0..hidden).map(|j| l.reserve(ne * dims[j + 1])).collect(),
                w: l.reserve(ne * c.tp.weight_numel),
                mid: l.reserve(n * c.tp.irreps_mid.dim()),
                out: l.reserve(n * c.irreps_out.dim()),
            };
            x = match arch.gates.get(k) {
                Some(g) => l.reserve(n * g.irreps_out.dim()),
                None => conv.out,
            };
            convs.push(conv);
        }
        let raw = l.reserve(prep.num_graphs * 6);
        let grads = grads.map(|in_workspace| {
            let convs = arch
                .convs
                .iter()
                .map(|c| {
                    let dims = &c.radial_dims;
                    ConvGrads {
                        g: l.reserve(n * c.irreps_out.dim()),
                        gmid: l.reserve(n * c.tp.irreps_mid.dim()),
                        dh: l.reserve(n * c.irreps_in.dim()),
                        dw: l.reserve(ne * c.tp.weight_numel),
                        gact: (1..dims.len() - 1).map(|j| l.reserve(ne * dims[j])).collect(),
                        dx: l.reserve(n * c.irreps_in.dim()),
                    }
                })
                .collect();
            let fctp_scratch = self
                .convs
                .iter()
                .flat_map(|t| [&t.sc, &t.lin1, &t.lin2].map(|f| f.scratch_len(ns)))
                .max()
                .unwrap_or(0);
            let mlp_partial = arch
                .convs
                .iter()
                .flat_map(|c| c.radial_dims.windows(2).map(|d| (d[0], d[1])))
                .map(|(inner, cols)| MlpLayer::<E>::partial_len_of(ne, inner, cols))
                .max()
                .unwrap_or(0);
            Grads {
                graw: l.reserve(prep.num_graphs * 6),
                params: in_workspace.then(|| l.reserve(arch.num_params)),
                convs,
                dz: l.reserve(ns * em),
                fctp_scratch: l.reserve(fctp_scratch),
                masked: l.reserve(2 * ns * em),
                mlp_partial: l.reserve(mlp_partial),
            }
        });
        (l, Workspace { x0_pre, z_pre, z, convs, raw, grads })
    }

    fn param(&self, step: &Step<E>, name: &str) -> Slice<E> {
        let e = self.net.arch.param(name);
        step.params.range(e.offset, e.numel())
    }

    fn grad(&self, step: &Step<E>, name: &str) -> Slice<E> {
        let e = self.net.arch.param(name);
        step.grads.expect("a step with a backward pass").range(e.offset, e.numel())
    }

    fn species(&self, step: &Step<E>) -> Species<E> {
        let (s, b) = (&step.sections, step.batch);
        Species {
            z: s.species_z.of(b),
            mass: s.species_mass.of(b),
            of: s.species_of.of(b),
            ptr: s.species_ptr.of(b),
            nodes: s.species_nodes.of(b),
        }
    }

    fn embedded(&self, step: &Step<E>) -> Embedded<E> {
        let w = step.work;
        Embedded { x0_pre: step.ws.x0_pre.of(w), z_pre: step.ws.z_pre.of(w), z: step.ws.z.of(w) }
    }

    fn graphs(&self, step: &Step<E>) -> Graphs {
        let (s, b) = (&step.sections, step.batch);
        Graphs { ptr: s.graph_ptr.of(b), nodes: s.graph_nodes.of(b), node_graph: s.node_graph.of(b) }
    }

    /// A pass in buffers of its own, the parameters packed with the batch
    /// and their gradient (with `backward`) in the workspace.
    fn own_step(
        &self,
        prep: &Prepared<E>,
        params: &[E],
        backward: bool,
    ) -> Result<(Step<E>, [Buffer<u8>; 2]), GpuError> {
        let mut packing = Packing::default();
        let sections = self.pack(&mut packing, prep, Some(params));
        let (layout, ws) = self.layout(prep, backward.then_some(true));
        let batch = self.gpu.upload_packed(&packing)?;
        let work = self.gpu.alloc::<u8>(layout.len())?;
        let params = sections.params.expect("packed above").of(&batch);
        let grads = ws.grads.as_ref().map(|g| g.params.expect("in the workspace").of(&work));
        let place = Place { batch: batch.slice(), work: work.slice(), params, grads };
        let step = self.step(prep, place, sections, ws);
        Ok((step, [batch, work]))
    }

    /// A pass of the trial on the device: the batch into its kept buffers,
    /// the parameters and their gradient its own.
    fn trial_step(
        &self,
        trial: &mut Trial<E>,
        prep: &Prepared<E>,
        backward: bool,
    ) -> Result<Step<E>, GpuError> {
        trial.packing.clear();
        let sections = self.pack(&mut trial.packing, prep, None);
        let (layout, ws) = self.layout(prep, backward.then_some(false));
        let batch = trial.batch.at_least(&self.gpu, trial.packing.len())?;
        self.gpu.write_slice(batch, trial.packing.bytes())?;
        let work = trial.work.at_least(&self.gpu, layout.len())?;
        let (params, grads) = (trial.state.params.slice(), backward.then(|| trial.state.grad.slice()));
        Ok(self.step(prep, Place { batch, work, params, grads }, sections, ws))
    }

    fn step(
        &self,
        prep: &Prepared<E>,
        place: Place<E>,
        sections: BatchSections<E>,
        ws: Workspace<E>,
    ) -> Step<E> {
        Step {
            batch: place.batch,
            work: place.work,
            params: place.params,
            grads: place.grads,
            sections,
            ws,
            species: prep.species_z.len(),
            nodes: prep.num_nodes,
            edges: prep.edges.src.len(),
            graphs: prep.num_graphs,
        }
    }

    /// The forward pass of `step`, up to the pooled outputs.
    fn forward(&self, step: &Step<E>) -> Result<(), GpuError> {
        let gpu = &self.gpu;
        let arch = &self.net.arch;
        let (w, ns, n) = (step.work, step.species, step.nodes);
        let species = self.species(step);
        let embedded = self.embedded(step);
        let em = (self.param(step, "em.weight"), self.param(step, "em.bias"));
        layers::embed_forward(gpu, em, species, embedded, step.ws.convs[0].x.of(w))?;
        let graph = step.sections.edges.of(step.batch);
        let (sh, basis) = (step.sections.sh.of(step.batch), step.sections.basis.of(step.batch));
        let z = embedded.z;
        let s = SELF_CONNECTION_WEIGHT;
        for (k, c) in arch.convs.iter().enumerate() {
            let (t, cs) = (&self.convs[k], &step.ws.convs[k]);
            let prefix = arch.conv_prefix(k);
            let x = cs.x.of(w);
            let [m_sc, m_lin1, m_lin2] = cs.mats.map(|m| m.of(w));
            let weight = |name: &str| self.param(step, &format!("{prefix}.{name}"));
            t.sc.matrices(gpu, weight("sc.weight"), z, ns, m_sc)?;
            t.lin1.matrices(gpu, weight("lin1.weight"), z, ns, m_lin1)?;
            t.lin2.matrices(gpu, weight("lin2.weight"), z, ns, m_lin2)?;
            let plain = |mats: Slice<E>, out: Slice<E>| FctpForward {
                x,
                mats,
                species_of: species.of,
                species: ns,
                scale: None,
                add: None,
                out,
            };
            t.sc.forward(gpu, plain(m_sc, cs.sc.of(w)))?;
            t.lin1.forward(gpu, plain(m_lin1, cs.h.of(w)))?;
            let dims = &c.radial_dims;
            for j in 0..dims.len() - 1 {
                let input = if j == 0 { basis } else { cs.act[j - 1].of(w) };
                let layer = MlpLayer {
                    input,
                    weight: weight(&format!("fc.layer{j}.weight")),
                    rows: step.edges,
                    inner: dims[j],
                    cols: dims[j + 1],
                };
                match cs.act.get(j) {
                    Some(act) => layer.forward(gpu, &self.net.norm, act.of(w), Some(cs.pre[j].of(w)))?,
                    None => layer.forward(gpu, &self.net.norm, cs.w.of(w), None)?,
                }
            }
            t.tp.forward(gpu, &graph, cs.h.of(w), sh, cs.w.of(w), cs.mid.of(w))?;
            let lin2 = FctpForward {
                x: cs.mid.of(w),
                scale: Some(t.lin2_scale.slice()),
                add: Some((cs.sc.of(w), s)),
                ..plain(m_lin2, cs.out.of(w))
            };
            t.lin2.forward(gpu, lin2)?;
            if let Some(gate) = self.gates.get(k) {
                gate.forward(gpu, &self.net.norm, n, cs.out.of(w), step.ws.convs[k + 1].x.of(w))?;
            }
        }
        let last = step.ws.convs.last().expect("a convolution");
        self.graphs(step).pool(gpu, last.out.of(w), step.ws.raw.of(w))
    }

    fn raw(&self, step: &Step<E>) -> Result<Vec<[f64; 6]>, GpuError> {
        let raw = self.gpu.download_slice(step.ws.raw.of(step.work))?;
        Ok(raw.chunks(6).map(|c| std::array::from_fn(|k| c[k])).collect())
    }

    /// The backward pass of `step` from d loss / d raw, into the step's
    /// parameter gradient (which it overwrites).
    fn backward(&self, step: &Step<E>, graw: &[[f64; 6]]) -> Result<(), GpuError> {
        let gpu = &self.gpu;
        let arch = &self.net.arch;
        let (w, n) = (step.work, step.nodes);
        let gs = step.ws.grads.as_ref().expect("a step with a backward pass");
        assert_eq!(graw.len(), step.graphs, "one gradient per structure");
        let graw: Vec<E> = graw.as_flattened().iter().map(|&g| E::of(g)).collect();
        gpu.write_slice(gs.graw.of(w), &graw)?;
        let species = self.species(step);
        let nodes = SpeciesNodes { species_of: species.of, ptr: species.ptr, nodes: species.nodes };
        let embedded = self.embedded(step);
        let z = embedded.z;
        let dz = gs.dz.of(w);
        let scratch = gs.fctp_scratch.of(w);
        let graph = step.sections.edges.of(step.batch);
        let (sh, basis) = (step.sections.sh.of(step.batch), step.sections.basis.of(step.batch));
        let last = arch.convs.len() - 1;
        self.graphs(step).unpool(gpu, gs.graw.of(w), gs.convs[last].g.of(w))?;
        let s = SELF_CONNECTION_WEIGHT;
        for k in (0..arch.convs.len()).rev() {
            let c = &arch.convs[k];
            let (t, cs, cg) = (&self.convs[k], &step.ws.convs[k], &gs.convs[k]);
            let prefix = arch.conv_prefix(k);
            let weight = |name: &str| self.param(step, &format!("{prefix}.{name}"));
            let dweight = |name: &str| self.grad(step, &format!("{prefix}.{name}"));
            let [m_sc, m_lin1, m_lin2] = cs.mats.map(|m| m.of(w));
            let (g, x, dx) = (cg.g.of(w), cs.x.of(w), cg.dx.of(w));
            // The attributes' gradient sums over every convolution, from the last one on.
            let onto_dz = if k == last { Accumulate::Overwrite } else { Accumulate::Add };
            let fctp = |name: &str, x: Slice<E>, mats: Slice<E>, upstream: Upstream<E>| FctpBackward {
                x,
                g,
                upstream,
                mats,
                nodes,
                weight: weight(name),
                z,
                dx: None,
                scratch,
                dweight: dweight(name),
                dz: (dz, Accumulate::Add),
            };
            t.sc.backward(
                gpu,
                FctpBackward {
                    dx: Some((dx, Accumulate::Overwrite)),
                    dz: (dz, onto_dz),
                    ..fctp("sc.weight", x, m_sc, Upstream::Alpha(s))
                },
            )?;
            let lin2 = fctp("lin2.weight", cs.mid.of(w), m_lin2, Upstream::Scale(t.lin2_scale.slice()));
            t.lin2
                .backward(gpu, FctpBackward { dx: Some((cg.gmid.of(w), Accumulate::Overwrite)), ..lin2 })?;
            let tp = TpConvBackward {
                h: cs.h.of(w),
                sh,
                w: cs.w.of(w),
                g: cg.gmid.of(w),
                dh: (cg.dh.of(w), Accumulate::Overwrite),
                dw: cg.dw.of(w),
            };
            t.tp.backward(gpu, &graph, tp)?;
            let dims = &c.radial_dims;
            for j in (0..dims.len() - 1).rev() {
                let input = if j == 0 { basis } else { cs.act[j - 1].of(w) };
                let name = format!("fc.layer{j}.weight");
                let layer = MlpLayer {
                    input,
                    weight: weight(&name),
                    rows: step.edges,
                    inner: dims[j],
                    cols: dims[j + 1],
                };
                let g = if j + 1 == dims.len() - 1 { cg.dw.of(w) } else { cg.gact[j].of(w) };
                let input_grad = (j > 0).then(|| (cg.gact[j - 1].of(w), cs.pre[j - 1].of(w)));
                layer.backward(gpu, &self.net.norm, g, (dweight(&name), gs.mlp_partial.of(w)), input_grad)?;
            }
            let lin1 = fctp("lin1.weight", x, m_lin1, Upstream::Alpha(1.0));
            t.lin1.backward(gpu, FctpBackward { g: cg.dh.of(w), dx: Some((dx, Accumulate::Add)), ..lin1 })?;
            if k > 0 {
                let gate = &self.gates[k - 1];
                gate.backward(
                    gpu,
                    &self.net.norm,
                    n,
                    step.ws.convs[k - 1].out.of(w),
                    dx,
                    gs.convs[k - 1].g.of(w),
                )?;
            }
        }
        let grads = EmbedGrads {
            gx: gs.convs[0].dx.of(w),
            dz,
            masked: gs.masked.of(w),
            dweight: self.grad(step, "em.weight"),
            dbias: self.grad(step, "em.bias"),
        };
        layers::embed_backward(gpu, species, embedded, grads)
    }

    /// The trial on the device, or the error that there is none.
    fn trial(&self) -> Result<MutexGuard<'_, Option<Trial<E>>>, ModelError> {
        let trial = self.trial.lock().unwrap_or_else(|e| e.into_inner());
        if trial.is_none() {
            return Err(ModelError::Device("no training state on the device: load it first".into()));
        }
        Ok(trial)
    }
}

impl<E: GpuReal> DeviceEngine<E> for GpuEngine<E> {
    fn name(&self) -> &str {
        self.inner.gpu.name()
    }

    fn counts(&self) -> Option<super::Counts> {
        Some(self.inner.gpu.counts())
    }

    fn forward(
        &self,
        prep: &Prepared<E>,
        params: &[E],
        backward: bool,
    ) -> Result<EngineOutput<E>, ModelError> {
        let inner = &self.inner;
        let (step, buffers) = inner.own_step(prep, params, backward).map_err(device_error)?;
        inner.forward(&step).map_err(device_error)?;
        let raw = inner.raw(&step).map_err(device_error)?;
        let back = backward.then(|| {
            let inner = self.inner.clone();
            Box::new(move |graw: &[[f64; 6]]| {
                let _buffers = buffers;
                inner.backward(&step, graw).map_err(device_error)?;
                inner.gpu.download_slice(step.grads.expect("a backward pass")).map_err(device_error)
            }) as RawBackward<E>
        });
        Ok((raw, back))
    }

    fn resident(&self) -> Option<&dyn ResidentTraining<E>> {
        Some(self)
    }
}

impl<E: GpuReal> ResidentTraining<E> for GpuEngine<E> {
    fn load(&self, state: &HostState<E>) -> Result<(), ModelError> {
        let inner = &self.inner;
        let mut trial = inner.trial.lock().unwrap_or_else(|e| e.into_inner());
        *trial = None;
        let state = DeviceState::load(&inner.gpu, state).map_err(device_error)?;
        *trial = Some(Trial {
            state,
            packing: Packing::default(),
            batch: Grown::default(),
            work: Grown::default(),
        });
        Ok(())
    }

    fn store(&self) -> Result<HostState<E>, ModelError> {
        let trial = self.inner.trial()?;
        trial.as_ref().expect("checked").state.store(&self.inner.gpu).map_err(device_error)
    }

    fn train_step(&self, prep: &Prepared<E>, loss: StepLoss<'_>, adam: &AdamStep) -> Result<f64, ModelError> {
        let inner = &self.inner;
        let mut guard = inner.trial()?;
        let trial = guard.as_mut().expect("checked");
        let step = inner.trial_step(trial, prep, true).map_err(device_error)?;
        inner.forward(&step).map_err(device_error)?;
        let raw = inner.raw(&step).map_err(device_error)?;
        let (value, graw) = loss(&raw);
        inner.backward(&step, &graw).map_err(device_error)?;
        trial.state.adamw(&inner.gpu, adam).map_err(device_error)?;
        Ok(value)
    }

    fn predict(&self, prep: &Prepared<E>) -> Result<Vec<[f64; 6]>, ModelError> {
        let inner = &self.inner;
        let mut guard = inner.trial()?;
        let step = inner.trial_step(guard.as_mut().expect("checked"), prep, false).map_err(device_error)?;
        inner.forward(&step).map_err(device_error)?;
        inner.raw(&step).map_err(device_error)
    }

    fn keep_best(&self) -> Result<(), ModelError> {
        let trial = self.inner.trial()?;
        trial.as_ref().expect("checked").state.keep_best(&self.inner.gpu).map_err(device_error)
    }

    fn restore_best(&self) -> Result<(), ModelError> {
        let trial = self.inner.trial()?;
        trial.as_ref().expect("checked").state.restore_best(&self.inner.gpu).map_err(device_error)
    }
}

#[cfg(test)]
mod tests;
