// Fused linear + cross-entropy for the MLM head, in vocabulary chunks.
//   h [M, D]  rows at the masked positions (after dense → GELU → LayerNorm)
//   W [V, D]  the tied embedding; b [V] or null
//   targets int32 [M], entries equal to ignore_index skipped
// logits = h·Wᵀ + b are formed one chunk of C vocabulary rows at a time in an
// [M, C] scratch, so the [M, V] logits never exist. The forward keeps only the
// per-row log-sum-exp; the backward recomputes each chunk's logits.
#pragma once
#include <cstdint>

#include "../core/blas.h"

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
  // cuda only. The saved lse is float32 whatever T is (a bfloat16 lse would
  // put a relative error of up to 2^-9·|lse| on every softmax value the
  // backward rebuilds), and the forward leaves the mean loss in a device
  // scalar instead of returning the sum, so it needs no host sync; `count`
  // is an input there (the binding counts the targets it validated).
  float* lse_f32 = nullptr;          // [M]
  T* loss = nullptr;                 // 0-d: sum over non-ignored rows / count (0 when count is 0)
};

// Returns the summed loss over non-ignored rows (the caller divides by count).
// The chunk's logits S [M, n] = h·W[c0 : c0+n]ᵀ (+ S, which holds the bias
// rows when there is a bias), row stride n: the GEMM both backends run.
template <typename T>
GemmParams chunk_logits_gemm(const LinearCEParams<T>& p, int64_t c0, int64_t n, T* S) {
  GemmParams g;
  g.trans_b = true;
  g.M = p.M;
  g.N = n;
  g.K = p.D;
  g.A = p.h;
  g.lda = p.D;
  g.B = p.w + c0 * p.D;
  g.ldb = p.D;
  g.C = S;
  g.ldc = n;
  g.beta = p.b ? 1.0 : 0.0;
  return g;
}

template <typename T> double linear_ce_forward_cpu(LinearCEParams<T>& p);
template <typename T> void linear_ce_backward_cpu(const LinearCEParams<T>& p);
// cuda (T = float or bf16): same chunking; every buffer is device memory.
template <typename T> void linear_ce_forward_cuda(LinearCEParams<T>& p);
template <typename T> void linear_ce_backward_cuda(const LinearCEParams<T>& p);

}  // namespace cloze
