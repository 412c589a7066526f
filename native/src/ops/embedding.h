// Embedding lookup (a row gather from a table) and its scatter-add backward.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct EmbeddingParams {
  int64_t V = 0, D = 0, N = 0;
  const T* table = nullptr;
  // [N]: validated in [0, V) before a CPU kernel runs; on cuda checked on the
  // device and reported later (cuda::check_indices_deferred), so the CUDA
  // kernels skip an id outside [0, V).
  const int32_t* ids = nullptr;
  T* out = nullptr;              // [N, D]
  const T* dout = nullptr;       // [N, D]
  T* dtable = nullptr;           // [V, D]: zero-filled by the caller; rows of absent ids stay zero
};
template <typename T> void embedding_forward_cpu(const EmbeddingParams<T>& p);
template <typename T> void embedding_backward_cpu(const EmbeddingParams<T>& p);
template <typename T> void embedding_forward_cuda(const EmbeddingParams<T>& p);
// Deterministic: the rows of each distinct id are summed per column in position order (no atomics); an id
// with more than 64 rows is summed in chunks whose partial sums are added in order. The plan is built on the
// device (a radix sort of the ids): no copy to the host, no wait.
template <typename T> void embedding_backward_cuda(const EmbeddingParams<T>& p);

}  // namespace cloze
