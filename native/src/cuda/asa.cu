// ASA on the device: the adversary's mask → attention bias (one block per
// query row, its kept count summed in fp64 through a fixed tree), its
// straight-through backward (one thread per pair), and the symmetric KL of
// two class distributions (the forward one block over the rows in a fixed
// order, so the bits repeat run to run; the backward one thread per row).
#include "../ops/asa.h"
#include "common.cuh"
#include "reduce.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;
using cuda::reduce_detail::block_tree_sum;
using cuda::reduce_detail::kSumThreads;

template <typename T>
__global__ void mask_forward_kernel(const T* scores, const uint8_t* kp, T* bias, T* kept, int64_t L, float value) {
  __shared__ double sh[kSumThreads];
  const int64_t row = blockIdx.x;
  const int64_t b = row / L, q = row % L;
  const uint8_t* kpb = kp ? kp + b * L : nullptr;
  const T* s = scores + row * L;
  T* o = bias + row * L;
  double n = 0;
  for (int64_t k = threadIdx.x; k < L; k += kSumThreads) {
    const bool m = !(kpb && kpb[k]) && ld(s, k) > 0.f;
    st(o, k, m ? 0.f : -value);
    n += m ? 1.0 : 0.0;
  }
  const double total = block_tree_sum(n, sh);
  if (threadIdx.x == 0) st(kept, row, (kpb && kpb[q]) ? 0.f : static_cast<float>(total));
}

template <typename T>
__global__ void mask_backward_kernel(const T* scores, const uint8_t* kp, const T* dbias, const T* dkept, T* dscores,
                                     int64_t B, int64_t L, float value) {
  CLOZE_GRID_STRIDE(i, B * L * L) {
    const int64_t row = i / L, k = i % L;
    const int64_t b = row / L, q = row % L;
    const uint8_t* kpb = kp ? kp + b * L : nullptr;
    if (kpb && kpb[k]) {
      st(dscores, i, 0.f);
      continue;
    }
    float g = dbias ? value * ld(dbias, i) : 0.f;
    if (dkept && !(kpb && kpb[q])) g += ld(dkept, row);
    const float sg = 1.f / (1.f + expf(-ld(scores, i)));
    st(dscores, i, sg * (1.f - sg) * g);
  }
}

// log-sum-exp of one row, in fp64.
template <typename T>
__device__ double row_lse(const T* x, int64_t C) {
  double m = -INFINITY;
  for (int64_t c = 0; c < C; c++) m = fmax(m, static_cast<double>(ld(x, c)));
  double s = 0;
  for (int64_t c = 0; c < C; c++) s += exp(static_cast<double>(ld(x, c)) - m);
  return m + log(s);
}

template <typename T>
__global__ void sym_kl_forward_kernel(const T* a, const T* b, T* loss, int64_t N, int64_t C) {
  __shared__ double sh[kSumThreads];
  double acc = 0;
  for (int64_t n = threadIdx.x; n < N; n += kSumThreads) {
    const T* ar = a + n * C;
    const T* br = b + n * C;
    const double za = row_lse(ar, C), zb = row_lse(br, C);
    for (int64_t c = 0; c < C; c++) {
      const double la = ld(ar, c) - za, lb = ld(br, c) - zb;
      acc += (exp(la) - exp(lb)) * (la - lb);
    }
  }
  const double total = block_tree_sum(acc, sh);
  if (threadIdx.x == 0) st(loss, 0, static_cast<float>(total / static_cast<double>(N)));
}

template <typename T>
__global__ void sym_kl_backward_kernel(const T* a, const T* b, const T* grad, T* da, T* db, int64_t N, int64_t C) {
  CLOZE_GRID_STRIDE(n, N) {
    const double g = static_cast<double>(ld(grad, 0)) / static_cast<double>(N);
    const T* ar = a + n * C;
    const T* br = b + n * C;
    const double za = row_lse(ar, C), zb = row_lse(br, C);
    double ep = 0, eq = 0;
    for (int64_t c = 0; c < C; c++) {
      const double la = ld(ar, c) - za, lb = ld(br, c) - zb;
      ep += exp(la) * (la - lb);
      eq += exp(lb) * (la - lb);
    }
    for (int64_t c = 0; c < C; c++) {
      const double la = ld(ar, c) - za, lb = ld(br, c) - zb;
      const double pc = exp(la), qc = exp(lb), d = la - lb;
      if (da) st(da, n * C + c, static_cast<float>(g * (pc * (d - ep) + pc - qc)));
      if (db) st(db, n * C + c, static_cast<float>(g * (qc * (eq - d) + qc - pc)));
    }
  }
}

}  // namespace

template <typename T>
void asa_mask_forward_cuda(const AsaMaskParams<T>& p) {
  if (p.B * p.L == 0) return;
  CLOZE_LAUNCH("asaMask", mask_forward_kernel<T>, static_cast<unsigned>(p.B * p.L), kSumThreads, 0, p.scores,
               p.key_padding, p.bias, p.kept, p.L, static_cast<float>(p.value));
}

template <typename T>
void asa_mask_backward_cuda(const AsaMaskParams<T>& p) {
  const int64_t n = p.B * p.L * p.L;
  if (n == 0) return;
  CLOZE_LAUNCH("asaMaskBackward", mask_backward_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.scores,
               p.key_padding, p.dbias, p.dkept, p.dscores, p.B, p.L, static_cast<float>(p.value));
}

template <typename T>
void sym_kl_forward_cuda(const SymKlParams<T>& p) {
  if (p.N == 0) return;
  CLOZE_LAUNCH("symKl", sym_kl_forward_kernel<T>, 1u, kSumThreads, 0, p.a, p.b, p.loss, p.N, p.C);
}

template <typename T>
void sym_kl_backward_cuda(const SymKlParams<T>& p) {
  if (p.N == 0) return;
  CLOZE_LAUNCH("symKlBackward", sym_kl_backward_kernel<T>, cuda::blocks_for(p.N), cuda::kThreads, 0, p.a, p.b, p.grad,
               p.da, p.db, p.N, p.C);
}

template void asa_mask_forward_cuda<float>(const AsaMaskParams<float>&);
template void asa_mask_forward_cuda<bf16>(const AsaMaskParams<bf16>&);
template void asa_mask_backward_cuda<float>(const AsaMaskParams<float>&);
template void asa_mask_backward_cuda<bf16>(const AsaMaskParams<bf16>&);
template void sym_kl_forward_cuda<float>(const SymKlParams<float>&);
template void sym_kl_forward_cuda<bf16>(const SymKlParams<bf16>&);
template void sym_kl_backward_cuda<float>(const SymKlParams<float>&);
template void sym_kl_backward_cuda<bf16>(const SymKlParams<bf16>&);

}  // namespace cloze
