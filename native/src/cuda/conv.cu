// conv2d and convTranspose2d on CUDA, by the geometry of ops/conv.h: the image
// side is unfolded (im2col) into columns for a chunk of images, one cuBLASLt
// GEMM runs per group, and the adjoint folds (col2im) back. col2im is a gather
// (each pixel sums its kh·kw terms in a fixed order), so nothing needs atomics
// and every output is written in full. The depthwise conv2d has direct kernels
// (conv_depthwise.cu).
//
// Chunks: G images are unfolded side by side into one [ci·kh·kw, G·P] matrix
// (P positions per image), so SparK's coarse scales (a few positions) still
// make GEMMs of useful width. The position-side tensor of a chunk is then
// packed as [cq, G·P] (and unpacked after the GEMM). With one image per chunk
// the [cq, P] block of that image already has that layout and is used in place.
#include <algorithm>
#include <string>

#include "../core/blas.h"
#include "../ops/conv.h"
#include "common.cuh"
#include "conv_depthwise.cuh"

namespace cloze {

namespace {

using cuda::blocks_for;
using cuda::kThreads;
using cuda::ld;
using cuda::st;

// Elements of unfolded columns per chunk (64 MiB in bfloat16, 128 MiB in float32).
constexpr int64_t kColBudget = INT64_C(1) << 25;

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }

// A temporary device buffer from the caching allocator. Freed blocks are
// recycled in stream order, so freeing right after the last launch is safe.
struct DevBuf {
  void* p = nullptr;
  DevBuf(size_t bytes, const char* op) : p(bytes ? cuda::alloc(bytes, op) : nullptr) {}
  ~DevBuf() {
    if (p) cuda::free(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename U>
  U* as() const { return static_cast<U*>(p); }
};

struct Plan {
  int64_t P, S, cig, cqg, K, rows;  // positions, pixels; channels per group; unfolded rows per group, in all
  int64_t G;                        // images per chunk
  bool pointwise;                   // 1×1, stride 1, no padding: an image is its own unfolding
};

Plan plan(const ConvGeom& g, const char* op) {
  Plan pl;
  pl.P = g.oh * g.ow;
  pl.S = g.ih * g.iw;
  pl.cig = g.ci / g.groups;
  pl.cqg = g.cq / g.groups;
  pl.K = pl.cig * g.kh * g.kw;
  pl.rows = g.ci * g.kh * g.kw;
  // Checked in double before any int64 product: an absurd geometry fails instead of wrapping.
  const double per_image = static_cast<double>(pl.rows) * static_cast<double>(pl.P);
  if (per_image > static_cast<double>(INT64_C(1) << 40))
    fail(ErrCode::OOM, op, "the unfolded input of 1 image(s) would hold " + std::to_string(per_image) +
                               " elements (kernel " + std::to_string(g.kh) + " × " + std::to_string(g.kw) + ")");
  const int64_t per = std::max<int64_t>(pl.rows * pl.P, 1);
  pl.G = std::max<int64_t>(1, std::min<int64_t>(g.B, kColBudget / per));
  pl.pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
  return pl;
}

// C [M, N] (ldc) = op(A)·op(B) (+ C when accumulate), row-major.
template <typename T>
void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
        int64_t ldc, bool accumulate) {
  GemmParams q;
  q.trans_a = ta;
  q.trans_b = tb;
  q.M = M;
  q.N = N;
  q.K = K;
  q.A = A;
  q.lda = lda;
  q.B = B;
  q.ldb = ldb;
  q.C = C;
  q.ldc = ldc;
  q.beta = accumulate ? 1.0 : 0.0;
  gemm_cuda<T>(q);
}

// col [ci·kh·kw, N], N = nb·P: column j·P + p holds image j's pixel under tap
// (ki, kj) of position p, or 0 in the padding; rows ordered (c, ki, kj).
template <typename T>
__global__ void unfold_kernel(ConvGeom g, const T* img, T* col, int64_t nb, int64_t total) {
  const int64_t P = g.oh * g.ow, N = nb * P, kk = g.kh * g.kw;
  CLOZE_GRID_STRIDE(i, total) {
    const int64_t n = i % N, r = i / N;
    const int64_t c = r / kk, t = r % kk, ki = t / g.kw, kj = t % g.kw;
    const int64_t j = n / P, pp = n % P, oy = pp / g.ow, ox = pp % g.ow;
    const int64_t iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj;
    float v = 0.f;
    if (iy >= 0 && iy < g.ih && ix >= 0 && ix < g.iw) v = ld(img, ((j * g.ci + c) * g.ih + iy) * g.iw + ix);
    st(col, i, v);
  }
}

// img [nb, ci, ih, iw] = col2im of dcol [ci·kh·kw, nb·P] (+ bias[c]): each
// pixel gathers the taps that unfold placed it under, in (ki, kj) order.
template <typename T>
__global__ void fold_kernel(ConvGeom g, const T* dcol, const T* bias, T* img, int64_t nb, int64_t total) {
  const int64_t P = g.oh * g.ow, N = nb * P;
  CLOZE_GRID_STRIDE(i, total) {  // i = ((j·ci + c)·ih + iy)·iw + ix
    const int64_t ix = i % g.iw;
    int64_t t = i / g.iw;
    const int64_t iy = t % g.ih;
    t /= g.ih;
    const int64_t c = t % g.ci, j = t / g.ci;
    float acc = 0.f;
    for (int64_t ki = 0; ki < g.kh; ki++) {
      const int64_t ty = iy + g.pad - ki;  // = oy·stride
      if (ty < 0) break;                   // ty only falls as ki grows
      if (ty % g.stride != 0 || ty / g.stride >= g.oh) continue;
      const int64_t oy = ty / g.stride;
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const int64_t tx = ix + g.pad - kj;
        if (tx < 0) break;
        if (tx % g.stride != 0 || tx / g.stride >= g.ow) continue;
        const int64_t ox = tx / g.stride;
        acc += ld(dcol, ((c * g.kh + ki) * g.kw + kj) * N + j * P + oy * g.ow + ox);
      }
    }
    if (bias) acc += ld(bias, c);
    st(img, i, acc);
  }
}

// dst [nb, C, P] = src [C, nb·P] regrouped (unpack), or the reverse (pack).
template <typename T>
__global__ void unpack_kernel(const T* src, T* dst, int64_t C, int64_t P, int64_t nb, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) {  // i = (j·C + c)·P + p
    const int64_t p = i % P, t = i / P, c = t % C, j = t / C;
    st(dst, i, ld(src, (c * nb + j) * P + p));
  }
}
template <typename T>
__global__ void pack_kernel(const T* src, T* dst, int64_t C, int64_t P, int64_t nb, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) {
    const int64_t p = i % P, t = i / P, c = t % C, j = t / C;
    st(dst, (c * nb + j) * P + p, ld(src, i));
  }
}

