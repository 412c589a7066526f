// Masked-image-modeling losses on the device (ops/mim_loss.h). Per-term values
// (one per patch, image) land in float32 slots; one block then sums the slots
// in a fixed order and writes the 0-d loss, so nothing crosses to the host and
// the result does not depend on the launch geometry.
#include <type_traits>

#include "../ops/mim_loss.h"
#include "common.cuh"

namespace cloze {

using namespace cuda;

namespace {

constexpr int kWarps = kThreads / 32;  // rows per block in the warp-per-row kernels
constexpr int kFinishThreads = 1024;

unsigned row_blocks(int64_t rows) { return blocks_for(rows, kWarps); }

// loss[0] = scale · Σ_{i: mask[i] (all when mask is null)} v[i]. One block:
// thread t sums i ≡ t (mod 1024) in order, then block_sum joins them in a fixed tree.
template <typename T>
__global__ void finish_loss_kernel(const float* __restrict v, const uint8_t* __restrict mask, int64_t n, float scale,
                                   T* __restrict loss) {
  __shared__ float scratch[32];
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (!mask || mask[i]) acc += v[i];
  const float total = block_sum(acc, scratch);
  if (threadIdx.x == 0) st(loss, 0, total * scale);
}

template <typename T>
void finish_loss(const float* v, const uint8_t* mask, int64_t n, double scale, T* loss, const char* op) {
  CLOZE_LAUNCH(op, finish_loss_kernel<T>, 1, kFinishThreads, 0, v, mask, n, static_cast<float>(scale), loss);
}

// Temporary float32 device buffer, freed (stream-ordered) when it goes out of scope.
struct Scratch {
  float* p = nullptr;
  Scratch(int64_t n, const char* op) {
    if (n > 0) p = static_cast<float*>(cuda::alloc(static_cast<size_t>(n) * sizeof(float), op));
  }
  ~Scratch() {
    if (p) cuda::free(p);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// ---- masked patch loss: one warp per patch row ----

struct Norm {
  float mean, inv_std;
};

// MAE's normPix: mean and unbiased variance (÷ (P − 1)) of the target row,
// two-pass in fp32; every lane of the warp gets the same result.
template <typename T>
__device__ Norm patch_norm(const T* t, int64_t P, bool norm_pix, float eps, int lane) {
  if (!norm_pix) return {0.f, 1.f};
  float s = 0.f;
  for (int64_t k = lane; k < P; k += 32) s += ld(t, k);
  const float mean = warp_sum(s) / static_cast<float>(P);
  float v = 0.f;
  for (int64_t k = lane; k < P; k += 32) {
    const float d = ld(t, k) - mean;
    v += d * d;
  }
  const float var = warp_sum(v) / static_cast<float>(P - 1);
  return {mean, 1.f / sqrtf(var + eps)};
}

__device__ __forceinline__ float elem_grad(bool mse, float d, float c) {
  if (mse) return 2.f * c * d;
  return d > 0.f ? c : (d < 0.f ? -c : 0.f);  // L1's subgradient at 0 is 0
}

template <typename T>
__global__ void patch_loss_rows_kernel(const T* __restrict pred, const T* __restrict target, int64_t R, int64_t P, bool mse,
                                       bool norm_pix, float eps, T* __restrict per_patch, float* __restrict row) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5); r < R; r += nwarps) {
    const T* pr = pred + r * P;
    const T* t = target + r * P;
    const Norm n = patch_norm(t, P, norm_pix, eps, lane);
    float acc = 0.f;
    for (int64_t k = lane; k < P; k += 32) {
      const float d = ld(pr, k) - (ld(t, k) - n.mean) * n.inv_std;
      acc += mse ? d * d : fabsf(d);
    }
    const float v = warp_sum(acc) / static_cast<float>(P);
    if (lane == 0) {
      row[r] = v;
      st(per_patch, r, v);
    }
  }
}

// See masked_patch_loss_backward_cpu for the normalisation's backward.
template <typename T>
__global__ void patch_loss_backward_kernel(const T* __restrict pred, const T* __restrict target, const uint8_t* __restrict mask,
                                           int64_t R, int64_t P, bool mse, bool norm_pix, float eps, float c,
                                           T* __restrict dpred, T* __restrict dtarget) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5); r < R; r += nwarps) {
    T* dp = dpred ? dpred + r * P : nullptr;
    T* dt = dtarget ? dtarget + r * P : nullptr;
    if (!mask[r]) {
      for (int64_t k = lane; k < P; k += 32) {
        if (dp) st(dp, k, 0.f);
        if (dt) st(dt, k, 0.f);
      }
      continue;
    }
    const T* pr = pred + r * P;
    const T* t = target + r * P;
    const Norm n = patch_norm(t, P, norm_pix, eps, lane);
    float sum_g = 0.f, sum_gt = 0.f;
    for (int64_t k = lane; k < P; k += 32) {
      const float th = (ld(t, k) - n.mean) * n.inv_std;
      const float g = elem_grad(mse, ld(pr, k) - th, c);
      if (dp) st(dp, k, g);
      if (dt && !norm_pix) st(dt, k, -g);
      sum_g -= g;
      sum_gt -= g * th;
    }
    if (!dt || !norm_pix) continue;  // warp-uniform: the warp_sums below see all 32 lanes
    const float mean_g = warp_sum(sum_g) / static_cast<float>(P);
    const float proj = warp_sum(sum_gt) / static_cast<float>(P - 1);
    for (int64_t k = lane; k < P; k += 32) {
      const float th = (ld(t, k) - n.mean) * n.inv_std;
      const float g = -elem_grad(mse, ld(pr, k) - th, c);
      st(dt, k, n.inv_std * (g - mean_g - th * proj));
    }
  }
}

