// LayerNorm over the last dim: rows are the flattened leading dims, cols the
// last dim. Mean and rstd are saved for the backward, as stat_t<T> (float32
// when T is bfloat16, see core/dtype.h).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace cloze {

template <typename T>
struct LayerNormParams {
  int64_t rows = 0, cols = 0;
  double eps = 1e-5;
  const T* x = nullptr;
  const T* w = nullptr;  // [cols] or null
  const T* b = nullptr;  // [cols] or null
  T* y = nullptr;
  stat_t<T>* mean = nullptr;  // [rows], saved
  stat_t<T>* rstd = nullptr;  // [rows], saved
  const T* dy = nullptr;
  T* dx = nullptr;
  T* dw = nullptr;
  T* db = nullptr;
};
template <typename T> void layernorm_forward_cpu(const LayerNormParams<T>& p);
template <typename T> void layernorm_backward_cpu(const LayerNormParams<T>& p);
template <typename T> void layernorm_forward_cuda(const LayerNormParams<T>& p);
template <typename T> void layernorm_backward_cuda(const LayerNormParams<T>& p);  // dw/db in a fixed order

}  // namespace cloze
