// LayerNorm on the device. Mean and rstd are saved as float32 for every input
// dtype; all arithmetic is fp32, the variance is the centred two-pass one.
//
// Fast path (ln_*_vec_kernel): C a multiple of kVec = 16 / sizeof(T) (8 for
// bfloat16, 4 for float32), C / kVec ≤ 32·kMaxPacks packs (2048 bf16 or 1024
// float32 columns), and every tensor the kernel touches 16-byte aligned. A
// warp per row, kVecWarps rows per block; lane l holds packs l, l + 32, …
// (at most P of them, P a template parameter picked at launch) in registers,
// read once with 16-byte loads. Mean, then the centred variance (forward) or
// Σg and Σg·x̂ (backward) come from the registers, each a per-lane sum over
// its packs in order and then a fixed warp shuffle tree, and the output goes
// out with 16-byte stores. One read of x (and dy) per row, one write.
//
// Otherwise (odd widths, unaligned views, wider rows): a warp (or a block,
// past 1024 columns; rows.cuh) per row with scalar loads, two passes over the
// row for the statistics and a third for the output (forward; the backward
// reads x and dy twice).
//
// Either way a row's result depends on its width (and path) alone, never on
// timing. dw and db are fixed-order column sums (colsum.cuh).
#include <cstdint>
#include <type_traits>

#include "../ops/layernorm.h"
#include "colsum.cuh"
#include "common.cuh"
#include "rows.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;

