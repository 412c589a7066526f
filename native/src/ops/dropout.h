// Dropout: one function for forward and backward, the keep mask drawn from
// Philox(seed, step, i) so that the backward (the same call on the gradient)
// and the CUDA kernel reproduce it exactly.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct DropoutParams {
  int64_t n = 0;
  double p = 0;            // drop probability
  uint64_t seed = 0, step = 0;
  // Element i draws as element offset + i of a larger tensor would: a data-parallel rank holding rows
  // [r·b, …) of the global batch passes r·b·(row size) and gets that slice of the global mask.
  uint64_t offset = 0;
  const T* x = nullptr;    // forward input, or the upstream gradient in backward
  T* out = nullptr;
  // Optional (dropoutAdd, forward only): out = residual + dropout(x), the dropped value rounded to T first, so
  // that out is add(residual, dropout(x)) bit for bit, in one pass instead of two.
  const T* residual = nullptr;
};
// Same function for forward and backward: out = x·keep/(1−p), keep from Philox(seed, step, offset + i)
// (plus residual, when given).
template <typename T> void dropout_apply_cpu(const DropoutParams<T>& p);
template <typename T> void dropout_apply_cuda(const DropoutParams<T>& p);  // the CPU's mask, bit for bit

}  // namespace cloze
