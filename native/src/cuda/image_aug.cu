// imageBatch on the device (ops/image_aug.h): gather from a uint8 image set
// held on the device, bilinear crop-resize, horizontal flip and normalisation
// in one pass, one thread per output element.
//
// Tap coordinates are computed in double as on the CPU, where -march=native
// contracts start + (k + ½)·step into one fma; the kernel writes that fma
// explicitly. Bilinear sampling is continuous in the coordinate, so a last-bit
// difference (a CPU built without FMA) moves only a negligible weight between taps.
#include "../ops/image_aug.h"
#include "common.cuh"

namespace cloze {

using namespace cuda;

namespace {

struct DevTap {
  int64_t lo, hi;
  float w;
};

// As axis_taps in ops/image_aug.cc, for one output position k.
__device__ __forceinline__ DevTap axis_tap(double start, double extent, int64_t k, int64_t n, int64_t len, bool reverse) {
  const double step = extent / static_cast<double>(n), top = static_cast<double>(len - 1);
  const int64_t src_k = reverse ? n - 1 - k : k;
  double s = __fma_rn(static_cast<double>(src_k) + 0.5, step, start) - 0.5;
  if (!(s > 0)) s = 0;  // also catches NaN
  if (s > top) s = top;
  const int64_t lo = static_cast<int64_t>(s);
  return {lo, lo + 1 < len ? lo + 1 : len - 1, static_cast<float>(s - static_cast<double>(lo))};
}

template <typename T>
__global__ void image_batch_kernel(const uint8_t* __restrict images, const int32_t* __restrict indices,
                                   const T* __restrict boxes, const uint8_t* __restrict flip, const T* __restrict mean,
                                   const T* __restrict stdv, T* __restrict out, int64_t C, int64_t H, int64_t W, int64_t OH,
                                   int64_t OW, int64_t n) {
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t j = e % OW, i = (e / OW) % OH, bc = e / (OW * OH), c = bc % C, b = bc / C;
    const T* box = boxes + b * 4;
    const DevTap ty = axis_tap(static_cast<double>(ld(box, 0)), static_cast<double>(ld(box, 2)), i, OH, H, false);
    const DevTap tx = axis_tap(static_cast<double>(ld(box, 1)), static_cast<double>(ld(box, 3)), j, OW, W, flip[b] != 0);
    const uint8_t* src = images + (static_cast<int64_t>(indices[b]) * C + c) * H * W;
    const uint8_t* row0 = src + ty.lo * W;
    const uint8_t* row1 = src + ty.hi * W;
    const float wx1 = tx.w, wx0 = 1.f - wx1, wy1 = ty.w, wy0 = 1.f - wy1;
    const float top = wx0 * static_cast<float>(row0[tx.lo]) + wx1 * static_cast<float>(row0[tx.hi]);
    const float bot = wx0 * static_cast<float>(row1[tx.lo]) + wx1 * static_cast<float>(row1[tx.hi]);
    const float v = wy0 * top + wy1 * bot;
    // Divisions, not reciprocals, as the CPU: an identity box reproduces the formula exactly.
    st(out, e, (v / 255.f - ld(mean, c)) / ld(stdv, c));
  }
}

}  // namespace

template <typename T>
void image_batch_cuda(const ImageBatchParams<T>& p) {
  const int64_t n = p.B * p.C * p.OH * p.OW;
  if (n == 0) return;
  CLOZE_LAUNCH("imageBatch", image_batch_kernel<T>, blocks_for(n), kThreads, 0, p.images, p.indices, p.boxes, p.flip, p.mean,
               p.std, p.out, p.C, p.H, p.W, p.OH, p.OW, n);
}

template void image_batch_cuda<float>(const ImageBatchParams<float>&);
template void image_batch_cuda<bf16>(const ImageBatchParams<bf16>&);

}  // namespace cloze
