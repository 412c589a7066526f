// Optimizer kernels over flat fp32 buffers: one fused AdamW pass, the
// squared norm used by global gradient clipping, and the EMA update.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct AdamWParams {
  int64_t n = 0;
  T* param = nullptr;
  const T* grad = nullptr;
  T* m = nullptr;
  T* v = nullptr;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;          // 1-based, for bias correction
  double grad_scale = 1.0;   // multiplies grad first (clipping folded in)
};
// Decoupled decay (Loshchilov & Hutter): p -= lr·(wd·p + m̂/(√v̂ + eps)).
template <typename T> void adamw_step_cpu(const AdamWParams<T>& p);
template <typename T> double sum_squares_cpu(int64_t n, const T* x);
// In-place exponential moving average (an EMA teacher's weights):
// dst ← decay·dst + (1 − decay)·src. Written in this form, not as a lerp, so that
// decay 1 keeps dst and decay 0 copies src exactly.
template <typename T> void ema_update_cpu(int64_t n, T* dst, const T* src, double decay);

}  // namespace cloze
