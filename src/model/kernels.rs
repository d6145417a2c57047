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
            (self.rows as isize - 1) as usize * self.rs as usize + (self.cols as isize - 1) as usize * self.cs as usize + 1
        }
    }
}

/// `c (+)= alpha · a · b` (accumulating when `acc`).
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

/// out[n] (+)= FCTP(x[n], z[species[n]]) for all nodes; `mats` from [`fctp_species_matrices`].
pub fn fctp_forward<E: Real>(f: &Fctp, mats: &[Vec<E>], x: &[E], species: &[usize], out: &mut [E]) {
    let din = f.irreps_in.dim();
    let dout = f.irreps_out.dim();
    let off_in = f.irreps_in.offsets();
    let off_out = f.irreps_out.offsets();
    out.par_chunks_mut(dout).zip(x.par_chunks(din)).zip(species.par_iter()).for_each(|((o, xn), &s)| {
        o.fill(E::zero());
        for (p, m) in f.paths.iter().zip(mats) {
            let bi = f.irreps_in.0[p.block_in];
            let bo = f.irreps_out.0[p.block_out];
            let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
            let ms = &m[s * nu * nw..(s + 1) * nu * nw];
            for mm in 0..d {
                let xr = &xn[off_in[p.block_in] + mm * nu..][..nu];
                let orow = &mut o[off_out[p.block_out] + mm * nw..][..nw];
                for (u, &a) in xr.iter().enumerate() {
                    for (ow, &mw) in orow.iter_mut().zip(&ms[u * nw..(u + 1) * nw]) {
                        *ow += a * mw;
                    }
                }
            }
        }
    });
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
    let din = f.irreps_in.dim();
    let dout = f.irreps_out.dim();
    let off_in = f.irreps_in.offsets();
    let off_out = f.irreps_out.offsets();
    let ns = nodes_of_species.len();
    let v = f.attr_dim;
    if let Some(dx) = dx {
        dx.par_chunks_mut(din).zip(g.par_chunks(dout)).zip(species_of.par_iter()).for_each(|((dxn, gn), &s)| {
            for (p, m) in f.paths.iter().zip(mats) {
                let bi = f.irreps_in.0[p.block_in];
                let bo = f.irreps_out.0[p.block_out];
                let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
                let ms = &m[s * nu * nw..(s + 1) * nu * nw];
                for mm in 0..d {
                    let gr = &gn[off_out[p.block_out] + mm * nw..][..nw];
                    let dr = &mut dxn[off_in[p.block_in] + mm * nu..][..nu];
                    for (u, du) in dr.iter_mut().enumerate() {
                        let mut acc = E::zero();
                        for (&gw, &mw) in gr.iter().zip(&ms[u * nw..(u + 1) * nw]) {
                            acc += gw * mw;
                        }
                        *du += acc;
                    }
                }
            }
        });
    }
    for p in &f.paths {
        let bi = f.irreps_in.0[p.block_in];
        let bo = f.irreps_out.0[p.block_out];
        let (nu, nw, d) = (bi.mul, bo.mul, bi.ir.dim());
        // G[s][u][w] = Σ_{n ∈ s} Σ_m x[n][m][u] g[n][m][w]
        let mut gs = vec![E::zero(); ns * nu * nw];
        gs.par_chunks_mut(nu * nw).zip(nodes_of_species.par_iter()).for_each(|(gsp, nodes)| {
            for &n in nodes {
                for mm in 0..d {
                    let xr = &x[n * din + off_in[p.block_in] + mm * nu..][..nu];
                    let gr = &g[n * dout + off_out[p.block_out] + mm * nw..][..nw];
                    for (u, &a) in xr.iter().enumerate() {
                        for (o, &gw) in gsp[u * nw..(u + 1) * nw].iter_mut().zip(gr) {
                            *o += a * gw;
                        }
                    }
                }
            }
        });
        let norm = E::of(p.norm);
        for u in 0..nu {
            let wu = p.weight_offset + u * v * nw;
            // dW[u] (v×w) += norm · zᵀ (v×s) · G[:,u,:] (s×w)
            matmul(z, View::new(ns, v).t(), &gs[u * nw..], View::strided(ns, nw, nu * nw), &mut dw[wu..], View::new(v, nw), norm, true);
            // dz (s×v) += norm · G[:,u,:] (s×w) · W[u]ᵀ (w×v)
            matmul(&gs[u * nw..], View::strided(ns, nw, nu * nw), &w[wu..], View::new(v, nw).t(), dz, View::new(ns, v), norm, true);
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

/// Wigner-3j tables of one TP instruction, scaled by its path weight: `[m1][m2][m3]`.
pub struct TpTables<E> {
    pub c: Vec<Vec<E>>,
}

/// Contracts the Wigner-3j with one edge's SH: A[m1][m3] = Σ_m2 C[m1][m2][m3] Y[m2].
#[inline]
fn contract_sh<E: Real>(c: &[E], y: &[E], d1: usize, d2: usize, d3: usize, a: &mut [E; 81]) {
    for m1 in 0..d1 {
        for m3 in 0..d3 {
            let mut s = E::zero();
            for m2 in 0..d2 {
                s += c[(m1 * d2 + m2) * d3 + m3] * y[m2];
            }
            a[m1 * d3 + m3] = s;
        }
    }
}

/// mid[n] = scale · Σ_{e → n} TP(h[src e], Y[e]; w[e]) for every node.
#[allow(clippy::too_many_arguments)]
pub fn tp_forward<E: Real>(
    tp: &EdgeTp,
    tables: &TpTables<E>,
    din: usize,
    h: &[E],
    sh: &[E],
    sh_dim: usize,
    w: &[E],
    edges: &EdgeIndex,
    scale: E,
    mid: &mut [E],
    in_offsets: &[usize],
) {
    let dmid = tp.irreps_mid.dim();
    let mid_off = tp.irreps_mid.offsets();
    let nw = tp.weight_numel;
    mid.par_chunks_mut(dmid).enumerate().for_each(|(n, out)| {
        out.fill(E::zero());
        let mut a = [E::zero(); 81];
        let mut t = vec![E::zero(); 64];
        for e in edges.dst_ptr[n]..edges.dst_ptr[n + 1] {
            let x = &h[edges.src[e] * din..(edges.src[e] + 1) * din];
            let y = &sh[e * sh_dim..(e + 1) * sh_dim];
            let we = &w[e * nw..(e + 1) * nw];
            for (ins, c) in tp.instructions.iter().zip(&tables.c) {
                let (d1, d2, d3) = (2 * ins.l_in + 1, 2 * ins.l_edge + 1, 2 * ins.l_out + 1);
                contract_sh(c, &y[ins.l_edge * ins.l_edge..], d1, d2, d3, &mut a);
                let mul = ins.mul;
                if t.len() < mul {
                    t.resize(mul, E::zero());
                }
                let umid = tp.irreps_mid.0[ins.block_mid].mul;
                let xin = &x[in_offsets[ins.block_in]..];
                let wu = &we[ins.weight_offset..ins.weight_offset + mul];
                for m3 in 0..d3 {
                    let tt = &mut t[..mul];
                    tt.fill(E::zero());
                    for m1 in 0..d1 {
                        let coef = a[m1 * d3 + m3];
                        for (tu, &xu) in tt.iter_mut().zip(&xin[m1 * mul..(m1 + 1) * mul]) {
                            *tu += coef * xu;
                        }
                    }
                    let o = &mut out[mid_off[ins.block_mid] + m3 * umid + ins.u0..][..mul];
                    for ((ou, &tu), &wv) in o.iter_mut().zip(tt.iter()).zip(wu) {
                        *ou += scale * wv * tu;
                    }
                }
            }
        }
    });
}

/// Backward of [`tp_forward`]: dh (accumulated) and dw (per edge, overwritten).
#[allow(clippy::too_many_arguments)]
pub fn tp_backward<E: Real>(
    tp: &EdgeTp,
    tables: &TpTables<E>,
    din: usize,
    h: &[E],
    sh: &[E],
    sh_dim: usize,
    w: &[E],
    edges: &EdgeIndex,
    scale: E,
    gmid: &[E],
    in_offsets: &[usize],
    dh: &mut [E],
    dw: &mut [E],
) {
    let dmid = tp.irreps_mid.dim();
    let mid_off = tp.irreps_mid.offsets();
    let nw = tp.weight_numel;
    let num_edges = edges.src.len();
    let mut dx_edge = vec![E::zero(); num_edges * din];
    // Split the per-edge buffers at node boundaries so each node's edges are written by one task.
    let mut dx_chunks: Vec<&mut [E]> = Vec::new();
    let mut dw_chunks: Vec<&mut [E]> = Vec::new();
    {
        let mut rest_x: &mut [E] = &mut dx_edge;
        let mut rest_w: &mut [E] = dw;
        for n in 0..edges.dst_ptr.len() - 1 {
            let k = edges.dst_ptr[n + 1] - edges.dst_ptr[n];
            let (a, b) = std::mem::take(&mut rest_x).split_at_mut(k * din);
            dx_chunks.push(a);
            rest_x = b;
            let (a, b) = std::mem::take(&mut rest_w).split_at_mut(k * nw);
            dw_chunks.push(a);
            rest_w = b;
        }
    }
    dx_chunks.into_par_iter().zip(dw_chunks).enumerate().for_each(|(n, (dxc, dwc))| {
        let g = &gmid[n * dmid..(n + 1) * dmid];
        let mut a = [E::zero(); 81];
        let mut t = vec![E::zero(); 64];
        let mut gw = vec![E::zero(); 64];
        for (k, e) in (edges.dst_ptr[n]..edges.dst_ptr[n + 1]).enumerate() {
            let x = &h[edges.src[e] * din..(edges.src[e] + 1) * din];
            let y = &sh[e * sh_dim..(e + 1) * sh_dim];
            let we = &w[e * nw..(e + 1) * nw];
            let dxe = &mut dxc[k * din..(k + 1) * din];
            let dwe = &mut dwc[k * nw..(k + 1) * nw];
            dwe.fill(E::zero());
            for (ins, c) in tp.instructions.iter().zip(&tables.c) {
                let (d1, d2, d3) = (2 * ins.l_in + 1, 2 * ins.l_edge + 1, 2 * ins.l_out + 1);
                contract_sh(c, &y[ins.l_edge * ins.l_edge..], d1, d2, d3, &mut a);
                let mul = ins.mul;
                if t.len() < mul {
                    t.resize(mul, E::zero());
                    gw.resize(mul, E::zero());
                }
                let umid = tp.irreps_mid.0[ins.block_mid].mul;
                let xin = &x[in_offsets[ins.block_in]..];
                let wu = &we[ins.weight_offset..ins.weight_offset + mul];
                for m3 in 0..d3 {
                    let gr = &g[mid_off[ins.block_mid] + m3 * umid + ins.u0..][..mul];
                    // t = Σ_m1 A x ; dw += g·t ; gw = scale·w·g ; dx[m1] += A gw
                    let tt = &mut t[..mul];
                    tt.fill(E::zero());
                    for m1 in 0..d1 {
                        let coef = a[m1 * d3 + m3];
                        for (tu, &xu) in tt.iter_mut().zip(&xin[m1 * mul..(m1 + 1) * mul]) {
                            *tu += coef * xu;
                        }
                    }
                    let dwu = &mut dwe[ins.weight_offset..ins.weight_offset + mul];
                    let gwu = &mut gw[..mul];
                    for u in 0..mul {
                        dwu[u] += scale * gr[u] * tt[u];
                        gwu[u] = scale * gr[u] * wu[u];
                    }
                    for m1 in 0..d1 {
                        let coef = a[m1 * d3 + m3];
                        let d = &mut dxe[in_offsets[ins.block_in] + m1 * mul..][..mul];
                        for (du, &gv) in d.iter_mut().zip(gwu.iter()) {
                            *du += coef * gv;
                        }
                    }
                }
            }
        }
    });
    dh.par_chunks_mut(din).enumerate().for_each(|(n, dhn)| {
        for &e in &edges.by_src[edges.src_ptr[n]..edges.src_ptr[n + 1]] {
            for (d, &v) in dhn.iter_mut().zip(&dx_edge[e * din..(e + 1) * din]) {
                *d += v;
            }
        }
    });
}
