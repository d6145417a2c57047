//! The whole network on a [`Gpu`], behind [`DeviceEngine`]: the fused
//! kernels of this module's siblings, launched in the order of the fused
//! CPU network ([`crate::model::network`]).
//!
//! A training step crosses the bus four times: parameters and the batch up
//! in one packed transfer, the pooled outputs down, their gradient up, the
//! parameter gradient down. Everything between lives in one workspace
//! allocation per step, laid out on the host, and every kernel overwrites
//! what it writes, so nothing is cleared. The architecture's tables are
//! uploaded once, when the engine is made.

use std::f64::consts::PI;
use std::sync::Arc;

use super::conv::{TpConv, TpGraph};
use super::fctp::{FctpTables, SpeciesNodes, Upstream};
use super::layers::{self, Embedded, GateTables, Graphs, MlpLayer, Species};
use super::{ints, Buffer, Gpu, GpuError, GpuReal, Layout, Packing, Section, Slice};
use crate::model::config::ModelError;
use crate::model::kernels::TpTables;
use crate::model::network::{Network, Prepared};
use crate::model::tensor_net::{DeviceEngine, EngineOutput, RawBackward};

/// Threads per block of the convolution kernels (results do not depend on it).
const CONV_BLOCK: u32 = 64;

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
        Ok(GpuEngine { inner: Arc::new(Inner { gpu, net, convs, gates }) })
    }

    /// Launches and transfers so far.
    pub fn counts(&self) -> super::Counts {
        self.inner.gpu.counts()
    }
}

/// Where a batch went in its packed upload.
struct BatchSections<E> {
    params: Section<E>,
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
    graw: Section<f64>,
    params: Section<E>,
    convs: Vec<ConvGrads<E>>,
    dz: Section<E>,
    species_grad: Section<E>,
    masked: Section<E>,
}

/// What the backward pass keeps of a forward pass.
struct Step<E> {
    batch: Buffer<u8>,
    work: Buffer<u8>,
    sections: BatchSections<E>,
    ws: Workspace<E>,
    species: usize,
    nodes: usize,
    edges: usize,
    graphs: usize,
}

impl<E: GpuReal> Inner<E> {
    fn pack(&self, prep: &Prepared<E>, params: &[E]) -> (Packing, BatchSections<E>) {
        let mut p = Packing::default();
        let (n, ns) = (prep.num_nodes, prep.species_z.len());
        let (species_ptr, species_nodes) = groups(n, ns, |i| prep.species_of[i]);
        let (graph_ptr, graph_nodes) = groups(n, prep.num_graphs, |i| prep.node_graph[i]);
        let mass: Vec<E> = prep.species_mass.iter().map(|&m| E::of(m)).collect();
        let sections = BatchSections {
            params: p.push(params),
            species_z: p.push(&ints(prep.species_z.iter().map(|&z| z as usize - 1))),
            species_mass: p.push(&mass),
            species_of: p.push(&ints(prep.species_of.iter().copied())),
            species_ptr: p.push(&species_ptr),
            species_nodes: p.push(&species_nodes),
            graph_ptr: p.push(&graph_ptr),
            graph_nodes: p.push(&graph_nodes),
            node_graph: p.push(&ints(prep.node_graph.iter().copied())),
            edges: TpGraph::pack(&mut p, &prep.edges),
            sh: p.push(&prep.sh),
            basis: p.push(&prep.basis),
        };
        (p, sections)
    }

    fn layout(&self, prep: &Prepared<E>, backward: bool) -> (Layout, Workspace<E>) {
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
        let grads = backward.then(|| {
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
            let species_grad = self
                .convs
                .iter()
                .flat_map(|t| [t.sc.mats_len(ns), t.lin1.mats_len(ns), t.lin2.mats_len(ns)])
                .max()
                .unwrap_or(0);
            Grads {
                graw: l.reserve(prep.num_graphs * 6),
                params: l.reserve(arch.num_params),
                convs,
                dz: l.reserve(ns * em),
                species_grad: l.reserve(species_grad),
                masked: l.reserve(2 * ns * em),
            }
        });
        (l, Workspace { x0_pre, z_pre, z, convs, raw, grads })
    }