// out [C, N] = bias[c] on row c: the C a GEMM then accumulates into, so the
// bias is added in the GEMM's fp32 epilogue with one rounding.
template <typename T>
__global__ void bias_rows_kernel(T* out, const T* bias, int64_t N, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) st(out, i, ld(bias, i / N));
}

template <typename T>
__global__ void accumulate_kernel(float* acc, const T* part, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) acc[i] += ld(part, i);
}

// out[c] = Σ_b Σ_s t[b, c, s]: a block per channel, a fixed split between
// threads and a fixed tree, so the sum is the same on every run.
template <typename T>
__global__ void channel_sum_kernel(const T* t, int64_t B, int64_t C, int64_t S, T* out) {
  __shared__ float scratch[32];
  const int64_t c = blockIdx.x;
  float acc = 0.f;
  for (int64_t e = threadIdx.x; e < B * S; e += blockDim.x) {
    const int64_t b = e / S, s = e - b * S;
    acc += ld(t, (b * C + c) * S + s);
  }
  acc = cuda::block_sum(acc, scratch);
  if (threadIdx.x == 0) st(out, c, acc);
}

template <typename T>
void channel_sum(const T* t, int64_t B, int64_t C, int64_t S, T* out, const char* op) {
  if (C == 0) return;
  if (C > INT32_MAX) fail(ErrCode::Shape, op, "more than 2^31 channels");
  CLOZE_LAUNCH(op, channel_sum_kernel<T>, static_cast<unsigned>(C), kThreads, 0, t, B, C, S, out);
}

