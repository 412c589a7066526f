// GeGLU (MosaicBERT's feed-forward gate): x [R, 2I] → out [R, I] with
//   out[r, i] = GELU(x[r, i]) · x[r, I + i]      (exact erf GELU)
// Backward, with a = x[r, i], b = x[r, I + i], g = dout[r, i]:
//   dx[r, i] = g · b · GELU'(a),   dx[r, I + i] = g · GELU(a)
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct GegluParams {
  int64_t rows = 0, inner = 0;  // R, I
  const T* x = nullptr;         // [R, 2I]
  T* out = nullptr;             // [R, I] (forward)
  const T* dout = nullptr;      // [R, I] (backward)
  T* dx = nullptr;              // [R, 2I] (backward)
};
template <typename T> void geglu_forward_cpu(const GegluParams<T>& p);
template <typename T> void geglu_backward_cpu(const GegluParams<T>& p);
template <typename T> void geglu_forward_cuda(const GegluParams<T>& p);   // T = float or bf16
template <typename T> void geglu_backward_cuda(const GegluParams<T>& p);

}  // namespace cloze
