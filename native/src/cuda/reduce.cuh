// A deterministic full sum into a device scalar: fp64 partial sums over a
// grid whose size depends on n alone, then one block adds the partials in a
// fixed tree. No atomics, so the same input gives the same bits run to run,
// and the result never visits the host.
#pragma once
#include "common.cuh"

namespace cloze {
namespace cuda {
namespace reduce_detail {

constexpr int kSumThreads = 256;  // a power of two: the tree below halves it
constexpr unsigned kMaxParts = 1024;

__device__ __forceinline__ double block_tree_sum(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kSumThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  return sh[0];
}

template <typename T>
__global__ void sum_partials_kernel(const T* a, int64_t n, double* part) {
  __shared__ double sh[kSumThreads];
  double acc = 0;
  CLOZE_GRID_STRIDE(i, n) acc += static_cast<double>(ld(a, i));
  const double s = block_tree_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

template <typename O>
__global__ void sum_final_kernel(const double* part, unsigned nparts, double divisor, O* out) {
  __shared__ double sh[kSumThreads];
  double acc = 0;
  for (unsigned i = threadIdx.x; i < nparts; i += kSumThreads) acc += part[i];
  const double s = block_tree_sum(acc, sh);
  if (threadIdx.x == 0) st(out, 0, static_cast<float>(s / divisor));
}

}  // namespace reduce_detail

// out[0] = (Σ_i a[i]) / divisor, stream-ordered. T, O: float or cloze::bf16.
template <typename T, typename O>
void sum_to_scalar(const T* a, int64_t n, double divisor, O* out, const char* op) {
  using namespace reduce_detail;
  unsigned parts = blocks_for(n, kSumThreads);
  if (parts > kMaxParts) parts = kMaxParts;
  double* part = static_cast<double*>(cuda::alloc(parts * sizeof(double), op));
  // The allocator is stream-ordered: freeing right after the launches is safe,
  // a later user of the block runs after these kernels on the same stream.
  try {
    CLOZE_LAUNCH(op, sum_partials_kernel<T>, parts, kSumThreads, 0, a, n, part);
    CLOZE_LAUNCH(op, sum_final_kernel<O>, 1, kSumThreads, 0, part, parts, divisor, out);
  } catch (...) {
    cuda::free(part);
    throw;
  }
  cuda::free(part);
}

}  // namespace cuda
}  // namespace cloze
