// Depthwise conv2d kernels (conv_depthwise.cuh). Every output element is one
// thread that sums its terms in a fixed order; the weight gradient is a block
// per (channel, tap) with a fixed split and tree, so results never depend on
// scheduling.
#include <string>

#include "common.cuh"
#include "conv_depthwise.cuh"

namespace cloze {
namespace cuda {

namespace {

template <typename T>
__global__ void dw_forward_kernel(ConvGeom g, const T* x, const T* w, const T* bias, T* y, int64_t total) {
  const int64_t S = g.ih * g.iw, kk = g.kh * g.kw;
  CLOZE_GRID_STRIDE(i, total) {  // i = ((b·C + c)·oh + oy)·ow + ox
    const int64_t ox = i % g.ow;
    int64_t t = i / g.ow;
    const int64_t oy = t % g.oh, bc = t / g.oh, c = bc % g.ci;
    const T* xp = x + bc * S;
    const T* wk = w + c * kk;
    float acc = 0.f;
    for (int64_t ki = 0; ki < g.kh; ki++) {
      const int64_t iy = oy * g.stride - g.pad + ki;
      if (iy < 0 || iy >= g.ih) continue;
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const int64_t ix = ox * g.stride - g.pad + kj;
        if (ix < 0 || ix >= g.iw) continue;
        acc += ld(wk, ki * g.kw + kj) * ld(xp, iy * g.iw + ix);
      }
    }
    if (bias) acc += ld(bias, c);
    st(y, i, acc);
  }
}

// dx[iy, ix] = Σ over the (tap, position) pairs that read it: position
// oy = (iy + pad − ki)/stride when that is a whole number inside [0, oh).
template <typename T>
__global__ void dw_dx_kernel(ConvGeom g, const T* dy, const T* w, T* dx, int64_t total) {
  const int64_t P = g.oh * g.ow, kk = g.kh * g.kw;
  CLOZE_GRID_STRIDE(i, total) {  // i = ((b·C + c)·ih + iy)·iw + ix
    const int64_t ix = i % g.iw;
    int64_t t = i / g.iw;
    const int64_t iy = t % g.ih, bc = t / g.ih, c = bc % g.ci;
    const T* dyp = dy + bc * P;
    const T* wk = w + c * kk;
    float acc = 0.f;
    for (int64_t ki = 0; ki < g.kh; ki++) {
      const int64_t ty = iy + g.pad - ki;
      if (ty < 0) break;  // ty only falls as ki grows
      if (ty % g.stride != 0 || ty / g.stride >= g.oh) continue;
      const int64_t oy = ty / g.stride;
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const int64_t tx = ix + g.pad - kj;
        if (tx < 0) break;
        if (tx % g.stride != 0 || tx / g.stride >= g.ow) continue;
        acc += ld(wk, ki * g.kw + kj) * ld(dyp, oy * g.ow + tx / g.stride);
      }
    }
    st(dx, i, acc);
  }
}

// One block per (channel, tap): dw[c, ki, kj] = Σ_b Σ_(oy, ox) dy·x at the tap's pixel.
// Blocks of one channel are adjacent, so that channel's planes stay in L2.
template <typename T>
__global__ void dw_dw_kernel(ConvGeom g, const T* x, const T* dy, T* dw) {
  __shared__ float scratch[32];
  const int64_t kk = g.kh * g.kw, blk = blockIdx.x, c = blk / kk, tap = blk % kk;
  const int64_t ki = tap / g.kw, kj = tap % g.kw;
  const int64_t P = g.oh * g.ow, S = g.ih * g.iw, C = g.ci;
  float acc = 0.f;
  for (int64_t e = threadIdx.x; e < g.B * P; e += blockDim.x) {
    const int64_t b = e / P, pp = e - b * P, oy = pp / g.ow, ox = pp % g.ow;
    const int64_t iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj;
    if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
    acc += ld(dy, (b * C + c) * P + pp) * ld(x, (b * C + c) * S + iy * g.iw + ix);
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) st(dw, blk, acc);
}

}  // namespace

template <typename T>
void depthwise_forward(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y, const char* op) {
  const int64_t total = g.B * g.ci * g.oh * g.ow;
  if (total == 0) return;
  CLOZE_LAUNCH(op, dw_forward_kernel<T>, blocks_for(total), kThreads, 0, g, x, w, bias, y, total);
}

template <typename T>
void depthwise_dx(const ConvGeom& g, const T* dy, const T* w, T* dx, const char* op) {
  const int64_t total = g.B * g.ci * g.ih * g.iw;
  if (total == 0) return;
  CLOZE_LAUNCH(op, dw_dx_kernel<T>, blocks_for(total), kThreads, 0, g, dy, w, dx, total);
}

template <typename T>
void depthwise_dw(const ConvGeom& g, const T* x, const T* dy, T* dw, const char* op) {
  const int64_t blocks = g.ci * g.kh * g.kw;
  if (blocks == 0) return;
  if (blocks > INT32_MAX) fail(ErrCode::Shape, op, "more than 2^31 depthwise weights (" + std::to_string(blocks) + ")");
  // With B = 0 every block still writes its (zero) sum.
  CLOZE_LAUNCH(op, dw_dw_kernel<T>, static_cast<unsigned>(blocks), kThreads, 0, g, x, dy, dw);
}

#define CLOZE_INST(T)                                                                                        \
  template void depthwise_forward<T>(const ConvGeom&, const T*, const T*, const T*, T*, const char*);       \
  template void depthwise_dx<T>(const ConvGeom&, const T*, const T*, T*, const char*);                       \
  template void depthwise_dw<T>(const ConvGeom&, const T*, const T*, T*, const char*);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cuda
}  // namespace cloze
