// Adversarial self-attention (ASA, Wu et al. 2022) fine-tuning: the
// adversary's binary attention mask with its straight-through gradient, and
// the symmetric KL divergence between the clean and the adversarial class
// distributions.
//
// asa_mask: scores S [B, L, L] (the adversary's Q_a·K_aᵀ/√D) →
//   M = 1[S > 0] on real keys, 0 on padding keys (a padding key is never kept);
//   bias = (1 − M)·(−value)  [B, L, L], the attention's additive bias, shared by every head;
//   kept[b, q] = Σ_k M[b, q, k] for a real query q, 0 for a padding query  [B, L].
// Backward (straight-through, the sigmoid surrogate): ∂M/∂S := σ(S)(1 − σ(S))
// on real keys, 0 on padding keys, so
//   dS = σ'(S)·(value·dbias + dkept[b, q]·[q real]).
//
// sym_kl: logits a, b [N, C] → (1/N)·Σ_n Σ_c (p − q)(log p − log q), with
// p = softmax(a_n), q = softmax(b_n): KL(p‖q) + KL(q‖p), the batch mean. Its
// backward takes the upstream gradient as a 0-d tensor on the op's device.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct AsaMaskParams {
  int64_t B = 0, L = 0;
  const T* scores = nullptr;             // [B, L, L]
  const uint8_t* key_padding = nullptr;  // [B, L], 1 = padding; null: none
  double value = 1e4;                    // the bias of a masked pair is −value
  T* bias = nullptr;                     // forward: [B, L, L]
  T* kept = nullptr;                     // forward: [B, L]
  const T* dbias = nullptr;              // backward: [B, L, L] or null
  const T* dkept = nullptr;              // backward: [B, L] or null
  T* dscores = nullptr;                  // backward: [B, L, L]
};

template <typename T> void asa_mask_forward_cpu(const AsaMaskParams<T>& p);
template <typename T> void asa_mask_backward_cpu(const AsaMaskParams<T>& p);
// CUDA (T = float or bf16): one block per query row in the forward (its kept
// count summed in a fixed tree), one thread per pair in the backward.
template <typename T> void asa_mask_forward_cuda(const AsaMaskParams<T>& p);
template <typename T> void asa_mask_backward_cuda(const AsaMaskParams<T>& p);

template <typename T>
struct SymKlParams {
  int64_t N = 0, C = 0;
  const T* a = nullptr;   // [N, C]
  const T* b = nullptr;   // [N, C]
  T* loss = nullptr;      // forward: 0-d
  const T* grad = nullptr;  // backward: 0-d upstream gradient
  T* da = nullptr;        // backward: [N, C] or null
  T* db = nullptr;        // backward: [N, C] or null
};

template <typename T> void sym_kl_forward_cpu(const SymKlParams<T>& p);
template <typename T> void sym_kl_backward_cpu(const SymKlParams<T>& p);
// CUDA: the forward is one block (rows summed in fp64 through a fixed tree, so
// the bits repeat), the backward one thread per row.
template <typename T> void sym_kl_forward_cuda(const SymKlParams<T>& p);
template <typename T> void sym_kl_backward_cuda(const SymKlParams<T>& p);

}  // namespace cloze
