// MVP's label-word scoring (model tuning via prompts): the MLM logits of a few
// verbalizer words at the [MASK] rows, and their pooling into class scores.
//
// labelWordLogits: out [M, K] = h [M, D] · w[words]ᵀ + b[words], with w [V, D]
// the tied decoder and words int32 [K] in [0, V). Only the K word rows of w
// are read, so the [M, V] logits never exist: the K rows are gathered into a
// [K, D] scratch and one GEMM forms the product. The backward writes dh, and
// dw / db only at the word rows (the caller zero-fills them); a word listed
// twice gets the sum of its columns' gradients, in increasing k order.
//
// verbalizerPool: out [B, C] from scores [B, T, K] (T templates, K words) and
// class_of int32 [K] in [0, C), every class with at least one word:
// out[b, c] = (1/T)·Σ_t max_{k: class_of[k] = c} scores[b, t, k]. The max picks
// the first of equal values, and a NaN wins (the first NaN), so a NaN score
// reaches the loss instead of being hidden. The backward routes dout[b, c]/T
// to the word each max picked and 0 elsewhere; it recomputes the picks from
// the scores (B·T·K compares) instead of saving an index tensor.
#pragma once
#include <cstdint>

#include "../core/host_device.h"  // pool_takes runs on the host and in the cuda kernels

namespace cloze {

template <typename T>
struct LabelWordParams {
  int64_t M = 0, D = 0, V = 0, K = 0;
  const T* h = nullptr;              // [M, D]
  const T* w = nullptr;              // [V, D]
  const T* b = nullptr;              // [V] or null (forward)
  const int32_t* words = nullptr;    // [K], validated in [0, V)
  T* out = nullptr;                  // forward: [M, K]
  const T* dout = nullptr;           // backward: [M, K]
  T* dh = nullptr;                   // [M, D] or null; overwritten
  T* dw = nullptr;                   // [V, D] or null; zero-filled by the caller, word rows written
  T* db = nullptr;                   // [V] or null; zero-filled by the caller, word entries written
};

template <typename T>
struct VerbalizerPoolParams {
  int64_t B = 0, T_ = 0, K = 0, C = 0;  // T_: templates (T is the element type)
  const T* scores = nullptr;            // [B, T_, K]
  const int32_t* class_of = nullptr;    // [K], validated in [0, C), every class present
  T* out = nullptr;                     // forward: [B, C]
  const T* dout = nullptr;              // backward: [B, C]
  T* dscores = nullptr;                 // backward: [B, T_, K]; every element written
};

template <typename T> void label_word_logits_forward_cpu(const LabelWordParams<T>& p);
template <typename T> void label_word_logits_backward_cpu(const LabelWordParams<T>& p);
template <typename T> void verbalizer_pool_forward_cpu(const VerbalizerPoolParams<T>& p);
template <typename T> void verbalizer_pool_backward_cpu(const VerbalizerPoolParams<T>& p);
// cuda (T = float or bf16; device pointers): the same results, fp32
// arithmetic, deterministic (no atomics; repeated words summed in k order).
template <typename T> void label_word_logits_forward_cuda(const LabelWordParams<T>& p);
template <typename T> void label_word_logits_backward_cuda(const LabelWordParams<T>& p);
template <typename T> void verbalizer_pool_forward_cuda(const VerbalizerPoolParams<T>& p);
template <typename T> void verbalizer_pool_backward_cuda(const VerbalizerPoolParams<T>& p);

// The pick rule both backends use: x replaces the running best when it is
// larger, or when it is the first NaN (so NaN propagates, as torch.max does).
template <typename F>
CLOZE_HD inline bool pool_takes(F x, F best) {
  return x > best || (x != x && best == best);
}

}  // namespace cloze
