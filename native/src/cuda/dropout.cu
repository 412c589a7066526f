// Dropout on the device with the CPU's mask: element i keeps when lane g%4 of
// Philox4x32(seed, counter = (step, g/4)), g = offset + i, maps to a uniform
// ≥ p, exactly as ops/dropout.cc draws it, so a run can move between backends
// and a test can compare masks bit for bit.
//
// Dropout is memory-bound, so where offset % 4 == 0 (Philox blocks start on
// element multiples of 4) and both pointers are 16-byte aligned, a thread
// takes 8 consecutive elements, i.e. two whole Philox blocks, with one 16-byte
// access for bf16 (two for float); the last n % 8 elements go one by one.
// Other offsets take the general kernel: one thread per Philox block.
#include "../core/philox.h"
#include "../ops/dropout.h"
#include "common.cuh"
#include "vec.cuh"

namespace cloze {

namespace {

// The one per-element rule both kernels apply to lane `bits` of the element's Philox block. __fmul_rn: the
// product rounded on its own, so that dropoutAdd's residual + it is never contracted into one FMA (nvcc contracts
// by default), which would round once where the chain add(residual, dropout(x)) rounds twice.
__device__ __forceinline__ float dropout_f(uint32_t bits, float x, float drop, float keep_scale) {
  return philox_uniform(bits) >= drop ? __fmul_rn(x, keep_scale) : 0.f;
}

// dropoutAdd: residual + the dropped value rounded to T first, as dropout's output then add's would be.
template <typename T>
__device__ __forceinline__ float plus_residual(float d, float r) {
  return r + cuda::to_f(cuda::from_f<cuda::dev_t<T>>(d));
}

template <typename T>
__global__ void dropout_kernel(const T* x, const T* res, T* out, int64_t n, float drop, float keep_scale, uint64_t seed,
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
      if (i >= n) continue;
      const float d = dropout_f(r.v[l], cuda::ld(x, i), drop, keep_scale);
      cuda::st(out, i, res ? plus_residual<T>(d, cuda::ld(res, i)) : d);
    }
  }
}

// offset % 4 == 0 and x, out 16-byte aligned. Thread q takes elements [8q, 8q + 8): g = offset + 8q + l
// lies in Philox block offset/4 + 2q + l/4, lane l % 4. Then the last n % 8 elements, one thread each.
template <typename T>
__global__ void dropout8_kernel(const T* x, const T* res, T* out, int64_t n, float drop, float keep_scale,
                                uint64_t seed, uint64_t step, uint64_t offset) {
  constexpr int V = cuda::kVec<T>;  // 8 (bf16) or 4 (float) elements per 16-byte pack
  constexpr int P = 8 / V;          // packs per 8 elements
  const uint64_t first = offset / 4;
  const int64_t groups = n / 8, from = groups * 8;
  CLOZE_GRID_STRIDE(q, groups) {
    const uint64_t blk = first + 2 * static_cast<uint64_t>(q);
    const Philox4 r0 = philox4x32(seed, step, blk), r1 = philox4x32(seed, step, blk + 1);
    const uint32_t bits[8] = {r0.v[0], r0.v[1], r0.v[2], r0.v[3], r1.v[0], r1.v[1], r1.v[2], r1.v[3]};
#pragma unroll
    for (int k = 0; k < P; k++) {
      float f[V];
      cuda::ld_pack(x, q * P + k, f);
#pragma unroll
      for (int e = 0; e < V; e++) f[e] = dropout_f(bits[k * V + e], f[e], drop, keep_scale);
      if (res) {
        float rv[V];
        cuda::ld_pack(res, q * P + k, rv);
#pragma unroll
        for (int e = 0; e < V; e++) f[e] = plus_residual<T>(f[e], rv[e]);
      }
      cuda::st_pack(out, q * P + k, f);
    }
  }
  CLOZE_GRID_STRIDE(k, n - from) {
    const int64_t i = from + k;
    const uint64_t g = offset + static_cast<uint64_t>(i);
    const Philox4 r = philox4x32(seed, step, g / 4);
    const uint32_t l = static_cast<uint32_t>(g % 4);
    // A select, not r.v[l]: a runtime index would put r in local memory.
    const uint32_t bits = l == 0 ? r.v[0] : l == 1 ? r.v[1] : l == 2 ? r.v[2] : r.v[3];
    const float d = dropout_f(bits, cuda::ld(x, i), drop, keep_scale);
    cuda::st(out, i, res ? plus_residual<T>(d, cuda::ld(res, i)) : d);
  }
}

}  // namespace

template <typename T>
void dropout_apply_cuda(const DropoutParams<T>& p) {
  if (p.n == 0) return;
  // Both constants as the float32 CPU kernel computes them (the scale in double, then rounded).
  const float drop = static_cast<float>(p.p);
  const float keep_scale = p.p >= 1.0 ? 0.f : static_cast<float>(1.0 / (1.0 - p.p));
  const char* op = p.residual ? "dropoutAdd" : "dropout";
  if (p.offset % 4 == 0 && cuda::aligned16(p.x, p.out, p.residual)) {
    CLOZE_LAUNCH(op, dropout8_kernel<T>, cuda::blocks_for(p.n / 8), cuda::kThreads, 0, p.x, p.residual, p.out, p.n,
                 drop, keep_scale, p.seed, p.step, p.offset);
  } else {
    CLOZE_LAUNCH(op, dropout_kernel<T>, cuda::blocks_for((p.n + 3) / 4 + 1), cuda::kThreads, 0, p.x, p.residual,
                 p.out, p.n, drop, keep_scale, p.seed, p.step, p.offset);
  }
}

template void dropout_apply_cuda<float>(const DropoutParams<float>&);
template void dropout_apply_cuda<bf16>(const DropoutParams<bf16>&);

}  // namespace cloze
