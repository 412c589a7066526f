#include "conv.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <functional>
#include <memory>
#include <vector>

#include "../core/blas.h"
#include "../core/error.h"
#include "../core/microkernel.h"
#include "../core/storage.h"
#include "../core/sum_fixed.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

// Below this many columns a per-image GEMM is nearly a matrix-vector product
// that re-reads the weight for every image (SparK's coarsest scales have 1–16
// positions), so several images are unfolded side by side into one GEMM.
constexpr int64_t kMinGemmCols = 256;
// The weight gradient is reduced over the batch in a fixed number of chunks,
// each with its own partial sum, so the result does not depend on the thread
// count. The partials of all chunks together stay under this size.
constexpr size_t kPartialBytes = size_t(32) << 20;
constexpr int64_t kMaxChunks = 64;
// Elements of work per parallel_range chunk for the memory-bound loops.
constexpr int64_t kGrain = 1 << 14;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(work_per_item, 1)); }

// Output columns [lo, hi) whose input column o·s − p + k lies inside [0, n).
void valid_range(int64_t n, int64_t out, int64_t k, int64_t s, int64_t p, int64_t* lo, int64_t* hi) {
  const int64_t need_lo = p - k, need_hi = n - 1 + p - k;  // need_lo ≤ o·s ≤ need_hi
  int64_t l = need_lo <= 0 ? 0 : ceil_div(need_lo, s);
  int64_t h = need_hi < 0 ? 0 : need_hi / s + 1;
  l = std::min(l, out);
  h = std::max(l, std::min(h, out));
  *lo = l;
  *hi = h;
}

// Tasks either run on the pool, each with serial GEMMs inside (a GEMM issued
// from a pool thread runs serially), or one after another with the GEMM
// threaded. The built-in GEMM's blocking does not depend on how its tiles are
// scheduled, so both give the same bits. OpenBLAS is never called from pool
// threads, so under the BLAS policy tasks always run in order.
bool tasks_on_pool(int64_t n) {
  const int64_t t = ThreadPool::get().size();
  if (t == 1 || n < t || std::strcmp(gemm_policy(), "builtin") != 0) return false;
  // 3 tasks on 2 threads would leave one thread idle a third of the time;
  // there each GEMM is threaded instead (not measured: a judgement call).
  return n % t == 0 || n >= 4 * t;
}

void run_tasks(int64_t n, bool on_pool, const std::function<void(int64_t, int)>& fn) {
  if (on_pool) {
    ThreadPool::get().parallel_for(n, fn);
  } else {
    for (int64_t i = 0; i < n; i++) fn(i, 0);
  }
}

// The unfolded rows of one GEMM, K·G·P elements, checked in double before
// any int64 product is formed, so an absurd geometry fails instead of wrapping.
void check_unfold_size(const ConvGeom& g, int64_t K, int64_t G, int64_t P, const char* op) {
  const double n = static_cast<double>(K) * static_cast<double>(G) * static_cast<double>(P);
  if (n > static_cast<double>(INT64_C(1) << 40))
    fail(ErrCode::OOM, op, "the unfolded input of " + std::to_string(G) + " image(s) would hold " + std::to_string(n) +
                               " elements (kernel " + std::to_string(g.kh) + " × " + std::to_string(g.kw) + ")");
}

template <typename T>
T* scratch(std::shared_ptr<Storage>& hold, int64_t n, const char* op) {
  hold = Storage::allocate(sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1)), op, false);
  return static_cast<T*>(hold->data());
}

// C [M, N] (+)= A [M, K] · B [K, N], row-major with row strides.
template <typename T>
void mm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
        bool accumulate) {
  GemmParams g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.ldb = ldb;
  g.C = C;
  g.ldc = ldc;
  g.beta = accumulate ? 1.0 : 0.0;
  gemm<T>(g);
}

