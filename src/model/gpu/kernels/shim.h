// The few CUDA words the kernels use, for both compilers that read them.
//
// Under nvcc or NVRTC they are CUDA's own. Compiled for the CPU (by the
// crate's build script, with a C++ compiler), a launch runs its blocks one
// after another on `blockDim.x` threads; `__syncthreads()` is a barrier
// across those threads and `aniso_smem` is the launch's dynamic shared
// memory. A kernel therefore runs the same instructions in the same order on
// either side, and a missing barrier shows up on the CPU as a data race
// (ThreadSanitizer) or a wrong result.
#ifndef ANISO_SHIM_H
#define ANISO_SHIM_H

typedef unsigned long long aniso_ptr;

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)

extern __shared__ __align__(16) unsigned char aniso_smem[];
#define ANISO_KERNEL extern "C" __global__

#else

#include <cmath>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

namespace aniso_emu {
struct Index {
  unsigned x, y, z;
};
extern thread_local Index thread_index;
extern thread_local Index block_index;
extern Index block_dim;
extern Index grid_dim;
extern thread_local unsigned char* shared_memory;
void sync_threads();
}  // namespace aniso_emu

#define threadIdx (aniso_emu::thread_index)
#define blockIdx (aniso_emu::block_index)
#define blockDim (aniso_emu::block_dim)
#define gridDim (aniso_emu::grid_dim)
#define aniso_smem (aniso_emu::shared_memory)
#define __syncthreads() aniso_emu::sync_threads()
#define ANISO_KERNEL extern "C"

using std::exp;
using std::fma;
using std::sqrt;
using std::tanh;

#endif

__device__ __forceinline__ float aniso_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double aniso_fma(double a, double b, double c) { return fma(a, b, c); }

#endif
