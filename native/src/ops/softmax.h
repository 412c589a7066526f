// Softmax over the last dim: rows are the flattened leading dims, cols the
// last dim.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct SoftmaxParams {
  int64_t rows = 0, cols = 0;
  const T* x = nullptr;
  T* y = nullptr;
  const T* dy = nullptr;
  T* dx = nullptr;
};
template <typename T> void softmax_forward_cpu(const SoftmaxParams<T>& p);
template <typename T> void softmax_backward_cpu(const SoftmaxParams<T>& p);  // needs y
template <typename T> void softmax_forward_cuda(const SoftmaxParams<T>& p);
template <typename T> void softmax_backward_cuda(const SoftmaxParams<T>& p);

}  // namespace cloze
