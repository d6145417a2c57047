// AnisoNet's GPU kernels: one source, compiled by NVRTC or nvcc for the GPU
// and by the build script for the CPU emulation (see shim.h).
//
// The edge tensor-product convolution, after the fused CPU network
// (src/model/kernels.rs): one block per node over that node's edge list,
// each thread the sole owner of the outputs it writes, so no atomics are
// needed and every output is summed in edge order whatever the block size.
// Per tile of edges the block first contracts the spherical harmonics with
// the Clebsch–Gordan coefficients of every (l_in, l_edge, l_out) into
// shared memory, A_e[m1][m3] = Σ_m2 C[m1][m2][m3] Y_e[m2]; then each thread
// runs through the tile for its own outputs.
//
//   forward:       mid[n]     = Σ_{e→n} pw · w_e ∘ (A_e x[src e])
//   weight grad:   dw[e]      = pw · Σ_m3 g[dst e][m3] ∘ (A_e x[src e])[m3]
//   input grad:    dh[n]    (+)= Σ_{e: n→·} A_eᵀ (pw · w_e ∘ g[dst e])
#ifndef ANISO_SINGLE_SOURCE
#include "shim.h"
#endif

// One instruction of the edge tensor product, as the kernels read it.
struct TpIns {
  int x_off;    // offset of its input block in a node's features
  int mul;      // multiplicity (uvu: input, weight and output share u)
  int d1;       // 2 l_in + 1
  int a_off;    // offset of its (l_in, l_edge, l_out) table in A_e
  int d3;       // 2 l_out + 1
  int w_off;    // offset of its weights in an edge's weights
  int mid_off;  // offset of its outputs in a node's neighbour sum
  int umid;     // multiplicity of that output block (the m3 stride)
};

// Parameters of the three convolution kernels (one layout for f32 and f64;
// addresses are device pointers). Rust's `TpConvParams` mirrors it; the two
// layouts are compared in the tests.
struct TpConvParams {
  aniso_ptr h;            // real[nodes × din]: node inputs
  aniso_ptr sh;           // real[edges × sh_dim]: spherical harmonics
  aniso_ptr w;            // real[edges × nw]: per-edge weights
  aniso_ptr g;            // real[nodes × dmid]: upstream gradient (backward)
  aniso_ptr out;          // real: mid (forward), dw (weight grad) or dh (input grad)
  aniso_ptr edge_ptr;     // int[nodes + 1]: a node's edges are edge_ptr[n] .. edge_ptr[n+1]
  aniso_ptr edge_list;    // int[edges]: edge ids in that order, or 0 for the identity
  aniso_ptr edge_peer;    // int[edges]: the other node of each edge
  aniso_ptr entry_ptr;    // int[a_len + 1]: terms of each entry of A_e
  aniso_ptr entry_sh;     // int[terms]: index into an edge's spherical harmonics
  aniso_ptr entry_c;      // real[terms]: its Clebsch–Gordan coefficient
  aniso_ptr ins;          // TpIns[instructions]
  aniso_ptr pw;           // real[instructions]: path weight × 1/√num_neighbors
  aniso_ptr elems;        // int[outputs × 3]: what each output element is
  aniso_ptr block_ins_ptr;  // int[blocks + 1] (input grad): instructions reading each input block…
  aniso_ptr block_ins;      // int[…]: …by index
  int nodes;
  int din;
  int dmid;
  int sh_dim;
  int nw;
  int a_len;   // entries of A_e over all (l_in, l_edge, l_out)
  int tile;    // edges contracted into shared memory at a time
  int outputs; // output elements per node (forward, input grad) or per edge (weight grad)
  int accumulate;  // input grad: add to dh (else overwrite)
  int unused;
};

// A_e of edges `first .. first + count` of the node's list into shared memory.
template <typename real>
__device__ __forceinline__ void contract_tile(const TpConvParams& p, real* a, int first, int count) {
  const int* list = reinterpret_cast<const int*>(p.edge_list);
  const int* entry_ptr = reinterpret_cast<const int*>(p.entry_ptr);
  const int* entry_sh = reinterpret_cast<const int*>(p.entry_sh);
  const real* entry_c = reinterpret_cast<const real*>(p.entry_c);
  const real* sh = reinterpret_cast<const real*>(p.sh);
  for (int k = threadIdx.x; k < count * p.a_len; k += blockDim.x) {
    const int t = k / p.a_len, q = k - t * p.a_len;
    const int e = list ? list[first + t] : first + t;
    const real* y = sh + (long long)e * p.sh_dim;
    real acc = 0;
    for (int i = entry_ptr[q]; i < entry_ptr[q + 1]; ++i) acc += entry_c[i] * y[entry_sh[i]];
    a[k] = acc;
  }
}

template <typename real>
__device__ void tp_conv_forward(const TpConvParams& p) {
  real* a = reinterpret_cast<real*>(aniso_smem);
  const int n = blockIdx.x;
  const int* edge_ptr = reinterpret_cast<const int*>(p.edge_ptr);
  const int* peer = reinterpret_cast<const int*>(p.edge_peer);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  const TpIns* ins = reinterpret_cast<const TpIns*>(p.ins);
  const real* pw = reinterpret_cast<const real*>(p.pw);
  const real* h = reinterpret_cast<const real*>(p.h);
  const real* w = reinterpret_cast<const real*>(p.w);
  real* out = reinterpret_cast<real*>(p.out) + (long long)n * p.dmid;
  for (int j = threadIdx.x; j < p.dmid; j += blockDim.x) out[j] = 0;
  const int begin = edge_ptr[n], end = edge_ptr[n + 1];
  for (int first = begin; first < end; first += p.tile) {
    const int count = end - first < p.tile ? end - first : p.tile;
    __syncthreads();
    contract_tile<real>(p, a, first, count);
    __syncthreads();
    for (int j = threadIdx.x; j < p.dmid; j += blockDim.x) {
      const int i = elems[3 * j];
      if (i < 0) continue;
      const TpIns s = ins[i];
      const int m3 = elems[3 * j + 1], u = elems[3 * j + 2];
      real r = out[j];
      for (int t = 0; t < count; ++t) {
        const int e = first + t;
        const real* x = h + (long long)peer[e] * p.din + s.x_off + u;
        const real* at = a + t * p.a_len + s.a_off + m3;
        real tv = 0;
        for (int m1 = 0; m1 < s.d1; ++m1) {
          const real coef = at[m1 * s.d3];
          if (coef != 0) tv = aniso_fma(coef, x[m1 * s.mul], tv);
        }
        r = aniso_fma(pw[i] * w[(long long)e * p.nw + s.w_off + u], tv, r);
      }
      out[j] = r;
    }
  }
}

