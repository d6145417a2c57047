//! The FullyConnectedTensorProduct with per-species weights on a [`Gpu`]:
//! its path tables, built once per FCTP and uploaded once, and the launches
//! that build the species matrices and apply them to every node.
//!
//! The order of every sum is that of [`crate::model::kernels`]'s
//! `fctp_species_matrices` / `fctp_forward`, which the tests compare against,
//! but for the attributes' gradient: its sums over every row (path, u) are
//! cut into parts of [`DZ_ROWS_PER_PART`] rows, so that they spread over
//! thousands of threads instead of one long chain each, and the parts are
//! added in order. The result depends on that constant, not on the launch.

use super::{grid, kernel, Accumulate, Buffer, Gpu, GpuError, GpuReal, KernelParams, Plain, Slice, BLOCK};
use crate::model::arch::Fctp;

/// Rows (path, u) of the attributes' gradient one thread sums, each row a
/// chain of `nw` FMAs. At the published configuration the largest FCTP (the
/// second convolution's lin2) has 1,632 rows, 133,632 FMAs for each
/// (species, attribute): 51 parts of ≤ 32 rows, ≈ 60 k threads for a batch
/// of 25 species, instead of 1,200 chains of 133 k.
pub const DZ_ROWS_PER_PART: usize = 32;

/// One path as the kernels read it (`FctpPath` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FctpPath {
    pub x_off: i32,
    pub nu: i32,
    pub out_off: i32,
    pub nw: i32,
    pub d: i32,
    pub w_off: i32,
    pub mats_off: i32,
    pub row_off: i32,
}
// SAFETY: eight i32, no padding.
unsafe impl Plain for FctpPath {}

/// The FCTP kernels' parameters (`FctpParams` in anisonet.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FctpParams {
    pub x: u64,
    pub out: u64,
    pub weight: u64,
    pub z: u64,
    pub mats: u64,
    pub species_of: u64,
    pub paths: u64,
    pub norm: u64,
    pub out_paths_ptr: u64,
    pub out_paths: u64,
    pub elems: u64,
    pub scale: u64,
    pub add: u64,
    pub add_alpha: f64,
    pub g: u64,
    pub g_scale: u64,
    pub in_paths_ptr: u64,
    pub in_paths: u64,
    pub in_elems: u64,
    pub species_ptr: u64,
    pub species_nodes: u64,
    pub grads: u64,
    pub dweight: u64,
    pub dz: u64,
    pub dz_parts: u64,
    pub g_alpha: f64,
    pub accumulate: i32,
    pub weight_numel: i32,
    pub nodes: i32,
    pub din: i32,
    pub dout: i32,
    pub species: i32,
    pub attr: i32,
    pub mats_len: i32,
    pub paths_count: i32,
    pub rows: i32,
    pub rows_per_part: i32,
    pub unused: i32,
}
// SAFETY: repr(C), laid out as the C struct (checked by a test).
unsafe impl KernelParams for FctpParams {
    const NAME: &'static str = "FctpParams";
}

/// One FCTP's tables on the device, for batches of any number of species.
pub struct FctpTables<E> {
    din: usize,
    dout: usize,
    attr: usize,
    /// Per species: Σ_p nu · nw, the matrices' length per species.
    per_species: usize,
    /// Σ_p nu: the rows (path, u) of the attributes' gradient.
    rows: usize,
    paths: Buffer<FctpPath>,
    norm: Buffer<E>,
    out_paths_ptr: Buffer<i32>,
    out_paths: Buffer<i32>,
    elems: Buffer<i32>,
    in_paths_ptr: Buffer<i32>,
    in_paths: Buffer<i32>,
    in_elems: Buffer<i32>,
    weight_numel: usize,
    paths_count: usize,
}

/// The upstream gradient's scale: one factor, or one per output element.
#[derive(Clone, Copy)]
pub enum Upstream<E> {
    Alpha(f64),
    Scale(Slice<E>),
}

/// A batch's nodes grouped by species, on the device.
#[derive(Clone, Copy)]
pub struct SpeciesNodes {
    pub species_of: Slice<i32>,
    /// The nodes of species s: `nodes[ptr[s]..ptr[s + 1]]`.
    pub ptr: Slice<i32>,
    pub nodes: Slice<i32>,
}

impl SpeciesNodes {
    pub fn species(&self) -> usize {
        self.ptr.len() - 1
    }
}

