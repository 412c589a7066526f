#include "pool.h"

#include <algorithm>
#include <cmath>

#include "../core/sum_fixed.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per parallel_range chunk

int64_t plane_grain(int64_t work) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(work, 1)); }

// The rows (or columns) [lo, hi) of window o that lie inside [0, n).
inline void window(int64_t o, int64_t n, const PoolGeom& g, int64_t* lo, int64_t* hi) {
  const int64_t start = o * g.stride - g.pad;
  *lo = std::max<int64_t>(start, 0);
  *hi = std::min<int64_t>(start + g.k, n);
}

// Calls f(bc, o, y0, y1, x0, x1) for each output pixel o (flat in the oh × ow
// plane) of each plane bc, with its window clipped to [y0, y1) × [x0, x1).
// Planes are split between threads and each is walked in output order, so
// overlapping windows that add into a pixel do so in a fixed order.
template <typename F>
void for_each_window(const PoolGeom& g, F&& f) {
  parallel_range(g.B * g.C, plane_grain(g.oh * g.ow * g.k * g.k), [&](int64_t a, int64_t e) {
    for (int64_t bc = a; bc < e; bc++)
      for (int64_t oy = 0; oy < g.oh; oy++) {
        int64_t y0, y1;
        window(oy, g.H, g, &y0, &y1);
        for (int64_t ox = 0; ox < g.ow; ox++) {
          int64_t x0, x1;
          window(ox, g.W, g, &x0, &x1);
          f(bc, oy * g.ow + ox, y0, y1, x0, x1);
        }
      }
  });
}

}  // namespace

template <typename T>
void maxpool_forward_cpu(const PoolParams<T>& p) {
  const PoolGeom& g = p.g;
  const int64_t S = g.H * g.W, P = g.oh * g.ow;
  for_each_window(g, [&](int64_t bc, int64_t o, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    const T* x = p.x + bc * S;
    T best = x[y0 * g.W + x0];
    int64_t at = y0 * g.W + x0;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) {
        const T v = x[iy * g.W + ix];
        if (v > best || (std::isnan(v) && !std::isnan(best))) {
          best = v;
          at = iy * g.W + ix;
        }
      }
    p.y[bc * P + o] = best;
    p.argmax[bc * P + o] = static_cast<int32_t>(at);
  });
}

// Planes are split between threads and each is routed in output order, so
// overlapping windows add into a pixel in a fixed order.
template <typename T>
void maxpool_backward_cpu(const PoolParams<T>& p) {
  const PoolGeom& g = p.g;
  const int64_t S = g.H * g.W, P = g.oh * g.ow;
  parallel_range(g.B * g.C, plane_grain(P), [&](int64_t a, int64_t e) {
    for (int64_t bc = a; bc < e; bc++) {
      T* dx = p.dx + bc * S;
      const T* dy = p.dy + bc * P;
      const int32_t* am = p.argmax_in + bc * P;
      for (int64_t o = 0; o < P; o++) dx[am[o]] += dy[o];
    }
  });
}

template <typename T>
void avgpool_forward_cpu(const PoolParams<T>& p) {
  const PoolGeom& g = p.g;
  const int64_t S = g.H * g.W, P = g.oh * g.ow;
  for_each_window(g, [&](int64_t bc, int64_t o, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    const T* x = p.x + bc * S;
    T acc = 0;
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) acc += x[iy * g.W + ix];
    const int64_t div = p.count_include_pad ? g.k * g.k : (y1 - y0) * (x1 - x0);
    p.y[bc * P + o] = acc / static_cast<T>(div);
  });
}

template <typename T>
void avgpool_backward_cpu(const PoolParams<T>& p) {
  const PoolGeom& g = p.g;
  const int64_t S = g.H * g.W, P = g.oh * g.ow;
  for_each_window(g, [&](int64_t bc, int64_t o, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    T* dx = p.dx + bc * S;
    const int64_t div = p.count_include_pad ? g.k * g.k : (y1 - y0) * (x1 - x0);
    const T v = p.dy[bc * P + o] / static_cast<T>(div);
    for (int64_t iy = y0; iy < y1; iy++)
      for (int64_t ix = x0; ix < x1; ix++) dx[iy * g.W + ix] += v;
  });
}

template <typename T>
void global_avgpool_forward_cpu(const PoolParams<T>& p) {
  const int64_t S = p.g.H * p.g.W;
  parallel_range(p.g.B * p.g.C, plane_grain(S), [&](int64_t a, int64_t e) {
    for (int64_t bc = a; bc < e; bc++) p.y[bc] = S > 0 ? sum_fixed(p.x + bc * S, S) / static_cast<T>(S) : T(0);
  });
}

template <typename T>
void global_avgpool_backward_cpu(const PoolParams<T>& p) {
  const int64_t S = p.g.H * p.g.W;
  parallel_range(p.g.B * p.g.C, plane_grain(S), [&](int64_t a, int64_t e) {
    for (int64_t bc = a; bc < e; bc++) std::fill(p.dx + bc * S, p.dx + (bc + 1) * S, p.dy[bc] / static_cast<T>(S));
  });
}

template <typename T>
void apply_mask_cpu(const ApplyMaskParams<T>& p) {
  const int64_t h = p.fy > 0 ? p.H / p.fy : 0, w = p.fx > 0 ? p.W / p.fx : 0;
  parallel_range(p.B * p.C * p.H, plane_grain(p.W), [&](int64_t a, int64_t e) {
    for (int64_t r = a; r < e; r++) {  // r = (b·C + c)·H + y
      const int64_t b = r / (p.C * p.H), yy = r % p.H;
      const uint8_t* m = p.mask + (b * h + yy / p.fy) * w;
      const T* __restrict x = p.x + r * p.W;
      T* __restrict y = p.y + r * p.W;
      for (int64_t i = 0; i < p.W; i++) y[i] = m[i / p.fx] ? x[i] : T(0);
    }
  });
}

void upsample_mask_cpu(const uint8_t* mask, int64_t B, int64_t h, int64_t w, int64_t f, uint8_t* out) {
  const int64_t W = w * f;
  parallel_range(B * h * f, plane_grain(W), [&](int64_t a, int64_t e) {
    for (int64_t r = a; r < e; r++) {  // r = b·(h·f) + y
      const int64_t b = r / (h * f), yy = r % (h * f);
      const uint8_t* m = mask + (b * h + yy / f) * w;
      for (int64_t i = 0; i < W; i++) out[r * W + i] = m[i / f];
    }
  });
}

#define CLOZE_INST(T)                                                  \
  template void maxpool_forward_cpu<T>(const PoolParams<T>&);         \
  template void maxpool_backward_cpu<T>(const PoolParams<T>&);        \
  template void avgpool_forward_cpu<T>(const PoolParams<T>&);         \
  template void avgpool_backward_cpu<T>(const PoolParams<T>&);        \
  template void global_avgpool_forward_cpu<T>(const PoolParams<T>&);  \
  template void global_avgpool_backward_cpu<T>(const PoolParams<T>&); \
  template void apply_mask_cpu<T>(const ApplyMaskParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
