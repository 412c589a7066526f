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
#include "../core/philox.h"

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
  const T* grad_loss = nullptr;      // cuda backward: 0-d dloss on the device; with it, dloss / count is formed there
  T* dh = nullptr;                   // [M, D] or null; overwritten, or added into when acc_dh
  T* dw = nullptr;                   // [V, D] or null; overwritten, or added into when acc_dw
  T* db = nullptr;                   // [V] or null; overwritten, or added into when acc_db
  // Add the gradient into what dh / dw / db already hold (a parameter's flat
  // optimizer gradient buffer, which for the tied decoder may already hold the
  // embedding's own gradient) instead of overwriting: dW then goes straight
  // from each chunk's GEMM (beta = 1) into the buffer, and no [V, D] tensor is
  // allocated, filled and added.
  bool acc_dh = false, acc_dw = false, acc_db = false;
  // cuda only. The saved lse is float32 whatever T is (a bfloat16 lse would
  // put a relative error of up to 2^-9·|lse| on every softmax value the
  // backward rebuilds), and the forward leaves the mean loss in a device
  // scalar instead of returning the sum, so it needs no host sync; `count`
  // is an input there (the binding counts the targets it validated).
  float* lse_f32 = nullptr;          // [M]
  T* loss = nullptr;                 // 0-d: sum over non-ignored rows / count (0 when count is 0)
};

// Returns the summed loss over non-ignored rows (the caller divides by count).
// The chunk's logits S [M, n] = h·W[c0 : c0+n]ᵀ + b[c0 : c0+n] (GemmParams::bias),
// row stride n: the GEMM both backends run (the CPU cross-entropy drops the
// bias and adds it in its row passes; cuda hands it to cuBLASLt's epilogue).
// P is LinearCEParams<T> or LinearSampleParams<T> (both carry M, D, h, w, b).
template <typename P, typename T>
GemmParams chunk_logits_gemm(const P& p, int64_t c0, int64_t n, T* S) {
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
  g.bias = p.b ? p.b + c0 : nullptr;  // added by the product's blocks (blas.h)
  return g;
}

// Fused sampling from softmax(h·Wᵀ + b) / temperature, one id per row, in the
// same vocabulary chunks (ELECTRA's generator): Gumbel-max, argmax_j of
// logit_j / temperature + G_j with G_j = −log(−log U_j), so the [M, V] logits
// are never stored. U_j is a Philox draw that is a pure function of
// (seed, step, row m, column j): key seed, counter (step, m·2^32 + j/4), word
// j mod 4, 24 bits, offset by half a unit so that U is in (0, 1). Ties keep
// the lower id. Forward only: a sample has no gradient.
template <typename T>
struct LinearSampleParams {
  int64_t M = 0, D = 0, V = 0;
  int64_t chunk = 4096;      // vocabulary rows per chunk (>= 1)
  const T* h = nullptr;      // [M, D]
  const T* w = nullptr;      // [V, D]
  const T* b = nullptr;      // [V] or null
  double temperature = 1.0;  // > 0
  uint64_t seed = 0;
  uint64_t step = 0;
  int64_t row_offset = 0;    // row m draws as row m + row_offset (a data-parallel rank's place in the global rows)
  int32_t* out = nullptr;    // [M] sampled ids
};

// The uniform in (0, 1) of row m, column j (shared by the CPU and CUDA kernels).
CLOZE_HD inline float linear_sample_uniform(uint64_t seed, uint64_t step, int64_t m, int64_t j) {
  const Philox4 r = philox4x32(seed, step, (static_cast<uint64_t>(m) << 32) | static_cast<uint64_t>(j >> 2));
  return (static_cast<float>(r.v[j & 3] >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

template <typename T> double linear_ce_forward_cpu(LinearCEParams<T>& p);
template <typename T> void linear_ce_backward_cpu(const LinearCEParams<T>& p);
// cuda (T = float or bf16): same chunking; every buffer is device memory.
template <typename T> void linear_ce_forward_cuda(LinearCEParams<T>& p);
template <typename T> void linear_ce_backward_cuda(const LinearCEParams<T>& p);
template <typename T> void linear_sample_cpu(const LinearSampleParams<T>& p);
template <typename T> void linear_sample_cuda(const LinearSampleParams<T>& p);

}  // namespace cloze