impl<E: GpuReal> FctpTables<E> {
    pub fn new(gpu: &Gpu, f: &Fctp) -> Result<FctpTables<E>, GpuError> {
        let (off_in, off_out) = (f.irreps_in.offsets(), f.irreps_out.offsets());
        let mut records = Vec::new();
        let (mut per_species, mut rows) = (0, 0);
        for p in &f.paths {
            let (bi, bo) = (f.irreps_in.0[p.block_in], f.irreps_out.0[p.block_out]);
            records.push(FctpPath {
                x_off: off_in[p.block_in] as i32,
                nu: bi.mul as i32,
                out_off: off_out[p.block_out] as i32,
                nw: bo.mul as i32,
                d: bi.ir.dim() as i32,
                w_off: p.weight_offset as i32,
                mats_off: per_species as i32,
                row_off: rows as i32,
            });
            per_species += bi.mul * bo.mul;
            rows += bi.mul;
        }
        let mut out_paths_ptr = vec![0i32];
        let mut out_paths = Vec::new();
        let mut elems = Vec::new();
        for (b, block) in f.irreps_out.0.iter().enumerate() {
            out_paths
                .extend(f.paths.iter().enumerate().filter(|(_, p)| p.block_out == b).map(|(k, _)| k as i32));
            out_paths_ptr.push(out_paths.len() as i32);
            for m in 0..block.ir.dim() {
                for w in 0..block.mul {
                    elems.extend([b as i32, m as i32, w as i32]);
                }
            }
        }
        let mut in_paths_ptr = vec![0i32];
        let mut in_paths = Vec::new();
        let mut in_elems = Vec::new();
        for (b, block) in f.irreps_in.0.iter().enumerate() {
            in_paths
                .extend(f.paths.iter().enumerate().filter(|(_, p)| p.block_in == b).map(|(k, _)| k as i32));
            in_paths_ptr.push(in_paths.len() as i32);
            for m in 0..block.ir.dim() {
                for u in 0..block.mul {
                    in_elems.extend([b as i32, m as i32, u as i32]);
                }
            }
        }
        // The parameter-gradient kernel finds a weight's path by its offset.
        assert!(
            f.paths.windows(2).all(|w| w[0].weight_offset <= w[1].weight_offset),
            "paths in weight order"
        );
        let norm: Vec<E> = f.paths.iter().map(|p| E::of(p.norm)).collect();
        Ok(FctpTables {
            din: f.irreps_in.dim(),
            dout: f.irreps_out.dim(),
            attr: f.attr_dim,
            per_species,
            rows,
            paths: gpu.upload(&records)?,
            norm: gpu.upload(&norm)?,
            out_paths_ptr: gpu.upload(&out_paths_ptr)?,
            out_paths: gpu.upload(&out_paths)?,
            elems: gpu.upload(&elems)?,
            in_paths_ptr: gpu.upload(&in_paths_ptr)?,
            in_paths: gpu.upload(&in_paths)?,
            in_elems: gpu.upload(&in_elems)?,
            weight_numel: f.weight_numel,
            paths_count: records.len(),
        })
    }

    /// Values of the species matrices for `species` species.
    pub fn mats_len(&self, species: usize) -> usize {
        self.per_species * species
    }

    /// Parts of the attributes' gradient per (species, attribute).
    fn dz_parts(&self) -> usize {
        self.rows.div_ceil(DZ_ROWS_PER_PART)
    }

    /// Values of the attributes' gradient by part (0 where it is one part).
    fn dz_parts_len(&self, species: usize) -> usize {
        match self.dz_parts() {
            1 => 0,
            parts => parts * species * self.attr,
        }
    }

    /// Values of [`FctpBackward::scratch`] for `species` species: the
    /// species gradient, then the attributes' gradient by part where there
    /// are several.
    pub fn scratch_len(&self, species: usize) -> usize {
        self.mats_len(species) + self.dz_parts_len(species)
    }

    fn params(&self, species: usize) -> FctpParams {
        FctpParams {
            paths: self.paths.ptr(),
            norm: self.norm.ptr(),
            out_paths_ptr: self.out_paths_ptr.ptr(),
            out_paths: self.out_paths.ptr(),
            elems: self.elems.ptr(),
            in_paths_ptr: self.in_paths_ptr.ptr(),
            in_paths: self.in_paths.ptr(),
            in_elems: self.in_elems.ptr(),
            weight_numel: self.weight_numel as i32,
            din: self.din as i32,
            dout: self.dout as i32,
            species: species as i32,
            attr: self.attr as i32,
            mats_len: self.mats_len(species) as i32,
            paths_count: self.paths_count as i32,
            rows: self.rows as i32,
            rows_per_part: DZ_ROWS_PER_PART as i32,
            ..FctpParams::default()
        }
    }

    /// M_p[s] for every path and species from the weights and `z[species][attr]` (one launch).
    pub fn matrices(
        &self,
        gpu: &Gpu,
        weight: Slice<E>,
        z: Slice<E>,
        species: usize,
        mats: Slice<E>,
    ) -> Result<(), GpuError> {
        assert!(z.len() >= species * self.attr && mats.len() >= self.mats_len(species));
        let params = FctpParams { weight: weight.ptr(), z: z.ptr(), out: mats.ptr(), ..self.params(species) };
        gpu.launch(&kernel::<E>("fctp_matrices"), grid(self.mats_len(species)), BLOCK, 0, &params)
    }

