//! Numerical kernels on plain slices, generic over f32/f64: matrix products
//! (through `gemm`), the FullyConnectedTensorProduct with per-species weights,
//! and the fused gather → "uvu" tensor product → neighbour sum, each with its
//! hand-written backward.

use std::ops::{AddAssign, MulAssign};

use rayon::prelude::*;

use super::arch::{EdgeTp, Fctp};

/// Scalar type of the model's numerics.
pub trait Real:
    num_traits::Float + Send + Sync + 'static + Default + std::fmt::Debug + std::iter::Sum + AddAssign + MulAssign
{
    fn of(x: f64) -> Self {
        <Self as num_traits::NumCast>::from(x).expect("finite constant")
    }
    fn to64(self) -> f64 {
        <f64 as num_traits::NumCast>::from(self).unwrap_or(f64::NAN)
    }
}
impl Real for f32 {}
impl Real for f64 {}

/// A row-major matrix view: `rows × cols`, element (i, j) at `i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct View {
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    pub fn new(rows: usize, cols: usize) -> View {
        View { rows, cols, rs: cols as isize, cs: 1 }
    }
    pub fn strided(rows: usize, cols: usize, rs: usize) -> View {
        View { rows, cols, rs: rs as isize, cs: 1 }
    }
    pub fn t(self) -> View {
        View { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }
    fn span(self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows as isize - 1) as usize * self.rs as usize
                + (self.cols as isize - 1) as usize * self.cs as usize
                + 1
        }
    }
}

/// `c (+)= alpha · a · b` (accumulating when `acc`).
#[allow(clippy::too_many_arguments)]
pub fn matmul<E: Real>(a: &[E], av: View, b: &[E], bv: View, c: &mut [E], cv: View, alpha: E, acc: bool) {
    assert_eq!(av.cols, bv.rows);
    assert_eq!(av.rows, cv.rows);
    assert_eq!(bv.cols, cv.cols);
    assert!(a.len() >= av.span() && b.len() >= bv.span() && c.len() >= cv.span());
    let (m, n, k) = (cv.rows, cv.cols, av.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    c[i * cv.rs as usize + j * cv.cs as usize] = E::zero();
                }
            }
        }
        return;
    }
    let par = if m * n * k > 200_000 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every index of the three views inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cv.cs,
            cv.rs,
            acc,
            a.as_ptr(),
            av.cs,
            av.rs,
            b.as_ptr(),
            bv.cs,
            bv.rs,
            E::one(),
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// Whether the CPU runs the AVX2 + FMA builds of the kernels.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// a·b + c, fused where the kernel is built for FMA.
#[inline(always)]
fn madd<E: Real, const FMA: bool>(a: E, b: E, c: E) -> E {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Runs a kernel body built for AVX2 + FMA when available, else the portable build.
macro_rules! dispatch {
    ($body:ident, $ctx_ty:ident, $ctx:expr, $($arg:expr),*) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn fast<E: Real>(ctx: &$ctx_ty<'_, E>, a: usize, b: &mut [E], c: &mut [E]) {
                $body::<E, true>(ctx, a, b, c)
            }
            if has_avx2_fma() {
                // SAFETY: the CPU supports the enabled features (checked at run time).
                unsafe { fast($ctx, $($arg),*) }
            } else {
                $body::<E, false>($ctx, $($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body::<E, false>($ctx, $($arg),*)
        }
    }};
}

/// Per-species weight matrices of an [`Fctp`]: for each path, `[species][u][w]`
/// = norm · Σ_v W[u][v][w] z[species][v]. Node attributes depend only on the
/// element, so the bilinear product collapses to one matrix per species.
pub fn fctp_species_matrices<E: Real>(f: &Fctp, w: &[E], z: &[E], species: usize) -> Vec<Vec<E>> {
    let v = f.attr_dim;
    f.paths
        .iter()
        .map(|p| {
            let nu = f.irreps_in.0[p.block_in].mul;
            let nw = f.irreps_out.0[p.block_out].mul;
            let mut m = vec![E::zero(); species * nu * nw];
            for u in 0..nu {
                let wu = &w[p.weight_offset + u * v * nw..];
                matmul(
                    z,
                    View::new(species, v),
                    wu,
                    View::new(v, nw),
                    &mut m[u * nw..],
                    View::strided(species, nw, nu * nw),
                    E::of(p.norm),
                    false,
                );
            }
            m
        })
        .collect()
}

/// Everything the per-node FCTP kernels read.
pub struct FctpCtx<'a, E> {
    f: &'a Fctp,
    mats: &'a [Vec<E>],
    species_of: &'a [usize],
    off_in: Vec<usize>,
    off_out: Vec<usize>,
    /// Node inputs (forward) or output gradients (input-gradient pass).
    src: &'a [E],
    /// Second operand of the species-gradient pass: output gradients.
    g: &'a [E],
    nodes_of_species: &'a [Vec<usize>],
    path: usize,
}

