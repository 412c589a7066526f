// Cross-entropy and argmax over rows on the device: a warp (or a block, past
// 1024 columns) per row, fp32 throughout. Cross-entropy saves its lse as
// float32 and reduces the per-row losses to the mean on the device.
#include "../ops/cross_entropy.h"
#include "common.cuh"
#include "reduce.cuh"
#include "rows.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;

// One group per selected row m: lse[m] and that row's loss (0 when ignored).
template <typename T, int G>
__global__ void ce_forward_kernel(const T* logits, const int32_t* targets, const int32_t* rows, int32_t ignore,
                                  int64_t M, int64_t V, float* lse, float* loss_row) {
  using RG = cuda::RowGroup<G>;
  __shared__ float scratch[32];
  const int64_t m = RG::row();
  if (m >= M) return;
  const int lane = RG::lane();
  const int32_t t = targets[m];
  if (t == ignore) {  // the same for the whole group
    if (lane == 0) {
      lse[m] = 0.f;
      loss_row[m] = 0.f;
    }
    return;
  }
  const T* x = logits + (rows ? static_cast<int64_t>(rows[m]) : m) * V;
  // A target out of range is reported by the deferred check (crossEntropy with a count): read nothing for it.
  const bool valid = t >= 0 && static_cast<int64_t>(t) < V;
  float mx = -INFINITY;
  for (int64_t c = lane; c < V; c += G) mx = fmaxf(mx, ld(x, c));
  mx = RG::max(mx, scratch);
  float s = 0.f;
  for (int64_t c = lane; c < V; c += G) s += expf(ld(x, c) - mx);
  const float l = mx + logf(RG::sum(s, scratch));
  if (lane == 0) {
    lse[m] = l;
    loss_row[m] = valid ? l - ld(x, t) : NAN;
  }
}

template <typename T, int G>
__global__ void ce_backward_kernel(const T* logits, const int32_t* targets, const int32_t* rows, int32_t ignore,
                                   int64_t M, int64_t V, const float* lse, float gs, const T* grad_loss,
                                   int64_t count, T* dlogits) {
  using RG = cuda::RowGroup<G>;
  const int64_t m = RG::row();
  if (m >= M) return;
  // The loss's gradient read here when it is on the device (no wait on the host), as the fused head does.
  if (grad_loss) gs = static_cast<float>(static_cast<double>(ld(grad_loss, 0)) / static_cast<double>(count));
  const int32_t t = targets[m];
  if (t == ignore) return;  // its row of dlogits stays zero
  const int64_t row = rows ? static_cast<int64_t>(rows[m]) : m;
  const T* x = logits + row * V;
  T* d = dlogits + row * V;
  const float l = lse[m];
  for (int64_t c = RG::lane(); c < V; c += G) st(d, c, gs * expf(ld(x, c) - l) - (c == t ? gs : 0.f));
}

// The better of two (value, index) candidates: the larger value, the smaller
// index on ties; index −1 is "none yet" (NaNs are never candidates).
__device__ __forceinline__ void better(float& v, long long& i, float v2, long long i2) {
  if (i2 < 0) return;
  if (i < 0 || v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

__device__ __forceinline__ void warp_better(float& v, long long& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const long long i2 = __shfl_xor_sync(0xffffffffu, i, o);
    better(v, i, v2, i2);
  }
}

// The CPU scans `best = x[c] > x[best] ? c : best` from best = 0: the first
// index of the largest non-NaN value, or 0 when x[0] is NaN. `better` is
// associative and commutative, so any reduction tree gives that same index.
template <typename T, int G>
__global__ void argmax_kernel(const T* x, int32_t* out, int64_t rows, int64_t C) {
  using RG = cuda::RowGroup<G>;
  __shared__ float sv[32];
  __shared__ long long si[32];
  const int64_t r = RG::row();
  if (r >= rows) return;
  const T* xr = x + r * C;
  const int lane = RG::lane();
  float v = 0.f;
  long long i = -1;
  for (int64_t c = lane; c < C; c += G) {
    const float xc = ld(xr, c);
    if (!isnan(xc)) better(v, i, xc, c);
  }
  warp_better(v, i);
  if constexpr (G > 32) {
    const int warp = lane >> 5, wl = lane & 31;
    if (wl == 0) {
      sv[warp] = v;
      si[warp] = i;
    }
    __syncthreads();
    if (warp == 0) {
      v = wl < G / 32 ? sv[wl] : 0.f;
      i = wl < G / 32 ? si[wl] : -1;
      warp_better(v, i);
    }
  }
  if (lane == 0) out[r] = isnan(ld(xr, 0)) ? 0 : static_cast<int32_t>(i);
}

}  // namespace

template <typename T>
void cross_entropy_forward_cuda(const CrossEntropyParams<T>& p) {
  static_assert(std::is_same_v<stat_t<T>, float>, "CUDA cross-entropy saves a float32 lse");
  const char* op = "crossEntropy";
  float* loss_row = static_cast<float*>(cuda::alloc(static_cast<size_t>(p.M > 0 ? p.M : 1) * sizeof(float), op));
  try {
    if (p.M > 0)
      cuda::by_row_width(p.V, [&](auto rg) {
        using RG = decltype(rg);
        CLOZE_LAUNCH(op, (ce_forward_kernel<T, RG::kSize>), RG::grid(p.M), cuda::kRowBlock, 0, p.logits, p.targets,
                     p.rows, p.ignore_index, p.M, p.V, p.lse, loss_row);
      });
    // Ignored rows hold 0, so the sum over all M is the sum over the counted ones.
    cuda::sum_to_scalar(loss_row, p.M, p.count > 0 ? static_cast<double>(p.count) : 1.0, p.loss, op);
  } catch (...) {
    cuda::free(loss_row);
    throw;
  }
  cuda::free(loss_row);  // stream-ordered allocator: reuse comes after these kernels
}

template <typename T>
void cross_entropy_backward_cuda(const CrossEntropyParams<T>& p) {
  if (p.M == 0) return;
  cuda::by_row_width(p.V, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("crossEntropyBackward", (ce_backward_kernel<T, RG::kSize>), RG::grid(p.M), cuda::kRowBlock, 0,
                 p.logits, p.targets, p.rows, p.ignore_index, p.M, p.V, p.lse, static_cast<float>(p.grad_scale),
                 p.grad_loss, p.count, p.dlogits);
  });
}

template <typename T>
void argmax_rows_cuda(int64_t rows, int64_t cols, const T* x, int32_t* out) {
  if (rows == 0 || cols == 0) return;
  cuda::by_row_width(cols, [&](auto rg) {
    using RG = decltype(rg);
    CLOZE_LAUNCH("argmaxRows", (argmax_kernel<T, RG::kSize>), RG::grid(rows), cuda::kRowBlock, 0, x, out, rows, cols);
  });
}

#define CLOZE_INST(T)                                                         \
  template void cross_entropy_forward_cuda<T>(const CrossEntropyParams<T>&);  \
  template void cross_entropy_backward_cuda<T>(const CrossEntropyParams<T>&); \
  template void argmax_rows_cuda<T>(int64_t, int64_t, const T*, int32_t*);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