    /// out[n] = scale ∘ FCTP(x[n]) + alpha · add[n] for every node (one launch).
    pub fn forward(&self, gpu: &Gpu, args: FctpForward<E>) -> Result<(), GpuError> {
        let FctpForward { x, mats, species_of, species, scale, add, out } = args;
        let nodes = species_of.len();
        assert!(x.len() >= nodes * self.din && out.len() >= nodes * self.dout);
        assert!(mats.len() >= self.mats_len(species));
        let params = FctpParams {
            x: x.ptr(),
            mats: mats.ptr(),
            species_of: species_of.ptr(),
            out: out.ptr(),
            scale: scale.map_or(0, |s| s.ptr()),
            add: add.map_or(0, |(a, _)| a.ptr()),
            add_alpha: add.map_or(0.0, |(_, alpha)| alpha),
            nodes: nodes as i32,
            ..self.params(species)
        };
        gpu.launch(&kernel::<E>("fctp_forward"), grid(nodes * self.dout), BLOCK, 0, &params)
    }

    /// The backward pass with upstream gradient `upstream ∘ g` (three or four launches, one
    /// fewer without `dx`, one more where dz has several parts): `dx` and `dz` written as
    /// their [`Accumulate`] says, `dweight` overwritten.
    pub fn backward(&self, gpu: &Gpu, args: FctpBackward<E>) -> Result<(), GpuError> {
        let FctpBackward {
            x,
            g,
            upstream,
            mats,
            nodes,
            weight,
            z,
            dx,
            scratch,
            dweight,
            dz: (dz, accumulate_dz),
        } = args;
        let species = nodes.species();
        let count = nodes.species_of.len();
        assert!(x.len() >= count * self.din && g.len() >= count * self.dout);
        assert!(scratch.len() >= self.scratch_len(species) && dweight.len() >= self.weight_numel);
        let (mats_len, parts_len) = (self.mats_len(species), self.dz_parts_len(species));
        let species_grad = scratch.range(0, mats_len);
        let dz_parts = (parts_len > 0).then(|| scratch.range(mats_len, parts_len));
        assert!(dz.len() >= species * self.attr && z.len() >= species * self.attr);
        let (g_scale, g_alpha) = match upstream {
            Upstream::Alpha(alpha) => (0, alpha),
            Upstream::Scale(scale) => (scale.ptr(), 1.0),
        };
        let base = FctpParams {
            x: x.ptr(),
            g: g.ptr(),
            g_scale,
            g_alpha,
            mats: mats.ptr(),
            species_of: nodes.species_of.ptr(),
            species_ptr: nodes.ptr.ptr(),
            species_nodes: nodes.nodes.ptr(),
            weight: weight.ptr(),
            z: z.ptr(),
            nodes: count as i32,
            ..self.params(species)
        };
        if let Some((dx, accumulate)) = dx {
            assert!(dx.len() >= count * self.din);
            let params = FctpParams { grads: dx.ptr(), accumulate: accumulate.flag(), ..base };
            gpu.launch(&kernel::<E>("fctp_input_grad"), grid(count * self.din), BLOCK, 0, &params)?;
        }
        let params = FctpParams { grads: species_grad.ptr(), ..base };
        gpu.launch(&kernel::<E>("fctp_species_grad"), grid(self.mats_len(species)), BLOCK, 0, &params)?;
        let params = FctpParams {
            grads: species_grad.ptr(),
            dweight: dweight.ptr(),
            dz: dz.ptr(),
            dz_parts: dz_parts.map_or(0, |d| d.ptr()),
            accumulate: accumulate_dz.flag(),
            ..base
        };
        let total = self.weight_numel + self.dz_parts() * species * self.attr;
        gpu.launch(&kernel::<E>("fctp_param_grad"), grid(total), BLOCK, 0, &params)?;
        if dz_parts.is_some() {
            gpu.launch(&kernel::<E>("fctp_dz_sum"), grid(species * self.attr), BLOCK, 0, &params)?;
        }
        Ok(())
    }
}

/// The inputs of [`FctpTables::forward`].
#[derive(Clone, Copy)]
pub struct FctpForward<E> {
    /// The node features.
    pub x: Slice<E>,
    /// From [`FctpTables::matrices`].
    pub mats: Slice<E>,
    pub species_of: Slice<i32>,
    pub species: usize,
    /// Multiplies the product elementwise.
    pub scale: Option<Slice<E>>,
    /// `(add, alpha)`: `alpha · add` is added to the result.
    pub add: Option<(Slice<E>, f64)>,
    pub out: Slice<E>,
}

/// The inputs and gradients of [`FctpTables::backward`].
pub struct FctpBackward<E> {
    /// The forward pass's node features.
    pub x: Slice<E>,
    /// The output's gradient, times `upstream`.
    pub g: Slice<E>,
    pub upstream: Upstream<E>,
    pub mats: Slice<E>,
    pub nodes: SpeciesNodes,
    pub weight: Slice<E>,
    /// The species' attributes.
    pub z: Slice<E>,
    /// The node features' gradient, if wanted.
    pub dx: Option<(Slice<E>, Accumulate)>,
    /// Workspace of [`FctpTables::scratch_len`] values.
    pub scratch: Slice<E>,
    /// The weights' gradient (overwritten).
    pub dweight: Slice<E>,
    /// The attributes' gradient.
    pub dz: (Slice<E>, Accumulate),
}

#[cfg(test)]
mod tests;
