// Geometry shared by the row-wise kernels (LayerNorm, softmax, cross-entropy,
// argmax): a warp per row up to 1024 columns (8 rows per 256-thread block), a
// 256-thread block per row beyond. Each thread walks its columns in a fixed
// stride and the tree reductions have a fixed shape, so a row's result
// depends on its width alone, never on timing.
#pragma once
#include "common.cuh"

namespace cloze {
namespace cuda {

constexpr int kRowBlock = 256;

template <int G>
struct RowGroup {
  static_assert(G == 32 || G == kRowBlock, "a row is handled by a warp or by a whole block");
  static constexpr int kSize = G;
  static constexpr int kRowsPerBlock = kRowBlock / G;

  // The row this thread works on. With a warp per row, all 32 lanes of a warp
  // share it, so a warp past the last row can return as a whole; with a block
  // per row the grid has exactly one block per row.
  __device__ static int64_t row() { return static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / G; }
  __device__ static int lane() { return static_cast<int>(threadIdx.x % G); }
  // scratch: 32 floats of shared memory (untouched with a warp per row). Every
  // thread of the group must call these, and gets the result.
  __device__ static float sum(float v, float* scratch) {
    if constexpr (G == 32) {
      (void)scratch;
      return warp_sum(v);
    } else {
      return block_sum(v, scratch);
    }
  }
  __device__ static float max(float v, float* scratch) {
    if constexpr (G == 32) {
      (void)scratch;
      return warp_max(v);
    } else {
      return block_max(v, scratch);
    }
  }
  static unsigned grid(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }
};

// Calls f(RowGroup<G>{}) with the group size for rows of `cols` columns.
template <typename F>
void by_row_width(int64_t cols, F&& f) {
  if (cols <= 1024)
    f(RowGroup<32>{});
  else
    f(RowGroup<kRowBlock>{});
}

}  // namespace cuda
}  // namespace cloze