impl<'a, E: Real> FctpCtx<'a, E> {
    fn new(f: &'a Fctp, mats: &'a [Vec<E>], species_of: &'a [usize], src: &'a [E]) -> Self {
        FctpCtx {
            f,
            mats,
            species_of,
            off_in: f.irreps_in.offsets(),
            off_out: f.irreps_out.offsets(),
            src,
            g: &[],
            nodes_of_species: &[],
            path: 0,
        }
    }
}

#[inline(always)]
fn fctp_node_forward<E: Real, const FMA: bool>(
    ctx: &FctpCtx<'_, E>,
    n: usize,
    o: &mut [E],
    _unused: &mut [E],
) {
    let f = ctx.f;
    let din = f.irreps_in.dim();
    let xn = &ctx.src[n * din..][..din];
    let s = ctx.species_of[n];
    o.fill(E::zero());
    for (p, m) in f.paths.iter().zip(ctx.mats) {
        let bi = f.irreps_in.0[p.block_in];
        let bo = f.irreps_out.0[p.block_out];
        let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
        let ms = &m[s * nu * nw..(s + 1) * nu * nw];
        for mm in 0..d {
            let xr = &xn[ctx.off_in[p.block_in] + mm * nu..][..nu];
            let orow = &mut o[ctx.off_out[p.block_out] + mm * nw..][..nw];
            for (u, &a) in xr.iter().enumerate() {
                for (ow, &mw) in orow.iter_mut().zip(&ms[u * nw..(u + 1) * nw]) {
                    *ow = madd::<E, FMA>(a, mw, *ow);
                }
            }
        }
    }
}

#[inline(always)]
fn fctp_node_input_grad<E: Real, const FMA: bool>(
    ctx: &FctpCtx<'_, E>,
    n: usize,
    dxn: &mut [E],
    _unused: &mut [E],
) {
    let f = ctx.f;
    let dout = f.irreps_out.dim();
    let gn = &ctx.src[n * dout..][..dout];
    let s = ctx.species_of[n];
    for (p, m) in f.paths.iter().zip(ctx.mats) {
        let bi = f.irreps_in.0[p.block_in];
        let bo = f.irreps_out.0[p.block_out];
        let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
        let ms = &m[s * nu * nw..(s + 1) * nu * nw];
        for mm in 0..d {
            let gr = &gn[ctx.off_out[p.block_out] + mm * nw..][..nw];
            let dr = &mut dxn[ctx.off_in[p.block_in] + mm * nu..][..nu];
            for (u, du) in dr.iter_mut().enumerate() {
                let mut acc = E::zero();
                for (&gw, &mw) in gr.iter().zip(&ms[u * nw..(u + 1) * nw]) {
                    acc = madd::<E, FMA>(gw, mw, acc);
                }
                *du += acc;
            }
        }
    }
}