template <typename T, int G>
__global__ void ln_forward_kernel(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows,
                                  int64_t C, float eps) {
  using RG = cuda::RowGroup<G>;
  __shared__ float scratch[32];
  const int64_t r = RG::row();
  if (r >= rows) return;  // a whole warp, or never (one block per row)
  const T* xr = x + r * C;
  T* yr = y + r * C;
  const int lane = RG::lane();
  const float invC = 1.f / static_cast<float>(C);
  float s = 0.f;
  for (int64_t c = lane; c < C; c += G) s += ld(xr, c);
  const float mu = RG::sum(s, scratch) * invC;
  float v = 0.f;
  for (int64_t c = lane; c < C; c += G) {
    const float d = ld(xr, c) - mu;
    v += d * d;
  }
  const float var = RG::sum(v, scratch) * invC;
  const float rs = 1.f / sqrtf(var + eps);
  for (int64_t c = lane; c < C; c += G) {
    float o = (ld(xr, c) - mu) * rs;
    if (w) o *= ld(w, c);
    if (b) o += ld(b, c);
    st(yr, c, o);
  }
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <typename T, int G>
__global__ void ln_backward_dx_kernel(const T* x, const T* w, const float* mean, const float* rstd, const T* dy, T* dx,
                                      int64_t rows, int64_t C) {
  using RG = cuda::RowGroup<G>;
  __shared__ float scratch[32];
  const int64_t r = RG::row();
  if (r >= rows) return;
  const T* xr = x + r * C;
  const T* dyr = dy + r * C;
  T* dxr = dx + r * C;
  const int lane = RG::lane();
  const float mu = mean[r], rs = rstd[r];
  float sg = 0.f, sgx = 0.f;
  for (int64_t c = lane; c < C; c += G) {
    const float xhat = (ld(xr, c) - mu) * rs;
    const float g = w ? ld(dyr, c) * ld(w, c) : ld(dyr, c);
    sg += g;
    sgx += g * xhat;
  }
  const float invC = 1.f / static_cast<float>(C);
  const float mg = RG::sum(sg, scratch) * invC;
  const float mgx = RG::sum(sgx, scratch) * invC;
  for (int64_t c = lane; c < C; c += G) {
    const float xhat = (ld(xr, c) - mu) * rs;
    const float g = w ? ld(dyr, c) * ld(w, c) : ld(dyr, c);
    st(dxr, c, rs * (g - mg - xhat * mgx));
  }
}

// ---- fast path: a row in registers, 16-byte loads and stores ----

constexpr int kVecWarps = 8;  // rows (one per warp) per block
constexpr int kMaxPacks = 8;  // packs per lane, at most

// 16 bytes of T as kVec floats (bfloat16 widened exactly, narrowed to nearest
// even as from_f does). j: the pack's index, p 16-byte aligned.
template <typename T>
struct Pack;
template <>
struct Pack<float> {
  static constexpr int kVec = 4;
  __device__ __forceinline__ static void load(const float* p, int j, float* v) {
    const float4 q = reinterpret_cast<const float4*>(p)[j];
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  }
  __device__ __forceinline__ static void store(float* p, int j, const float* v) {
    reinterpret_cast<float4*>(p)[j] = make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <>
struct Pack<bf16> {
  static constexpr int kVec = 8;
  __device__ __forceinline__ static void load(const bf16* p, int j, float* v) {
    const uint4 q = reinterpret_cast<const uint4*>(p)[j];
    const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {  // element 2i is the low half
      v[2 * i] = __uint_as_float(u[i] << 16);
      v[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  }
  __device__ __forceinline__ static void store(bf16* p, int j, const float* v) {
    uint32_t u[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);  // .x (low) = v[2i]
      u[i] = *reinterpret_cast<const uint32_t*>(&h);
    }
    reinterpret_cast<uint4*>(p)[j] = make_uint4(u[0], u[1], u[2], u[3]);
  }
};

// A warp per row; lane l holds packs l + 32k (k < P) of the row's C / kVec.
template <typename T, int P>
__global__ void __launch_bounds__(kVecWarps * 32)
    ln_forward_vec_kernel(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows, int C,
                          float eps) {
  constexpr int K = Pack<T>::kVec;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kVecWarps + threadIdx.x / 32;
  if (r >= rows) return;  // a whole warp
  const int lane = threadIdx.x % 32;
  const int np = C / K;
  const T* xr = x + r * C;
  float v[P][K];
#pragma unroll
  for (int k = 0; k < P; k++)
    if (lane + 32 * k < np) Pack<T>::load(xr, lane + 32 * k, v[k]);
  const float invC = 1.f / static_cast<float>(C);
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < P; k++)
    if (lane + 32 * k < np)
#pragma unroll
      for (int i = 0; i < K; i++) s += v[k][i];
  const float mu = cuda::warp_sum(s) * invC;
  float q = 0.f;
#pragma unroll
  for (int k = 0; k < P; k++)
    if (lane + 32 * k < np)
#pragma unroll
      for (int i = 0; i < K; i++) {
        const float d = v[k][i] - mu;
        q += d * d;
      }
  const float var = cuda::warp_sum(q) * invC;
  const float rs = 1.f / sqrtf(var + eps);
  T* yr = y + r * C;
#pragma unroll
  for (int k = 0; k < P; k++) {
    const int j = lane + 32 * k;
    if (j >= np) continue;
    float o[K], wv[K], bv[K];
    if (w) Pack<T>::load(w, j, wv);
    if (b) Pack<T>::load(b, j, bv);
#pragma unroll
    for (int i = 0; i < K; i++) {
      o[i] = (v[k][i] - mu) * rs;
      if (w) o[i] *= wv[i];
      if (b) o[i] += bv[i];
    }
    Pack<T>::store(yr, j, o);
  }
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <typename T, int P>
__global__ void __launch_bounds__(kVecWarps * 32)
    ln_backward_dx_vec_kernel(const T* x, const T* w, const float* mean, const float* rstd, const T* dy, T* dx,
                              int64_t rows, int C) {
  constexpr int K = Pack<T>::kVec;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kVecWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const int np = C / K;
  const T* xr = x + r * C;
  const T* dyr = dy + r * C;
  float xh[P][K], g[P][K];  // x, then x̂; dy, then g = dy·w
#pragma unroll
  for (int k = 0; k < P; k++)
    if (lane + 32 * k < np) {
      Pack<T>::load(xr, lane + 32 * k, xh[k]);
      Pack<T>::load(dyr, lane + 32 * k, g[k]);
    }
  const float mu = mean[r], rs = rstd[r];
  float sg = 0.f, sgx = 0.f;
#pragma unroll
  for (int k = 0; k < P; k++) {
    const int j = lane + 32 * k;
    if (j >= np) continue;
    float wv[K];
    if (w) Pack<T>::load(w, j, wv);
#pragma unroll
    for (int i = 0; i < K; i++) {
      xh[k][i] = (xh[k][i] - mu) * rs;
      if (w) g[k][i] *= wv[i];
      sg += g[k][i];
      sgx += g[k][i] * xh[k][i];
    }
  }
  const float invC = 1.f / static_cast<float>(C);
  const float mg = cuda::warp_sum(sg) * invC;
  const float mgx = cuda::warp_sum(sgx) * invC;
  T* dxr = dx + r * C;
#pragma unroll
  for (int k = 0; k < P; k++) {
    const int j = lane + 32 * k;
    if (j >= np) continue;
    float o[K];
#pragma unroll
    for (int i = 0; i < K; i++) o[i] = rs * (g[k][i] - mg - xh[k][i] * mgx);
    Pack<T>::store(dxr, j, o);
  }
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }  // null counts as aligned

// Packs per lane for the fast path at width C, rounded up to an instantiated
// count (1, 2, 3, 4, 6, 8); 0 where C is not a multiple of kVec or too wide.
template <typename T>
int vec_packs(int64_t C) {
  constexpr int K = Pack<T>::kVec;
  if (C % K != 0 || C / K > 32 * kMaxPacks) return 0;
  const int q = static_cast<int>((C / K + 31) / 32);
  return q <= 4 ? q : q <= 6 ? 6 : 8;
}

// Calls f(std::integral_constant<int, P>{}) for P = packs (one of vec_packs' counts).
template <typename F>
void by_packs(int packs, F&& f) {
  switch (packs) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

inline unsigned vec_grid(int64_t rows) { return static_cast<unsigned>((rows + kVecWarps - 1) / kVecWarps); }

// dw[c] = Σ_r dy·x̂, db[c] = Σ_r dy.
template <typename T>
struct LnParamTerms {
  const T* x;
  const T* dy;
  const float* mean;
  const float* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float* acc) const {
    const float g = ld(dy, r * C + c);
    acc[0] += g * ((ld(x, r * C + c) - mean[r]) * rstd[r]);
    acc[1] += g;
  }
};

}  // namespace

template <typename T>
void layernorm_forward_cuda(const LayerNormParams<T>& p) {
  static_assert(std::is_same_v<stat_t<T>, float>, "CUDA LayerNorm saves float32 statistics");
  if (p.rows == 0 || p.cols == 0) return;
  const int packs = vec_packs<T>(p.cols);
  if (packs > 0 && aligned16(p.x) && aligned16(p.w) && aligned16(p.b) && aligned16(p.y)) {
    by_packs(packs, [&](auto pk) {
      CLOZE_LAUNCH("layerNorm", (ln_forward_vec_kernel<T, decltype(pk)::value>), vec_grid(p.rows), kVecWarps * 32, 0,
                   p.x, p.w, p.b, p.y, p.mean, p.rstd, p.rows, static_cast<int>(p.cols), static_cast<float>(p.eps));
    });
    return;
  }
  cuda::by_row_width(p.cols, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("layerNorm", (ln_forward_kernel<T, RG::kSize>), RG::grid(p.rows), cuda::kRowBlock, 0, p.x, p.w, p.b,
                 p.y, p.mean, p.rstd, p.rows, p.cols, static_cast<float>(p.eps));
  });
}

template <typename T>
void layernorm_backward_cuda(const LayerNormParams<T>& p) {
  if (p.cols == 0) return;
  const int packs = vec_packs<T>(p.cols);
  if (p.dx && p.rows > 0 && packs > 0 && aligned16(p.x) && aligned16(p.w) && aligned16(p.dy) && aligned16(p.dx))
    by_packs(packs, [&](auto pk) {
      CLOZE_LAUNCH("layerNormBackward", (ln_backward_dx_vec_kernel<T, decltype(pk)::value>), vec_grid(p.rows),
                   kVecWarps * 32, 0, p.x, p.w, p.mean, p.rstd, p.dy, p.dx, p.rows, static_cast<int>(p.cols));
    });
  else if (p.dx && p.rows > 0)
    cuda::by_row_width(p.cols, [&](auto rg) {
      using RG = decltype(rg);
      CLOZE_LAUNCH("layerNormBackward", (ln_backward_dx_kernel<T, RG::kSize>), RG::grid(p.rows), cuda::kRowBlock, 0,
                   p.x, p.w, p.mean, p.rstd, p.dy, p.dx, p.rows, p.cols);
    });
  if (p.dw || p.db)
    cuda::column_sums<2, T>(p.rows, p.cols, LnParamTerms<T>{p.x, p.dy, p.mean, p.rstd, p.cols}, p.dw, p.db,
                            "layerNormBackward");
}

template void layernorm_forward_cuda<float>(const LayerNormParams<float>&);
template void layernorm_backward_cuda<float>(const LayerNormParams<float>&);
template void layernorm_forward_cuda<bf16>(const LayerNormParams<bf16>&);
template void layernorm_backward_cuda<bf16>(const LayerNormParams<bf16>&);

}  // namespace cloze