template <typename real>
__device__ void tp_conv_weight_grad(const TpConvParams& p) {
  real* a = reinterpret_cast<real*>(aniso_smem);
  const int n = blockIdx.x;
  const int* edge_ptr = reinterpret_cast<const int*>(p.edge_ptr);
  const int* peer = reinterpret_cast<const int*>(p.edge_peer);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  const TpIns* ins = reinterpret_cast<const TpIns*>(p.ins);
  const real* pw = reinterpret_cast<const real*>(p.pw);
  const real* h = reinterpret_cast<const real*>(p.h);
  const real* g = reinterpret_cast<const real*>(p.g) + (long long)n * p.dmid;
  real* dw = reinterpret_cast<real*>(p.out);
  const int begin = edge_ptr[n], end = edge_ptr[n + 1];
  for (int first = begin; first < end; first += p.tile) {
    const int count = end - first < p.tile ? end - first : p.tile;
    __syncthreads();
    contract_tile<real>(p, a, first, count);
    __syncthreads();
    for (int k = threadIdx.x; k < count * p.nw; k += blockDim.x) {
      const int t = k / p.nw, j = k - t * p.nw;
      const int e = first + t;
      const int i = elems[3 * j];
      real d = 0;
      if (i >= 0) {
        const TpIns s = ins[i];
        const int u = elems[3 * j + 2];
        const real* x = h + (long long)peer[e] * p.din + s.x_off + u;
        const real* at = a + t * p.a_len + s.a_off;
        for (int m3 = 0; m3 < s.d3; ++m3) {
          real tv = 0;
          for (int m1 = 0; m1 < s.d1; ++m1) {
            const real coef = at[m1 * s.d3 + m3];
            if (coef != 0) tv = aniso_fma(coef, x[m1 * s.mul], tv);
          }
          d = aniso_fma(pw[i] * g[s.mid_off + m3 * s.umid + u], tv, d);
        }
      }
      dw[(long long)e * p.nw + j] = d;
    }
  }
}

template <typename real>
__device__ void tp_conv_input_grad(const TpConvParams& p) {
  real* a = reinterpret_cast<real*>(aniso_smem);
  const int n = blockIdx.x;
  const int* edge_ptr = reinterpret_cast<const int*>(p.edge_ptr);
  const int* list = reinterpret_cast<const int*>(p.edge_list);
  const int* peer = reinterpret_cast<const int*>(p.edge_peer);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  const int* block_ins_ptr = reinterpret_cast<const int*>(p.block_ins_ptr);
  const int* block_ins = reinterpret_cast<const int*>(p.block_ins);
  const TpIns* ins = reinterpret_cast<const TpIns*>(p.ins);
  const real* pw = reinterpret_cast<const real*>(p.pw);
  const real* w = reinterpret_cast<const real*>(p.w);
  const real* g = reinterpret_cast<const real*>(p.g);
  real* dh = reinterpret_cast<real*>(p.out) + (long long)n * p.din;
  const int begin = edge_ptr[n], end = edge_ptr[n + 1];
  if (!p.accumulate)
    for (int j = threadIdx.x; j < p.din; j += blockDim.x) dh[j] = 0;
  for (int first = begin; first < end; first += p.tile) {
    const int count = end - first < p.tile ? end - first : p.tile;
    __syncthreads();
    contract_tile<real>(p, a, first, count);
    __syncthreads();
    for (int j = threadIdx.x; j < p.din; j += blockDim.x) {
      const int block = elems[3 * j], m1 = elems[3 * j + 1], u = elems[3 * j + 2];
      real d = dh[j];
      for (int t = 0; t < count; ++t) {
        const int e = list[first + t];
        const real* ge = g + (long long)peer[e] * p.dmid;
        const real* we = w + (long long)e * p.nw;
        const real* at = a + t * p.a_len;
        for (int b = block_ins_ptr[block]; b < block_ins_ptr[block + 1]; ++b) {
          const int i = block_ins[b];
          const TpIns s = ins[i];
          const real wv = pw[i] * we[s.w_off + u];
          for (int m3 = 0; m3 < s.d3; ++m3) {
            const real coef = at[s.a_off + m1 * s.d3 + m3];
            if (coef != 0) d = aniso_fma(coef, wv * ge[s.mid_off + m3 * s.umid + u], d);
          }
        }
      }
      dh[j] = d;
    }
  }
}

// The FullyConnectedTensorProduct with per-species weights, after
// `fctp_species_matrices` / `fctp_forward` in src/model/kernels.rs. Node
// attributes depend only on the element, so each path collapses to one
// matrix per species of the batch, M_p[s][u][w] = norm_p Σ_v z[s][v] W_p[u][v][w];
// then every output element of every node is one thread's sum over the
// paths into its block, in path order, u in order.
struct FctpPath {
  int x_off;     // offset of the input block in a node's features
  int nu;        // its multiplicity
  int out_off;   // offset of the output block
  int nw;        // its multiplicity
  int d;         // 2l + 1 of both blocks
  int w_off;     // offset of W_p[u][v][w] in the weights
  int mats_off;  // Σ_{q<p} nu_q · nw_q: M_p of every species starts at species · mats_off
  int row_off;   // Σ_{q<p} nu_q: the path's first row (q, u) of the dz sums
};

struct FctpParams {
  aniso_ptr x;          // real[nodes × din]: inputs (forward)
  aniso_ptr out;        // real: M (matrices) or outputs (forward)
  aniso_ptr weight;     // real: the FCTP's weights (matrices)
  aniso_ptr z;          // real[species × attr]: species attributes (matrices)
  aniso_ptr mats;       // real: M (forward)
  aniso_ptr species_of; // int[nodes]
  aniso_ptr paths;      // FctpPath[paths]
  aniso_ptr norm;       // real[paths]
  aniso_ptr out_paths_ptr;  // int[out blocks + 1]: the paths into each output block…
  aniso_ptr out_paths;      // int[…]: …in path order
  aniso_ptr elems;      // int[dout × 3]: (output block, m, w) of each output element
  aniso_ptr scale;      // real[dout] or 0: out = scale ∘ FCTP(x) + add_alpha · add
  aniso_ptr add;        // real[nodes × dout] or 0
  double add_alpha;
  // Backward:
  aniso_ptr g;              // real[nodes × dout]: upstream gradient, used as g_alpha · g_scale ∘ g
  aniso_ptr g_scale;        // real[dout] or 0
  aniso_ptr in_paths_ptr;   // int[in blocks + 1]: the paths reading each input block…
  aniso_ptr in_paths;       // int[…]: …in path order
  aniso_ptr in_elems;       // int[din × 3]: (input block, m, u) of each input element
  aniso_ptr species_ptr;    // int[species + 1]: the nodes of each species are…
  aniso_ptr species_nodes;  // int[nodes]: …these, in order
  aniso_ptr grads;          // real: G (species grad, param grad), dx (input grad)
  aniso_ptr dweight;        // real[weight_numel]: dW (param grad)
  aniso_ptr dz;             // real[species × attr]: dz (param grad)
  aniso_ptr dz_parts;       // real[parts × species × attr] or 0: dz's sums by part of the rows
  double g_alpha;
  int accumulate;           // dx, dz: add to what is there (else overwrite)
  int weight_numel;
  int nodes;
  int din;
  int dout;
  int species;
  int attr;
  int mats_len;         // Σ_p species · nu · nw
  int paths_count;
  int rows;             // Σ_p nu_p: the rows (p, u) of the dz sums
  int rows_per_part;    // rows a thread sums into one part of dz
  int unused;
};

