// Fused BERT-style token corruption for masked language modeling (the README's text pre-training section).
// A selection strategy marks which tokens are predicted; this kernel applies
// [MASK] / random token / keep to them and gathers the prediction targets.
#pragma once
#include <cstdint>

#include "../core/philox.h"

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

// The id a selected token at flat position base + l becomes: [MASK], a random
// id, or itself. Shared by the CPU and CUDA kernels, so both backends draw the
// very same numbers. t_mask and t_rand are the float thresholds mask_prob and
// mask_prob + random_prob; range = random_hi − random_lo.
CLOZE_HD inline int32_t mlm_replacement(const MlmMaskParams& p, int64_t base, int64_t l, int32_t id, float t_mask,
                                        float t_rand, uint64_t range) {
  const Philox4 r = philox4x32(p.seed, p.step, static_cast<uint64_t>(base + l));
  uint32_t decision = r.v[0];
  if (p.group && p.group[base + l] != l)
    decision = philox4x32(p.seed, p.step, static_cast<uint64_t>(base + p.group[base + l])).v[0];
  const float u = philox_uniform(decision);
  if (u < t_mask) return p.mask_id;
  if (u < t_rand) {
    // 64 random bits modulo a range below 2^31: bias under 2^-33.
    const uint64_t bits = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[2];
    return p.random_lo + static_cast<int32_t>(bits % range);
  }
  return id;
}

// Fills p.row_offset-sized counts: counts[b] = selected tokens of row b. Threaded over rows.
void mlm_count_selected_cpu(int64_t B, int64_t L, const uint8_t* select, int64_t* counts);

// One pass per row (threaded over rows). Deterministic given (seed, step):
// token i = b·L + l uses Philox(seed, step, i); lane 0 is its decision uniform,
// lanes 1–2 form 64 bits for its random id.
void mlm_mask_cpu(const MlmMaskParams& p);

// cuda: the same result bit for bit, every pointer device memory.
// mlm_check_count_cuda validates ids (in [0, V)), select (0/1) and group (in
// [0, L) at selected tokens) and counts the selected tokens, all on the
// device; `scratch` holds B + 2 int64s and ends as [row_offset (B + 1) | the
// first failure], the failure being 3·i + k for the first bad position i and
// check k (0 ids, 1 select, 2 group, in the CPU's order), or INT64_MAX.
// It returns {M, failure} with one device→host copy.
struct MlmCheck {
  int64_t selected = 0;
  int64_t failure = INT64_MAX;
};
MlmCheck mlm_check_count_cuda(int64_t B, int64_t L, int64_t V, const int32_t* ids, const uint8_t* select,
                              const int32_t* group, int64_t* scratch);
// p.row_offset is the scratch above (device memory). Selected tokens of a row
// keep their order in rows/targets through a block-wide scan.
void mlm_mask_cuda(const MlmMaskParams& p);

}  // namespace cloze
