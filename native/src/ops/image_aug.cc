#include "image_aug.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int64_t kGrainElems = 1 << 13;  // output elements per task: small images still spread over threads

// One output coordinate's two source taps and the weight of the second.
template <typename T>
struct Tap {
  int64_t lo, hi;
  T w;
};

// Taps of `n` output positions over a source axis of `len` pixels, for a box
// starting at `start` of extent `extent`. Coordinates are computed in double so
// that float32 boxes on large images keep sub-pixel precision.
template <typename T>
void axis_taps(double start, double extent, int64_t n, int64_t len, bool reverse, Tap<T>* taps) {
  const double step = extent / static_cast<double>(n), top = static_cast<double>(len - 1);
  for (int64_t k = 0; k < n; k++) {
    const int64_t src_k = reverse ? n - 1 - k : k;
    double s = start + (static_cast<double>(src_k) + 0.5) * step - 0.5;
    if (!(s > 0)) s = 0;  // also catches NaN, so the index below is always in range
    if (s > top) s = top;
    const int64_t lo = static_cast<int64_t>(s);
    taps[k] = {lo, std::min(lo + 1, len - 1), static_cast<T>(s - static_cast<double>(lo))};
  }
}

}  // namespace

template <typename T>
void image_batch_cpu(const ImageBatchParams<T>& p) {
  const int64_t OH = p.OH, OW = p.OW, plane = p.H * p.W;
  // Tap tables for the whole batch first (B·(OH + OW) entries), so the hot loop
  // below is pure gathers and FMAs.
  std::vector<Tap<T>> ytaps(static_cast<size_t>(p.B * OH)), xtaps(static_cast<size_t>(p.B * OW));
  for (int64_t b = 0; b < p.B; b++) {
    const T* box = p.boxes + b * 4;
    axis_taps<T>(box[0], box[2], OH, p.H, false, ytaps.data() + b * OH);
    axis_taps<T>(box[1], box[3], OW, p.W, p.flip[b] != 0, xtaps.data() + b * OW);
  }
  const int64_t rows = p.B * p.C * OH;
  parallel_range(rows, std::max<int64_t>(1, kGrainElems / OW), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t i = r % OH, bc = r / OH, c = bc % p.C, b = bc / p.C;
      const uint8_t* src = p.images + (static_cast<int64_t>(p.indices[b]) * p.C + c) * plane;
      const Tap<T> ty = ytaps[b * OH + i];
      const uint8_t* row0 = src + ty.lo * p.W;
      const uint8_t* row1 = src + ty.hi * p.W;
      const Tap<T>* xt = xtaps.data() + b * OW;
      const T wy1 = ty.w, wy0 = T(1) - wy1, m = p.mean[c], s = p.std[c];
      T* __restrict o = p.out + r * OW;
      for (int64_t j = 0; j < OW; j++) {
        const Tap<T> tx = xt[j];
        const T wx1 = tx.w, wx0 = T(1) - wx1;
        const T top = wx0 * T(row0[tx.lo]) + wx1 * T(row0[tx.hi]);
        const T bot = wx0 * T(row1[tx.lo]) + wx1 * T(row1[tx.hi]);
        const T v = wy0 * top + wy1 * bot;
        o[j] = (v / T(255) - m) / s;  // divisions, not reciprocals: an identity box reproduces the formula exactly
      }
    }
  });
}

template void image_batch_cpu<float>(const ImageBatchParams<float>&);
template void image_batch_cpu<double>(const ImageBatchParams<double>&);

}  // namespace cloze
