#include "linear_ce.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/blas.h"
#include "../core/storage.h"
#include "elementwise.h"
#include "../core/mathfn.h"
#include "../core/rowops.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

// Rows handled per pool task: about 16K scratch elements.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)); }

// S [M, n] = h·W[c0 : c0+n]ᵀ + b[c0 : c0+n], row stride n (the bias added by the GEMM's blocks).
template <typename P, typename T>
void chunk_logits(const P& p, int64_t c0, int64_t n, T* S) {
  gemm<T>(chunk_logits_gemm(p, c0, n, S));
}

// The cross-entropy's logits chunk without its bias, S = h·W_chunkᵀ:
// the row passes below add the bias as they read S, which saves writing the
// bias rows into S first and the GEMM reading them back (two [M, n] passes
// per chunk, forward and backward).
template <typename T>
void chunk_logits_nobias(const LinearCEParams<T>& p, int64_t c0, int64_t n, T* S) {
  GemmParams g = chunk_logits_gemm(p, c0, n, S);
  g.bias = nullptr;
  gemm<T>(g);
}

// Row m of the biased logits: x[j] + b[j] (b null: no bias).
template <typename T>
inline T biased(const T* x, const T* b, int64_t j) {
  return b ? x[j] + b[j] : x[j];
}

// max_j (x[j] + b[j]). Vectorised for float: plain float loops stay scalar
// without -ffast-math (rowops.h), and these passes cost as much as the GEMM.
template <typename T>
T biased_row_max(const T* x, const T* b, int64_t n) {
  T m = neg_inf<T>();
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    VF vm = vsplat<float>(m);
    if (b)
      for (; j + kWF <= n; j += kWF) {
        const VF v = vload(x + j) + vload(b + j);
        vm = v > vm ? v : vm;
      }
    else
      for (; j + kWF <= n; j += kWF) {
        const VF v = vload(x + j);
        vm = v > vm ? v : vm;
      }
    m = hmax(vm);
  }
  for (; j < n; j++) {
    const T v = biased(x, b, j);
    m = v > m ? v : m;
  }
  return m;
}

// Σ_j exp(x[j] + b[j] − mx), reading the row only (nothing is stored).
template <typename T>
T biased_row_sumexp(const T* x, const T* b, int64_t n, T mx) {
  T acc = 0;
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    const VF vm = vsplat<float>(mx);
    VF va = vsplat<float>(0);
    if (b)
      for (; j + kWF <= n; j += kWF) va += vexp_sf(vload(x + j) + vload(b + j) - vm);
    else
      for (; j + kWF <= n; j += kWF) va += vexp_sf(vload(x + j) - vm);
    acc = hsum(va);
  }
  for (; j < n; j++) acc += fexp_sf(biased(x, b, j) - mx);
  return acc;
}

// x[j] ← gs·exp(x[j] + b[j] − lse): the softmax of one logits row scaled by
// the gradient, in place. Each element's value does not depend on the lane
// it falls in, so the result is the same whatever the split into threads.
template <typename T>
void scaled_softmax_row(T* x, const T* b, int64_t n, T lse, T gs) {
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    const VF vl = vsplat<float>(lse), vg = vsplat<float>(gs);
    if (b)
      for (; j + kWF <= n; j += kWF) vstore(x + j, vg * vexp_sf(vload(x + j) + vload(b + j) - vl));
    else
      for (; j + kWF <= n; j += kWF) vstore(x + j, vg * vexp_sf(vload(x + j) - vl));
  }
  for (; j < n; j++) x[j] = gs * fexp_sf(biased(x, b, j) - lse);
}

// The [M, chunk] logits buffer, from the storage block cache: it is the size
// of an activation and is needed every step, so it must not be re-mapped (and
// page-faulted) every call. It is written before it is read, so no zero-fill.
template <typename T>
std::shared_ptr<Storage> chunk_scratch(int64_t M, int64_t C) {
  return Storage::allocate(sizeof(T) * static_cast<size_t>(M * C), "linearCrossEntropy", false);
}

}  // namespace

template <typename T>
double linear_ce_forward_cpu(LinearCEParams<T>& p) {
  const int64_t M = p.M, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  // Online log-sum-exp per row: running max and the sum of exp(x − max).
  std::vector<T> run_max(static_cast<size_t>(M), neg_inf<T>()), run_sum(static_cast<size_t>(M), T(0));
  std::vector<T> tlogit(static_cast<size_t>(M), T(0));
  const auto scratch = chunk_scratch<T>(M, C);
  T* S = static_cast<T*>(scratch->data());
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits_nobias(p, c0, n, S);
    const T* bc = p.b ? p.b + c0 : nullptr;
    parallel_range(M, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t m = r0; m < r1; m++) {
        const int32_t t = p.targets[m];
        if (t == p.ignore_index) continue;
        const T* x = S + m * n;
        const T cm = biased_row_max(x, bc, n);
        const T old = run_max[m];
        const T mx = cm > old ? cm : old;
        const T sum = biased_row_sumexp(x, bc, n, mx);
        // The first chunk has no previous sum: skip exp(−∞ − mx).
        run_sum[m] = (old == neg_inf<T>() ? T(0) : run_sum[m] * fexp(old - mx)) + sum;
        run_max[m] = mx;
        if (t >= c0 && t < c0 + n) tlogit[m] = biased(x, bc, t - c0);
      }
    });
  }
  // Fixed-order reduction: the loss does not depend on the thread count.
  double total = 0;
  int64_t count = 0;
  for (int64_t m = 0; m < M; m++) {
    if (p.targets[m] == p.ignore_index) {
      p.lse[m] = T(0);
      continue;
    }
    const T lse = run_max[m] + std::log(run_sum[m]);
    p.lse[m] = lse;
    total += static_cast<double>(lse - tlogit[m]);
    count++;
  }
  p.count = count;
  return total;
}

