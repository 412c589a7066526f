// LayerNorm on the device. Forward: a warp (or a block, past 1024 columns)
// per row, two passes over the row (mean, then the centred variance) in fp32;
// mean and rstd are saved as float32 for every input dtype. Backward: dx per
// row from Σg and Σg·x̂; dw and db as fixed-order column sums (colsum.cuh).
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
  cuda::by_row_width(p.cols, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("layerNorm", (ln_forward_kernel<T, RG::kSize>), RG::grid(p.rows), cuda::kRowBlock, 0, p.x, p.w, p.b,
                 p.y, p.mean, p.rstd, p.rows, p.cols, static_cast<float>(p.eps));
  });
}

template <typename T>
void layernorm_backward_cuda(const LayerNormParams<T>& p) {
  if (p.cols == 0) return;
  if (p.dx && p.rows > 0)
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
