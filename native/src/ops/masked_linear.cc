#include "masked_linear.h"

#include <algorithm>
#include <memory>

#include "../core/blas.h"
#include "../core/storage.h"
#include "../core/threadpool.h"
#include "linalg.h"

namespace cloze {

namespace {

// Large enough that a chunk's work outweighs handing it to a thread.
constexpr int64_t kGrain = 1 << 14;

template <typename T>
T* scratch(std::shared_ptr<Storage>& hold, int64_t n, const char* op) {
  hold = Storage::allocate(sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1)), op, false);
  return static_cast<T*>(hold->data());
}

// out = W where scores > τ, else 0. The comparison is made in double so the
// float and double kernels (and the CUDA one) keep the same weights for one τ.
template <typename T>
void apply_mask(const T* w, const T* s, double tau, int64_t n, T* out) {
  parallel_range(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) out[i] = static_cast<double>(s[i]) > tau ? w[i] : T(0);
  });
}

// out = W where the packed bit is set, else 0.
template <typename T>
void apply_bits(const T* w, const uint8_t* bits, int64_t n, T* out) {
  parallel_range(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) out[i] = (bits[i >> 3] >> (i & 7)) & 1 ? w[i] : T(0);
  });
}

}  // namespace

template <typename T>
void masked_linear_forward_cpu(const MaskedLinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  std::shared_ptr<Storage> hold;
  T* weff = scratch<T>(hold, N * K, "maskedLinear");
  if (p.bits)
    apply_bits(p.w, p.bits, N * K, weff);
  else
    apply_mask(p.w, p.scores, p.threshold, N * K, weff);
  GemmParams g = linalg::gemm_params(false, true, R, N, K, p.x, K, weff, K, p.y, N, 0.0);
  g.bias = p.bias;  // added by each block of the product (blas.h)
  gemm<T>(g);
}

template <typename T>
void masked_linear_backward_cpu(const MaskedLinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  if (p.dx) {
    std::shared_ptr<Storage> hold;
    T* weff = scratch<T>(hold, N * K, "maskedLinearBackward");
    apply_mask(p.w, p.scores, p.threshold, N * K, weff);
    gemm<T>(linalg::gemm_params(false, false, R, K, N, p.dy, N, weff, K, p.dx, K, 0.0));
  }
  if (p.dscores) {
    // dW_eff = dyᵀ·x lands in dscores itself, then one pass scales it by W:
    // no scratch at all for this gradient.
    gemm<T>(linalg::gemm_params(true, false, N, K, R, p.dy, N, p.x, K, p.dscores, K, 0.0));
    T* d = p.dscores;
    const T* w = p.w;
    parallel_range(N * K, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) d[i] *= w[i];
    });
  }
}

#define CLOZE_INST(T)                                                          \
  template void masked_linear_forward_cpu<T>(const MaskedLinearParams<T>&);   \
  template void masked_linear_backward_cpu<T>(const MaskedLinearParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