// Rows [y0, y1) of the output whose input row oy·s − p + ki lies inside the image.
void valid_rows(const ConvGeom& g, int64_t ki, int64_t* y0, int64_t* y1) {
  valid_range(g.ih, g.oh, ki, g.stride, g.pad, y0, y1);
}

// At stride 1 with as many output as input columns ("same" width), an unfolded
// row is the input plane shifted by a constant offset, except for the lo/hi
// fringe columns, which wrap into the neighbouring row. One long copy plus a
// fringe fix-up then replaces oh short copies (at 16×16 the per-row memmove
// calls cost more than the bytes).
bool flat_rows(const ConvGeom& g) { return g.stride == 1 && g.ow == g.iw; }

// col [C·kh·kw, oh·ow] (row stride ldcol) = im2col of img [C, ih, iw]; rows ordered (c, ki, kj).
template <typename T>
void unfold(const ConvGeom& g, int64_t C, const T* img, T* col, int64_t ldcol) {
  const int64_t S = g.ih * g.iw, s = g.stride, p = g.pad, ow = g.ow, P = g.oh * g.ow;
  const bool flat = flat_rows(g);
  parallel_range(C, grain_for(g.kh * g.kw * P), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++)
      for (int64_t ki = 0; ki < g.kh; ki++)
        for (int64_t kj = 0; kj < g.kw; kj++) {
          T* row = col + ((c * g.kh + ki) * g.kw + kj) * ldcol;
          const T* plane = img + c * S;
          int64_t lo, hi, y0, y1;
          valid_range(g.iw, ow, kj, s, p, &lo, &hi);
          valid_rows(g, ki, &y0, &y1);
          if (lo == hi || y0 == y1) {
            std::fill(row, row + P, T(0));
            continue;
          }
          std::fill(row, row + y0 * ow, T(0));
          std::fill(row + y1 * ow, row + P, T(0));
          if (flat) {
            const int64_t first = y0 * ow + lo, last = (y1 - 1) * ow + hi;  // output span [first, last)
            const T* src = plane + (y0 - p + ki) * g.iw + (lo - p + kj);
            std::copy(src, src + (last - first), row + first);
            for (int64_t oy = y0; oy < y1; oy++) {
              std::fill(row + oy * ow, row + oy * ow + lo, T(0));
              std::fill(row + oy * ow + hi, row + (oy + 1) * ow, T(0));
            }
            continue;
          }
          for (int64_t oy = y0; oy < y1; oy++) {
            T* r = row + oy * ow;
            std::fill(r, r + lo, T(0));
            const T* src = plane + (oy * s - p + ki) * g.iw + (lo * s - p + kj);
            if (s == 1) {
              std::copy(src, src + (hi - lo), r + lo);
            } else {
              for (int64_t o = lo; o < hi; o++) r[o] = src[(o - lo) * s];
            }
            std::fill(r + hi, r + ow, T(0));
          }
        }
  });
}

// img [C, ih, iw] += col2im of col (the adjoint of unfold). Threads split
// channels, so each pixel's additions happen in one fixed order. On the flat
// path the fringe entries of col are zeroed first (col is scratch), so one
// long add over the span leaves the wrapped pixels unchanged.
template <typename T>
void fold(const ConvGeom& g, int64_t C, T* col, int64_t ldcol, T* img) {
  const int64_t S = g.ih * g.iw, s = g.stride, p = g.pad, ow = g.ow;
  const bool flat = flat_rows(g);
  parallel_range(C, grain_for(g.kh * g.kw * g.oh * ow), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++)
      for (int64_t ki = 0; ki < g.kh; ki++)
        for (int64_t kj = 0; kj < g.kw; kj++) {
          T* row = col + ((c * g.kh + ki) * g.kw + kj) * ldcol;
          T* plane = img + c * S;
          int64_t lo, hi, y0, y1;
          valid_range(g.iw, ow, kj, s, p, &lo, &hi);
          valid_rows(g, ki, &y0, &y1);
          if (lo == hi || y0 == y1) continue;
          if (flat) {
            for (int64_t oy = y0; oy < y1; oy++) {
              std::fill(row + oy * ow, row + oy * ow + lo, T(0));
              std::fill(row + oy * ow + hi, row + (oy + 1) * ow, T(0));
            }
            const int64_t first = y0 * ow + lo, n = (y1 - 1) * ow + hi - first;
            T* __restrict dst = plane + (y0 - p + ki) * g.iw + (lo - p + kj);
            const T* __restrict r = row + first;
            for (int64_t o = 0; o < n; o++) dst[o] += r[o];
            continue;
          }
          for (int64_t oy = y0; oy < y1; oy++) {
            T* __restrict dst = plane + (oy * s - p + ki) * g.iw + (lo * s - p + kj);
            const T* __restrict r = row + oy * ow + lo;
            if (s == 1) {
              for (int64_t o = 0; o < hi - lo; o++) dst[o] += r[o];
            } else {
              for (int64_t o = 0; o < hi - lo; o++) dst[o * s] += r[o];
            }
          }
        }
  });
}

