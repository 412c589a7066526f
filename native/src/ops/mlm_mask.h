// Fused BERT-style token corruption for masked language modeling (specs/mlm.md).
// A selection strategy marks which tokens are predicted; this kernel applies
// [MASK] / random token / keep to them and gathers the prediction targets.
#pragma once
#include <cstdint>

namespace cloze {

struct MlmMaskParams {
  int64_t B = 0, L = 0;
  const int32_t* ids = nullptr;     // [B, L] original ids, validated in [0, V)
  const uint8_t* select = nullptr;  // [B, L] 1 = selected for prediction (mask rule: 1 = masked)
  // [B, L] or null. Selected tokens whose group holds the same in-row position
  // g ∈ [0, L) share one mask/random/keep draw (SpanBERT applies 80/10/10 per
  // span). The draw is the one token g itself would get, so group[i] = i is the
  // same as no groups. Random replacement ids are still drawn per token.
  const int32_t* group = nullptr;
  int32_t mask_id = 0;
  double mask_prob = 0.8, random_prob = 0.1;  // keep with 1 − mask − random
  int32_t random_lo = 0, random_hi = 0;       // random replacements uniform in [lo, hi)
  uint64_t seed = 0, step = 0;
  const int64_t* row_offset = nullptr;  // [B + 1] prefix count of selected tokens per row
  int32_t* out_ids = nullptr;           // [B, L] corrupted ids
  int32_t* rows = nullptr;              // [M] flat positions b·L + l of selected tokens, in order
  int32_t* targets = nullptr;           // [M] original ids at those positions
};

// Fills p.row_offset-sized counts: counts[b] = selected tokens of row b. Threaded over rows.
void mlm_count_selected_cpu(int64_t B, int64_t L, const uint8_t* select, int64_t* counts);

// One pass per row (threaded over rows). Deterministic given (seed, step):
// token i = b·L + l uses Philox(seed, step, i); lane 0 is its decision uniform,
// lanes 1–2 form 64 bits for its random id.
void mlm_mask_cpu(const MlmMaskParams& p);

}  // namespace cloze