// For every chunk of images, col = unfold(img), then
//   qout = M·col (+ qbias)       when qout is given, and
//   dw   = Σ_b qgrad[b]·colᵀ     when dw is given (qgrad: the position-side tensor).
// The weight gradient of one chunk goes straight into dw; with several, each
// chunk's product is added into an fp32 sum that is cast into dw at the end
// (no bf16 rounding of a running sum).
template <typename T>
void unfold_pass(const ConvGeom& g, const T* w, const T* img, const T* qbias, T* qout, const T* qgrad, T* dw,
                 const char* op) {
  const Plan pl = plan(g, op);
  const int64_t P = pl.P, S = pl.S, K = pl.K, cqg = pl.cqg, G = pl.G;
  const int64_t nchunks = (g.B + G - 1) / G;
  const bool direct_dw = nchunks == 1;
  const size_t ts = sizeof(T);
  DevBuf col(pl.pointwise && G == 1 ? 0 : static_cast<size_t>(pl.rows * G * P) * ts, op);
  DevBuf qbuf(qout && G > 1 ? static_cast<size_t>(g.cq * G * P) * ts : 0, op);
  DevBuf qgbuf(dw && G > 1 ? static_cast<size_t>(g.cq * G * P) * ts : 0, op);
  DevBuf part(dw && !direct_dw ? static_cast<size_t>(g.cq * K) * ts : 0, op);
  DevBuf acc(dw && !direct_dw ? static_cast<size_t>(g.cq * K) * sizeof(float) : 0, op);
  if (acc.p) cuda::memset_zero(acc.p, static_cast<size_t>(g.cq * K) * sizeof(float), op);

  for (int64_t b0 = 0; b0 < g.B; b0 += G) {
    const int64_t nb = std::min(G, g.B - b0), N = nb * P;
    const T* colp;
    if (pl.pointwise && nb == 1) {
      colp = img + b0 * g.ci * S;
    } else {
      const int64_t total = pl.rows * N;
      CLOZE_LAUNCH(op, unfold_kernel<T>, blocks_for(total), kThreads, 0, g, img + b0 * g.ci * S, col.as<T>(), nb, total);
      colp = col.as<T>();
    }
    if (qout) {
      T* outp = nb == 1 ? qout + b0 * g.cq * P : qbuf.as<T>();
      if (qbias) {
        const int64_t total = g.cq * N;
        CLOZE_LAUNCH(op, bias_rows_kernel<T>, blocks_for(total), kThreads, 0, outp, qbias, N, total);
      }
      for (int64_t gi = 0; gi < g.groups; gi++)
        mm<T>(false, false, cqg, N, K, w + gi * cqg * K, K, colp + gi * K * N, N, outp + gi * cqg * N, N, qbias != nullptr);
      if (nb > 1) {
        const int64_t total = g.cq * N;
        CLOZE_LAUNCH(op, unpack_kernel<T>, blocks_for(total), kThreads, 0, qbuf.as<T>(), qout + b0 * g.cq * P, g.cq, P,
                     nb, total);
      }
    }
    if (dw) {
      const T* qg = qgrad + b0 * g.cq * P;
      if (nb > 1) {
        const int64_t total = g.cq * N;
        CLOZE_LAUNCH(op, pack_kernel<T>, blocks_for(total), kThreads, 0, qg, qgbuf.as<T>(), g.cq, P, nb, total);
        qg = qgbuf.as<T>();
      }
      T* dst = direct_dw ? dw : part.as<T>();
      for (int64_t gi = 0; gi < g.groups; gi++)
        mm<T>(false, true, cqg, K, N, qg + gi * cqg * N, N, colp + gi * K * N, N, dst + gi * cqg * K, K, false);
      if (!direct_dw) {
        const int64_t n = g.cq * K;
        CLOZE_LAUNCH(op, accumulate_kernel<T>, blocks_for(n), kThreads, 0, acc.as<float>(), part.as<T>(), n);
      }
    }
  }
  if (dw && !direct_dw)
    cuda::cast(acc.p, static_cast<int>(DType::F32), dw, static_cast<int>(dtype_of<T>()), g.cq * K, op);
}