// rows [n, len] += bias[c] on row c.
template <typename T>
void add_bias_rows(T* rows, int64_t n, int64_t len, const T* bias) {
  for (int64_t c = 0; c < n; c++) {
    const T b = bias[c];
    T* r = rows + c * len;
    for (int64_t i = 0; i < len; i++) r[i] += b;
  }
}

struct Batching {
  int64_t P, S, cig, cqg, K;  // positions and pixels per image; channels per group; unfolded rows per group
  int64_t G, ngroups;         // images per GEMM; image groups
  bool pointwise;             // 1×1, stride 1, no padding: the image is its own unfolding
};

Batching batching(const ConvGeom& g) {
  Batching b;
  b.P = g.oh * g.ow;
  b.S = g.ih * g.iw;
  b.cig = g.ci / g.groups;
  b.cqg = g.cq / g.groups;
  b.K = b.cig * g.kh * g.kw;
  b.G = std::max<int64_t>(1, std::min(g.B, ceil_div(kMinGemmCols, std::max<int64_t>(b.P, 1))));
  b.ngroups = ceil_div(g.B, b.G);
  b.pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
  return b;
}

// For every image b, col = unfold(img[b]) per group, then
//   qout[b] = M·col (+ qbias)         when qout is given, and
//   dw = Σ_b qgrad[b] · colᵀ          when dw is given (qgrad: the position-side tensor).
// The weight gradient is accumulated as [K, cq/groups] partials, one per
// chunk of images, then summed in chunk order and transposed into dw [cq, K].
template <typename T>
void unfold_pass(const ConvGeom& g, const T* w, const T* img, const T* qbias, T* qout, const T* qgrad, T* dw,
                 const char* op) {
  const Batching bt = batching(g);
  const int64_t P = bt.P, S = bt.S, cig = bt.cig, cqg = bt.cqg, K = bt.K, G = bt.G, ng = bt.ngroups;
  check_unfold_size(g, K, G, P, op);
  const int64_t part_elems = g.groups * K * cqg;
  const int64_t R = dw ? std::max<int64_t>(1, std::min<int64_t>({ng, kMaxChunks, static_cast<int64_t>(
                                                                      kPartialBytes / (sizeof(T) * std::max<int64_t>(part_elems, 1)))}))
                       : ng;
  const bool on_pool = tasks_on_pool(R);
  const int64_t slots = on_pool ? ThreadPool::get().size() : 1;
  const int64_t colN = (G > 1 || !bt.pointwise) ? K * G * P : 0;
  const int64_t qbufN = (qout && G > 1) ? cqg * G * P : 0;
  const int64_t qtN = dw ? G * P * cqg : 0;
  const int64_t slotN = colN + qbufN + qtN;
  std::shared_ptr<Storage> hold_slots, hold_parts;
  T* work = scratch<T>(hold_slots, slots * slotN, op);
  T* parts = dw ? scratch<T>(hold_parts, R * part_elems, op) : nullptr;

  run_tasks(R, on_pool, [&](int64_t r, int slot) {
    T* col = work + slot * slotN;
    T* qbuf = col + colN;
    T* qt = qbuf + qbufN;
    T* part = dw ? parts + r * part_elems : nullptr;
    const int64_t ig0 = r * ng / R, ig1 = (r + 1) * ng / R;
    for (int64_t ig = ig0; ig < ig1; ig++) {
      const int64_t b0 = ig * G, nb = std::min(G, g.B - b0), N = nb * P;
      for (int64_t gi = 0; gi < g.groups; gi++) {
        const T* colp = col;
        int64_t ldcol = N;
        if (bt.pointwise && nb == 1) {
          colp = img + (b0 * g.ci + gi * cig) * S;
        } else {
          for (int64_t j = 0; j < nb; j++) unfold(g, cig, img + ((b0 + j) * g.ci + gi * cig) * S, col + j * P, N);
        }
        if (qout) {
          const T* Mg = w + gi * cqg * K;
          if (nb == 1) {
            T* out = qout + (b0 * g.cq + gi * cqg) * P;
            mm(cqg, P, K, Mg, K, colp, ldcol, out, P, false);
            if (qbias) add_bias_rows(out, cqg, P, qbias + gi * cqg);
          } else {
            mm(cqg, N, K, Mg, K, colp, ldcol, qbuf, N, false);
            for (int64_t j = 0; j < nb; j++)
              for (int64_t c = 0; c < cqg; c++) {
                T* out = qout + ((b0 + j) * g.cq + gi * cqg + c) * P;
                std::copy(qbuf + c * N + j * P, qbuf + c * N + (j + 1) * P, out);
                if (qbias) add_bias_rows(out, 1, P, qbias + gi * cqg + c);
              }
          }
        }
        if (dw) {
          for (int64_t j = 0; j < nb; j++)
            transpose_tile(cqg, P, qgrad + ((b0 + j) * g.cq + gi * cqg) * P, P, qt + j * P * cqg, cqg);
          mm(K, cqg, N, colp, ldcol, qt, cqg, part + gi * K * cqg, cqg, ig > ig0);
        }
      }
    }
  });

  if (!dw) return;
  // Σ_r part_r in chunk order (contiguous, into chunk 0's partial), then one
  // transpose per group from [K, cqg] into dw [cqg, K].
  parallel_range(part_elems, grain_for(R), [&](int64_t e0, int64_t e1) {
    for (int64_t r = 1; r < R; r++) {
      const T* __restrict pr = parts + r * part_elems;
      T* __restrict acc = parts;
      for (int64_t e = e0; e < e1; e++) acc[e] += pr[e];
    }
  });
  for (int64_t gi = 0; gi < g.groups; gi++) transpose_tile(K, cqg, parts + gi * K * cqg, cqg, dw + gi * cqg * K, K);
}