    fn param(&self, step: &Step<E>, name: &str) -> Slice<E> {
        let e = self.net.arch.param(name);
        step.sections.params.of(&step.batch).range(e.offset, e.numel())
    }

    fn grad(&self, step: &Step<E>, name: &str) -> Slice<E> {
        let e = self.net.arch.param(name);
        let grads = step.ws.grads.as_ref().expect("a step with a backward pass");
        grads.params.of(&step.work).range(e.offset, e.numel())
    }

    fn species(&self, step: &Step<E>) -> Species<E> {
        let (s, b) = (&step.sections, &step.batch);
        Species {
            z: s.species_z.of(b),
            mass: s.species_mass.of(b),
            of: s.species_of.of(b),
            ptr: s.species_ptr.of(b),
            nodes: s.species_nodes.of(b),
        }
    }

    fn embedded(&self, step: &Step<E>) -> Embedded<E> {
        let w = &step.work;
        Embedded { x0_pre: step.ws.x0_pre.of(w), z_pre: step.ws.z_pre.of(w), z: step.ws.z.of(w) }
    }

    fn graphs(&self, step: &Step<E>) -> Graphs {
        let (s, b) = (&step.sections, &step.batch);
        Graphs { ptr: s.graph_ptr.of(b), nodes: s.graph_nodes.of(b), node_graph: s.node_graph.of(b) }
    }

    fn forward(&self, prep: &Prepared<E>, params: &[E], backward: bool) -> Result<Step<E>, GpuError> {
        let gpu = &self.gpu;
        let arch = &self.net.arch;
        let (packing, sections) = self.pack(prep, params);
        let (layout, ws) = self.layout(prep, backward);
        let batch = gpu.upload_packed(&packing)?;
        let work = gpu.alloc::<u8>(layout.len())?;
        let step = Step {
            batch,
            work,
            sections,
            ws,
            species: prep.species_z.len(),
            nodes: prep.num_nodes,
            edges: prep.edges.src.len(),
            graphs: prep.num_graphs,
        };
        let (w, ns, n) = (&step.work, step.species, step.nodes);
        let species = self.species(&step);
        let embedded = self.embedded(&step);
        let em = (self.param(&step, "em.weight"), self.param(&step, "em.bias"));
        layers::embed_forward(gpu, em, species, embedded, step.ws.convs[0].x.of(w))?;
        let graph = step.sections.edges.of(&step.batch);
        let (sh, basis) = (step.sections.sh.of(&step.batch), step.sections.basis.of(&step.batch));
        let z = embedded.z;
        let s = (PI / 8.0).sin();
        for (k, c) in arch.convs.iter().enumerate() {
            let (t, cs) = (&self.convs[k], &step.ws.convs[k]);
            let prefix = arch.conv_prefix(k);
            let x = cs.x.of(w);
            let [m_sc, m_lin1, m_lin2] = cs.mats.map(|m| m.of(w));
            let weight = |name: &str| self.param(&step, &format!("{prefix}.{name}"));
            t.sc.matrices(gpu, weight("sc.weight"), z, ns, m_sc)?;
            t.lin1.matrices(gpu, weight("lin1.weight"), z, ns, m_lin1)?;
            t.lin2.matrices(gpu, weight("lin2.weight"), z, ns, m_lin2)?;
            t.sc.forward(gpu, x, m_sc, species.of, ns, None, None, cs.sc.of(w))?;
            t.lin1.forward(gpu, x, m_lin1, species.of, ns, None, None, cs.h.of(w))?;
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
            let scale = Some(t.lin2_scale.slice());
            t.lin2.forward(
                gpu,
                cs.mid.of(w),
                m_lin2,
                species.of,
                ns,
                scale,
                Some((cs.sc.of(w), s)),
                cs.out.of(w),
            )?;
            if let Some(gate) = self.gates.get(k) {
                gate.forward(gpu, &self.net.norm, n, cs.out.of(w), step.ws.convs[k + 1].x.of(w))?;
            }
        }
        let last = step.ws.convs.last().expect("a convolution");
        self.graphs(&step).pool(gpu, last.out.of(w), step.ws.raw.of(w))?;
        Ok(step)
    }