// One thread per element of M, over all paths.
template <typename real>
__device__ void fctp_matrices(const FctpParams& p) {
  const FctpPath* paths = reinterpret_cast<const FctpPath*>(p.paths);
  const real* norm = reinterpret_cast<const real*>(p.norm);
  const real* weight = reinterpret_cast<const real*>(p.weight);
  const real* z = reinterpret_cast<const real*>(p.z);
  real* mats = reinterpret_cast<real*>(p.out);
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < p.mats_len;
       k += (long long)gridDim.x * blockDim.x) {
    int q = 0;
    while (q + 1 < p.paths_count && (long long)paths[q + 1].mats_off * p.species <= k) ++q;
    const FctpPath f = paths[q];
    const int r = (int)(k - (long long)f.mats_off * p.species);
    const int s = r / (f.nu * f.nw), uw = r - s * f.nu * f.nw, u = uw / f.nw, w = uw - u * f.nw;
    const real* wu = weight + f.w_off + (long long)u * p.attr * f.nw + w;
    real acc = 0;
    for (int v = 0; v < p.attr; ++v) acc = aniso_fma(z[s * p.attr + v], wu[(long long)v * f.nw], acc);
    mats[k] = norm[q] * acc;
  }
}

// One thread per (node, output element).
template <typename real>
__device__ void fctp_forward(const FctpParams& p) {
  const FctpPath* paths = reinterpret_cast<const FctpPath*>(p.paths);
  const int* out_paths_ptr = reinterpret_cast<const int*>(p.out_paths_ptr);
  const int* out_paths = reinterpret_cast<const int*>(p.out_paths);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  const int* species_of = reinterpret_cast<const int*>(p.species_of);
  const real* x = reinterpret_cast<const real*>(p.x);
  const real* mats = reinterpret_cast<const real*>(p.mats);
  const real* scale = reinterpret_cast<const real*>(p.scale);
  const real* add = reinterpret_cast<const real*>(p.add);
  real* out = reinterpret_cast<real*>(p.out);
  const long long total = (long long)p.nodes * p.dout;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    const int n = (int)(k / p.dout), j = (int)(k - (long long)n * p.dout);
    const int block = elems[3 * j], m = elems[3 * j + 1], w = elems[3 * j + 2];
    const int s = species_of[n];
    const real* xn = x + (long long)n * p.din;
    real o = 0;
    for (int b = out_paths_ptr[block]; b < out_paths_ptr[block + 1]; ++b) {
      const FctpPath f = paths[out_paths[b]];
      const real* xr = xn + f.x_off + m * f.nu;
      const real* ms = mats + (long long)f.mats_off * p.species + (long long)s * f.nu * f.nw + w;
      for (int u = 0; u < f.nu; ++u) o = aniso_fma(xr[u], ms[u * f.nw], o);
    }
    if (scale) o = scale[j] * o;
    if (add) o = (real)p.add_alpha * add[k] + o;
    out[k] = o;
  }
}

// The scaled upstream gradient g_alpha · g_scale ∘ g of element j of a node.
template <typename real>
__device__ __forceinline__ real fctp_upstream(const FctpParams& p, const real* g, int j) {
  const real* g_scale = reinterpret_cast<const real*>(p.g_scale);
  return g_scale ? g[j] * g_scale[j] : (real)p.g_alpha * g[j];
}

// dx[n] (+)= Σ_p M_p[s]ᵀ g̃[n]: one thread per (node, input element), the
// paths reading its block in order, each path's sum over w on its own.
template <typename real>
__device__ void fctp_input_grad(const FctpParams& p) {
  const FctpPath* paths = reinterpret_cast<const FctpPath*>(p.paths);
  const int* in_paths_ptr = reinterpret_cast<const int*>(p.in_paths_ptr);
  const int* in_paths = reinterpret_cast<const int*>(p.in_paths);
  const int* elems = reinterpret_cast<const int*>(p.in_elems);
  const int* species_of = reinterpret_cast<const int*>(p.species_of);
  const real* mats = reinterpret_cast<const real*>(p.mats);
  const real* g = reinterpret_cast<const real*>(p.g);
  real* dx = reinterpret_cast<real*>(p.grads);
  const long long total = (long long)p.nodes * p.din;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    const int n = (int)(k / p.din), j = (int)(k - (long long)n * p.din);
    const int block = elems[3 * j], m = elems[3 * j + 1], u = elems[3 * j + 2];
    const int s = species_of[n];
    const real* gn = g + (long long)n * p.dout;
    real d = p.accumulate ? dx[k] : (real)0;
    for (int b = in_paths_ptr[block]; b < in_paths_ptr[block + 1]; ++b) {
      const FctpPath f = paths[in_paths[b]];
      const real* ms = mats + (long long)f.mats_off * p.species + (long long)s * f.nu * f.nw + (long long)u * f.nw;
      real acc = 0;
      for (int w = 0; w < f.nw; ++w) acc = aniso_fma(fctp_upstream(p, gn, f.out_off + m * f.nw + w), ms[w], acc);
      d += acc;
    }
    dx[k] = d;
  }
}