// ---- masked cosine ----

// norm[r] = ‖x_r‖ over D, one warp per token row.
template <typename T>
__global__ void row_norm_kernel(const T* __restrict x, int64_t R, int64_t D, float* __restrict norm) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5); r < R; r += nwarps) {
    float s = 0.f;
    for (int64_t k = lane; k < D; k += 32) {
      const float v = ld(x, r * D + k);
      s += v * v;
    }
    s = warp_sum(s);
    if (lane == 0) norm[r] = sqrtf(s);
  }
}

// Thread (b, k): sm[b, k] and sv[b, k], the sums of x̂[i, k] over the masked
// and the visible tokens of image b, in token order; thread k = 0 also writes
// the two counts.
template <typename T>
__global__ void side_sums_kernel(const T* __restrict x, const uint8_t* __restrict mask, const float* __restrict norm,
                                 int64_t B, int64_t L, int64_t D, float eps, float* __restrict sm, float* __restrict sv,
                                 int* __restrict counts) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= D) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    float am = 0.f, av = 0.f;
    int nm = 0, nv = 0;
    for (int64_t i = 0; i < L; i++) {
      const int64_t r = b * L + i;
      const float v = ld(x, r * D + k) / fmaxf(norm[r], eps);
      if (mask[r]) {
        am += v;
        nm++;
      } else {
        av += v;
        nv++;
      }
    }
    sm[b * D + k] = am;
    sv[b * D + k] = av;
    if (k == 0) {
      counts[2 * b] = nm;
      counts[2 * b + 1] = nv;
    }
  }
}

// c[b] = sm·sv / (nm·nv) for an image with both kinds of token, else 0; one block per image.
__global__ void cosine_per_image_kernel(const float* __restrict sm, const float* __restrict sv, const int* __restrict counts,
                                        int64_t B, int64_t D, float* __restrict c) {
  __shared__ float scratch[32];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const int nm = counts[2 * b], nv = counts[2 * b + 1];
    float acc = 0.f;
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) acc += sm[b * D + k] * sv[b * D + k];
    const float dot = block_sum(acc, scratch);  // every thread takes part, counted or not
    if (threadIdx.x == 0) c[b] = (nm > 0 && nv > 0) ? dot / (static_cast<float>(nm) * static_cast<float>(nv)) : 0.f;
    __syncthreads();  // scratch is reused by the next image's block_sum
  }
}

// One warp per token row; see masked_cosine_backward_cpu for the formula.
template <typename T>
__global__ void cosine_backward_kernel(const T* __restrict x, const uint8_t* __restrict mask, const float* __restrict norm,
                                       const float* __restrict sm, const float* __restrict sv, const int* __restrict counts,
                                       int64_t L, int64_t D, float eps, float grad_scale, int64_t R, T* __restrict dx) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5); r < R; r += nwarps) {
    const int64_t b = r / L;
    const int nm = counts[2 * b], nv = counts[2 * b + 1];
    const T* xi = x + r * D;
    T* dxi = dx + r * D;
    if (!(nm > 0 && nv > 0)) {
      for (int64_t k = lane; k < D; k += 32) st(dxi, k, 0.f);
      continue;
    }
    const float f = grad_scale / (static_cast<float>(nm) * static_cast<float>(nv));
    const float* other = (mask[r] ? sv : sm) + b * D;
    const float n = norm[r];
    if (n >= eps) {  // warp-uniform branch
      float dot = 0.f;
      for (int64_t k = lane; k < D; k += 32) dot += ld(xi, k) / n * f * other[k];
      dot = warp_sum(dot);
      for (int64_t k = lane; k < D; k += 32) st(dxi, k, (f * other[k] - ld(xi, k) / n * dot) / n);
    } else {
      for (int64_t k = lane; k < D; k += 32) st(dxi, k, f * other[k] / eps);
    }
  }
}

