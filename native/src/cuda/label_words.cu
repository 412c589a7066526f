// MVP's label-word scoring on cuda (ops/label_words.h). labelWordLogits
// gathers the K word rows of the decoder into a [K, D] temporary and runs the
// products through cuBLASLt, as the CPU runs them through its GEMM; the word
// rows of dw / db are written by one thread per (word, column) that sums every
// occurrence of its word in increasing k, so repeated words need no atomics.
// verbalizerPool is a few compares per output: one thread per (b, c) forward,
// one per (b, t, k) backward.
#include <algorithm>

#include "../core/blas.h"
#include "../ops/label_words.h"
#include "../ops/linalg.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {
namespace cuda {
namespace {

// wk [K, D] = w[words[k]] rows.
template <typename T>
__global__ void gather_rows_kernel(const T* w, const int32_t* words, int64_t K, int64_t D, T* wk) {
  CLOZE_GRID_STRIDE(i, K * D) {
    const int64_t k = i / D, c = i - k * D;
    st(wk, i, ld(w, static_cast<int64_t>(words[k]) * D + c));  // exact for float and bf16
  }
}

// out [M, K] = b[words[k]] in every row (the GEMM then adds h·wkᵀ with beta = 1).
template <typename T>
__global__ void word_bias_rows_kernel(const T* b, const int32_t* words, int64_t M, int64_t K, T* out) {
  CLOZE_GRID_STRIDE(i, M * K) st(out, i, ld(b, static_cast<int64_t>(words[i % K])));
}

// dst[words[k]·width + c] = Σ_{k' : words[k'] = words[k]} src[k'·width + c], in
// increasing k', written by the thread of the word's first occurrence only
// (K is a few dozen, so the O(K) scans cost nothing). dst's other rows keep
// the caller's zeros.
template <typename T>
__global__ void scatter_rows_kernel(const int32_t* words, int64_t K, int64_t width, const T* src, T* dst) {
  CLOZE_GRID_STRIDE(i, K * width) {
    const int64_t k = i / width, c = i - k * width;
    const int32_t wd = words[k];
    bool first = true;
    for (int64_t j = 0; j < k && first; j++) first = words[j] != wd;
    if (!first) continue;
    float s = 0.f;
    for (int64_t j = k; j < K; j++)
      if (words[j] == wd) s += ld(src, j * width + c);
    st(dst, static_cast<int64_t>(wd) * width + c, s);
  }
}

// out[b, c] = (1/T)·Σ_t max over the class's words, t in order, fp32.
template <typename T>
__global__ void pool_forward_kernel(const T* scores, const int32_t* class_of, int64_t B, int64_t Tn, int64_t K,
                                    int64_t C, T* out) {
  CLOZE_GRID_STRIDE(i, B * C) {
    const int64_t b = i / C, c = i - b * C;
    float acc = 0.f;
    for (int64_t t = 0; t < Tn; t++) {
      const int64_t base = (b * Tn + t) * K;
      int64_t arg = -1;
      float best = 0.f;
      for (int64_t k = 0; k < K; k++) {
        if (class_of[k] != c) continue;
        const float x = ld(scores, base + k);
        if (arg < 0 || pool_takes(x, best)) {
          arg = k;
          best = x;
        }
      }
      acc += best;
    }
    st(out, i, acc / static_cast<float>(Tn));
  }
}

// dscores[b, t, k] = dout[b, c]/T when k is the pick of its class c at (b, t), else 0.
template <typename T>
__global__ void pool_backward_kernel(const T* scores, const int32_t* class_of, const T* dout, int64_t B, int64_t Tn,
                                     int64_t K, int64_t C, T* dscores) {
  CLOZE_GRID_STRIDE(i, B * Tn * K) {
    const int64_t r = i / K, k = i - r * K;
    const int64_t b = r / Tn;
    const int32_t c = class_of[k];
    const int64_t base = r * K;
    int64_t arg = -1;
    float best = 0.f;
    for (int64_t j = 0; j < K; j++) {
      if (class_of[j] != c) continue;
      const float x = ld(scores, base + j);
      if (arg < 0 || pool_takes(x, best)) {
        arg = j;
        best = x;
      }
    }
    st(dscores, i, arg == k ? ld(dout, b * C + c) / static_cast<float>(Tn) : 0.f);
  }
}

}  // namespace
}  // namespace cuda