// img[b] = fold(Mᵀ · q[b]) per group (+ ibias per image channel). img must be zero-filled.
template <typename T>
void fold_pass(const ConvGeom& g, const T* w, const T* q, const T* ibias, T* img, const char* op) {
  const Batching bt = batching(g);
  const int64_t P = bt.P, S = bt.S, cig = bt.cig, cqg = bt.cqg, K = bt.K, G = bt.G, ng = bt.ngroups;
  check_unfold_size(g, K, G, P, op);
  std::shared_ptr<Storage> hold_mt, hold_slots;
  T* mt = scratch<T>(hold_mt, g.groups * K * cqg, op);  // Mᵀ per group, [K, cqg]
  for (int64_t gi = 0; gi < g.groups; gi++) transpose_tile(cqg, K, w + gi * cqg * K, K, mt + gi * K * cqg, cqg);
  const bool on_pool = tasks_on_pool(ng);
  const int64_t slots = on_pool ? ThreadPool::get().size() : 1;
  const int64_t qgN = G > 1 ? cqg * G * P : 0;
  const int64_t dcolN = (G > 1 || !bt.pointwise) ? K * G * P : 0;
  const int64_t slotN = qgN + dcolN;
  T* work = scratch<T>(hold_slots, slots * slotN, op);

  run_tasks(ng, on_pool, [&](int64_t ig, int slot) {
    T* qg = work + slot * slotN;
    T* dcol = qg + qgN;
    const int64_t b0 = ig * G, nb = std::min(G, g.B - b0), N = nb * P;
    for (int64_t gi = 0; gi < g.groups; gi++) {
      const T* qp = qg;
      if (nb == 1) {
        qp = q + (b0 * g.cq + gi * cqg) * P;
      } else {
        for (int64_t c = 0; c < cqg; c++)
          for (int64_t j = 0; j < nb; j++) {
            const T* src = q + ((b0 + j) * g.cq + gi * cqg + c) * P;
            std::copy(src, src + P, qg + c * N + j * P);
          }
      }
      const T* mtg = mt + gi * K * cqg;
      if (bt.pointwise && nb == 1) {
        mm(K, P, cqg, mtg, cqg, qp, N, img + (b0 * g.ci + gi * cig) * S, S, false);
      } else {
        mm(K, N, cqg, mtg, cqg, qp, N, dcol, N, false);
        for (int64_t j = 0; j < nb; j++) fold(g, cig, dcol + j * P, N, img + ((b0 + j) * g.ci + gi * cig) * S);
      }
    }
    if (ibias)
      for (int64_t j = 0; j < nb; j++) add_bias_rows(img + (b0 + j) * g.ci * S, g.ci, S, ibias);
  });
}

