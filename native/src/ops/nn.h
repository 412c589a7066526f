// Row-wise neural-network ops: dropout, LayerNorm, softmax, cross-entropy and
// embedding. Rows are the flattened leading dims, cols the last dim.
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace cloze {

// Saved statistics (LayerNorm mean/rstd, cross-entropy lse) are float32 when
// the compute type is bfloat16: bf16's 8-bit mantissa would put a ~0.4% error
// on rstd and on every softmax the backward rebuilds from lse.
template <typename T> struct StatType { using type = T; };
template <> struct StatType<bf16> { using type = float; };
template <typename T> using stat_t = typename StatType<T>::type;

template <typename T>
struct DropoutParams {
  int64_t n = 0;
  double p = 0;            // drop probability
  uint64_t seed = 0, step = 0;
  const T* x = nullptr;    // forward input, or the upstream gradient in backward
  T* out = nullptr;
};
// Same function for forward and backward: out = x·keep/(1−p), keep from Philox(seed, step, i).
template <typename T> void dropout_apply_cpu(const DropoutParams<T>& p);
template <typename T> void dropout_apply_cuda(const DropoutParams<T>& p);  // the CPU's mask, bit for bit

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

template <typename T>
struct EmbeddingParams {
  int64_t V = 0, D = 0, N = 0;
  const T* table = nullptr;
  const int32_t* ids = nullptr;  // [N], validated in [0, V)
  T* out = nullptr;              // [N, D]
  const T* dout = nullptr;       // [N, D]
  T* dtable = nullptr;           // [V, D], accumulated into
  const int32_t* ids_host = nullptr;  // CUDA backward: the same ids on the host, to plan an atomic-free scatter
};
template <typename T> void embedding_forward_cpu(const EmbeddingParams<T>& p);
template <typename T> void embedding_backward_cpu(const EmbeddingParams<T>& p);
template <typename T> void embedding_forward_cuda(const EmbeddingParams<T>& p);
// Deterministic: the rows of each distinct id are summed per column in position order (no atomics).
template <typename T> void embedding_backward_cuda(const EmbeddingParams<T>& p);

}  // namespace cloze