template <typename T>
void linear_ce_backward_cpu(const LinearCEParams<T>& p) {
  const int64_t M = p.M, D = p.D, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  if (p.count == 0 || M == 0) {  // every row ignored: all gradients are zero (nothing to add)
    if (p.dh && !p.acc_dh) std::fill(p.dh, p.dh + M * D, T(0));
    if (p.dw && !p.acc_dw) std::fill(p.dw, p.dw + V * D, T(0));
    if (p.db && !p.acc_db) std::fill(p.db, p.db + V, T(0));
    return;
  }
  const T gs = static_cast<T>(p.grad_scale);
  const auto scratch = chunk_scratch<T>(M, C);
  T* S = static_cast<T*>(scratch->data());
  std::vector<T> db_chunk(p.db && p.acc_db ? static_cast<size_t>(C) : 0);
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits_nobias(p, c0, n, S);
    const T* bc = p.b ? p.b + c0 : nullptr;
    // G = (softmax − onehot)·gradScale, in place over the recomputed logits.
    parallel_range(M, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t m = r0; m < r1; m++) {
        T* x = S + m * n;
        const int32_t t = p.targets[m];
        if (t == p.ignore_index) {
          std::fill(x, x + n, T(0));
          continue;
        }
        const T lse = p.lse[m];
        scaled_softmax_row(x, bc, n, lse, gs);
        if (t >= c0 && t < c0 + n) x[t - c0] -= gs;
      }
    });
    if (p.dh) {  // dh [M, D] (+)= G·W_chunk, summed over the chunks by beta = 1
      GemmParams g;
      g.M = M;
      g.N = D;
      g.K = n;
      g.A = S;
      g.lda = n;
      g.B = p.w + c0 * D;
      g.ldb = D;
      g.C = p.dh;
      g.ldc = D;
      g.beta = c0 == 0 && !p.acc_dh ? 0.0 : 1.0;
      gemm<T>(g);
    }
    if (p.dw) {  // dW_chunk [n, D] (+)= Gᵀ·h, straight into the gradient buffer when accumulating
      GemmParams g;
      g.trans_a = true;
      g.M = n;
      g.N = D;
      g.K = M;
      g.A = S;
      g.lda = n;
      g.B = p.h;
      g.ldb = D;
      g.C = p.dw + c0 * D;
      g.ldc = D;
      g.beta = p.acc_dw ? 1.0 : 0.0;
      gemm<T>(g);
    }
    if (p.db) {  // db_chunk (+)= column sums of G, in a fixed order
      EltParams<T> e;
      e.n = M * n;
      e.cols = n;
      e.a = S;
      e.out = p.acc_db ? db_chunk.data() : p.db + c0;
      sum_rows_cpu<T>(e);
      if (p.acc_db)
        for (int64_t j = 0; j < n; j++) p.db[c0 + j] += db_chunk[static_cast<size_t>(j)];
    }
  }
}

template <typename T>
void linear_sample_cpu(const LinearSampleParams<T>& p) {
  const int64_t M = p.M, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  if (M == 0) return;
  const T inv_t = static_cast<T>(1.0 / p.temperature);
  std::vector<T> best(static_cast<size_t>(M), neg_inf<T>());
  std::vector<int32_t> arg(static_cast<size_t>(M), 0);
  const auto scratch = Storage::allocate(sizeof(T) * static_cast<size_t>(M * C), "linearSample", false);
  T* S = static_cast<T*>(scratch->data());
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits(p, c0, n, S);
    parallel_range(M, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t m = r0; m < r1; m++) {
        const T* x = S + m * n;
        T bm = best[m];
        int32_t am = arg[m];
        for (int64_t j = 0; j < n; j++) {
          const float u = linear_sample_uniform(p.seed, p.step, m + p.row_offset, c0 + j);
          const T g = -std::log(-std::log(static_cast<T>(u)));
          const T v = x[j] * inv_t + g;
          if (v > bm) {  // strict: ties keep the lower id
            bm = v;
            am = static_cast<int32_t>(c0 + j);
          }
        }
        best[m] = bm;
        arg[m] = am;
      }
    });
  }
  std::copy(arg.begin(), arg.end(), p.out);
}

#define CLOZE_INST(T)                                                  \
  template double linear_ce_forward_cpu<T>(LinearCEParams<T>&);       \
  template void linear_ce_backward_cpu<T>(const LinearCEParams<T>&); \
  template void linear_sample_cpu<T>(const LinearSampleParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