// G_p[s][u][w] = Σ_{n ∈ s} Σ_m x[n][m][u] g̃[n][m][w]: one thread per element, nodes in order.
template <typename real>
__device__ void fctp_species_grad(const FctpParams& p) {
  const FctpPath* paths = reinterpret_cast<const FctpPath*>(p.paths);
  const int* species_ptr = reinterpret_cast<const int*>(p.species_ptr);
  const int* species_nodes = reinterpret_cast<const int*>(p.species_nodes);
  const real* x = reinterpret_cast<const real*>(p.x);
  const real* g = reinterpret_cast<const real*>(p.g);
  real* grads = reinterpret_cast<real*>(p.grads);
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < p.mats_len;
       k += (long long)gridDim.x * blockDim.x) {
    int q = 0;
    while (q + 1 < p.paths_count && (long long)paths[q + 1].mats_off * p.species <= k) ++q;
    const FctpPath f = paths[q];
    const int r = (int)(k - (long long)f.mats_off * p.species);
    const int s = r / (f.nu * f.nw), uw = r - s * f.nu * f.nw, u = uw / f.nw, w = uw - u * f.nw;
    real acc = 0;
    for (int i = species_ptr[s]; i < species_ptr[s + 1]; ++i) {
      const int n = species_nodes[i];
      const real* xn = x + (long long)n * p.din + f.x_off + u;
      const real* gn = g + (long long)n * p.dout;
      for (int m = 0; m < f.d; ++m) acc = aniso_fma(xn[m * f.nu], fctp_upstream(p, gn, f.out_off + m * f.nw + w), acc);
    }
    grads[k] = acc;
  }
}

// From G, dW and dz in one launch: the first weight_numel threads write
// dW_p[u][v][w] = norm_p Σ_s z[s][v] G_p[s][u][w], species in order; the
// rest sum dz[s][v] = Σ_p norm_p Σ_u Σ_w G_p[s][u][w] W_p[u][v][w].
//
// The dz sums run over every row (p, u) of every path, ≈ 134 k FMAs at the
// published configuration: one thread each would be a few thousand long
// serial chains. So the rows are cut into parts of rows_per_part, a
// constant, and a thread owns one (part, s, v), consecutive threads
// consecutive v. Its part's sum, each row's w-chain times norm_p added row
// by row, goes to dz_parts, which fctp_dz_sum adds part by part in order. A
// single part is added onto dz here (dz_parts = 0). The result depends on
// rows_per_part only, never on the launch.
template <typename real>
__device__ void fctp_param_grad(const FctpParams& p) {
  const FctpPath* paths = reinterpret_cast<const FctpPath*>(p.paths);
  const real* norm = reinterpret_cast<const real*>(p.norm);
  const real* weight = reinterpret_cast<const real*>(p.weight);
  const real* z = reinterpret_cast<const real*>(p.z);
  const real* grads = reinterpret_cast<const real*>(p.grads);
  real* dweight = reinterpret_cast<real*>(p.dweight);
  real* dz = reinterpret_cast<real*>(p.dz);
  real* dz_parts = reinterpret_cast<real*>(p.dz_parts);
  const long long sv_count = (long long)p.species * p.attr;
  const long long parts = (p.rows + p.rows_per_part - 1) / p.rows_per_part;
  const long long total = (long long)p.weight_numel + sv_count * parts;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    if (k < p.weight_numel) {
      int q = 0;
      while (q + 1 < p.paths_count && paths[q + 1].w_off <= k) ++q;
      const FctpPath f = paths[q];
      const int r = (int)(k - f.w_off);
      const int u = r / (p.attr * f.nw), vw = r - u * p.attr * f.nw, v = vw / f.nw, w = vw - v * f.nw;
      real acc = 0;
      for (int s = 0; s < p.species; ++s)
        acc = aniso_fma(z[s * p.attr + v], grads[(long long)f.mats_off * p.species + (long long)s * f.nu * f.nw + u * f.nw + w], acc);
      dweight[k] = norm[q] * acc;
    } else {
      const long long j = k - p.weight_numel;
      const int part = (int)(j / sv_count), sv = (int)(j - part * sv_count), s = sv / p.attr, v = sv - s * p.attr;
      const int row_begin = part * p.rows_per_part;
      const int row_end = row_begin + p.rows_per_part < p.rows ? row_begin + p.rows_per_part : p.rows;
      int q = 0;
      while (q + 1 < p.paths_count && paths[q + 1].row_off <= row_begin) ++q;
      real d = 0;
      for (int row = row_begin; row < row_end; ++row) {
        while (row >= paths[q].row_off + paths[q].nu) ++q;
        const FctpPath f = paths[q];
        const int u = row - f.row_off;
        const real* gs = grads + (long long)f.mats_off * p.species + (long long)s * f.nu * f.nw + u * f.nw;
        const real* wu = weight + f.w_off + (long long)u * p.attr * f.nw + v * f.nw;
        real acc = 0;
        for (int w = 0; w < f.nw; ++w) acc = aniso_fma(gs[w], wu[w], acc);
        d += norm[q] * acc;
      }
      if (dz_parts) dz_parts[j] = d;
      else dz[sv] = p.accumulate ? dz[sv] + d : d;
    }
  }
}

// dz[s][v] (+)= Σ_part dz_parts[part][s][v], parts in order: a thread an element.
template <typename real>
__device__ void fctp_dz_sum(const FctpParams& p) {
  const real* dz_parts = reinterpret_cast<const real*>(p.dz_parts);
  real* dz = reinterpret_cast<real*>(p.dz);
  const long long sv_count = (long long)p.species * p.attr;
  const long long parts = (p.rows + p.rows_per_part - 1) / p.rows_per_part;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < sv_count;
       k += (long long)gridDim.x * blockDim.x) {
    real d = 0;
    for (long long part = 0; part < parts; ++part) d += dz_parts[part * sv_count + k];
    dz[k] = p.accumulate ? dz[k] + d : d;
  }
}

// The rest of the network, after Network::forward / backward_into in
// src/model/network.rs: the embedding, the radial MLP, the gates and the
// pooling. One thread per output element, each sum in the CPU's order.
// Activations are evaluated in double, as on the CPU.

// Embedding of one-hot(Z) and of the mass, per species, and the node features.
struct EmbedParams {
  aniso_ptr weight;      // real[em × elements]: em.weight
  aniso_ptr bias;        // real[em]: em.bias
  aniso_ptr species_z;   // int[species]: Z − 1
  aniso_ptr species_mass;  // real[species]
  aniso_ptr species_of;  // int[nodes]
  aniso_ptr species_ptr;    // int[species + 1]: the nodes of each species are…
  aniso_ptr species_nodes;  // int[nodes]: …these, in order
  aniso_ptr x0_pre;      // real[species × em]: W[:, Z] + b
  aniso_ptr z_pre;       // real[species × em]: mass W[:, Z] + b
  aniso_ptr z;           // real[species × em]: relu(z_pre), the node attributes
  aniso_ptr x;           // real[nodes × em]: relu(x0_pre) per node (forward)
  aniso_ptr gx;          // real[nodes × em]: gradient of x (backward)
  aniso_ptr dz;          // real[species × em]: gradient of z (backward)
  aniso_ptr masked;      // real[species × em × 2]: the two gradients through the relus
  aniso_ptr dweight;     // real[em × elements]
  aniso_ptr dbias;       // real[em]
  int em;
  int elements;
  int species;
  int nodes;
};

