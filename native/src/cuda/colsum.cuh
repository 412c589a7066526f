// Column sums over rows (bias and LayerNorm parameter gradients) in a fixed
// order: row chunks whose size depends on the row count alone, each summed by
// a 32-column × 8-row block into a float32 partial, then the partials added in
// chunk order. No atomics, so results are identical run to run.
#pragma once
#include "common.cuh"

namespace cloze {
namespace cuda {
namespace colsum_detail {

constexpr int kCols = 32, kRowLanes = 8;
constexpr int64_t kMaxChunks = 256, kMinChunkRows = 64;

// F: a functor with `__device__ void operator()(int64_t r, int64_t c, float* acc) const`
// adding row r's terms for column c to acc[0..K).
template <int K, typename F>
__global__ void partials_kernel(int64_t R, int64_t C, int64_t chunk_rows, F f, float* part) {
  __shared__ float sh[K][kRowLanes][kCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < R ? r0 + chunk_rows : R;
  float acc[K];
#pragma unroll
  for (int k = 0; k < K; k++) acc[k] = 0.f;
  if (c < C)
    for (int64_t r = r0 + ty; r < r1; r += kRowLanes) f(r, c, acc);
#pragma unroll
  for (int k = 0; k < K; k++) sh[k][ty][tx] = acc[k];
  __syncthreads();
  if (ty == 0 && c < C) {
#pragma unroll
    for (int k = 0; k < K; k++) {
      float s = 0.f;
      for (int j = 0; j < kRowLanes; j++) s += sh[k][j][tx];
      part[(static_cast<int64_t>(k) * gridDim.y + blockIdx.y) * C + c] = s;
    }
  }
}

template <int K, typename O>
__global__ void final_kernel(const float* part, int64_t chunks, int64_t C, O* out0, O* out1) {
  CLOZE_GRID_STRIDE(c, C) {
#pragma unroll
    for (int k = 0; k < K; k++) {
      O* out = k == 0 ? out0 : out1;
      if (!out) continue;
      float s = 0.f;
      for (int64_t y = 0; y < chunks; y++) s += part[(k * chunks + y) * C + c];
      st(out, c, s);
    }
  }
}

}  // namespace colsum_detail

// out_k[c] = Σ_r term_k(r, c) for k < K (K = 1 or 2; a null out_k is skipped).
// R ≥ 0, C ≥ 1. Stream-ordered.
template <int K, typename O, typename F>
void column_sums(int64_t R, int64_t C, const F& f, O* out0, O* out1, const char* op) {
  using namespace colsum_detail;
  static_assert(K == 1 || K == 2, "one or two sums per column");
  int64_t chunk_rows = (R + kMaxChunks - 1) / kMaxChunks;
  if (chunk_rows < kMinChunkRows) chunk_rows = kMinChunkRows;
  int64_t chunks = (R + chunk_rows - 1) / chunk_rows;
  if (chunks < 1) chunks = 1;  // R = 0: one empty chunk writes the zeros
  float* part = static_cast<float*>(cuda::alloc(static_cast<size_t>(K * chunks * C) * sizeof(float), op));
  try {
    const dim3 grid(static_cast<unsigned>((C + kCols - 1) / kCols), static_cast<unsigned>(chunks));
    const dim3 block(kCols, kRowLanes);
    CLOZE_LAUNCH(op, (partials_kernel<K, F>), grid, block, 0, R, C, chunk_rows, f, part);
    CLOZE_LAUNCH(op, (final_kernel<K, O>), blocks_for(C), kThreads, 0, part, chunks, C, out0, out1);
  } catch (...) {
    cuda::free(part);
    throw;
  }
  cuda::free(part);  // stream-ordered allocator: reuse comes after these kernels
}

}  // namespace cuda
}  // namespace cloze