bool is_depthwise(const ConvGeom& g) { return g.groups == g.ci && g.groups == g.cq; }

// Depthwise conv (one input channel per output) as direct loops per plane:
// there is no GEMM to feed, and im2col would copy each plane kh·kw times.
// Planes are first copied into zero-padded buffers so the loops need no bounds
// checks; at stride 1 each output vector then stays in a register across all
// kh·kw taps (ConvNeXt's 7×7 runs at stride 1). Every output or weight-gradient
// element sums its terms in one fixed order, whatever the thread count.

constexpr int64_t kLanes = kVecBytes / 4;  // the widest vector in elements (float); double uses half

int64_t round_up(int64_t n, int64_t m) { return ceil_div(n, m) * m; }

// dst [ph, pw] = src [h, w] placed at (top, left), zero elsewhere; top/left may be negative (cropping).
template <typename T>
void pad_plane(const T* src, int64_t h, int64_t w, int64_t top, int64_t left, T* dst, int64_t ph, int64_t pw) {
  std::fill(dst, dst + ph * pw, T(0));
  for (int64_t r = std::max<int64_t>(0, top); r < std::min(ph, top + h); r++) {
    const int64_t c0 = std::max<int64_t>(0, left), c1 = std::min(pw, left + w);
    if (c0 < c1) std::copy(src + (r - top) * w + (c0 - left), src + (r - top) * w + (c1 - left), dst + r * pw + c0);
  }
}

// R output rows of correlate_s1 at once: the R accumulators are independent,
// which hides the FMA latency that one chain of kh·kw taps would expose.
template <typename T, int R>
void correlate_rows(const T* in, int64_t ld, const T* k, int64_t kh, int64_t kw, T b, T* out, int64_t ow) {
  using V = typename VecT<T>::type;
  constexpr int64_t W = VecT<T>::W;
  for (int64_t x0 = 0; x0 < ow; x0 += W) {
    V acc[R];
    for (int r = 0; r < R; r++) acc[r] = vsplat<T>(b);
    for (int64_t ki = 0; ki < kh; ki++)
      for (int64_t kj = 0; kj < kw; kj++) {
        const V wv = vsplat<T>(k[ki * kw + kj]);
        for (int r = 0; r < R; r++) acc[r] += wv * vload(in + (r + ki) * ld + x0 + kj);
      }
    for (int r = 0; r < R; r++) {
      if (x0 + W <= ow) {
        vstore(out + r * ow + x0, acc[r]);
      } else {
        alignas(64) T tail[W];
        vstore(tail, acc[r]);
        std::copy(tail, tail + (ow - x0), out + r * ow + x0);
      }
    }
  }
}

