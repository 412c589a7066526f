// Token bookkeeping for masked image modeling (the README's image pre-training section, MAE and SimMIM).
// Shape letters: B batch, C channels, H×W image, p patch side, L = (H/p)(W/p)
// tokens, D token width, K kept tokens, Ls source tokens, Lo output tokens,
// T learned tokens (mask token, CLS). Mask rule: 1 = removed.
#pragma once
#include <cstdint>

namespace cloze {

// Random masking from per-token scores: per row, ids_shuffle = stable
// ascending argsort(scores) (ties by index), ids_restore = its inverse,
// ids_keep = ids_shuffle[:K], mask[j] = ids_restore[j] >= K.
template <typename T>
struct MaskFromScoresParams {
  int64_t B = 0, L = 0, K = 0;
  const T* scores = nullptr;     // [B, L], no NaN (the binding checks)
  int32_t* ids_keep = nullptr;   // [B, K]
  int32_t* ids_restore = nullptr;  // [B, L]
  uint8_t* mask = nullptr;       // [B, L]
};
template <typename T> void mask_from_scores_cpu(const MaskFromScoresParams<T>& p);
template <typename T> void mask_from_scores_cuda(const MaskFromScoresParams<T>& p);

// Element i of out is low + (high − low)·u with u the 24-bit uniform from lane
// i mod 4 of Philox(seed, step, ⌊i/4⌋): a pure function of (seed, step, i),
// clamped below high so the range stays [low, high). Both backends compute it
// as one double fma rounded to float, so the CPU and CUDA give the same bits.
struct UniformNoiseParams {
  int64_t n = 0;
  uint64_t seed = 0, step = 0;
  double low = 0, high = 1;
  float* out = nullptr;  // [n]
};
void uniform_noise_cpu(const UniformNoiseParams& p);
void uniform_noise_cuda(const UniformNoiseParams& p);  // bit for bit the CPU's values

// out[b, j] = index[b, j] >= 0 ? x[b, index[b, j]] : tokens[−1 − index[b, j]].
// Backward: dx[b, i] = Σ_{j: index[b, j] = i} dout[b, j] and
// dtokens[t] = Σ_{(b, j): index[b, j] = −1 − t} dout[b, j]. Both sums run in
// an order fixed by the shapes alone, so the result does not depend on the
// thread count. Indices lie in [−T, Ls) (checked by the binding).
template <typename T>
struct AssembleTokensParams {
  int64_t B = 0, Ls = 0, Lo = 0, D = 0, num_tokens = 0;  // T (0 when tokens is null)
  const int32_t* index = nullptr;  // [B, Lo]
  const T* x = nullptr;            // [B, Ls, D] (forward)
  const T* tokens = nullptr;       // [T, D] or null (forward)
  T* out = nullptr;                // [B, Lo, D] (forward)
  const T* dout = nullptr;         // [B, Lo, D] (backward)
  T* dx = nullptr;                 // [B, Ls, D] zeroed, or null (backward)
  T* dtokens = nullptr;            // [T, D] zeroed, or null (backward)
};
template <typename T> void assemble_tokens_forward_cpu(const AssembleTokensParams<T>& p);
template <typename T> void assemble_tokens_backward_cpu(const AssembleTokensParams<T>& p);
template <typename T> void assemble_tokens_forward_cuda(const AssembleTokensParams<T>& p);
template <typename T> void assemble_tokens_backward_cuda(const AssembleTokensParams<T>& p);

// MAE's decoder index from ids_restore [B, L] (values in [0, L)): without CLS
// out[b, j] = r < K ? r : −1 over [B, L]; with CLS the output is [B, 1 + L],
// out[b, 0] = 0 and out[b, 1 + j] = r < K ? 1 + r : −1.
struct RestoreIndexParams {
  int64_t B = 0, L = 0, K = 0;
  bool cls = false;
  const int32_t* ids_restore = nullptr;
  int32_t* out = nullptr;
};
void restore_index_cpu(const RestoreIndexParams& p);
void restore_index_cuda(const RestoreIndexParams& p);

// images [B, C, H, W] ↔ patches [B, L, p·p·C], patch (gh, gw) at token
// gh·(W/p) + gw and pixel (py, px, c) at (py·p + px)·C + c, as MAE's
// einsum('nchpwq->nhwpqc'). A permutation, so each direction is the other's
// backward.
template <typename T>
struct PatchifyParams {
  int64_t B = 0, C = 0, H = 0, W = 0, P = 0;  // H and W divisible by P
  T* images = nullptr;   // [B, C, H, W]
  T* patches = nullptr;  // [B, L, P·P·C]
};
template <typename T> void patchify_cpu(const PatchifyParams<T>& p);    // images → patches
template <typename T> void unpatchify_cpu(const PatchifyParams<T>& p);  // patches → images
template <typename T> void patchify_cuda(const PatchifyParams<T>& p);
template <typename T> void unpatchify_cuda(const PatchifyParams<T>& p);

// out[b, :] = mean over l of x[b, l, :] (L > 0), summed in l order in double.
template <typename T>
struct TokenMeanParams {
  int64_t B = 0, L = 0, D = 0;
  const T* x = nullptr;     // [B, L, D] (forward)
  T* out = nullptr;         // [B, D] (forward)
  const T* dout = nullptr;  // [B, D] (backward)
  T* dx = nullptr;          // [B, L, D] (backward)
};
template <typename T> void token_mean_forward_cpu(const TokenMeanParams<T>& p);
template <typename T> void token_mean_backward_cpu(const TokenMeanParams<T>& p);
template <typename T> void token_mean_forward_cuda(const TokenMeanParams<T>& p);
template <typename T> void token_mean_backward_cuda(const TokenMeanParams<T>& p);

}  // namespace cloze
