// The register-resident bfloat16 attention kernels (attention_mma_fwd.cu, attention_mma_bwd.cu). Each
// returns false, having launched nothing, when the call is outside what they
// cover (float32 is not; entropy, its gradient, the bias gradient, head widths
// that are not a multiple of 8 or above 128, unaligned operands, or
// p.tiled_kernel set); the caller then runs the tiled kernels.
#pragma once
#include "../core/dtype.h"
#include "../ops/attention.h"

namespace cloze {

bool attention_forward_mma(const AttentionParams<bf16>& p);
// D: rowsum(dO ∘ O) in the lse layout, float32, already computed (the
// tiled backward's delta kernel, attention_backward.cu).
bool attention_backward_mma(const AttentionParams<bf16>& p, const float* D);

}  // namespace cloze
