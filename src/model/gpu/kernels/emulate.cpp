// The CPU emulation of a GPU launch, for the kernels of anisonet.cu.
//
// A launch runs on `block` threads. Each runs the kernel for block 0, then
// waits at a barrier for the others, then block 1, … so the blocks run one
// after another, a block's threads run at once, and `__syncthreads()` is the
// same barrier. (A kernel without `__syncthreads()` skips the wait between
// blocks: nothing of one block is seen by the next.) Launches are serialised:
// the dynamic shared memory and the barrier belong to the one launch running.
//
// A GPU block starts with shared memory it has not written, so each block
// starts with shared memory filled with ANISO_POISON (a NaN as float and as
// double, an index far past any buffer; as new allocations in emulated.rs):
// a kernel that reads shared memory it did not write fails the tests. Two
// buffers take turns, so that no extra barrier is needed: while the threads
// run block b in one, thread 0 poisons the other for block b + 1, which
// nobody touches until all have passed the barrier at the end of block b.
#include "shim.h"
#include "anisonet.cu"

#include <pthread.h>

#include <cstddef>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace aniso_emu {
thread_local Index thread_index;
thread_local Index block_index;
Index block_dim;
Index grid_dim;
thread_local unsigned char* shared_memory;
static pthread_barrier_t barrier;

void sync_threads() { pthread_barrier_wait(&barrier); }
}  // namespace aniso_emu

