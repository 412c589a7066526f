// BatchNorm and max-pooling on sparse rows (see sparse_rulebook.h).
//
// Batch norm, x [N, C]: the statistics are over the active rows only (SparK's
// gather → BatchNorm1d → scatter). Otherwise PyTorch's semantics: the biased
// variance normalises, the unbiased one (·N/(N−1)) enters the running update
// running = (1 − momentum)·running + momentum·batch. In eval the running
// statistics normalise (the batch ones when there are none). N = 0 writes
// nothing and leaves the running statistics alone. Reductions run over fixed
// row chunks in double and add the chunks in order: independent of the
// thread count.
//
// Max pool over a neighbour table, x [N, C], nbr [M, K2] → y [M, C]: the max
// over existing neighbours, 0 where an output has none. arg [M, C] keeps the
// offset of the first maximum (−1 for none); the gradient flows to it only.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct SparseBatchNormParams {
  int64_t N = 0, C = 0;
  double eps = 1e-5, momentum = 0.1;
  bool training = true;
  const T* x = nullptr;        // [N, C]
  const T* w = nullptr;        // [C] or null (1)
  const T* b = nullptr;        // [C] or null (0)
  T* running_mean = nullptr;   // [C] or null; updated in place when training
  T* running_var = nullptr;    // [C] or null
  T* y = nullptr;              // [N, C]
  T* mean = nullptr;           // [C]: the mean used (saved for backward)
  T* rstd = nullptr;           // [C]: 1/sqrt(var + eps) used
  const T* dy = nullptr;       // backward: [N, C]
  T* dx = nullptr;             // [N, C] or null
  T* dw = nullptr;             // [C] or null
  T* db = nullptr;             // [C] or null
};
template <typename T> void sparse_batchnorm_forward_cpu(const SparseBatchNormParams<T>& p);
// training: the statistics were the batch's, so dx includes their gradient.
template <typename T> void sparse_batchnorm_backward_cpu(const SparseBatchNormParams<T>& p);

template <typename T>
struct SparseMaxPoolParams {
  int64_t N = 0, M = 0, C = 0, K2 = 0;
  const T* x = nullptr;            // [N, C]
  const int32_t* nbr = nullptr;    // [M, K2]
  const int32_t* inv = nullptr;    // [N, K2] (backward)
  T* y = nullptr;                  // [M, C]
  int32_t* arg = nullptr;          // [M, C] (forward): offset of the first max, −1 for none
  const int32_t* arg_in = nullptr; // [M, C] (backward): the forward's arg
  const T* dy = nullptr;           // [M, C] (backward)
  T* dx = nullptr;                 // [N, C]
};
template <typename T> void sparse_maxpool_forward_cpu(const SparseMaxPoolParams<T>& p);
template <typename T> void sparse_maxpool_backward_cpu(const SparseMaxPoolParams<T>& p);

// CUDA (native/src/cuda/sparse_norm_pool.cu; T = float or bf16, device
// pointers). Batch-norm statistics are fp32 column sums in a fixed order
// (two passes, as on the CPU), kept in fp32 for the normalisation; mean and
// rstd are stored as T. Max pool as on the CPU (first maximum, NaN wins).
template <typename T> void sparse_batchnorm_forward_cuda(const SparseBatchNormParams<T>& p);
template <typename T> void sparse_batchnorm_backward_cuda(const SparseBatchNormParams<T>& p);
template <typename T> void sparse_maxpool_forward_cuda(const SparseMaxPoolParams<T>& p);
template <typename T> void sparse_maxpool_backward_cuda(const SparseMaxPoolParams<T>& p);

}  // namespace cloze
