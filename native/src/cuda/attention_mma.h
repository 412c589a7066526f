// The register-resident bfloat16 attention kernels (attention_mma.cu). Each
// returns false, having launched nothing, when the call is outside what they
// cover (float32 is not; entropy, its gradient, the bias gradient, head widths
// that are not a multiple of 8 or above 128, unaligned operands, or
// p.tiled_kernel set); the caller then runs the tiled kernels.
#pragma once
#include "../core/dtype.h"
#include "../ops/attention.h"

namespace cloze {

bool attention_forward_mma(const AttentionParams<bf16>& p);
// D: float32 scratch in the lse layout, filled here with rowsum(dO ∘ O).
bool attention_backward_mma(const AttentionParams<bf16>& p, float* D);

}  // namespace cloze
