// Embedding lookup (a row gather from a table) and its scatter-add backward.
#pragma once
#include <cstdint>

namespace cloze {

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