    fn raw(&self, step: &Step<E>) -> Result<Vec<[f64; 6]>, GpuError> {
        let raw = self.gpu.download_slice(step.ws.raw.of(&step.work))?;
        Ok(raw.chunks(6).map(|c| std::array::from_fn(|k| c[k])).collect())
    }

    fn backward(&self, step: &Step<E>, graw: &[[f64; 6]]) -> Result<Vec<E>, GpuError> {
        let gpu = &self.gpu;
        let arch = &self.net.arch;
        let (w, n) = (&step.work, step.nodes);
        let gs = step.ws.grads.as_ref().expect("a step with a backward pass");
        assert_eq!(graw.len(), step.graphs, "one gradient per structure");
        gpu.write_slice(gs.graw.of(w), graw.as_flattened())?;
        let species = self.species(step);
        let nodes = SpeciesNodes { species_of: species.of, ptr: species.ptr, nodes: species.nodes };
        let embedded = self.embedded(step);
        let z = embedded.z;
        let dz = gs.dz.of(w);
        let species_grad = gs.species_grad.of(w);
        let graph = step.sections.edges.of(&step.batch);
        let (sh, basis) = (step.sections.sh.of(&step.batch), step.sections.basis.of(&step.batch));
        let last = arch.convs.len() - 1;
        self.graphs(step).unpool(gpu, gs.graw.of(w), gs.convs[last].g.of(w))?;
        let s = (PI / 8.0).sin();
        for k in (0..arch.convs.len()).rev() {
            let c = &arch.convs[k];
            let (t, cs, cg) = (&self.convs[k], &step.ws.convs[k], &gs.convs[k]);
            let prefix = arch.conv_prefix(k);
            let weight = |name: &str| self.param(step, &format!("{prefix}.{name}"));
            let dweight = |name: &str| self.grad(step, &format!("{prefix}.{name}"));
            let [m_sc, m_lin1, m_lin2] = cs.mats.map(|m| m.of(w));
            let (g, x, dx) = (cg.g.of(w), cs.x.of(w), cg.dx.of(w));
            let first_dz = k == last;
            t.sc.backward(
                gpu,
                x,
                g,
                Upstream::Alpha(s),
                m_sc,
                nodes,
                weight("sc.weight"),
                z,
                Some((dx, false)),
                species_grad,
                dweight("sc.weight"),
                (dz, !first_dz),
            )?;
            t.lin2.backward(
                gpu,
                cs.mid.of(w),
                g,
                Upstream::Scale(t.lin2_scale.slice()),
                m_lin2,
                nodes,
                weight("lin2.weight"),
                z,
                Some((cg.gmid.of(w), false)),
                species_grad,
                dweight("lin2.weight"),
                (dz, true),
            )?;
            t.tp.backward(
                gpu,
                &graph,
                cs.h.of(w),
                sh,
                cs.w.of(w),
                cg.gmid.of(w),
                (cg.dh.of(w), false),
                cg.dw.of(w),
            )?;
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
                layer.backward(gpu, &self.net.norm, g, dweight(&name), input_grad)?;
            }
            t.lin1.backward(
                gpu,
                x,
                cg.dh.of(w),
                Upstream::Alpha(1.0),
                m_lin1,
                nodes,
                weight("lin1.weight"),
                z,
                Some((dx, true)),
                species_grad,
                dweight("lin1.weight"),
                (dz, true),
            )?;
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
        let gx = gs.convs[0].dx.of(w);
        let dem = (self.grad(step, "em.weight"), self.grad(step, "em.bias"));
        layers::embed_backward(gpu, species, embedded, gx, dz, gs.masked.of(w), dem)?;
        gpu.download_slice(gs.params.of(w))
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
        let step = self.inner.forward(prep, params, backward).map_err(device_error)?;
        let raw = self.inner.raw(&step).map_err(device_error)?;
        let back = backward.then(|| {
            let inner = self.inner.clone();
            Box::new(move |graw: &[[f64; 6]]| inner.backward(&step, graw).map_err(device_error))
                as RawBackward<E>
        });
        Ok((raw, back))
    }
}

#[cfg(test)]
mod tests;