/// G[s][u][w] = Σ_{n ∈ s} Σ_m x[n][m][u] g[n][m][w] for one path and one species.
#[inline(always)]
fn fctp_species_grad<E: Real, const FMA: bool>(
    ctx: &FctpCtx<'_, E>,
    s: usize,
    gsp: &mut [E],
    _unused: &mut [E],
) {
    let f = ctx.f;
    let p = &f.paths[ctx.path];
    let (din, dout) = (f.irreps_in.dim(), f.irreps_out.dim());
    let bi = f.irreps_in.0[p.block_in];
    let bo = f.irreps_out.0[p.block_out];
    let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
    for &n in &ctx.nodes_of_species[s] {
        for mm in 0..d {
            let xr = &ctx.src[n * din + ctx.off_in[p.block_in] + mm * nu..][..nu];
            let gr = &ctx.g[n * dout + ctx.off_out[p.block_out] + mm * nw..][..nw];
            for (u, &a) in xr.iter().enumerate() {
                for (o, &gw) in gsp[u * nw..(u + 1) * nw].iter_mut().zip(gr) {
                    *o = madd::<E, FMA>(a, gw, *o);
                }
            }
        }
    }
}

/// out[n] = FCTP(x[n], z[species[n]]) for all nodes; `mats` from [`fctp_species_matrices`].
pub fn fctp_forward<E: Real>(f: &Fctp, mats: &[Vec<E>], x: &[E], species: &[usize], out: &mut [E]) {
    let ctx = FctpCtx::new(f, mats, species, x);
    out.par_chunks_mut(f.irreps_out.dim())
        .enumerate()
        .for_each(|(n, o)| dispatch!(fctp_node_forward, FctpCtx, &ctx, n, o, &mut []));
}

/// Backward of [`fctp_forward`]: accumulates dx (if given), dW and dz.
#[allow(clippy::too_many_arguments)]
pub fn fctp_backward<E: Real>(
    f: &Fctp,
    w: &[E],
    z: &[E],
    mats: &[Vec<E>],
    x: &[E],
    species_of: &[usize],
    nodes_of_species: &[Vec<usize>],
    g: &[E],
    dx: Option<&mut [E]>,
    dw: &mut [E],
    dz: &mut [E],
) {
    let ns = nodes_of_species.len();
    let v = f.attr_dim;
    if let Some(dx) = dx {
        let ctx = FctpCtx::new(f, mats, species_of, g);
        dx.par_chunks_mut(f.irreps_in.dim())
            .enumerate()
            .for_each(|(n, dxn)| dispatch!(fctp_node_input_grad, FctpCtx, &ctx, n, dxn, &mut []));
    }
    for (k, p) in f.paths.iter().enumerate() {
        let nu = f.irreps_in.0[p.block_in].mul;
        let nw = f.irreps_out.0[p.block_out].mul;
        let ctx = FctpCtx { g, nodes_of_species, path: k, ..FctpCtx::new(f, mats, species_of, x) };
        let mut gs = vec![E::zero(); ns * nu * nw];
        gs.par_chunks_mut(nu * nw)
            .enumerate()
            .for_each(|(s, gsp)| dispatch!(fctp_species_grad, FctpCtx, &ctx, s, gsp, &mut []));
        let norm = E::of(p.norm);
        for u in 0..nu {
            let wu = p.weight_offset + u * v * nw;
            // dW[u] (v×w) += norm · zᵀ (v×s) · G[:,u,:] (s×w)
            matmul(
                z,
                View::new(ns, v).t(),
                &gs[u * nw..],
                View::strided(ns, nw, nu * nw),
                &mut dw[wu..],
                View::new(v, nw),
                norm,
                true,
            );
            // dz (s×v) += norm · G[:,u,:] (s×w) · W[u]ᵀ (w×v)
            matmul(
                &gs[u * nw..],
                View::strided(ns, nw, nu * nw),
                &w[wu..],
                View::new(v, nw).t(),
                dz,
                View::new(ns, v),
                norm,
                true,
            );
        }
    }
}

/// Edges grouped by destination and by source (edges are stored sorted by destination).
pub struct EdgeIndex {
    pub src: Vec<usize>,
    pub dst: Vec<usize>,
    /// Edges of destination node n: `dst_ptr[n]..dst_ptr[n+1]`.
    pub dst_ptr: Vec<usize>,
    /// Edges with source n: `by_src[src_ptr[n]..src_ptr[n+1]]`.
    pub src_ptr: Vec<usize>,
    pub by_src: Vec<usize>,
}

