// L2 PGD on embeddings (adversarial training, MVP+Adv and mlp-ft --adv): the
// random start and the ascent step with its projection onto the ε-ball. The
// perturbation δ is [R, D]; example b owns rows [starts[b], starts[b] + lengths[b])
// (its real tokens, padded or packed alike), and every norm is taken over one
// example's rows. Rows no example owns stay 0. Neither op has a gradient:
// like an optimizer step, they update δ between the passes.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct PgdParams {
  int64_t rows = 0;                 // R
  int64_t cols = 0;                 // D
  int64_t examples = 0;             // B
  const int32_t* starts = nullptr;  // [B], rows
  const int32_t* lengths = nullptr; // [B], rows
  const T* delta = nullptr;         // step: the current δ [R, D]
  const T* grad = nullptr;          // step: ∂loss/∂δ [R, D]
  T* out = nullptr;                 // [R, D], arrives zeroed: rows no example owns stay 0
  double alpha = 0;                 // step size
  double eps = 1;                   // the ball's radius
  uint64_t seed = 0, step = 0;      // random start: Philox key and counter
  int64_t row_offset = 0;           // random start: rows of a global batch before these (data parallel)
};

// out = ε·u_b/‖u_b‖ per example, u uniform in [−1, 1) drawn as dropout draws:
// lane i%4 of Philox4x32(seed, (step, i/4)) for flat element i = (row_offset + r)·D + c,
// so a data-parallel rank draws what one process draws for those rows of the global batch.
template <typename T> void pgd_random_start_cpu(const PgdParams<T>& p);
// out = Π_ε(δ_b + α·g_b/‖g_b‖) per example, Π_ε(x) = x·ε/max(‖x‖, ε); an
// example whose gradient is 0 takes no step (only the projection).
template <typename T> void pgd_step_cpu(const PgdParams<T>& p);

// CUDA (T = float or bf16): one block per example, norms in fp64 in a fixed
// tree order, so the bits repeat run to run.
template <typename T> void pgd_random_start_cuda(const PgdParams<T>& p);
template <typename T> void pgd_step_cuda(const PgdParams<T>& p);

}  // namespace cloze