// out [oh, ow] = b + Σ_(ki, kj) k[ki, kj]·in[oy + ki, ox + kj], stride 1. `in` (row stride ld)
// must have round_up(ow, W) + kw − 1 readable columns and oh + kh − 1 rows.
template <typename T>
void correlate_s1(const T* in, int64_t ld, const T* k, int64_t kh, int64_t kw, T b, T* out, int64_t oh, int64_t ow) {
  int64_t oy = 0;
  for (; oy + 4 <= oh; oy += 4) correlate_rows<T, 4>(in + oy * ld, ld, k, kh, kw, b, out + oy * ow, ow);
  for (; oy < oh; oy++) correlate_rows<T, 1>(in + oy * ld, ld, k, kh, kw, b, out + oy * ow, ow);
}

struct DwShape {
  int64_t C, S, P, kk, ph, pw;  // padded-input rows and columns
};

DwShape dw_shape(const ConvGeom& g) {
  DwShape d;
  d.C = g.ci;
  d.S = g.ih * g.iw;
  d.P = g.oh * g.ow;
  d.kk = g.kh * g.kw;
  d.ph = g.ih + 2 * g.pad;
  d.pw = g.stride == 1 ? std::max(g.iw + 2 * g.pad, round_up(g.ow, kLanes) + g.kw - 1) : g.iw + 2 * g.pad;
  return d;
}

template <typename T>
void depthwise_forward(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y) {
  const DwShape d = dw_shape(g);
  const int64_t s = g.stride;
  parallel_range(g.B * d.C, grain_for(d.P * d.kk), [&](int64_t a, int64_t e) {
    std::vector<T> pad(static_cast<size_t>(d.ph * d.pw));
    for (int64_t bc = a; bc < e; bc++) {
      const int64_t c = bc % d.C;
      const T* wk = w + c * d.kk;
      const T b = bias ? bias[c] : T(0);
      pad_plane(x + bc * d.S, g.ih, g.iw, g.pad, g.pad, pad.data(), d.ph, d.pw);
      if (s == 1) {
        correlate_s1(pad.data(), d.pw, wk, g.kh, g.kw, b, y + bc * d.P, g.oh, g.ow);
        continue;
      }
      for (int64_t oy = 0; oy < g.oh; oy++)
        for (int64_t ox = 0; ox < g.ow; ox++) {
          T acc = b;
          for (int64_t ki = 0; ki < g.kh; ki++)
            for (int64_t kj = 0; kj < g.kw; kj++) acc += wk[ki * g.kw + kj] * pad[(oy * s + ki) * d.pw + ox * s + kj];
          y[bc * d.P + oy * g.ow + ox] = acc;
        }
    }
  });
}