/// Sparse Wigner-3j tables of an edge tensor product, shared by instructions
/// with the same (l1, l2, l3).
pub struct TpTables<E> {
    /// Per distinct (l1, l2, l3): its nonzero entries.
    pub triples: Vec<Triple<E>>,
    /// Per instruction: index into `triples`.
    pub triple_of: Vec<usize>,
}

/// Nonzero Wigner-3j entries (m1, m2, m3, C) of one (l1, l2, l3).
pub struct Triple<E> {
    pub l: (usize, usize, usize),
    pub nonzeros: Vec<(u8, u8, u8, E)>,
}

impl<E: Real> TpTables<E> {
    pub fn new(tp: &EdgeTp) -> TpTables<E> {
        let mut triples: Vec<Triple<E>> = Vec::new();
        let mut triple_of = Vec::new();
        for ins in &tp.instructions {
            let key = (ins.l_in, ins.l_edge, ins.l_out);
            let k = match triples.iter().position(|t| t.l == key) {
                Some(k) => k,
                None => {
                    let c = crate::e3::wigner::wigner_3j(key.0 as u32, key.1 as u32, key.2 as u32);
                    let (d2, d3) = (2 * key.1 + 1, 2 * key.2 + 1);
                    let nz = c
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.abs() > 1e-15)
                        .map(|(i, &v)| {
                            ((i / (d2 * d3)) as u8, ((i / d3) % d2) as u8, (i % d3) as u8, E::of(v))
                        })
                        .collect();
                    triples.push(Triple { l: key, nonzeros: nz });
                    triples.len() - 1
                }
            };
            triple_of.push(k);
        }
        TpTables { triples, triple_of }
    }
}

/// Everything the per-node tensor-product kernels read.
pub struct TpCtx<'a, E> {
    pub tp: &'a EdgeTp,
    pub tables: &'a TpTables<E>,
    pub din: usize,
    pub in_offsets: &'a [usize],
    pub mid_offsets: Vec<usize>,
    pub h: &'a [E],
    pub sh: &'a [E],
    pub sh_dim: usize,
    pub w: &'a [E],
    pub edges: &'a EdgeIndex,
    /// 1/√num_neighbors.
    pub scale: E,
    /// Upstream gradient of the neighbour sum (backward only).
    pub gmid: &'a [E],
}

/// A[t][m1·d3 + m3] = Σ_m2 C_t[m1][m2][m3] Y[l2² + m2] for every distinct triple t.
#[inline(always)]
fn contract_all<E: Real>(tables: &TpTables<E>, y: &[E], a: &mut [[E; 81]]) {
    for (t, triple) in tables.triples.iter().enumerate() {
        let (_, l2, l3) = triple.l;
        let d3 = 2 * l3 + 1;
        let at = &mut a[t];
        at.fill(E::zero());
        let yl = &y[l2 * l2..];
        for &(m1, m2, m3, c) in &triple.nonzeros {
            at[m1 as usize * d3 + m3 as usize] += c * yl[m2 as usize];
        }
    }
}

