// Cross-entropy over the rows of a logits matrix (optionally a selected
// subset of them), and argmax over rows for accuracy. The forward saves each
// row's lse as stat_t<T> (float32 when T is bfloat16, see core/dtype.h).
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace cloze {

template <typename T>
struct CrossEntropyParams {
  int64_t N = 0, V = 0;              // logits [N, V]
  int64_t M = 0;                     // selected rows
  const T* logits = nullptr;
  const int32_t* targets = nullptr;  // [M]
  const int32_t* rows = nullptr;     // [M] indices into N, or null: row m = m (M == N)
  int32_t ignore_index = -100;
  stat_t<T>* lse = nullptr;          // [M], saved
  int64_t count = 0;                 // rows not ignored (set by the CPU forward; an input on CUDA)
  T* loss = nullptr;                 // CUDA forward: 0-d, receives total/count (0 when count is 0)
  double grad_scale = 0;             // backward: dloss / count
  const T* grad_loss = nullptr;      // cuda backward: 0-d dloss on the device; with it, dloss / count is formed there
  T* dlogits = nullptr;              // [N, V], zero outside the selected rows
};
// Returns the summed loss over non-ignored rows (caller divides by count).
template <typename T> double cross_entropy_forward_cpu(CrossEntropyParams<T>& p);
template <typename T> void cross_entropy_backward_cpu(const CrossEntropyParams<T>& p);
// CUDA: the binding counts the non-ignored targets on the host (it has them
// there from validation), so the loss total never leaves the device.
template <typename T> void cross_entropy_forward_cuda(const CrossEntropyParams<T>& p);
template <typename T> void cross_entropy_backward_cuda(const CrossEntropyParams<T>& p);

// Index of the largest value of each row of x [rows, cols] (the first on ties).
// Not differentiable: it serves evaluation (accuracy), not the tape.
template <typename T> void argmax_rows_cpu(int64_t rows, int64_t cols, const T* x, int32_t* out);
template <typename T> void argmax_rows_cuda(int64_t rows, int64_t cols, const T* x, int32_t* out);

}  // namespace cloze