// Threads: species × em for the species rows, then nodes × em for the nodes.
template <typename real>
__device__ void embed_forward(const EmbedParams& p) {
  const real* weight = reinterpret_cast<const real*>(p.weight);
  const real* bias = reinterpret_cast<const real*>(p.bias);
  const int* species_z = reinterpret_cast<const int*>(p.species_z);
  const real* mass = reinterpret_cast<const real*>(p.species_mass);
  const int* species_of = reinterpret_cast<const int*>(p.species_of);
  real* x0_pre = reinterpret_cast<real*>(p.x0_pre);
  real* z_pre = reinterpret_cast<real*>(p.z_pre);
  real* z = reinterpret_cast<real*>(p.z);
  real* x = reinterpret_cast<real*>(p.x);
  const long long rows = (long long)p.species * p.em, total = rows + (long long)p.nodes * p.em;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    if (k < rows) {
      const int s = (int)(k / p.em), v = (int)(k - (long long)s * p.em);
      const real w = weight[v * p.elements + species_z[s]];
      const real zp = mass[s] * w + bias[v];
      x0_pre[k] = w + bias[v];
      z_pre[k] = zp;
      z[k] = zp > 0 ? zp : (real)0;
    } else {
      const long long r = k - rows;
      const int n = (int)(r / p.em), v = (int)(r - (long long)n * p.em);
      const real x0 = weight[v * p.elements + species_z[species_of[n]]] + bias[v];
      x[r] = x0 > 0 ? x0 : (real)0;
    }
  }
}

// Per (species, channel): the gradients reaching W[:, Z] + b through each relu,
// the node gradients summed over the species' nodes in order.
template <typename real>
__device__ void embed_species_grad(const EmbedParams& p) {
  const int* species_ptr = reinterpret_cast<const int*>(p.species_ptr);
  const int* species_nodes = reinterpret_cast<const int*>(p.species_nodes);
  const real* x0_pre = reinterpret_cast<const real*>(p.x0_pre);
  const real* z_pre = reinterpret_cast<const real*>(p.z_pre);
  const real* gx = reinterpret_cast<const real*>(p.gx);
  const real* dz = reinterpret_cast<const real*>(p.dz);
  real* masked = reinterpret_cast<real*>(p.masked);
  const long long total = (long long)p.species * p.em;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    const int s = (int)(k / p.em), v = (int)(k - (long long)s * p.em);
    real dx0 = 0;
    for (int i = species_ptr[s]; i < species_ptr[s + 1]; ++i) dx0 += gx[(long long)species_nodes[i] * p.em + v];
    masked[2 * k] = x0_pre[k] > 0 ? dx0 : (real)0;
    masked[2 * k + 1] = z_pre[k] > 0 ? dz[k] : (real)0;
  }
}

// em.weight (every element, zero where no species has it) and em.bias:
// one thread per parameter, species in order.
template <typename real>
__device__ void embed_param_grad(const EmbedParams& p) {
  const int* species_z = reinterpret_cast<const int*>(p.species_z);
  const real* mass = reinterpret_cast<const real*>(p.species_mass);
  const real* masked = reinterpret_cast<const real*>(p.masked);
  real* dweight = reinterpret_cast<real*>(p.dweight);
  real* dbias = reinterpret_cast<real*>(p.dbias);
  const long long weights = (long long)p.em * p.elements, total = weights + p.em;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    real acc = 0;
    if (k < weights) {
      const int v = (int)(k / p.elements), zi = (int)(k - (long long)v * p.elements);
      for (int s = 0; s < p.species; ++s) {
        if (species_z[s] != zi) continue;
        const real* m = masked + 2 * ((long long)s * p.em + v);
        acc += m[0];
        acc += m[1] * mass[s];
      }
      dweight[k] = acc;
    } else {
      const int v = (int)(k - weights);
      for (int s = 0; s < p.species; ++s) {
        const real* m = masked + 2 * ((long long)s * p.em + v);
        acc += m[0];
        acc += m[1];
      }
      dbias[v] = acc;
    }
  }
}

// A layer of the radial MLP, x W / √fan_in over the edges, with e3nn's
// normalised SiLU fused in where the layer is hidden.
struct MlpParams {
  aniso_ptr input;   // real[rows × inner]
  aniso_ptr weight;  // real[inner × cols]
  aniso_ptr out;     // real: activations [rows × cols] (forward), input grad [rows × inner], dW [inner × cols]
  aniso_ptr pre;     // real[rows × cols] or 0: pre-activations (forward, written; input grad, read)
  aniso_ptr g;       // real[rows × cols]: upstream gradient (backward)
  aniso_ptr partial; // real[chunks × inner × cols]: dW's sums over each chunk of edges (weight grad)
  double alpha;      // 1/√inner
  double silu;       // e3nn's normalisation of SiLU
  int rows;
  int inner;
  int cols;
  int k_chunk;       // weight grad: edges a chunk sums (the last may sum fewer)
};

// The three products of a layer are one tiled GEMM, C = A B with A (M × K)
// and B (K × N) read through strides, so the transposes cost nothing:
//   forward       x W     M = rows,  K = inner, N = cols
//   weight grad   xᵀ g    M = inner, K = rows,  N = cols
//   input grad    g Wᵀ    M = rows,  K = cols,  N = inner
// A block of GEMM_THREADS threads owns a GEMM_TILE × GEMM_TILE tile of C;
// slabs of GEMM_K columns of A and rows of B go through shared memory, and
// each thread keeps GEMM_PER outputs of one column in registers. Every output
// is one fma chain over k in ascending order, exactly as one thread alone
// would sum it, so the tiling changes the speed and never a bit.
//
// A long k is cut into chunks of `k_chunk` (the weight grad's edges: a few
// dozen tiles of dW would otherwise each run thousands of edges on one SM
// while the others idle). A block then owns a (tile, chunk) pair, the
// chunk's chain goes to `partial`, and mlp_weight_grad_sum adds the chunks
// in order: the sum depends on k_chunk, a constant, never on the launch.
#define GEMM_TILE 32
#define GEMM_K 16
#define GEMM_THREADS 128
#define GEMM_PER (GEMM_TILE * GEMM_TILE / GEMM_THREADS)
// A slab's row stride in shared memory: one more than a tile, so that the
// threads loading along k (A or B of unit stride in k) write to different
// banks instead of 16 of them to one.
#define GEMM_LD (GEMM_TILE + 1)

struct GemmShape {
  long long m, n, k;
  long long sam, sak;  // A(i, k) = a[i sam + k sak]
  long long sbk, sbn;  // B(k, j) = b[k sbk + j sbn]
};