/// Neighbour sum of node n: out = scale · Σ_{e → n} TP(h[src], Y[e]; w[e]).
#[inline(always)]
fn tp_node_forward<E: Real, const FMA: bool>(ctx: &TpCtx<'_, E>, n: usize, out: &mut [E], _unused: &mut [E]) {
    let tp = ctx.tp;
    let nw = tp.weight_numel;
    out.fill(E::zero());
    let mut a = vec![[E::zero(); 81]; ctx.tables.triples.len()];
    let mut t = [E::zero(); 9 * 64];
    for e in ctx.edges.dst_ptr[n]..ctx.edges.dst_ptr[n + 1] {
        let x = &ctx.h[ctx.edges.src[e] * ctx.din..][..ctx.din];
        contract_all(ctx.tables, &ctx.sh[e * ctx.sh_dim..][..ctx.sh_dim], &mut a);
        let we = &ctx.w[e * nw..][..nw];
        for (ins, &ti) in tp.instructions.iter().zip(&ctx.tables.triple_of) {
            let (d1, d3, mul) = (2 * ins.l_in + 1, 2 * ins.l_out + 1, ins.mul);
            let at = &a[ti];
            let xin = &x[ctx.in_offsets[ins.block_in]..][..d1 * mul];
            let umid = tp.irreps_mid.0[ins.block_mid].mul;
            let pw = ctx.scale * E::of(ins.path_weight);
            for chunk in (0..mul).step_by(64) {
                let len = (mul - chunk).min(64);
                let tt = &mut t[..d3 * len];
                tt.fill(E::zero());
                for m1 in 0..d1 {
                    let xr = &xin[m1 * mul + chunk..][..len];
                    for m3 in 0..d3 {
                        let coef = at[m1 * d3 + m3];
                        if coef == E::zero() {
                            continue;
                        }
                        for (tu, &xu) in tt[m3 * len..(m3 + 1) * len].iter_mut().zip(xr) {
                            *tu = madd::<E, FMA>(coef, xu, *tu);
                        }
                    }
                }
                let wu = &we[ins.weight_offset + chunk..][..len];
                for m3 in 0..d3 {
                    let o = &mut out[ctx.mid_offsets[ins.block_mid] + m3 * umid + ins.u0 + chunk..][..len];
                    for ((ou, &tu), &wv) in o.iter_mut().zip(&tt[m3 * len..(m3 + 1) * len]).zip(wu) {
                        *ou = madd::<E, FMA>(pw * wv, tu, *ou);
                    }
                }
            }
        }
    }
}

/// Weight gradient of the edges into node n: dw[e] = pw Σ_m3 g[dst][m3] ∘ (A x[src])[m3].
#[inline(always)]
fn tp_node_weight_grad<E: Real, const FMA: bool>(
    ctx: &TpCtx<'_, E>,
    n: usize,
    dwc: &mut [E],
    _unused: &mut [E],
) {
    let tp = ctx.tp;
    let nw = tp.weight_numel;
    let dmid = tp.irreps_mid.dim();
    let g = &ctx.gmid[n * dmid..][..dmid];
    let mut a = vec![[E::zero(); 81]; ctx.tables.triples.len()];
    let mut t = [E::zero(); 64];
    for (k, e) in (ctx.edges.dst_ptr[n]..ctx.edges.dst_ptr[n + 1]).enumerate() {
        let x = &ctx.h[ctx.edges.src[e] * ctx.din..][..ctx.din];
        contract_all(ctx.tables, &ctx.sh[e * ctx.sh_dim..][..ctx.sh_dim], &mut a);
        let dwe = &mut dwc[k * nw..][..nw];
        for (ins, &ti) in tp.instructions.iter().zip(&ctx.tables.triple_of) {
            let (d1, d3, mul) = (2 * ins.l_in + 1, 2 * ins.l_out + 1, ins.mul);
            let at = &a[ti];
            let off_in = ctx.in_offsets[ins.block_in];
            let umid = tp.irreps_mid.0[ins.block_mid].mul;
            let pw = ctx.scale * E::of(ins.path_weight);
            for chunk in (0..mul).step_by(64) {
                let len = (mul - chunk).min(64);
                let dwu = &mut dwe[ins.weight_offset + chunk..][..len];
                dwu.fill(E::zero());
                for m3 in 0..d3 {
                    let tt = &mut t[..len];
                    tt.fill(E::zero());
                    for m1 in 0..d1 {
                        let coef = at[m1 * d3 + m3];
                        if coef == E::zero() {
                            continue;
                        }
                        for (tu, &xu) in tt.iter_mut().zip(&x[off_in + m1 * mul + chunk..][..len]) {
                            *tu = madd::<E, FMA>(coef, xu, *tu);
                        }
                    }
                    let gr = &g[ctx.mid_offsets[ins.block_mid] + m3 * umid + ins.u0 + chunk..][..len];
                    for ((d, &gv), &tv) in dwu.iter_mut().zip(gr).zip(tt.iter()) {
                        *d = madd::<E, FMA>(pw * gv, tv, *d);
                    }
                }
            }
        }
    }
}

