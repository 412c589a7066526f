#include "dropout.h"

#include "../core/philox.h"
#include "../core/threadpool.h"

namespace cloze {

template <typename T>
void dropout_apply_cpu(const DropoutParams<T>& p) {
  const float drop = static_cast<float>(p.p);
  const T keep_scale = p.p >= 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p.p));
  // One Philox call yields four uniforms: global element g = offset + i uses lane g%4 of block g/4. The
  // loop runs over the global blocks that cover [offset, offset + n), so a slice draws the full call's bits.
  const uint64_t first = p.offset / 4, last = (p.offset + static_cast<uint64_t>(p.n) + 3) / 4;
  const int64_t blocks = p.n == 0 ? 0 : static_cast<int64_t>(last - first);
  parallel_range(blocks, 4096, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; blk++) {
      const uint64_t gblk = first + static_cast<uint64_t>(blk);
      const Philox4 r = philox4x32(p.seed, p.step, gblk);
      for (int l = 0; l < 4; l++) {
        const uint64_t g = gblk * 4 + static_cast<uint64_t>(l);
        if (g < p.offset) continue;
        const int64_t i = static_cast<int64_t>(g - p.offset);
        if (i >= p.n) break;
        p.out[i] = philox_uniform(r.v[l]) >= drop ? p.x[i] * keep_scale : T(0);
      }
    }
  });
}

template void dropout_apply_cpu<float>(const DropoutParams<float>&);
template void dropout_apply_cpu<double>(const DropoutParams<double>&);

}  // namespace cloze
