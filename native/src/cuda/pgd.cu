// L2 PGD on the device: one block per example walks its rows, with the
// squared norms summed in fp64 through a fixed tree (no atomics), so a run
// repeats bit for bit. The random start draws the CPU's numbers (Philox lane
// i%4 of counter (step, i/4)); the sums differ from the CPU's only in order.
#include "../core/philox.h"
#include "../ops/pgd.h"
#include "common.cuh"
#include "reduce.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;
using cuda::reduce_detail::block_tree_sum;
using cuda::reduce_detail::kSumThreads;

template <typename T>
__global__ void random_start_kernel(T* out, const int32_t* starts, const int32_t* lengths, int64_t cols, double eps,
                                    uint64_t seed, uint64_t step, int64_t row_offset) {
  __shared__ double sh[kSumThreads];
  const int64_t off = static_cast<int64_t>(starts[blockIdx.x]) * cols;
  const int64_t n = static_cast<int64_t>(lengths[blockIdx.x]) * cols;
  T* o = out + off;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kSumThreads) {
    const int64_t flat = row_offset * cols + off + i;
    const Philox4 r = philox4x32(seed, step, static_cast<uint64_t>(flat / 4));
    st(o, i, 2.f * philox_uniform(r.v[flat % 4]) - 1.f);
    const double v = ld(o, i);  // the stored value, so the norm is that of what is kept
    acc += v * v;
  }
  const double norm = sqrt(block_tree_sum(acc, sh));
  if (norm == 0) return;
  const double s = eps / norm;
  for (int64_t i = threadIdx.x; i < n; i += kSumThreads) st(o, i, static_cast<float>(ld(o, i) * s));
}

template <typename T>
__global__ void step_kernel(const T* delta, const T* grad, T* out, const int32_t* starts, const int32_t* lengths,
                            int64_t cols, double alpha, double eps) {
  __shared__ double sh[kSumThreads];
  const int64_t off = static_cast<int64_t>(starts[blockIdx.x]) * cols;
  const int64_t n = static_cast<int64_t>(lengths[blockIdx.x]) * cols;
  const T* d = delta + off;
  const T* g = grad + off;
  T* o = out + off;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kSumThreads) {
    const double v = ld(g, i);
    acc += v * v;
  }
  const double gnorm = sqrt(block_tree_sum(acc, sh));
  __syncthreads();  // sh is reused by the second sum
  const double a = gnorm > 0 ? alpha / gnorm : 0.0;
  acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kSumThreads) {
    const double v = static_cast<double>(ld(d, i)) + a * static_cast<double>(ld(g, i));
    acc += v * v;
  }
  const double norm = sqrt(block_tree_sum(acc, sh));
  const double shrink = norm > eps ? eps / norm : 1.0;
  for (int64_t i = threadIdx.x; i < n; i += kSumThreads) {
    st(o, i, static_cast<float>((static_cast<double>(ld(d, i)) + a * static_cast<double>(ld(g, i))) * shrink));
  }
}

}  // namespace

template <typename T>
void pgd_random_start_cuda(const PgdParams<T>& p) {
  if (p.examples == 0) return;
  CLOZE_LAUNCH("pgdRandomStart", random_start_kernel<T>, static_cast<unsigned>(p.examples), kSumThreads, 0, p.out,
               p.starts, p.lengths, p.cols, p.eps, p.seed, p.step, p.row_offset);
}

template <typename T>
void pgd_step_cuda(const PgdParams<T>& p) {
  if (p.examples == 0) return;
  CLOZE_LAUNCH("pgdStep", step_kernel<T>, static_cast<unsigned>(p.examples), kSumThreads, 0, p.delta, p.grad, p.out,
               p.starts, p.lengths, p.cols, p.alpha, p.eps);
}

template void pgd_random_start_cuda<float>(const PgdParams<float>&);
template void pgd_random_start_cuda<bf16>(const PgdParams<bf16>&);
template void pgd_step_cuda<float>(const PgdParams<float>&);
template void pgd_step_cuda<bf16>(const PgdParams<bf16>&);

}  // namespace cloze
