// BatchNorm over x [B, C, H, W] with per-channel statistics, optionally over
// the active positions of a mask only: SparK's masked-dense SparseBatchNorm,
// where masked positions must neither move the statistics nor leave zero.
//   training: batch mean and biased variance normalise; the running buffers
//             move towards the mean and the unbiased variance (as PyTorch).
//   eval:     the running statistics normalise.
// With a mask, outputs at inactive positions are exactly 0 and their inputs
// and output gradients are ignored. Ours where PyTorch has no counterpart:
// with no active position the running buffers are left unchanged, and with
// exactly one the running variance is (the unbiased estimate is 0/0).
#pragma once
#include <cstdint>

namespace cloze {

// Stat is the type of the saved statistics (mean, rstd): T on the CPU, float32
// on CUDA (bfloat16 statistics would cost the backward its precision).
template <typename T, typename Stat = T>
struct BatchNormParams {
  int64_t B = 0, C = 0, S = 0;              // S = H·W
  const T* x = nullptr;                     // [B, C, S]
  const T* w = nullptr;                     // [C] or null (no scale)
  const T* b = nullptr;                     // [C] or null (no shift)
  const uint8_t* mask = nullptr;            // [B, S], 1 = active; null = all active
  bool training = true;
  double momentum = 0.1, eps = 1e-5;
  T* running_mean = nullptr;                // [C], updated in place in training; may be null then
  T* running_var = nullptr;
  T* y = nullptr;                           // forward: [B, C, S], written in full
  Stat* mean = nullptr;                     // forward: [C], the statistics used, saved for backward
  Stat* rstd = nullptr;
  const T* dy = nullptr;                    // backward
  T* dx = nullptr;                          // backward outputs, null where not wanted
  T* dw = nullptr;
  T* db = nullptr;
  // Synchronized BatchNorm (data-parallel ranks): the backward's [Σdy (C),
  // Σdy·x̂ (C), n] summed over all ranks, in the op's device memory (cuda: the
  // binding uploads the host sums). dx then uses these global sums and count;
  // dw and db stay this rank's own (the gradient all-reduce sums them). Null:
  // this process's batch is the whole batch.
  const double* global = nullptr;
};

template <typename T> void batchnorm_forward_cpu(const BatchNormParams<T>& p);
// Synchronized BatchNorm's forward, first half: per-channel sums in double over
// this rank's active elements, out[c] = Σ x (center null) or Σ (x − center[c])²
// (the two-pass variance, once the ranks' means are summed), out[C] = the
// active count. Reads x and mask.
template <typename T> void batchnorm_sums_cpu(const BatchNormParams<T>& p, const double* center, double* out);
// Reads x, w, mask, mean, rstd, training and dy.
template <typename T> void batchnorm_backward_cpu(const BatchNormParams<T>& p);

// CUDA (cuda/batchnorm.cu): T = float or bf16, statistics in float32; the
// same semantics, statistics summed in fp32 by one block per channel.
template <typename T> void batchnorm_forward_cuda(const BatchNormParams<T, float>& p);
// batchnorm_sums_cpu's sums on the device: center and out in device memory,
// one block per channel summing in double by a fixed tree.
template <typename T> void batchnorm_sums_cuda(const BatchNormParams<T, float>& p, const double* center, double* out);
template <typename T> void batchnorm_backward_cuda(const BatchNormParams<T, float>& p);

}  // namespace cloze
