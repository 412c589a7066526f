// Pieces the sparse-map kernels share (sparse_rulebook.cu, sparse_conv.cu,
// sparse_norm_pool.cu): a scratch buffer from the caching allocator, and a
// deterministic per-column sum over rows.
#pragma once
#include "common.cuh"

namespace cloze {
namespace cuda {

// Device scratch for one op call, returned to the stream's pool on scope exit
// (stream-ordered: a later kernel that reuses the block runs after ours).
struct Scratch {
  void* p = nullptr;
  Scratch(size_t bytes, const char* op) : p(alloc(bytes == 0 ? 1 : bytes, op)) {}
  ~Scratch() { free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename V>
  V* as() const { return static_cast<V*>(p); }
};

// Column sums out(c, Σ_r f(r, c)) for c < C over rows r < R, in fp32, with a
// summation order fixed by R and C only (same bits on every run and device):
// rows split into chunks of `chunk` rows (a function of R); in a block, 8 row
// lanes per column each sum every 8th row of the chunk, the lanes are added in
// lane order, and the chunk partials in chunk order. Threads of a warp read
// 32 neighbouring columns of one row: coalesced for row-major [R, C] data.
constexpr int kColTile = 32;
constexpr int kRowLanes = 8;

template <typename F>
__global__ void colsum_partial_kernel(F f, int64_t R, int64_t C, int64_t chunk, float* part) {
  __shared__ float sh[kRowLanes][kColTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r1 = r0 + chunk < R ? r0 + chunk : R;
  float acc = 0.f;
  if (c < C)
    for (int64_t r = r0 + ty; r < r1; r += kRowLanes) acc += f(r, c);
  sh[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < C) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kRowLanes; k++) s += sh[k][tx];
    part[static_cast<int64_t>(blockIdx.y) * C + c] = s;
  }
}

template <typename Out>
__global__ void colsum_final_kernel(const float* part, int64_t chunks, int64_t C, Out out) {
  CLOZE_GRID_STRIDE(c, C) {
    float s = 0.f;
    for (int64_t k = 0; k < chunks; k++) s += part[k * C + c];
    out(c, s);
  }
}

// R = 0 gives out(c, 0) for every c.
template <typename F, typename Out>
void column_sums(const F& f, int64_t R, int64_t C, const Out& out, const char* op) {
  if (C <= 0) return;
  // At most 1024 chunks (gridDim.y ≤ 65535), at least 256 rows each.
  int64_t chunk = (R + 1023) / 1024;
  if (chunk < 256) chunk = 256;
  int64_t chunks = (R + chunk - 1) / chunk;
  if (chunks < 1) chunks = 1;
  Scratch part(sizeof(float) * static_cast<size_t>(chunks * C), op);
  const int64_t tiles = (C + kColTile - 1) / kColTile;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks));
  const dim3 block(kColTile, kRowLanes);
  CLOZE_LAUNCH(op, colsum_partial_kernel<F>, grid, block, 0, f, R, C, chunk, part.as<float>());
  CLOZE_LAUNCH(op, colsum_final_kernel<Out>, blocks_for(C), kThreads, 0, part.as<float>(), chunks, C, out);
}

// out[c] = v, stored as T.
template <typename T>
struct StoreTo {
  T* out;
  __device__ void operator()(int64_t c, float v) const { st<T>(out, c, v); }
};

}  // namespace cuda
}  // namespace cloze