template <typename T>
void label_word_logits_forward_cuda(const LabelWordParams<T>& p) {
  using namespace cuda;
  const char* op = "labelWordLogits";
  const int64_t M = p.M, D = p.D, K = p.K;
  if (M == 0) return;
  DeviceTemp wk(sizeof(T) * static_cast<size_t>(K * D), op);
  CLOZE_LAUNCH(op, gather_rows_kernel<T>, blocks_for(K * D), kThreads, 0, p.w, p.words, K, D, wk.as<T>());
  if (p.b) CLOZE_LAUNCH(op, word_bias_rows_kernel<T>, blocks_for(M * K), kThreads, 0, p.b, p.words, M, K, p.out);
  gemm_cuda<T>(linalg::gemm_params(false, true, M, K, D, p.h, D, wk.as<T>(), D, p.out, K, p.b ? 1.0 : 0.0));
}

template <typename T>
void label_word_logits_backward_cuda(const LabelWordParams<T>& p) {
  using namespace cuda;
  const char* op = "labelWordLogitsBackward";
  const int64_t M = p.M, D = p.D, K = p.K;
  if (M == 0) return;  // dh is empty; dw and db keep the binding's zeros
  if (p.dh) {  // dh [M, D] = dout [M, K] · wk [K, D]
    DeviceTemp wk(sizeof(T) * static_cast<size_t>(K * D), op);
    CLOZE_LAUNCH(op, gather_rows_kernel<T>, blocks_for(K * D), kThreads, 0, p.w, p.words, K, D, wk.as<T>());
    gemm_cuda<T>(linalg::gemm_params(false, false, M, D, K, p.dout, K, wk.as<T>(), D, p.dh, D, 0.0));
  }
  if (p.dw) {  // dwk [K, D] = doutᵀ · h, then into the word rows of dw
    DeviceTemp dwk(sizeof(T) * static_cast<size_t>(K * D), op);
    gemm_cuda<T>(linalg::gemm_params(true, false, K, D, M, p.dout, K, p.h, D, dwk.as<T>(), D, 0.0));
    CLOZE_LAUNCH(op, scatter_rows_kernel<T>, blocks_for(K * D), kThreads, 0, p.words, K, D, dwk.as<const T>(), p.dw);
  }
  if (p.db) {  // dbk [K] = column sums of dout (fixed order), then into db at the words
    DeviceTemp dbk(sizeof(T) * static_cast<size_t>(K), op);
    colsum_cuda<T>(p.dout, M, K, dbk.as<T>(), op);
    CLOZE_LAUNCH(op, scatter_rows_kernel<T>, blocks_for(K), kThreads, 0, p.words, K, int64_t(1), dbk.as<const T>(), p.db);
  }
}

template <typename T>
void verbalizer_pool_forward_cuda(const VerbalizerPoolParams<T>& p) {
  using namespace cuda;
  if (p.B == 0) return;
  CLOZE_LAUNCH("verbalizerPool", pool_forward_kernel<T>, blocks_for(p.B * p.C), kThreads, 0, p.scores, p.class_of, p.B,
               p.T_, p.K, p.C, p.out);
}

template <typename T>
void verbalizer_pool_backward_cuda(const VerbalizerPoolParams<T>& p) {
  using namespace cuda;
  if (p.B == 0) return;
  CLOZE_LAUNCH("verbalizerPoolBackward", pool_backward_kernel<T>, blocks_for(p.B * p.T_ * p.K), kThreads, 0, p.scores,
               p.class_of, p.dout, p.B, p.T_, p.K, p.C, p.dscores);
}

#define CLOZE_INST(T)                                                                    \
  template void label_word_logits_forward_cuda<T>(const LabelWordParams<T>&);           \
  template void label_word_logits_backward_cuda<T>(const LabelWordParams<T>&);          \
  template void verbalizer_pool_forward_cuda<T>(const VerbalizerPoolParams<T>&);        \
  template void verbalizer_pool_backward_cuda<T>(const VerbalizerPoolParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
