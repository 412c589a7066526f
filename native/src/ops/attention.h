// Fused multi-head attention, flash-style: an online softmax over key tiles,
// a backward that recomputes the probabilities from the saved log-sum-exp,
// and nothing of size L×L stored.
//
// Layouts (token-major, as a linear layer produces them):
//   padded:  q, k, v, out [B, L, H, Dh]; lse, entropy [B, H, L]
//   varlen:  q, k, v, out [nnz, H, Dh] with cu_seqlens [B+1]; lse, entropy [H, nnz]
// Masks follow the project rule: 1 = masked/removed.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct AttentionParams {
  // [*, H, Dh] token rows; *_row is the stride between consecutive tokens.
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  int64_t q_row = 0, k_row = 0, v_row = 0, o_row = 0;
  T* out = nullptr;       // forward output
  T* lse = nullptr;       // forward output (saved for backward)
  // The CUDA kernels keep the log-sum-exp in float32 whatever T (a bfloat16
  // lse would put errors of a few percent into the backward's recomputed P);
  // they read and write this instead of lse.
  float* lse_f32 = nullptr;
  T* entropy = nullptr;   // optional forward output: row entropy, 0 where not computed
  int64_t B = 0, L = 0, H = 0, Dh = 0;  // L = max sequence length in varlen mode
  const int32_t* cu_seqlens = nullptr;  // [B+1]; null = padded layout
  int64_t nnz = 0;                      // total tokens (varlen) or B·L
  double scale = 1.0;
  const uint8_t* key_padding = nullptr;  // [B, L] padded only
  const T* alibi_slopes = nullptr;       // [H]: bias −m_h·|i−j|
  const T* bias = nullptr;               // [B, L, L] additive, shared across heads
  const uint8_t* attn_mask = nullptr;    // [B, L, L] 1 = the pair is masked
  const uint8_t* token_mask = nullptr;   // [B, L] or [nnz], per token 1 = masked (MTO)
  bool exclude_masked_keys = false;      // visible queries ignore masked keys
  bool entropy_masked_only = true;       // entropy only for rows whose token_mask is 1

  // backward
  const T* dout = nullptr;       // like out
  const T* dentropy = nullptr;   // like entropy, optional
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  T* dbias = nullptr;            // [B, L, L], optional, summed over heads
  // CUDA: take the shared-memory tiled kernels even where the register-resident
  // bf16 ones apply (attention_mma_{fwd,bwd}.cu); the tests run both against the reference.
  bool tiled_kernel = false;
  // CUDA: in the bf16 mma kernels, take the general per-element logit (attention_mma.cuh's logit2) even where the
  // unmasked fast path applies (no mask, no bias, no ALiBi, a positive scale); the tests run both.
  bool mma_general = false;
  // CPU: the forward's plain chain (the logits stored, then the row passes) instead of its fusions, which must
  // agree with it bit for bit (attention.cc's forward_tile; the tests compare the two).
  bool plain_chain = false;
};

template <typename T>
void attention_forward_cpu(const AttentionParams<T>& p);
template <typename T>
void attention_backward_cpu(const AttentionParams<T>& p);

// CUDA (T = float or bf16), in native/src/cuda/attention_*.cu: the same
// function and layouts, with lse in float32 (lse_f32) and Dh ≤ 128.
constexpr int64_t kAttentionCudaMaxDh = 128;
template <typename T>
void attention_forward_cuda(const AttentionParams<T>& p);
template <typename T>
void attention_backward_cuda(const AttentionParams<T>& p);

}  // namespace cloze
