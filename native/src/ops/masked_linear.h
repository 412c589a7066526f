// Weight-mask tuning ("Masking as an Efficient Alternative to Finetuning"):
// y = x·(W ⊙ 1[scores > τ])ᵀ + b with W and b frozen and a straight-through
// backward, ∂x = dy·W_eff and ∂scores = (dyᵀ·x) ⊙ W. The masked weight W_eff
// is never kept between calls: the forward and ∂x each build it in one scratch
// buffer of W's size for the GEMM and free it on return, so the tape holds
// only x, W and scores. ∂scores needs no scratch: the GEMM writes dW_eff into
// the output, which one pass then scales by W in place.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct MaskedLinearParams {
  int64_t R = 0, K = 0, N = 0;  // x [R, K] (leading dims flattened), W and scores [N, K]
  const T* x = nullptr;
  const T* w = nullptr;
  const T* scores = nullptr;
  // Serving a task (forward only): instead of scores, packed bits, weight i
  // of W's row-major order kept iff bits[i >> 3] >> (i & 7) & 1, so a task
  // costs one bit per weight next to the shared frozen W.
  const uint8_t* bits = nullptr;
  const T* bias = nullptr;      // [N] or null
  double threshold = 0;         // τ: the weight at (n, k) is kept iff scores[n, k] > τ
  T* y = nullptr;               // forward [R, N]
  const T* dy = nullptr;        // backward [R, N]
  T* dx = nullptr;              // backward [R, K], null when not needed
  T* dscores = nullptr;         // backward [N, K], null when not needed
};

// The CPU (T = float or double): the mask pass on the thread pool, the GEMMs
// through core/blas.h.
template <typename T> void masked_linear_forward_cpu(const MaskedLinearParams<T>& p);
template <typename T> void masked_linear_backward_cpu(const MaskedLinearParams<T>& p);

// CUDA (T = float or bf16): the GEMMs through cuBLASLt (gemm_cuda), the
// scratch from the stream-ordered caching allocator.
template <typename T> void masked_linear_forward_cuda(const MaskedLinearParams<T>& p);
template <typename T> void masked_linear_backward_cuda(const MaskedLinearParams<T>& p);

}  // namespace cloze
