// Pooling, masks and their validation on CUDA (ops/pool.h). One thread per
// output element everywhere but two places: the global average is a warp per
// plane, and the max backward is a thread per plane that routes its gradients
// in output order, as the CPU does. argmax carries no window geometry, so a
// gather over windows is impossible, and float atomics would make overlapping
// windows (k > stride) add in a different order each run.
#include <algorithm>

#include "../ops/pool.h"
#include "common.cuh"

namespace cloze {

namespace {

using cuda::blocks_for;
using cuda::kThreads;
using cuda::ld;
using cuda::st;

// Window rows (or columns) [lo, hi) of output o that lie inside [0, n).
__device__ __forceinline__ void window(int64_t o, int64_t n, const PoolGeom& g, int64_t* lo, int64_t* hi) {
  const int64_t start = o * g.stride - g.pad;
  *lo = start > 0 ? start : 0;
  *hi = start + g.k < n ? start + g.k : n;
}

template <typename T>
__global__ void maxpool_forward_kernel(PoolGeom g, const T* x, T* y, int32_t* argmax, int64_t total) {
  const int64_t S = g.H * g.W;
  CLOZE_GRID_STRIDE(i, total) {  // i = (bc·oh + oy)·ow + ox
    const int64_t ox = i % g.ow, t = i / g.ow, oy = t % g.oh, bc = t / g.oh;
    int64_t y0, y1, x0, x1;
    window(oy, g.H, g, &y0, &y1);
    window(ox, g.W, g, &x0, &x1);
    const T* xp = x + bc * S;
    int64_t at = y0 * g.W + x0;
    float best = ld(xp, at);
    // The first maximum in row-major window order wins; a NaN wins over numbers.
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) {
        const float v = ld(xp, iy * g.W + ix);
        if (v > best || (isnan(v) && !isnan(best))) {
          best = v;
          at = iy * g.W + ix;
        }
      }
    st(y, i, best);
    argmax[i] = static_cast<int32_t>(at);
  }
}

// out[bc, argmax[o]] += dy[bc, o] for o in order; out is zero-filled (A = float: dx itself, or an fp32 sum for bf16).
template <typename T, typename A>
__global__ void maxpool_backward_kernel(const T* dy, const int32_t* argmax, A* out, int64_t planes, int64_t P, int64_t S) {
  CLOZE_GRID_STRIDE(bc, planes) {
    A* o = out + bc * S;
    const T* d = dy + bc * P;
    const int32_t* am = argmax + bc * P;
    for (int64_t k = 0; k < P; k++) st(o, am[k], ld(o, am[k]) + ld(d, k));
  }
}

template <typename T>
__global__ void avgpool_forward_kernel(PoolGeom g, bool include_pad, const T* x, T* y, int64_t total) {
  const int64_t S = g.H * g.W;
  CLOZE_GRID_STRIDE(i, total) {
    const int64_t ox = i % g.ow, t = i / g.ow, oy = t % g.oh, bc = t / g.oh;
    int64_t y0, y1, x0, x1;
    window(oy, g.H, g, &y0, &y1);
    window(ox, g.W, g, &x0, &x1);
    const T* xp = x + bc * S;
    float acc = 0.f;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) acc += ld(xp, iy * g.W + ix);
    const int64_t div = include_pad ? g.k * g.k : (y1 - y0) * (x1 - x0);
    st(y, i, acc / static_cast<float>(div));
  }
}

// dx[iy, ix] = Σ dy[o]/div(o) over the windows o holding the pixel, in output
// order (the CPU's order of additions). Window oy holds row iy when
// oy·s − p ≤ iy < oy·s − p + k.
template <typename T>
__global__ void avgpool_backward_kernel(PoolGeom g, bool include_pad, const T* dy, T* dx, int64_t total) {
  const int64_t P = g.oh * g.ow;
  CLOZE_GRID_STRIDE(i, total) {  // i = (bc·H + iy)·W + ix
    const int64_t ix = i % g.W, t = i / g.W, iy = t % g.H, bc = t / g.H;
    const int64_t ny = iy + g.pad - g.k + 1, nx = ix + g.pad - g.k + 1;
    const int64_t oy0 = ny <= 0 ? 0 : (ny + g.stride - 1) / g.stride;
    const int64_t ox0 = nx <= 0 ? 0 : (nx + g.stride - 1) / g.stride;
    const int64_t oy1 = min(g.oh - 1, (iy + g.pad) / g.stride), ox1 = min(g.ow - 1, (ix + g.pad) / g.stride);
    const T* d = dy + bc * P;
    float acc = 0.f;
    for (int64_t oy = oy0; oy <= oy1; oy++) {
      int64_t y0, y1;
      window(oy, g.H, g, &y0, &y1);
      for (int64_t ox = ox0; ox <= ox1; ox++) {
        int64_t x0, x1;
        window(ox, g.W, g, &x0, &x1);
        const int64_t div = include_pad ? g.k * g.k : (y1 - y0) * (x1 - x0);
        acc += ld(d, oy * g.ow + ox) / static_cast<float>(div);
      }
    }
    st(dx, i, acc);
  }
}

