#include "mlm_mask.h"

#include <algorithm>

#include "../core/threadpool.h"

namespace cloze {

void mlm_count_selected_cpu(int64_t B, int64_t L, const uint8_t* select, int64_t* counts) {
  parallel_range(B, std::max<int64_t>(1, 16384 / std::max<int64_t>(L, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const uint8_t* s = select + b * L;
      int64_t c = 0;
      for (int64_t l = 0; l < L; l++) c += s[l] != 0;
      counts[b] = c;
    }
  });
}

void mlm_mask_cpu(const MlmMaskParams& p) {
  const int64_t L = p.L;
  const float t_mask = static_cast<float>(p.mask_prob);
  const float t_rand = static_cast<float>(p.mask_prob + p.random_prob);
  const uint64_t range = static_cast<uint64_t>(static_cast<int64_t>(p.random_hi) - p.random_lo);
  parallel_range(p.B, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t base = b * L;
      const int32_t* ids = p.ids + base;
      const uint8_t* sel = p.select + base;
      int32_t* out = p.out_ids + base;
      int64_t m = p.row_offset[b];
      for (int64_t l = 0; l < L; l++) {
        const int32_t id = ids[l];
        if (!sel[l]) {
          out[l] = id;
          continue;
        }
        const int32_t v = mlm_replacement(p, base, l, id, t_mask, t_rand, range);
        out[l] = v;
        p.rows[m] = static_cast<int32_t>(base + l);
        p.targets[m] = id;
        m++;
      }
    }
  });
}

}  // namespace cloze
