// Fused linear + cross-entropy for the MLM head, in vocabulary chunks.
//   h [M, D]  rows at the masked positions (after dense → GELU → LayerNorm)
//   W [V, D]  the tied embedding; b [V] or null
//   targets int32 [M], entries equal to ignore_index skipped
// logits = h·Wᵀ + b are formed one chunk of C vocabulary rows at a time in an
// [M, C] scratch, so the [M, V] logits never exist. The forward keeps only the
// per-row log-sum-exp; the backward recomputes each chunk's logits.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct LinearCEParams {
  int64_t M = 0, D = 0, V = 0;
  int64_t chunk = 4096;              // vocabulary rows per chunk (>= 1)
  const T* h = nullptr;              // [M, D]
  const T* w = nullptr;              // [V, D]
  const T* b = nullptr;              // [V] or null
  const int32_t* targets = nullptr;  // [M], in [0, V) or ignore_index
  int32_t ignore_index = -100;
  T* lse = nullptr;                  // [M]: saved by forward (0 on ignored rows), read by backward
  int64_t count = 0;                 // rows not ignored (set by forward)
  double grad_scale = 0;             // backward: dloss / count
  T* dh = nullptr;                   // [M, D] or null; overwritten
  T* dw = nullptr;                   // [V, D] or null; overwritten
  T* db = nullptr;                   // [V] or null; overwritten
};

// Returns the summed loss over non-ignored rows (the caller divides by count).
template <typename T> double linear_ce_forward_cpu(LinearCEParams<T>& p);
template <typename T> void linear_ce_backward_cpu(const LinearCEParams<T>& p);

}  // namespace cloze