// dx [B, C, ih, iw] (overwritten). Stride 1: a correlation of dy, padded by
// k − 1 − p, with the flipped kernel. Larger strides: scatter into a padded
// plane in (oy, ox, ki, kj) order, then crop.
template <typename T>
void depthwise_dx(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  const DwShape d = dw_shape(g);
  const int64_t s = g.stride;
  const int64_t qh = g.ih + g.kh - 1, qw = round_up(g.iw, kLanes) + g.kw - 1;  // stride-1 padded dy
  parallel_range(g.B * d.C, grain_for(d.P * d.kk), [&](int64_t a, int64_t e) {
    std::vector<T> buf(static_cast<size_t>(s == 1 ? qh * qw : d.ph * d.pw)), flip(static_cast<size_t>(d.kk));
    for (int64_t bc = a; bc < e; bc++) {
      const T* wk = w + (bc % d.C) * d.kk;
      if (s == 1) {
        for (int64_t t = 0; t < d.kk; t++) flip[t] = wk[d.kk - 1 - t];
        pad_plane(dy + bc * d.P, g.oh, g.ow, g.kh - 1 - g.pad, g.kw - 1 - g.pad, buf.data(), qh, qw);
        correlate_s1(buf.data(), qw, flip.data(), g.kh, g.kw, T(0), dx + bc * d.S, g.ih, g.iw);
        continue;
      }
      std::fill(buf.begin(), buf.end(), T(0));
      for (int64_t oy = 0; oy < g.oh; oy++)
        for (int64_t ox = 0; ox < g.ow; ox++) {
          const T v = dy[bc * d.P + oy * g.ow + ox];
          for (int64_t ki = 0; ki < g.kh; ki++)
            for (int64_t kj = 0; kj < g.kw; kj++) buf[(oy * s + ki) * d.pw + ox * s + kj] += wk[ki * g.kw + kj] * v;
        }
      for (int64_t iy = 0; iy < g.ih; iy++)
        std::copy(buf.data() + (iy + g.pad) * d.pw + g.pad, buf.data() + (iy + g.pad) * d.pw + g.pad + g.iw,
                  dx + bc * d.S + iy * g.iw);
    }
  });
}

// dw[c, ki, kj] = Σ_b Σ_(oy, ox) dy·x_padded, one channel per task. At stride
// 1 the products go into vector accumulators per tap (dy rows zero-padded
// to whole vectors) whose lanes are summed at the end in a fixed order.
template <typename T>
void depthwise_dw(const ConvGeom& g, const T* x, const T* dy, T* dw) {
  using V = typename VecT<T>::type;
  constexpr int64_t W = VecT<T>::W;
  const DwShape d = dw_shape(g);
  const int64_t s = g.stride, owp = round_up(g.ow, W);
  parallel_range(d.C, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> pad(static_cast<size_t>(d.ph * d.pw)), dyp(static_cast<size_t>(g.oh * owp));
    std::vector<T> acc(static_cast<size_t>(d.kk * W)), sacc(static_cast<size_t>(d.kk));
    for (int64_t c = c0; c < c1; c++) {
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(sacc.begin(), sacc.end(), T(0));
      for (int64_t b = 0; b < g.B; b++) {
        const int64_t bc = b * d.C + c;
        pad_plane(x + bc * d.S, g.ih, g.iw, g.pad, g.pad, pad.data(), d.ph, d.pw);
        if (s != 1) {
          for (int64_t oy = 0; oy < g.oh; oy++)
            for (int64_t ox = 0; ox < g.ow; ox++) {
              const T v = dy[bc * d.P + oy * g.ow + ox];
              for (int64_t t = 0; t < d.kk; t++) sacc[t] += v * pad[(oy * s + t / g.kw) * d.pw + ox * s + t % g.kw];
            }
          continue;
        }
        pad_plane(dy + bc * d.P, g.oh, g.ow, 0, 0, dyp.data(), g.oh, owp);
        for (int64_t t = 0; t < d.kk; t++) {
          const T* xr = pad.data() + (t / g.kw) * d.pw + t % g.kw;
          V a0 = vsplat<T>(0), a1 = a0, a2 = a0, a3 = a0;  // four chains hide the FMA latency
          for (int64_t x0 = 0; x0 < owp; x0 += W) {
            int64_t oy = 0;
            for (; oy + 4 <= g.oh; oy += 4) {
              a0 += vload(dyp.data() + oy * owp + x0) * vload(xr + oy * d.pw + x0);
              a1 += vload(dyp.data() + (oy + 1) * owp + x0) * vload(xr + (oy + 1) * d.pw + x0);
              a2 += vload(dyp.data() + (oy + 2) * owp + x0) * vload(xr + (oy + 2) * d.pw + x0);
              a3 += vload(dyp.data() + (oy + 3) * owp + x0) * vload(xr + (oy + 3) * d.pw + x0);
            }
            for (; oy < g.oh; oy++) a0 += vload(dyp.data() + oy * owp + x0) * vload(xr + oy * d.pw + x0);
          }
          vstore(acc.data() + t * W, vload(acc.data() + t * W) + ((a0 + a1) + (a2 + a3)));
        }
      }
      for (int64_t t = 0; t < d.kk; t++) dw[c * d.kk + t] = s == 1 ? sum_fixed(acc.data() + t * W, W) : sacc[t];
    }
  });
}