constexpr int kWarpsPerBlock = kThreads / 32;

// y[bc] = mean of plane bc: a warp per plane, lanes striding the plane, then a fixed shuffle tree.
template <typename T>
__global__ void global_avgpool_kernel(const T* x, T* y, int64_t planes, int64_t S) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t bc = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; bc < planes;
       bc += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    float acc = 0.f;
    for (int64_t s = lane; s < S; s += 32) acc += ld(x, bc * S + s);
    acc = cuda::warp_sum(acc);
    if (lane == 0) st(y, bc, S > 0 ? acc / static_cast<float>(S) : 0.f);
  }
}

template <typename T>
__global__ void global_avgpool_backward_kernel(const T* dy, T* dx, int64_t S, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) st(dx, i, ld(dy, i / S) / static_cast<float>(S));
}

template <typename T>
__global__ void apply_mask_kernel(ApplyMaskParams<T> p, int64_t total) {
  const int64_t h = p.H / p.fy, w = p.W / p.fx;
  CLOZE_GRID_STRIDE(i, total) {  // i = ((b·C + c)·H + yy)·W + xx
    const int64_t xx = i % p.W, r = i / p.W, yy = r % p.H, b = r / (p.C * p.H);
    const bool on = p.mask[(b * h + yy / p.fy) * w + xx / p.fx] != 0;
    st(p.y, i, on ? ld(p.x, i) : 0.f);  // exactly 0 where masked, even when x is not finite
  }
}

__global__ void upsample_mask_kernel(const uint8_t* mask, int64_t h, int64_t w, int64_t f, uint8_t* out, int64_t total) {
  const int64_t W = w * f, Hf = h * f;
  CLOZE_GRID_STRIDE(i, total) {  // i = (b·Hf + yy)·W + xx
    const int64_t xx = i % W, r = i / W, yy = r % Hf, b = r / Hf;
    out[i] = mask[(b * h + yy / f) * w + xx / f];
  }
}

// *first = max over bad positions i of n − i, so the smallest bad i wins and 0 means none.
__global__ void mask_invalid_kernel(const uint8_t* m, int64_t n, unsigned long long* first) {
  CLOZE_GRID_STRIDE(i, n) if (m[i] > 1) atomicMax(first, static_cast<unsigned long long>(n - i));
}
__global__ void index_invalid_kernel(const int32_t* idx, int64_t n, int64_t S, unsigned long long* first) {
  CLOZE_GRID_STRIDE(i, n) if (idx[i] < 0 || idx[i] >= S) atomicMax(first, static_cast<unsigned long long>(n - i));
}

// Runs launch(first) on a zeroed device word and reads back the first bad position, or −1.
template <typename F>
int64_t first_invalid(int64_t n, const char* op, F&& launch) {
  if (n == 0) return -1;
  void* d = cuda::alloc(sizeof(unsigned long long), op);
  unsigned long long v = 0;
  try {
    cuda::memset_zero(d, sizeof v, op);
    launch(static_cast<unsigned long long*>(d));
    cuda::copy(&v, false, d, true, sizeof v, op);
  } catch (...) {
    cuda::free(d);
    throw;
  }
  cuda::free(d);
  return v == 0 ? -1 : n - static_cast<int64_t>(v);
}

template <typename T>
void launch_1d(const char* op, int64_t total, void (*kernel)(PoolGeom, bool, const T*, T*, int64_t), const PoolGeom& g,
               bool include_pad, const T* src, T* dst) {
  if (total == 0) return;
  CLOZE_LAUNCH(op, kernel, blocks_for(total), kThreads, 0, g, include_pad, src, dst, total);
}

}  // namespace

template <typename T>
void maxpool_forward_cuda(const PoolParams<T>& p) {
  const int64_t total = p.g.B * p.g.C * p.g.oh * p.g.ow;
  if (total == 0) return;
  CLOZE_LAUNCH("maxPool2d", maxpool_forward_kernel<T>, blocks_for(total), kThreads, 0, p.g, p.x, p.y, p.argmax, total);
}