// img[b] = fold(Mᵀ·q[b]) per group (+ ibias per image channel), written in full.
template <typename T>
void fold_pass(const ConvGeom& g, const T* w, const T* q, const T* ibias, T* img, const char* op) {
  const Plan pl = plan(g, op);
  const int64_t P = pl.P, S = pl.S, K = pl.K, cqg = pl.cqg, G = pl.G;
  const size_t ts = sizeof(T);
  DevBuf qbuf(G > 1 ? static_cast<size_t>(g.cq * G * P) * ts : 0, op);
  DevBuf dcol(pl.pointwise && G == 1 ? 0 : static_cast<size_t>(pl.rows * G * P) * ts, op);

  for (int64_t b0 = 0; b0 < g.B; b0 += G) {
    const int64_t nb = std::min(G, g.B - b0), N = nb * P;
    const T* qp = q + b0 * g.cq * P;
    if (nb > 1) {
      const int64_t total = g.cq * N;
      CLOZE_LAUNCH(op, pack_kernel<T>, blocks_for(total), kThreads, 0, qp, qbuf.as<T>(), g.cq, P, nb, total);
      qp = qbuf.as<T>();
    }
    if (pl.pointwise && nb == 1) {
      // The image's [ci, S] block is the GEMM's output itself (K = ci/groups, S = P).
      T* dst = img + b0 * g.ci * S;
      if (ibias) {
        const int64_t total = g.ci * S;
        CLOZE_LAUNCH(op, bias_rows_kernel<T>, blocks_for(total), kThreads, 0, dst, ibias, S, total);
      }
      for (int64_t gi = 0; gi < g.groups; gi++)
        mm<T>(true, false, K, N, cqg, w + gi * cqg * K, K, qp + gi * cqg * N, N, dst + gi * K * N, N, ibias != nullptr);
      continue;
    }
    for (int64_t gi = 0; gi < g.groups; gi++)
      mm<T>(true, false, K, N, cqg, w + gi * cqg * K, K, qp + gi * cqg * N, N, dcol.as<T>() + gi * K * N, N, false);
    const int64_t total = nb * g.ci * S;
    CLOZE_LAUNCH(op, fold_kernel<T>, blocks_for(total), kThreads, 0, g, dcol.as<T>(), ibias, img + b0 * g.ci * S, nb,
                 total);
  }
}

bool is_depthwise(const ConvGeom& g) { return g.groups == g.ci && g.groups == g.cq; }

template <typename T>
void zero(T* p, int64_t n, const char* op) {
  if (p && n > 0) cuda::memset_zero(p, static_cast<size_t>(n) * sizeof(T), op);
}

}  // namespace

template <typename T>
void conv2d_forward_cuda(const ConvParams<T>& p) {
  if (p.g.B == 0) return;
  if (is_depthwise(p.g))
    cuda::depthwise_forward(p.g, p.x, p.w, p.bias, p.y, "conv2d");
  else
    unfold_pass<T>(p.g, p.w, p.x, p.bias, p.y, nullptr, nullptr, "conv2d");
}

template <typename T>
void conv2d_backward_cuda(const ConvParams<T>& p) {
  const ConvGeom& g = p.g;
  const char* op = "conv2dBackward";
  if (g.B == 0) {
    zero(p.dw, g.cq * (g.ci / g.groups) * g.kh * g.kw, op);
    zero(p.db, g.cq, op);
    return;
  }
  const bool dwise = is_depthwise(g);
  if (p.dx) {
    if (dwise)
      cuda::depthwise_dx(g, p.dy, p.w, p.dx, op);
    else
      fold_pass<T>(g, p.w, p.dy, nullptr, p.dx, op);
  }
  if (p.dw) {
    if (dwise)
      cuda::depthwise_dw(g, p.x, p.dy, p.dw, op);
    else
      unfold_pass<T>(g, p.w, p.x, nullptr, nullptr, p.dy, p.dw, op);
  }
  if (p.db) channel_sum(p.dy, g.B, g.cq, g.oh * g.ow, p.db, op);
}

template <typename T>
void conv_transpose2d_forward_cuda(const ConvParams<T>& p) {
  if (p.g.B == 0) return;
  fold_pass<T>(p.g, p.w, p.x, p.bias, p.y, "convTranspose2d");
}

template <typename T>
void conv_transpose2d_backward_cuda(const ConvParams<T>& p) {
  const ConvGeom& g = p.g;
  const char* op = "convTranspose2dBackward";
  if (g.B == 0) {
    zero(p.dw, g.cq * (g.ci / g.groups) * g.kh * g.kw, op);
    zero(p.db, g.ci, op);
    return;
  }
  if (p.dx || p.dw) unfold_pass<T>(g, p.w, p.dy, nullptr, p.dx, p.dw ? p.x : nullptr, p.dw, op);
  if (p.db) channel_sum(p.dy, g.B, g.ci, g.ih * g.iw, p.db, op);
}

#define CLOZE_INST(T)                                                     \
  template void conv2d_forward_cuda<T>(const ConvParams<T>&);             \
  template void conv2d_backward_cuda<T>(const ConvParams<T>&);            \
  template void conv_transpose2d_forward_cuda<T>(const ConvParams<T>&);   \
  template void conv_transpose2d_backward_cuda<T>(const ConvParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
