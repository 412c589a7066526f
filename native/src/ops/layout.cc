#include "layout.h"

#include <algorithm>

#include "../core/threadpool.h"

namespace cloze {

namespace {
// Square tiles keep both the strided reads and the strided writes within cache lines.
constexpr int64_t kTile = 32;

template <typename T>
void transpose_batch(const T* in, T* out, int64_t B, int64_t rows, int64_t cols) {
  if (rows == 0 || cols == 0) return;  // nothing to move (and B·⌈rows/32⌉ empty tasks could be billions)
  const int64_t rt = (rows + kTile - 1) / kTile, ct = (cols + kTile - 1) / kTile;
  parallel_range(B * rt, 1, [&](int64_t b0, int64_t e0) {
    for (int64_t t = b0; t < e0; t++) {
      const int64_t b = t / rt, r0 = (t % rt) * kTile, r1 = std::min(rows, r0 + kTile);
      const T* src = in + b * rows * cols;
      T* dst = out + b * rows * cols;
      for (int64_t c0 = 0; c0 < ct * kTile; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t r = r0; r < r1; r++)
          for (int64_t c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
      }
    }
  });
}
}  // namespace

template <typename T>
void to_channels_last_cpu(const LayoutParams<T>& p) {
  transpose_batch(p.in, p.out, p.B, p.C, p.HW);
}

template <typename T>
void to_channels_first_cpu(const LayoutParams<T>& p) {
  transpose_batch(p.in, p.out, p.B, p.HW, p.C);
}

template void to_channels_last_cpu<float>(const LayoutParams<float>&);
template void to_channels_last_cpu<double>(const LayoutParams<double>&);
template void to_channels_first_cpu<float>(const LayoutParams<float>&);
template void to_channels_first_cpu<double>(const LayoutParams<double>&);

}  // namespace cloze
