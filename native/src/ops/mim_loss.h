// Losses of masked image modeling. In every mask, 1 = masked, 0 = visible.
//
// Masked patch loss (MAE: mse + normPix; SimMIM: l1), per patch r = (b, l):
//   t̂ = normPix ? (t − mean_P t) / sqrt(var_P t + eps) : t     (var unbiased, as MAE)
//   ℓ_r = mean_P (pred − t̂)²   or   mean_P |pred − t̂|
//   loss = Σ_{masked r} ℓ_r / #masked                            (0 when none)
// Masked cosine (MTO's data singularity, ours), per image b, x̂ = x / max(‖x‖, eps):
//   c_b = (mean_{masked i} x̂_i) · (mean_{visible j} x̂_j), loss = mean of c_b over
//   the images with both kinds of token (0 when none).
// Ranking loss (HPM), per image over the masked pairs i < j with t_i ≠ t_j:
//   BCE-with-logits(pred_j − pred_i, y), y = [t_j > t_i]; loss = mean over those pairs of the batch.
//   Tied pairs (neither t_j > t_i nor t_j < t_i, NaN included) carry no label and are left out of the
//   sum and of the count, as HPM's official loss (labels_valid = positive + negative) does.
//
// Every forward returns the sum of the terms its loss averages; the binding
// counts the terms from the mask and divides. Per-term partial sums land in fixed slots (one per
// patch or image) summed in order, so results do not depend on thread count.
// The CUDA forwards keep the sum on the device: they write loss[0] = sum · loss_scale
// (loss_scale = 1/count from the binding, 0 when none), so no value crosses to the host.
#pragma once
#include <cstdint>

namespace cloze {

enum class PatchLossKind { MSE, L1 };

template <typename T>
struct MaskedPatchLossParams {
  int64_t B = 0, L = 0, P = 0;
  PatchLossKind kind = PatchLossKind::MSE;
  bool norm_pix = false;          // needs P >= 2 (unbiased variance)
  double eps = 1e-6;
  const T* pred = nullptr;        // [B, L, P]
  const T* target = nullptr;      // [B, L, P]
  const uint8_t* mask = nullptr;  // [B, L], 0/1
  T* per_patch = nullptr;         // [B, L] forward output, every patch
  T* loss = nullptr;              // cuda forward: 0-d output
  double loss_scale = 0;          // cuda forward: 1 / #masked (0 when none)
  double grad_scale = 0;          // backward: dloss / #masked
  T* dpred = nullptr;             // [B, L, P] or null; overwritten
  T* dtarget = nullptr;           // [B, L, P] or null; overwritten
};
template <typename T> double masked_patch_loss_forward_cpu(const MaskedPatchLossParams<T>& p);
template <typename T> void masked_patch_loss_backward_cpu(const MaskedPatchLossParams<T>& p);
template <typename T> void masked_patch_loss_forward_cuda(const MaskedPatchLossParams<T>& p);
template <typename T> void masked_patch_loss_backward_cuda(const MaskedPatchLossParams<T>& p);

template <typename T>
struct MaskedCosineParams {
  int64_t B = 0, L = 0, D = 0;
  double eps = 1e-8;
  const T* x = nullptr;           // [B, L, D]
  const uint8_t* mask = nullptr;  // [B, L], 0/1
  double grad_scale = 0;          // backward: dloss / #images counted
  T* dx = nullptr;                // [B, L, D] backward output; overwritten
  T* loss = nullptr;              // cuda forward: 0-d output
  double loss_scale = 0;          // cuda forward: 1 / #images counted (0 when none)
};
// Returns Σ c_b over the images with both masked and visible tokens.
template <typename T> double masked_cosine_forward_cpu(const MaskedCosineParams<T>& p);
template <typename T> void masked_cosine_backward_cpu(const MaskedCosineParams<T>& p);
template <typename T> void masked_cosine_forward_cuda(const MaskedCosineParams<T>& p);
template <typename T> void masked_cosine_backward_cuda(const MaskedCosineParams<T>& p);

template <typename T>
struct RankingLossParams {
  int64_t B = 0, L = 0;
  const T* pred = nullptr;        // [B, L] predicted per-patch losses (logit scale)
  const T* target = nullptr;      // [B, L] actual per-patch losses
  const uint8_t* mask = nullptr;  // [B, L], 0/1
  double grad_scale = 0;          // backward: dloss / #untied pairs
  T* dpred = nullptr;             // [B, L] backward output; overwritten
  T* loss = nullptr;              // cuda forward: 0-d output
  double loss_scale = 0;          // cuda forward: 1 / #untied pairs (0 when none)
};
// Returns the BCE summed over every untied masked pair.
template <typename T> double ranking_loss_forward_cpu(const RankingLossParams<T>& p);
template <typename T> void ranking_loss_backward_cpu(const RankingLossParams<T>& p);
template <typename T> void ranking_loss_forward_cuda(const RankingLossParams<T>& p);
template <typename T> void ranking_loss_backward_cuda(const RankingLossParams<T>& p);

}  // namespace cloze
