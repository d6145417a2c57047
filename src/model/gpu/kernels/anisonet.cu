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
//   input grad:    dh[n]     += Σ_{e: n→·} A_eᵀ (pw · w_e ∘ g[dst e])
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

#define ANISO_INSTANTIATE(real, suffix)                                                     \
  ANISO_KERNEL void tp_conv_forward_##suffix(const TpConvParams p) { tp_conv_forward<real>(p); } \
  ANISO_KERNEL void tp_conv_weight_grad_##suffix(const TpConvParams p) {                   \
    tp_conv_weight_grad<real>(p);                                                           \
  }                                                                                         \
  ANISO_KERNEL void tp_conv_input_grad_##suffix(const TpConvParams p) { tp_conv_input_grad<real>(p); }

ANISO_INSTANTIATE(float, f32)
ANISO_INSTANTIATE(double, f64)
