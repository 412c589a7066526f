// Optimizer kernels over flat fp32 buffers: one fused AdamW pass, the
// squared norm used by global gradient clipping, and the EMA update.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/host_device.h"

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
  // cuda mixed precision (T = bf16): the optimizer updates `master`, the
  // float32 weights, with float32 moments m32 / v32 (m and v are unused), and
  // writes param = bf16(master). grad is T, or float32 through grad32 when set.
  float* master = nullptr;
  float* m32 = nullptr;
  float* v32 = nullptr;
  const float* grad32 = nullptr;
  // Clipping and the step guard read on the device (cuda) or in place (cpu), so that the host never waits
  // for the norm: with clip_norm set, grad is first scaled by max_norm / (‖g‖ + 1e-6) when ‖g‖ = *clip_norm
  // exceeds max_norm (computed in double, as the host's clipGradNorm does); and the whole update is skipped,
  // leaving param, m and v untouched, when *clip_norm or any *guards[k] is not finite (a NaN loss or gradient).
  const float* clip_norm = nullptr;
  double max_norm = 0.0;
  static constexpr int kMaxGuards = 8;
  const float* guards[kMaxGuards] = {};
  int nguards = 0;
};
// The gradient scale and whether to update, from grad_scale, clip_norm and guards (readable where this runs:
// on the host for the CPU step, in the kernel for cuda's; both call this one rule). x − x == 0 holds exactly for
// finite x (∞ − ∞ and NaN − NaN are NaN), without <cmath> on the device.
CLOZE_HD inline bool adamw_clip_scale(double grad_scale, const float* clip_norm, double max_norm,
                                      const float* const* guards, int nguards, double* gs) {
  *gs = grad_scale;
  for (int k = 0; k < nguards; k++)
    if (!(*guards[k] - *guards[k] == 0.0f)) return false;
  if (!clip_norm) return true;
  const double n = *clip_norm;
  if (!(n - n == 0.0)) return false;
  if (n > max_norm) *gs = grad_scale * (max_norm / (n + 1e-6));
  return true;
}
// Decoupled decay (Loshchilov & Hutter): p -= lr·(wd·p + m̂/(√v̂ + eps)).
template <typename T> void adamw_step_cpu(const AdamWParams<T>& p);
template <typename T> double sum_squares_cpu(int64_t n, const T* x);
// In-place exponential moving average (an EMA teacher's weights):
// dst ← decay·dst + (1 − decay)·src. Written in this form, not as a lerp, so that
// decay 1 keeps dst and decay 0 copies src exactly.
template <typename T> void ema_update_cpu(int64_t n, T* dst, const T* src, double decay);

// cuda (T = float or bf16; device pointers). adamw_step_cuda needs p.master,
// p.m32 and p.v32 when T is bf16.
template <typename T> void adamw_step_cuda(const AdamWParams<T>& p);
template <typename T> void ema_update_cuda(int64_t n, T* dst, const T* src, double decay);
// Global L2 norm over device tensors (float32 or bfloat16, by `dtypes`), in a
// fixed order (per-block partials, then one block): the same bits every run.
// Synchronizes once to return it.
double l2_norm_cuda(const std::vector<const void*>& xs, const std::vector<int64_t>& ns, const std::vector<int>& dtypes,
                    const char* op);
// The same norm written to out[0] (device float32) without a host sync.
void l2_norm_into_cuda(const std::vector<const void*>& xs, const std::vector<int64_t>& ns, const std::vector<int>& dtypes,
                       float* out, const char* op);
// x ← s·x on the device, for a float32 or bfloat16 tensor.
void scale_cuda(void* x, int dtype, int64_t n, double s, const char* op);

}  // namespace cloze