template <typename T>
void maxpool_backward_cuda(const PoolParams<T>& p) {
  const char* op = "maxPool2dBackward";
  const int64_t planes = p.g.B * p.g.C, S = p.g.H * p.g.W, P = p.g.oh * p.g.ow, n = planes * S;
  if (n == 0) return;
  constexpr int kPlaneThreads = 64;  // few planes per block: spread the serial planes over the SMs
  if constexpr (std::is_same_v<T, float>) {
    cuda::memset_zero(p.dx, static_cast<size_t>(n) * sizeof(float), op);
    CLOZE_LAUNCH(op, (maxpool_backward_kernel<T, float>), blocks_for(planes, kPlaneThreads), kPlaneThreads, 0, p.dy,
                 p.argmax_in, p.dx, planes, P, S);
  } else {
    // bfloat16: sum in an fp32 plane, round once.
    float* acc = static_cast<float*>(cuda::alloc(static_cast<size_t>(n) * sizeof(float), op));
    try {
      cuda::memset_zero(acc, static_cast<size_t>(n) * sizeof(float), op);
      CLOZE_LAUNCH(op, (maxpool_backward_kernel<T, float>), blocks_for(planes, kPlaneThreads), kPlaneThreads, 0, p.dy,
                   p.argmax_in, acc, planes, P, S);
      cuda::cast(acc, static_cast<int>(DType::F32), p.dx, static_cast<int>(DType::BF16), n, op);
    } catch (...) {
      cuda::free(acc);
      throw;
    }
    cuda::free(acc);
  }
}

template <typename T>
void avgpool_forward_cuda(const PoolParams<T>& p) {
  launch_1d<T>("avgPool2d", p.g.B * p.g.C * p.g.oh * p.g.ow, avgpool_forward_kernel<T>, p.g, p.count_include_pad, p.x, p.y);
}

template <typename T>
void avgpool_backward_cuda(const PoolParams<T>& p) {
  launch_1d<T>("avgPool2dBackward", p.g.B * p.g.C * p.g.H * p.g.W, avgpool_backward_kernel<T>, p.g, p.count_include_pad,
               p.dy, p.dx);
}

template <typename T>
void global_avgpool_forward_cuda(const PoolParams<T>& p) {
  const int64_t planes = p.g.B * p.g.C;
  if (planes == 0) return;
  CLOZE_LAUNCH("globalAvgPool", global_avgpool_kernel<T>, blocks_for(planes, kWarpsPerBlock), kThreads, 0, p.x, p.y,
               planes, p.g.H * p.g.W);
}

template <typename T>
void global_avgpool_backward_cuda(const PoolParams<T>& p) {
  const int64_t S = p.g.H * p.g.W, total = p.g.B * p.g.C * S;
  if (total == 0) return;
  CLOZE_LAUNCH("globalAvgPoolBackward", global_avgpool_backward_kernel<T>, blocks_for(total), kThreads, 0, p.dy, p.dx,
               S, total);
}

template <typename T>
void apply_mask_cuda(const ApplyMaskParams<T>& p) {
  const int64_t total = p.B * p.C * p.H * p.W;
  if (total == 0) return;
  CLOZE_LAUNCH("applyMask", apply_mask_kernel<T>, blocks_for(total), kThreads, 0, p, total);
}

void upsample_mask_cuda(const uint8_t* mask, int64_t B, int64_t h, int64_t w, int64_t f, uint8_t* out) {
  const int64_t total = B * h * f * w * f;
  if (total == 0) return;
  CLOZE_LAUNCH("upsampleMask", upsample_mask_kernel, blocks_for(total), kThreads, 0, mask, h, w, f, out, total);
}

int64_t mask_first_invalid_cuda(const uint8_t* m, int64_t n, int64_t* value, const char* op) {
  const int64_t at = first_invalid(n, op, [&](unsigned long long* first) {
    CLOZE_LAUNCH(op, mask_invalid_kernel, blocks_for(n), kThreads, 0, m, n, first);
  });
  if (at >= 0) {
    uint8_t v = 0;
    cuda::copy(&v, false, m + at, true, 1, op);
    *value = v;
  }
  return at;
}

int64_t index_first_invalid_cuda(const int32_t* idx, int64_t n, int64_t S, int64_t* value, const char* op) {
  const int64_t at = first_invalid(n, op, [&](unsigned long long* first) {
    CLOZE_LAUNCH(op, index_invalid_kernel, blocks_for(n), kThreads, 0, idx, n, S, first);
  });
  if (at >= 0) {
    int32_t v = 0;
    cuda::copy(&v, false, idx + at, true, sizeof v, op);
    *value = v;
  }
  return at;
}

#define CLOZE_INST(T)                                                   \
  template void maxpool_forward_cuda<T>(const PoolParams<T>&);         \
  template void maxpool_backward_cuda<T>(const PoolParams<T>&);        \
  template void avgpool_forward_cuda<T>(const PoolParams<T>&);         \
  template void avgpool_backward_cuda<T>(const PoolParams<T>&);        \
  template void global_avgpool_forward_cuda<T>(const PoolParams<T>&);  \
  template void global_avgpool_backward_cuda<T>(const PoolParams<T>&); \
  template void apply_mask_cuda<T>(const ApplyMaskParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
