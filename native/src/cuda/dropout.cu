// Dropout on the device with the CPU's mask: element i keeps when lane i%4 of
// Philox4x32(seed, counter = (step, g/4)) with g = offset + i maps to a uniform ≥ p (lane g%4), exactly as
// ops/dropout.cc draws it, so a run can move between backends and a test can
// compare masks bit for bit.
#include "../core/philox.h"
#include "../ops/dropout.h"
#include "common.cuh"

namespace cloze {

namespace {

template <typename T>
__global__ void dropout_kernel(const T* x, T* out, int64_t n, float drop, float keep_scale, uint64_t seed,
                               uint64_t step, uint64_t offset) {
  // Global element g = offset + i, as ops/dropout.cc: the blocks covering [offset, offset + n).
  const uint64_t first = offset / 4;
  const int64_t blocks = static_cast<int64_t>((offset + static_cast<uint64_t>(n) + 3) / 4 - first);
  CLOZE_GRID_STRIDE(blk, blocks) {
    const uint64_t gblk = first + static_cast<uint64_t>(blk);
    const Philox4 r = philox4x32(seed, step, gblk);
#pragma unroll
    for (int l = 0; l < 4; l++) {
      const uint64_t g = gblk * 4 + static_cast<uint64_t>(l);
      if (g < offset) continue;
      const int64_t i = static_cast<int64_t>(g - offset);
      if (i < n) cuda::st(out, i, philox_uniform(r.v[l]) >= drop ? cuda::ld(x, i) * keep_scale : 0.f);
    }
  }
}

}  // namespace

template <typename T>
void dropout_apply_cuda(const DropoutParams<T>& p) {
  if (p.n == 0) return;
  // Both constants as the float32 CPU kernel computes them (the scale in double, then rounded).
  const float drop = static_cast<float>(p.p);
  const float keep_scale = p.p >= 1.0 ? 0.f : static_cast<float>(1.0 / (1.0 - p.p));
  CLOZE_LAUNCH("dropout", dropout_kernel<T>, cuda::blocks_for((p.n + 3) / 4 + 1), cuda::kThreads, 0, p.x, p.out, p.n, drop,
               keep_scale, p.seed, p.step, p.offset);
}

template void dropout_apply_cuda<float>(const DropoutParams<float>&);
template void dropout_apply_cuda<bf16>(const DropoutParams<bf16>&);

}  // namespace cloze