// ---- ranking loss ----

// 1 when t_j > t_i, 0 when less, −1 for a tie (no label: the pair is skipped), as the CPU.
__device__ __forceinline__ float pair_label(float ti, float tj) { return tj > ti ? 1.f : (tj < ti ? 0.f : -1.f); }
__device__ __forceinline__ float bce_with_logits(float z, float y) {
  return fmaxf(z, 0.f) - z * y + log1pf(expf(-fabsf(z)));
}
__device__ __forceinline__ float sigmoid(float z) {
  if (z >= 0.f) return 1.f / (1.f + expf(-z));
  const float e = expf(z);
  return e / (1.f + e);
}

// part[b] = Σ over untied masked pairs i < j of BCE(pred_j − pred_i, [t_j > t_i]); one block per image.
template <typename T>
__global__ void ranking_forward_kernel(const T* __restrict pred, const T* __restrict target, const uint8_t* __restrict mask,
                                       int64_t B, int64_t L, float* __restrict part) {
  __shared__ float scratch[32];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    const T* pr = pred + b * L;
    const T* tg = target + b * L;
    const uint8_t* m = mask + b * L;
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
      if (!m[i]) continue;
      const float pi = ld(pr, i), ti = ld(tg, i);
      for (int64_t j = i + 1; j < L; j++) {
        if (!m[j]) continue;
        const float y = pair_label(ti, ld(tg, j));
        if (y >= 0.f) acc += bce_with_logits(ld(pr, j) - pi, y);
      }
    }
    const float total = block_sum(acc, scratch);
    if (threadIdx.x == 0) part[b] = total;
    __syncthreads();
  }
}

// dpred[b, i] = scale · (Σ_{j<i} g(j, i) − Σ_{j>i} g(i, j)) over untied masked pairs, g(i, j) = σ(pred_j − pred_i) − y_ij.
template <typename T>
__global__ void ranking_backward_kernel(const T* __restrict pred, const T* __restrict target, const uint8_t* __restrict mask,
                                        int64_t L, int64_t n, float scale, T* __restrict dpred) {
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t b = e / L, i = e % L;
    const T* pr = pred + b * L;
    const T* tg = target + b * L;
    const uint8_t* m = mask + b * L;
    float acc = 0.f;
    if (m[i]) {
      const float pi = ld(pr, i), ti = ld(tg, i);
      for (int64_t j = 0; j < L; j++) {
        if (j == i || !m[j]) continue;
        const float pj = ld(pr, j), tj = ld(tg, j);
        if (j < i) {
          const float y = pair_label(tj, ti);
          if (y >= 0.f) acc += sigmoid(pi - pj) - y;
        } else {
          const float y = pair_label(ti, tj);
          if (y >= 0.f) acc -= sigmoid(pj - pi) - y;
        }
      }
    }
    st(dpred, e, acc * scale);
  }
}

unsigned grid_y(int64_t n) { return static_cast<unsigned>(n < 65535 ? n : 65535); }
unsigned grid_x(int64_t n) { return static_cast<unsigned>(n < 65535 ? n : 65535); }

}  // namespace

template <typename T>
void masked_patch_loss_forward_cuda(const MaskedPatchLossParams<T>& p) {
  const char* op = "maskedPatchLoss";
  const int64_t R = p.B * p.L;
  Scratch row(R, op);
  if (R > 0)
    CLOZE_LAUNCH(op, patch_loss_rows_kernel<T>, row_blocks(R), kThreads, 0, p.pred, p.target, R, p.P,
                 p.kind == PatchLossKind::MSE, p.norm_pix, static_cast<float>(p.eps), p.per_patch, row.p);
  finish_loss(row.p, p.mask, R, p.loss_scale, p.loss, op);
}