// Runs the (tile, chunk) pairs of C; `epilogue(i, j, chunk, c)` stores
// output (i, j)'s sum c over chunk `chunk` of k.
template <typename real, typename Epilogue>
__device__ void tiled_gemm(const real* a, const real* b, const GemmShape& s, long long k_chunk,
                           const Epilogue& epilogue) {
  real* as = reinterpret_cast<real*>(aniso_smem);  // [GEMM_K][GEMM_LD]: A's slab, k-major
  real* bs = as + GEMM_K * GEMM_LD;                // [GEMM_K][GEMM_LD]: B's slab
  const long long tiles_m = (s.m + GEMM_TILE - 1) / GEMM_TILE, tiles_n = (s.n + GEMM_TILE - 1) / GEMM_TILE;
  const long long chunks = s.k > k_chunk ? (s.k + k_chunk - 1) / k_chunk : 1;
  const int col = threadIdx.x % GEMM_TILE, row0 = threadIdx.x / GEMM_TILE;
  const int rows_step = GEMM_THREADS / GEMM_TILE;
  for (long long work = blockIdx.x; work < tiles_m * tiles_n * chunks; work += gridDim.x) {
    const long long tile = work % (tiles_m * tiles_n), chunk = work / (tiles_m * tiles_n);
    const long long i0 = (tile / tiles_n) * GEMM_TILE, j0 = (tile % tiles_n) * GEMM_TILE;
    const long long k_begin = chunk * k_chunk, k_end = k_begin + k_chunk < s.k ? k_begin + k_chunk : s.k;
    real acc[GEMM_PER];
    for (int q = 0; q < GEMM_PER; ++q) acc[q] = 0;
    for (long long k0 = k_begin; k0 < k_end; k0 += GEMM_K) {
      const int kc = (int)(k_end - k0 < GEMM_K ? k_end - k0 : GEMM_K);
      // Consecutive threads load consecutive addresses: along k where that
      // is A's (or B's) unit stride, else along the tile.
      for (int l = threadIdx.x; l < GEMM_K * GEMM_TILE; l += GEMM_THREADS) {
        const int kk = s.sak == 1 ? l % GEMM_K : l / GEMM_TILE;
        const int ii = s.sak == 1 ? l / GEMM_K : l % GEMM_TILE;
        const long long i = i0 + ii;
        as[kk * GEMM_LD + ii] = (kk < kc && i < s.m) ? a[i * s.sam + (k0 + kk) * s.sak] : (real)0;
        const int kb = s.sbk == 1 ? l % GEMM_K : l / GEMM_TILE;
        const int jb = s.sbk == 1 ? l / GEMM_K : l % GEMM_TILE;
        const long long j = j0 + jb;
        bs[kb * GEMM_LD + jb] = (kb < kc && j < s.n) ? b[(k0 + kb) * s.sbk + j * s.sbn] : (real)0;
      }
      __syncthreads();
      for (int kk = 0; kk < kc; ++kk) {
        const real bv = bs[kk * GEMM_LD + col];
        for (int q = 0; q < GEMM_PER; ++q) acc[q] = aniso_fma(as[kk * GEMM_LD + row0 + q * rows_step], bv, acc[q]);
      }
      __syncthreads();
    }
    const long long j = j0 + col;
    for (int q = 0; q < GEMM_PER; ++q) {
      const long long i = i0 + row0 + q * rows_step;
      if (i < s.m && j < s.n) epilogue(i, j, chunk, acc[q]);
    }
  }
}

// The epilogues hold what they need by value, out of the parameter struct.
template <typename real>
struct MlpForwardOut {
  real* out;
  real* pre;
  real alpha, silu;
  long long cols;
  __device__ void operator()(long long e, long long j, long long, real acc) const {
    const long long k = e * cols + j;
    const real v = alpha * acc;
    if (pre) {
      pre[k] = v;
      out[k] = silu * v / ((real)1 + exp(-v));
    } else {
      out[k] = v;
    }
  }
};

template <typename real>
__device__ void mlp_forward(const MlpParams& p) {
  const GemmShape s = {p.rows, p.cols, p.inner, p.inner, 1, p.cols, 1};
  tiled_gemm<real>(reinterpret_cast<const real*>(p.input), reinterpret_cast<const real*>(p.weight), s, s.k,
                   MlpForwardOut<real>{reinterpret_cast<real*>(p.out), reinterpret_cast<real*>(p.pre),
                                         (real)p.alpha, (real)p.silu, p.cols});
}

// dW itself where the edges are one chunk, else the chunk's sum in `partial`.
template <typename real>
struct MlpWeightGradOut {
  real* dweight;
  real* partial;
  real alpha;
  long long inner, cols;
  __device__ void operator()(long long i, long long j, long long chunk, real acc) const {
    if (partial)
      partial[(chunk * inner + i) * cols + j] = acc;
    else
      dweight[i * cols + j] = alpha * acc;
  }
};

// dW[i][j] = α Σ_e input[e][i] g[e][j], the edges in order, by chunks of
// k_chunk edges when there are more (partial then holds the chunks' sums).
template <typename real>
__device__ void mlp_weight_grad(const MlpParams& p) {
  const GemmShape s = {p.inner, p.cols, p.rows, 1, p.inner, p.cols, 1};
  real* partial = p.rows > p.k_chunk ? reinterpret_cast<real*>(p.partial) : nullptr;
  tiled_gemm<real>(reinterpret_cast<const real*>(p.input), reinterpret_cast<const real*>(p.g), s, p.k_chunk,
                   MlpWeightGradOut<real>{reinterpret_cast<real*>(p.out), partial, (real)p.alpha, p.inner, p.cols});
}

// dW[i][j] = α Σ_chunk partial[chunk][i][j], the chunks in order.
template <typename real>
__device__ void mlp_weight_grad_sum(const MlpParams& p) {
  const real* partial = reinterpret_cast<const real*>(p.partial);
  real* dweight = reinterpret_cast<real*>(p.out);
  const long long size = (long long)p.inner * p.cols, chunks = ((long long)p.rows + p.k_chunk - 1) / p.k_chunk;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < size;
       k += (long long)gridDim.x * blockDim.x) {
    real acc = 0;
    for (long long c = 0; c < chunks; ++c) acc += partial[c * size + k];
    dweight[k] = (real)p.alpha * acc;
  }
}

template <typename real>
struct MlpInputGradOut {
  real* gin;
  const real* pre;
  real alpha, silu;
  long long inner;
  __device__ void operator()(long long e, long long i, long long, real acc) const {
    const long long k = e * inner + i;
    const real v = pre[k], sg = (real)1 / ((real)1 + exp(-v));
    gin[k] = alpha * acc * (silu * (sg + v * sg * ((real)1 - sg)));
  }
};

