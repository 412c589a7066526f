// Softmax over rows on the device: a warp (or a block, past 1024 columns) per
// row, fp32 throughout.
#include "../ops/softmax.h"
#include "common.cuh"
#include "rows.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;

template <typename T, int G>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t rows, int64_t C) {
  using RG = cuda::RowGroup<G>;
  __shared__ float scratch[32];
  const int64_t r = RG::row();
  if (r >= rows) return;
  const T* xr = x + r * C;
  T* yr = y + r * C;
  const int lane = RG::lane();
  float m = -INFINITY;
  for (int64_t c = lane; c < C; c += G) m = fmaxf(m, ld(xr, c));
  m = RG::max(m, scratch);
  if (m == -INFINITY) {  // a fully masked row gives zeros, not NaN (the same for the whole group)
    for (int64_t c = lane; c < C; c += G) st(yr, c, 0.f);
    return;
  }
  float s = 0.f;
  for (int64_t c = lane; c < C; c += G) {
    const float v = ld(xr, c);
    s += v == -INFINITY ? 0.f : expf(v - m);
  }
  const float inv = 1.f / RG::sum(s, scratch);
  // exp again rather than a store and a reload: a bf16 y would round twice.
  for (int64_t c = lane; c < C; c += G) {
    const float v = ld(xr, c);
    st(yr, c, v == -INFINITY ? 0.f : expf(v - m) * inv);
  }
}

template <typename T, int G>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, int64_t rows, int64_t C) {
  using RG = cuda::RowGroup<G>;
  __shared__ float scratch[32];
  const int64_t r = RG::row();
  if (r >= rows) return;
  const int lane = RG::lane();
  const T* yr = y + r * C;
  const T* dyr = dy + r * C;
  T* dxr = dx + r * C;
  float d = 0.f;
  for (int64_t c = lane; c < C; c += G) d += ld(yr, c) * ld(dyr, c);
  const float dot = RG::sum(d, scratch);
  for (int64_t c = lane; c < C; c += G) st(dxr, c, ld(yr, c) * (ld(dyr, c) - dot));
}

}  // namespace

template <typename T>
void softmax_forward_cuda(const SoftmaxParams<T>& p) {
  if (p.rows == 0 || p.cols == 0) return;
  cuda::by_row_width(p.cols, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("softmax", (softmax_forward_kernel<T, RG::kSize>), RG::grid(p.rows), cuda::kRowBlock, 0, p.x, p.y,
                 p.rows, p.cols);
  });
}

template <typename T>
void softmax_backward_cuda(const SoftmaxParams<T>& p) {
  if (p.rows == 0 || p.cols == 0) return;
  cuda::by_row_width(p.cols, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("softmaxBackward", (softmax_backward_kernel<T, RG::kSize>), RG::grid(p.rows), cuda::kRowBlock, 0,
                 p.y, p.dy, p.dx, p.rows, p.cols);
  });
}

#define CLOZE_INST(T)                                              \
  template void softmax_forward_cuda<T>(const SoftmaxParams<T>&);  \
  template void softmax_backward_cuda<T>(const SoftmaxParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