// db[c] = Σ_b Σ_spatial t[b, c], per channel in a fixed order.
template <typename T>
void channel_sum(const T* t, int64_t B, int64_t C, int64_t S, T* db) {
  parallel_range(C, grain_for(B * S), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      T acc = 0;
      for (int64_t b = 0; b < B; b++) acc += sum_fixed(t + (b * C + c) * S, S);
      db[c] = acc;
    }
  });
}

}  // namespace

template <typename T>
void conv2d_forward_cpu(const ConvParams<T>& p) {
  if (p.g.B == 0) return;
  if (is_depthwise(p.g))
    depthwise_forward(p.g, p.x, p.w, p.bias, p.y);
  else
    unfold_pass<T>(p.g, p.w, p.x, p.bias, p.y, nullptr, nullptr, "conv2d");
}

template <typename T>
void conv2d_backward_cpu(const ConvParams<T>& p) {
  const ConvGeom& g = p.g;
  if (g.B == 0) {
    if (p.dw) std::fill(p.dw, p.dw + g.cq * (g.ci / g.groups) * g.kh * g.kw, T(0));
    if (p.db) std::fill(p.db, p.db + g.cq, T(0));
    return;
  }
  const bool dwise = is_depthwise(g);
  if (p.dx) {
    if (dwise)
      depthwise_dx(g, p.dy, p.w, p.dx);
    else
      fold_pass<T>(g, p.w, p.dy, nullptr, p.dx, "conv2dBackward");
  }
  if (p.dw) {
    if (dwise)
      depthwise_dw(g, p.x, p.dy, p.dw);
    else
      unfold_pass<T>(g, p.w, p.x, nullptr, nullptr, p.dy, p.dw, "conv2dBackward");
  }
  if (p.db) channel_sum(p.dy, g.B, g.cq, g.oh * g.ow, p.db);
}

template <typename T>
void conv_transpose2d_forward_cpu(const ConvParams<T>& p) {
  if (p.g.B == 0) return;
  fold_pass<T>(p.g, p.w, p.x, p.bias, p.y, "convTranspose2d");
}

template <typename T>
void conv_transpose2d_backward_cpu(const ConvParams<T>& p) {
  const ConvGeom& g = p.g;
  if (g.B == 0) {
    if (p.dw) std::fill(p.dw, p.dw + g.cq * (g.ci / g.groups) * g.kh * g.kw, T(0));
    if (p.db) std::fill(p.db, p.db + g.ci, T(0));
    return;
  }
  if (p.dx || p.dw) unfold_pass<T>(g, p.w, p.dy, nullptr, p.dx, p.dw ? p.x : nullptr, p.dw, "convTranspose2dBackward");
  if (p.db) channel_sum(p.dy, g.B, g.ci, g.ih * g.iw, p.db);
}

#define CLOZE_INST(T)                                                        \
  template void conv2d_forward_cpu<T>(const ConvParams<T>&);                 \
  template void conv2d_backward_cpu<T>(const ConvParams<T>&);                \
  template void conv_transpose2d_forward_cpu<T>(const ConvParams<T>&);       \
  template void conv_transpose2d_backward_cpu<T>(const ConvParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