// The gradient of the layer's input, through the previous layer's SiLU:
// α Σ_j g[e][j] W[i][j] · silu′(pre[e][i]).
template <typename real>
__device__ void mlp_input_grad(const MlpParams& p) {
  const GemmShape s = {p.rows, p.inner, p.cols, p.cols, 1, 1, p.cols};
  tiled_gemm<real>(reinterpret_cast<const real*>(p.g), reinterpret_cast<const real*>(p.weight), s, s.k,
                   MlpInputGradOut<real>{reinterpret_cast<real*>(p.out), reinterpret_cast<const real*>(p.pre),
                                           (real)p.alpha, (real)p.silu, p.inner});
}

// e3nn's Gate. What each element is, from the architecture:
//   forward, per output element:  (input, gate input or −1, activation)
//   backward, per input element:  (kind, activation, a, b, count, stride)
//     kind 0, a scalar:           dx = g[a] · act′(x)
//     kind 1, a gated element:    dx = g[a] · act(x[b])
//     kind 2, a gate:             dx = act′(x) · Σ_m g[a + m·stride] · x[b + m·stride], m < count
enum { ACT_SILU = 0, ACT_TANH = 1, ACT_SIGMOID = 2 };

struct GateParams {
  aniso_ptr x;      // real[nodes × din]: the convolution's output
  aniso_ptr out;    // real: y [nodes × dout] (forward), dx [nodes × din] (backward)
  aniso_ptr g;      // real[nodes × dout]: upstream gradient (backward)
  aniso_ptr elems;  // int[dout × 3] (forward) or int[din × 6] (backward)
  double silu;      // e3nn's normalisation of each activation
  double tanh;
  double sigmoid;
  int nodes;
  int din;
  int dout;
  int unused;
};

// act(x) and act′(x) in double, normalised.
__device__ __forceinline__ void gate_act(const GateParams& p, int act, double x, double* value, double* slope) {
  if (act == ACT_TANH) {
    const double t = tanh(x);
    *value = p.tanh * t;
    *slope = p.tanh * (1.0 - t * t);
    return;
  }
  const double s = 1.0 / (1.0 + exp(-x));
  if (act == ACT_SILU) {
    *value = p.silu * x * s;
    *slope = p.silu * (s + x * s * (1.0 - s));
  } else {
    *value = p.sigmoid * s;
    *slope = p.sigmoid * s * (1.0 - s);
  }
}

template <typename real>
__device__ void gate_forward(const GateParams& p) {
  const real* x = reinterpret_cast<const real*>(p.x);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  real* y = reinterpret_cast<real*>(p.out);
  const long long total = (long long)p.nodes * p.dout;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    const long long n = k / p.dout;
    const int o = (int)(k - n * p.dout);
    const int src = elems[3 * o], gate = elems[3 * o + 1], act = elems[3 * o + 2];
    const real* xn = x + n * p.din;
    double value, slope;
    if (gate < 0) {
      gate_act(p, act, (double)xn[src], &value, &slope);
      y[k] = (real)value;
    } else {
      gate_act(p, act, (double)xn[gate], &value, &slope);
      y[k] = xn[src] * (real)value;
    }
  }
}

template <typename real>
__device__ void gate_backward(const GateParams& p) {
  const real* x = reinterpret_cast<const real*>(p.x);
  const real* g = reinterpret_cast<const real*>(p.g);
  const int* elems = reinterpret_cast<const int*>(p.elems);
  real* dx = reinterpret_cast<real*>(p.out);
  const long long total = (long long)p.nodes * p.din;
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
       k += (long long)gridDim.x * blockDim.x) {
    const long long n = k / p.din;
    const int i = (int)(k - n * p.din);
    const int* e = elems + 6 * i;
    const real* xn = x + n * p.din;
    const real* gn = g + n * p.dout;
    double value, slope;
    if (e[0] == 0) {
      gate_act(p, e[1], (double)xn[i], &value, &slope);
      dx[k] = gn[e[2]] * (real)slope;
    } else if (e[0] == 1) {
      gate_act(p, e[1], (double)xn[e[3]], &value, &slope);
      dx[k] = gn[e[2]] * (real)value;
    } else {
      gate_act(p, e[1], (double)xn[i], &value, &slope);
      real acc = 0;
      for (int m = 0; m < e[4]; ++m) acc += gn[e[2] + m * e[5]] * xn[e[3] + m * e[5]];
      dx[k] = acc * (real)slope;
    }
  }
}

// The mean of the head's six outputs over each structure's atoms, in double
// and in node order; and its gradient, which arrives in the model's
// precision (it is the one thing a training step uploads besides the batch).
struct PoolParams {
  aniso_ptr x;           // real[nodes × 6]: the last convolution's output (forward)
  aniso_ptr raw;         // double[graphs × 6]: the means (forward); real[graphs × 6]: their gradient (backward)
  aniso_ptr gx;          // real[nodes × 6]: the gradient of x (backward)
  aniso_ptr graph_ptr;   // int[graphs + 1]: the nodes of each structure are…
  aniso_ptr graph_nodes; // int[nodes]: …these, in order
  aniso_ptr node_graph;  // int[nodes]
  int graphs;
  int nodes;
};

template <typename real>
__device__ void pool_forward(const PoolParams& p) {
  const real* x = reinterpret_cast<const real*>(p.x);
  const int* graph_ptr = reinterpret_cast<const int*>(p.graph_ptr);
  const int* graph_nodes = reinterpret_cast<const int*>(p.graph_nodes);
  double* raw = reinterpret_cast<double*>(p.raw);
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < (long long)p.graphs * 6;
       k += (long long)gridDim.x * blockDim.x) {
    const int graph = (int)(k / 6), c = (int)(k - graph * 6);
    const double size = (double)(graph_ptr[graph + 1] - graph_ptr[graph]);
    double acc = 0;
    for (int i = graph_ptr[graph]; i < graph_ptr[graph + 1]; ++i) acc += (double)x[graph_nodes[i] * 6 + c] / size;
    raw[k] = acc;
  }
}

template <typename real>
__device__ void pool_backward(const PoolParams& p) {
  const int* graph_ptr = reinterpret_cast<const int*>(p.graph_ptr);
  const int* node_graph = reinterpret_cast<const int*>(p.node_graph);
  const real* graw = reinterpret_cast<const real*>(p.raw);
  real* gx = reinterpret_cast<real*>(p.gx);
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < (long long)p.nodes * 6;
       k += (long long)gridDim.x * blockDim.x) {
    const int n = (int)(k / 6), c = (int)(k - n * 6), graph = node_graph[n];
    const double size = (double)(graph_ptr[graph + 1] - graph_ptr[graph]);
    gx[k] = (real)((double)graw[graph * 6 + c] / size);
  }
}