namespace {

struct Kernel {
  const char* name;
  void (*run)(const void* params);
  size_t params_size;
  // Whether the kernel's threads meet at __syncthreads (and share memory).
  // Those of a kernel that does not run each through all its blocks
  // without waiting for one another.
  bool synced;
};

#define ANISO_ENTRY_OF(name, Params, synced) \
  { #name, [](const void* p) { name(*static_cast<const Params*>(p)); }, sizeof(Params), synced }
#define ANISO_SYNCED(name, Params) ANISO_ENTRY_OF(name, Params, true)
#define ANISO_ENTRY(name, Params) ANISO_ENTRY_OF(name, Params, false)

const Kernel KERNELS[] = {
    ANISO_SYNCED(tp_conv_forward_f32, TpConvParams),     ANISO_SYNCED(tp_conv_forward_f64, TpConvParams),
    ANISO_SYNCED(tp_conv_weight_grad_f32, TpConvParams), ANISO_SYNCED(tp_conv_weight_grad_f64, TpConvParams),
    ANISO_SYNCED(tp_conv_input_grad_f32, TpConvParams),  ANISO_SYNCED(tp_conv_input_grad_f64, TpConvParams),
    ANISO_ENTRY(fctp_matrices_f32, FctpParams),         ANISO_ENTRY(fctp_matrices_f64, FctpParams),
    ANISO_ENTRY(fctp_forward_f32, FctpParams),          ANISO_ENTRY(fctp_forward_f64, FctpParams),
    ANISO_ENTRY(fctp_input_grad_f32, FctpParams),       ANISO_ENTRY(fctp_input_grad_f64, FctpParams),
    ANISO_ENTRY(fctp_species_grad_f32, FctpParams),     ANISO_ENTRY(fctp_species_grad_f64, FctpParams),
    ANISO_ENTRY(fctp_param_grad_f32, FctpParams),       ANISO_ENTRY(fctp_param_grad_f64, FctpParams),
    ANISO_ENTRY(fctp_dz_sum_f32, FctpParams),           ANISO_ENTRY(fctp_dz_sum_f64, FctpParams),
    ANISO_ENTRY(embed_forward_f32, EmbedParams),        ANISO_ENTRY(embed_forward_f64, EmbedParams),
    ANISO_ENTRY(embed_species_grad_f32, EmbedParams),   ANISO_ENTRY(embed_species_grad_f64, EmbedParams),
    ANISO_ENTRY(embed_param_grad_f32, EmbedParams),     ANISO_ENTRY(embed_param_grad_f64, EmbedParams),
    ANISO_SYNCED(mlp_forward_f32, MlpParams),           ANISO_SYNCED(mlp_forward_f64, MlpParams),
    ANISO_SYNCED(mlp_weight_grad_f32, MlpParams),       ANISO_SYNCED(mlp_weight_grad_f64, MlpParams),
    ANISO_ENTRY(mlp_weight_grad_sum_f32, MlpParams),    ANISO_ENTRY(mlp_weight_grad_sum_f64, MlpParams),
    ANISO_SYNCED(mlp_input_grad_f32, MlpParams),        ANISO_SYNCED(mlp_input_grad_f64, MlpParams),
    ANISO_ENTRY(gate_forward_f32, GateParams),          ANISO_ENTRY(gate_forward_f64, GateParams),
    ANISO_ENTRY(gate_backward_f32, GateParams),         ANISO_ENTRY(gate_backward_f64, GateParams),
    ANISO_ENTRY(pool_forward_f32, PoolParams),          ANISO_ENTRY(pool_forward_f64, PoolParams),
    ANISO_ENTRY(pool_backward_f32, PoolParams),         ANISO_ENTRY(pool_backward_f64, PoolParams),
    ANISO_ENTRY(grad_sumsq_f32, OptimParams),           ANISO_ENTRY(grad_sumsq_f64, OptimParams),
    ANISO_ENTRY(grad_clip_scale_f32, OptimParams),      ANISO_ENTRY(grad_clip_scale_f64, OptimParams),
    ANISO_ENTRY(adamw_step_f32, OptimParams),           ANISO_ENTRY(adamw_step_f64, OptimParams),
    ANISO_ENTRY(param_copy_f32, OptimParams),           ANISO_ENTRY(param_copy_f64, OptimParams),
};

std::mutex one_launch;

const unsigned ANISO_POISON = 0x7FF87FF8u;

void poison(unsigned char* memory, size_t bytes) {
  for (size_t i = 0; i + sizeof ANISO_POISON <= bytes; i += sizeof ANISO_POISON)
    std::memcpy(memory + i, &ANISO_POISON, sizeof ANISO_POISON);
}

}  // namespace

// Runs kernel `name` on `grid` blocks of `block` threads with `shared` bytes
// of dynamic shared memory. Returns 0, or 1 for an unknown kernel, 2 for
// parameters of the wrong size, 3 for an impossible launch shape.
extern "C" int aniso_emu_launch(const char* name, unsigned grid, unsigned block, size_t shared,
                                const void* params, size_t params_size) {
  const Kernel* kernel = nullptr;
  for (const Kernel& k : KERNELS)
    if (std::strcmp(k.name, name) == 0) kernel = &k;
  if (!kernel) return 1;
  if (params_size != kernel->params_size) return 2;
  if (block == 0 || block > 1024 || shared > (size_t(227) << 10)) return 3;
  if (grid == 0) return 0;
  std::lock_guard<std::mutex> lock(one_launch);
  const size_t words = shared / sizeof(std::max_align_t) + 1;
  std::vector<std::max_align_t> memory(2 * words);
  unsigned char* buffers[2] = {reinterpret_cast<unsigned char*>(memory.data()),
                               reinterpret_cast<unsigned char*>(memory.data() + words)};
  poison(buffers[0], shared);
  aniso_emu::block_dim = {block, 1, 1};
  aniso_emu::grid_dim = {grid, 1, 1};
  pthread_barrier_init(&aniso_emu::barrier, nullptr, block);
  std::vector<std::thread> threads;
  threads.reserve(block);
  for (unsigned t = 0; t < block; ++t) {
    threads.emplace_back([=] {
      aniso_emu::thread_index = {t, 0, 0};
      for (unsigned b = 0; b < grid; ++b) {
        aniso_emu::block_index = {b, 0, 0};
        aniso_emu::shared_memory = buffers[b % 2];
        if (kernel->synced && t == 0 && b + 1 < grid) poison(buffers[(b + 1) % 2], shared);
        kernel->run(params);
        if (kernel->synced) aniso_emu::sync_threads();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  pthread_barrier_destroy(&aniso_emu::barrier);
  return 0;
}

// The layout of a parameter struct as this compiler lays it out: its size,
// then the offset of each field in order. Returns the number of values.
extern "C" size_t aniso_emu_layout(const char* name, size_t* out, size_t capacity) {
  std::vector<size_t> v;
  if (std::strcmp(name, "TpConvParams") == 0) {
#define F(f) offsetof(TpConvParams, f)
    v = {sizeof(TpConvParams), F(h), F(sh), F(w), F(g), F(out), F(edge_ptr), F(edge_list), F(edge_peer),
         F(entry_ptr), F(entry_sh), F(entry_c), F(ins), F(pw), F(elems), F(block_ins_ptr), F(block_ins),
         F(nodes), F(din), F(dmid), F(sh_dim), F(nw), F(a_len), F(tile), F(outputs), F(accumulate), F(unused)};
#undef F
  } else if (std::strcmp(name, "FctpParams") == 0) {
#define F(f) offsetof(FctpParams, f)
    v = {sizeof(FctpParams), F(x), F(out), F(weight), F(z), F(mats), F(species_of), F(paths), F(norm),
         F(out_paths_ptr), F(out_paths), F(elems), F(scale), F(add), F(add_alpha), F(g), F(g_scale),
         F(in_paths_ptr), F(in_paths), F(in_elems), F(species_ptr), F(species_nodes), F(grads), F(dweight),
         F(dz), F(dz_parts), F(g_alpha), F(accumulate), F(weight_numel), F(nodes), F(din),
         F(dout), F(species), F(attr), F(mats_len), F(paths_count), F(rows), F(rows_per_part), F(unused)};
#undef F
  } else if (std::strcmp(name, "EmbedParams") == 0) {
#define F(f) offsetof(EmbedParams, f)
    v = {sizeof(EmbedParams), F(weight), F(bias), F(species_z), F(species_mass), F(species_of), F(species_ptr),
         F(species_nodes), F(x0_pre), F(z_pre), F(z), F(x), F(gx), F(dz), F(masked), F(dweight), F(dbias),
         F(em), F(elements), F(species), F(nodes)};
#undef F
  } else if (std::strcmp(name, "MlpParams") == 0) {
#define F(f) offsetof(MlpParams, f)
    v = {sizeof(MlpParams), F(input), F(weight), F(out), F(pre), F(g), F(partial), F(alpha), F(silu),
         F(rows), F(inner), F(cols), F(k_chunk)};
#undef F
  } else if (std::strcmp(name, "GateParams") == 0) {
#define F(f) offsetof(GateParams, f)
    v = {sizeof(GateParams), F(x), F(out), F(g), F(elems), F(silu), F(tanh), F(sigmoid),
         F(nodes), F(din), F(dout), F(unused)};
#undef F
  } else if (std::strcmp(name, "PoolParams") == 0) {
#define F(f) offsetof(PoolParams, f)
    v = {sizeof(PoolParams), F(x), F(raw), F(gx), F(graph_ptr), F(graph_nodes), F(node_graph),
         F(graphs), F(nodes)};
#undef F
  } else if (std::strcmp(name, "OptimParams") == 0) {
#define F(f) offsetof(OptimParams, f)
    v = {sizeof(OptimParams), F(param), F(grad), F(m), F(v), F(partial), F(scale), F(copy), F(lr),
         F(beta1), F(beta2), F(eps), F(decay), F(c1), F(c2), F(max_norm), F(n), F(parts), F(unused)};
#undef F
  } else if (std::strcmp(name, "FctpPath") == 0) {
#define F(f) offsetof(FctpPath, f)
    v = {sizeof(FctpPath), F(x_off), F(nu), F(out_off), F(nw), F(d), F(w_off), F(mats_off), F(row_off)};
#undef F
  } else if (std::strcmp(name, "TpIns") == 0) {
#define F(f) offsetof(TpIns, f)
    v = {sizeof(TpIns), F(x_off), F(mul), F(d1), F(a_off), F(d3), F(w_off), F(mid_off), F(umid)};
#undef F
  }
  for (size_t i = 0; i < v.size() && i < capacity; ++i) out[i] = v[i];
  return v.size();
}