/// Input gradient of node n through its outgoing edges: dh[n][m1] += Σ_e Σ_m3 A_e[m1][m3] pw w_e g[dst e][m3].
#[inline(always)]
fn tp_node_input_grad<E: Real, const FMA: bool>(
    ctx: &TpCtx<'_, E>,
    n: usize,
    dhn: &mut [E],
    _unused: &mut [E],
) {
    let tp = ctx.tp;
    let nw = tp.weight_numel;
    let dmid = tp.irreps_mid.dim();
    let mut a = vec![[E::zero(); 81]; ctx.tables.triples.len()];
    let mut gw = [E::zero(); 9 * 64];
    for &e in &ctx.edges.by_src[ctx.edges.src_ptr[n]..ctx.edges.src_ptr[n + 1]] {
        let g = &ctx.gmid[ctx.edges.dst[e] * dmid..][..dmid];
        contract_all(ctx.tables, &ctx.sh[e * ctx.sh_dim..][..ctx.sh_dim], &mut a);
        let we = &ctx.w[e * nw..][..nw];
        for (ins, &ti) in tp.instructions.iter().zip(&ctx.tables.triple_of) {
            let (d1, d3, mul) = (2 * ins.l_in + 1, 2 * ins.l_out + 1, ins.mul);
            let at = &a[ti];
            let off_in = ctx.in_offsets[ins.block_in];
            let umid = tp.irreps_mid.0[ins.block_mid].mul;
            let pw = ctx.scale * E::of(ins.path_weight);
            for chunk in (0..mul).step_by(64) {
                let len = (mul - chunk).min(64);
                let wu = &we[ins.weight_offset + chunk..][..len];
                let gws = &mut gw[..d3 * len];
                for m3 in 0..d3 {
                    let gr = &g[ctx.mid_offsets[ins.block_mid] + m3 * umid + ins.u0 + chunk..][..len];
                    for ((o, &wv), &gv) in gws[m3 * len..(m3 + 1) * len].iter_mut().zip(wu).zip(gr) {
                        *o = pw * wv * gv;
                    }
                }
                for m1 in 0..d1 {
                    let d = &mut dhn[off_in + m1 * mul + chunk..][..len];
                    for m3 in 0..d3 {
                        let coef = at[m1 * d3 + m3];
                        if coef == E::zero() {
                            continue;
                        }
                        for (du, &gv) in d.iter_mut().zip(&gws[m3 * len..(m3 + 1) * len]) {
                            *du = madd::<E, FMA>(coef, gv, *du);
                        }
                    }
                }
            }
        }
    }
}

/// mid[n] = scale · Σ_{e → n} TP(h[src e], Y[e]; w[e]) for every node.
pub fn tp_forward<E: Real>(ctx: &TpCtx<'_, E>, mid: &mut [E]) {
    let dmid = ctx.tp.irreps_mid.dim();
    mid.par_chunks_mut(dmid)
        .enumerate()
        .for_each(|(n, out)| dispatch!(tp_node_forward, TpCtx, ctx, n, out, &mut []));
}

/// Backward of [`tp_forward`] with upstream `ctx.gmid`: dh (accumulated) and dw (per edge,
/// overwritten). Weight gradients run over destinations, input gradients over sources,
/// so neither needs a per-edge buffer or atomics.
pub fn tp_backward<E: Real>(ctx: &TpCtx<'_, E>, dh: &mut [E], dw: &mut [E]) {
    let nw = ctx.tp.weight_numel;
    let edges = ctx.edges;
    let mut chunks: Vec<(usize, &mut [E])> = Vec::new();
    let mut rest: &mut [E] = dw;
    for n in 0..edges.dst_ptr.len() - 1 {
        let k = edges.dst_ptr[n + 1] - edges.dst_ptr[n];
        let (a, b) = std::mem::take(&mut rest).split_at_mut(k * nw);
        rest = b;
        chunks.push((n, a));
    }
    chunks.into_par_iter().for_each(|(n, dwc)| dispatch!(tp_node_weight_grad, TpCtx, ctx, n, dwc, &mut []));
    dh.par_chunks_mut(ctx.din)
        .enumerate()
        .for_each(|(n, dhn)| dispatch!(tp_node_input_grad, TpCtx, ctx, n, dhn, &mut []));
}