// The optimiser, on the trial's parameters where they live: the gradient's
// global L2 norm as a fixed-order reduction (part k sums the squares of
// elements k, k + parts, k + 2·parts, … in order, in double; then one thread
// adds the parts in order), the factor that brings it within max_norm, and
// AdamW (PyTorch's: decoupled decay, then the bias-corrected step), as
// train::optim::AdamW does on the host. The sums do not depend on the launch
// shape, so two runs are bit-identical.
struct OptimParams {
  aniso_ptr param;    // real[n]: parameters (AdamW), or the source of a copy
  aniso_ptr grad;     // real[n]: their gradient
  aniso_ptr m;        // real[n]: first moments
  aniso_ptr v;        // real[n]: second moments
  aniso_ptr partial;  // double[parts]: the sums of squares of the gradient's parts
  aniso_ptr scale;    // double[1]: the factor applied to the gradient (1 within max_norm)
  aniso_ptr copy;     // real[n]: the destination of a copy
  double lr;
  double beta1;
  double beta2;
  double eps;
  double decay;       // 1 − lr · weight_decay
  double c1;          // 1 − beta1^step
  double c2;          // 1 − beta2^step
  double max_norm;    // ≤ 0: no limit
  long long n;
  int parts;
  int unused;
};

template <typename real>
__device__ void grad_sumsq(const OptimParams& p) {
  const real* grad = reinterpret_cast<const real*>(p.grad);
  double* partial = reinterpret_cast<double*>(p.partial);
  for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < p.parts;
       k += (long long)gridDim.x * blockDim.x) {
    double acc = 0;
    for (long long i = k; i < p.n; i += p.parts) acc += (double)grad[i] * (double)grad[i];
    partial[k] = acc;
  }
}

template <typename real>
__device__ void grad_clip_scale(const OptimParams& p) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const double* partial = reinterpret_cast<const double*>(p.partial);
  double sum = 0;
  for (int k = 0; k < p.parts; ++k) sum += partial[k];
  const double norm = sqrt(sum);
  *reinterpret_cast<double*>(p.scale) = p.max_norm > 0 && norm > p.max_norm ? p.max_norm / norm : 1.0;
}

template <typename real>
__device__ void adamw_step(const OptimParams& p) {
  real* param = reinterpret_cast<real*>(p.param);
  const real* grad = reinterpret_cast<const real*>(p.grad);
  real* m = reinterpret_cast<real*>(p.m);
  real* v = reinterpret_cast<real*>(p.v);
  const real scale = (real)*reinterpret_cast<const double*>(p.scale);
  const real b1 = (real)p.beta1, b2 = (real)p.beta2, one = (real)1;
  const real c1 = (real)p.c1, c2 = (real)p.c2, lr = (real)p.lr, eps = (real)p.eps, decay = (real)p.decay;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.n;
       i += (long long)gridDim.x * blockDim.x) {
    const real g = grad[i] * scale;
    const real mi = b1 * m[i] + (one - b1) * g;
    const real vi = b2 * v[i] + (one - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - lr * (mi / c1) / (sqrt(vi / c2) + eps);
  }
}

template <typename real>
__device__ void param_copy(const OptimParams& p) {
  const real* from = reinterpret_cast<const real*>(p.param);
  real* to = reinterpret_cast<real*>(p.copy);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.n;
       i += (long long)gridDim.x * blockDim.x)
    to[i] = from[i];
}

#define ANISO_INSTANTIATE(real, suffix)                                                     \
  ANISO_KERNEL void tp_conv_forward_##suffix(const TpConvParams p) { tp_conv_forward<real>(p); } \
  ANISO_KERNEL void tp_conv_weight_grad_##suffix(const TpConvParams p) {                   \
    tp_conv_weight_grad<real>(p);                                                           \
  }                                                                                         \
  ANISO_KERNEL void tp_conv_input_grad_##suffix(const TpConvParams p) { tp_conv_input_grad<real>(p); } \
  ANISO_KERNEL void fctp_matrices_##suffix(const FctpParams p) { fctp_matrices<real>(p); }             \
  ANISO_KERNEL void fctp_forward_##suffix(const FctpParams p) { fctp_forward<real>(p); }               \
  ANISO_KERNEL void fctp_input_grad_##suffix(const FctpParams p) { fctp_input_grad<real>(p); }         \
  ANISO_KERNEL void fctp_species_grad_##suffix(const FctpParams p) { fctp_species_grad<real>(p); }     \
  ANISO_KERNEL void fctp_param_grad_##suffix(const FctpParams p) { fctp_param_grad<real>(p); }         \
  ANISO_KERNEL void fctp_dz_sum_##suffix(const FctpParams p) { fctp_dz_sum<real>(p); }                 \
  ANISO_KERNEL void embed_forward_##suffix(const EmbedParams p) { embed_forward<real>(p); }            \
  ANISO_KERNEL void embed_species_grad_##suffix(const EmbedParams p) { embed_species_grad<real>(p); }  \
  ANISO_KERNEL void embed_param_grad_##suffix(const EmbedParams p) { embed_param_grad<real>(p); }      \
  ANISO_KERNEL void mlp_forward_##suffix(const MlpParams p) { mlp_forward<real>(p); }                  \
  ANISO_KERNEL void mlp_weight_grad_##suffix(const MlpParams p) { mlp_weight_grad<real>(p); }          \
  ANISO_KERNEL void mlp_weight_grad_sum_##suffix(const MlpParams p) { mlp_weight_grad_sum<real>(p); }  \
  ANISO_KERNEL void mlp_input_grad_##suffix(const MlpParams p) { mlp_input_grad<real>(p); }            \
  ANISO_KERNEL void gate_forward_##suffix(const GateParams p) { gate_forward<real>(p); }               \
  ANISO_KERNEL void gate_backward_##suffix(const GateParams p) { gate_backward<real>(p); }             \
  ANISO_KERNEL void pool_forward_##suffix(const PoolParams p) { pool_forward<real>(p); }               \
  ANISO_KERNEL void pool_backward_##suffix(const PoolParams p) { pool_backward<real>(p); }               \
  ANISO_KERNEL void grad_sumsq_##suffix(const OptimParams p) { grad_sumsq<real>(p); }                  \
  ANISO_KERNEL void grad_clip_scale_##suffix(const OptimParams p) { grad_clip_scale<real>(p); }        \
  ANISO_KERNEL void adamw_step_##suffix(const OptimParams p) { adamw_step<real>(p); }                  \
  ANISO_KERNEL void param_copy_##suffix(const OptimParams p) { param_copy<real>(p); }

ANISO_INSTANTIATE(float, f32)
ANISO_INSTANTIATE(double, f64)