template <typename T>
void masked_patch_loss_backward_cuda(const MaskedPatchLossParams<T>& p) {
  const int64_t R = p.B * p.L;
  if (R == 0 || (!p.dpred && !p.dtarget)) return;
  const float c = static_cast<float>(p.grad_scale / static_cast<double>(p.P));
  CLOZE_LAUNCH("maskedPatchLossBackward", patch_loss_backward_kernel<T>, row_blocks(R), kThreads, 0, p.pred, p.target, p.mask,
               R, p.P, p.kind == PatchLossKind::MSE, p.norm_pix, static_cast<float>(p.eps), c, p.dpred, p.dtarget);
}

namespace {

// Norms, side sums and counts shared by the cosine forward and backward.
template <typename T>
struct CosineState {
  Scratch norm, sm, sv;
  int* counts = nullptr;
  CosineState(const MaskedCosineParams<T>& p, const char* op)
      : norm(p.B * p.L, op), sm(p.B * p.D, op), sv(p.B * p.D, op) {
    const int64_t R = p.B * p.L;
    counts = static_cast<int*>(cuda::alloc(static_cast<size_t>(2 * p.B) * sizeof(int), op));
    if (R > 0) CLOZE_LAUNCH(op, row_norm_kernel<T>, row_blocks(R), kThreads, 0, p.x, R, p.D, norm.p);
    const unsigned gx = static_cast<unsigned>((p.D + kThreads - 1) / kThreads);
    CLOZE_LAUNCH(op, side_sums_kernel<T>, dim3(gx, grid_y(p.B)), kThreads, 0, p.x, p.mask, norm.p, p.B, p.L, p.D,
                 static_cast<float>(p.eps), sm.p, sv.p, counts);
  }
  ~CosineState() { cuda::free(counts); }
  CosineState(const CosineState&) = delete;
  CosineState& operator=(const CosineState&) = delete;
};

}  // namespace

// The binding rejects D = 0; B = 0 writes a zero loss.
template <typename T>
void masked_cosine_forward_cuda(const MaskedCosineParams<T>& p) {
  const char* op = "maskedCosine";
  if (p.B == 0) {
    finish_loss<T>(nullptr, nullptr, 0, 0.0, p.loss, op);
    return;
  }
  CosineState<T> s(p, op);
  Scratch c(p.B, op);
  CLOZE_LAUNCH(op, cosine_per_image_kernel, grid_x(p.B), kThreads, 0, s.sm.p, s.sv.p, s.counts, p.B, p.D, c.p);
  finish_loss(c.p, nullptr, p.B, p.loss_scale, p.loss, op);
}

template <typename T>
void masked_cosine_backward_cuda(const MaskedCosineParams<T>& p) {
  const char* op = "maskedCosineBackward";
  const int64_t R = p.B * p.L;
  if (R == 0) return;
  CosineState<T> s(p, op);
  CLOZE_LAUNCH(op, cosine_backward_kernel<T>, row_blocks(R), kThreads, 0, p.x, p.mask, s.norm.p, s.sm.p, s.sv.p, s.counts,
               p.L, p.D, static_cast<float>(p.eps), static_cast<float>(p.grad_scale), R, p.dx);
}

template <typename T>
void ranking_loss_forward_cuda(const RankingLossParams<T>& p) {
  const char* op = "rankingLoss";
  Scratch part(p.B, op);
  if (p.B > 0) CLOZE_LAUNCH(op, ranking_forward_kernel<T>, grid_x(p.B), kThreads, 0, p.pred, p.target, p.mask, p.B, p.L, part.p);
  finish_loss(part.p, nullptr, p.B, p.loss_scale, p.loss, op);
}

template <typename T>
void ranking_loss_backward_cuda(const RankingLossParams<T>& p) {
  const int64_t n = p.B * p.L;
  if (n == 0) return;
  CLOZE_LAUNCH("rankingLossBackward", ranking_backward_kernel<T>, blocks_for(n), kThreads, 0, p.pred, p.target, p.mask, p.L, n,
               static_cast<float>(p.grad_scale), p.dpred);
}

#define CLOZE_INST(T)                                                                          \
  template void masked_patch_loss_forward_cuda<T>(const MaskedPatchLossParams<T>&);           \
  template void masked_patch_loss_backward_cuda<T>(const MaskedPatchLossParams<T>&);          \
  template void masked_cosine_forward_cuda<T>(const MaskedCosineParams<T>&);                  \
  template void masked_cosine_backward_cuda<T>(const MaskedCosineParams<T>&);                 \
  template void ranking_loss_forward_cuda<T>(const RankingLossParams<T>&);                    \
  template void ranking_loss_backward_cuda<T>(const RankingLossParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
