#include "sparse_norm_pool.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int64_t kRowChunk = 256;   // rows per partial sum: fixed, so sums do not depend on threads
constexpr int64_t kGrain = 1 << 14;  // elements per task for row-parallel loops

// out[s·C + c] = Σ_rows f(r, c)[s] for S per-channel sums, in double: one
// partial per fixed chunk of rows, the partials added in chunk order.
template <int S, typename F>
void column_sums(int64_t N, int64_t C, F&& f, double* out) {
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<double> part(static_cast<size_t>(chunks * S * C), 0.0);
  ThreadPool::get().parallel_for(chunks, [&](int64_t k, int) {
    double* acc = part.data() + k * S * C;
    for (int64_t r = k * kRowChunk; r < std::min(N, (k + 1) * kRowChunk); r++) f(r, acc);
  });
  std::fill(out, out + S * C, 0.0);
  for (int64_t k = 0; k < chunks; k++)
    for (int64_t j = 0; j < S * C; j++) out[j] += part[static_cast<size_t>(k * S * C + j)];
}

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)); }

}  // namespace

template <typename T>
void sparse_batchnorm_forward_cpu(const SparseBatchNormParams<T>& p) {
  const int64_t N = p.N, C = p.C;
  if (N == 0) return;
  const bool batch_stats = p.training || !p.running_mean;
  if (batch_stats) {
    std::vector<double> s(static_cast<size_t>(C)), q(static_cast<size_t>(C));
    column_sums<1>(N, C, [&](int64_t r, double* acc) {
      const T* x = p.x + r * C;
      for (int64_t c = 0; c < C; c++) acc[c] += static_cast<double>(x[c]);
    }, s.data());
    for (int64_t c = 0; c < C; c++) s[static_cast<size_t>(c)] /= static_cast<double>(N);
    // Two passes: Σ(x − mean)² does not cancel the way Σx² − N·mean² does.
    column_sums<1>(N, C, [&](int64_t r, double* acc) {
      const T* x = p.x + r * C;
      for (int64_t c = 0; c < C; c++) {
        const double d = static_cast<double>(x[c]) - s[static_cast<size_t>(c)];
        acc[c] += d * d;
      }
    }, q.data());
    for (int64_t c = 0; c < C; c++) {
      const double mean = s[static_cast<size_t>(c)], var = q[static_cast<size_t>(c)] / static_cast<double>(N);
      p.mean[c] = static_cast<T>(mean);
      p.rstd[c] = static_cast<T>(1.0 / std::sqrt(var + p.eps));
      if (p.training && p.running_mean) {
        const double unbiased = q[static_cast<size_t>(c)] / static_cast<double>(N - 1);
        p.running_mean[c] = static_cast<T>((1 - p.momentum) * static_cast<double>(p.running_mean[c]) + p.momentum * mean);
        p.running_var[c] = static_cast<T>((1 - p.momentum) * static_cast<double>(p.running_var[c]) + p.momentum * unbiased);
      }
    }
  } else {
    for (int64_t c = 0; c < C; c++) {
      p.mean[c] = p.running_mean[c];
      p.rstd[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(p.running_var[c]) + p.eps));
    }
  }
  std::vector<T> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) {
    scale[static_cast<size_t>(c)] = p.rstd[c] * (p.w ? p.w[c] : T(1));
    shift[static_cast<size_t>(c)] = (p.b ? p.b[c] : T(0)) - p.mean[c] * scale[static_cast<size_t>(c)];
  }
  parallel_range(N, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* __restrict x = p.x + r * C;
      T* __restrict y = p.y + r * C;
      for (int64_t c = 0; c < C; c++) y[c] = x[c] * scale[static_cast<size_t>(c)] + shift[static_cast<size_t>(c)];
    }
  });
}

template <typename T>
void sparse_batchnorm_backward_cpu(const SparseBatchNormParams<T>& p) {
  const int64_t N = p.N, C = p.C;
  // sums[c] = Σ dy, sums[C + c] = Σ dy·x̂
  std::vector<double> sums(static_cast<size_t>(2 * C), 0.0);
  if (N > 0) {
    column_sums<2>(N, C, [&](int64_t r, double* acc) {
      const T* x = p.x + r * C;
      const T* g = p.dy + r * C;
      for (int64_t c = 0; c < C; c++) {
        const double xh = (static_cast<double>(x[c]) - static_cast<double>(p.mean[c])) * static_cast<double>(p.rstd[c]);
        acc[c] += static_cast<double>(g[c]);
        acc[C + c] += static_cast<double>(g[c]) * xh;
      }
    }, sums.data());
  }
  for (int64_t c = 0; c < C; c++) {
    if (p.db) p.db[c] = static_cast<T>(sums[static_cast<size_t>(c)]);
    if (p.dw) p.dw[c] = static_cast<T>(sums[static_cast<size_t>(C + c)]);
  }
  if (!p.dx || N == 0) return;
  // dx = w·rstd·(dy − [Σdy + x̂·Σdy·x̂]/N); the bracket only when the batch gave the statistics.
  std::vector<T> k(static_cast<size_t>(C)), a(static_cast<size_t>(C)), bsh(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) {
    const double ws = static_cast<double>(p.rstd[c]) * (p.w ? static_cast<double>(p.w[c]) : 1.0);
    k[static_cast<size_t>(c)] = static_cast<T>(ws);
    const double mg = p.training ? sums[static_cast<size_t>(c)] / static_cast<double>(N) : 0.0;
    const double mgx = p.training ? sums[static_cast<size_t>(C + c)] / static_cast<double>(N) : 0.0;
    // dx = ws·dy − ws·mg − ws·mgx·rstd·(x − mean) = ws·dy + a·x + bsh
    a[static_cast<size_t>(c)] = static_cast<T>(-ws * mgx * static_cast<double>(p.rstd[c]));
    bsh[static_cast<size_t>(c)] =
        static_cast<T>(-ws * mg + ws * mgx * static_cast<double>(p.rstd[c]) * static_cast<double>(p.mean[c]));
  }
  parallel_range(N, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* __restrict x = p.x + r * C;
      const T* __restrict g = p.dy + r * C;
      T* __restrict dx = p.dx + r * C;
      for (int64_t c = 0; c < C; c++)
        dx[c] = k[static_cast<size_t>(c)] * g[c] + a[static_cast<size_t>(c)] * x[c] + bsh[static_cast<size_t>(c)];
    }
  });
}

template <typename T>
void sparse_maxpool_forward_cpu(const SparseMaxPoolParams<T>& p) {
  const int64_t C = p.C, K2 = p.K2;
  parallel_range(p.M, row_grain(K2 * C), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      T* __restrict y = p.y + m * C;
      int32_t* __restrict arg = p.arg + m * C;
      std::fill(y, y + C, T(0));
      std::fill(arg, arg + C, -1);
      const int32_t* t = p.nbr + m * K2;
      for (int64_t o = 0; o < K2; o++) {
        if (t[o] < 0) continue;
        const T* __restrict x = p.x + static_cast<int64_t>(t[o]) * C;
        for (int64_t c = 0; c < C; c++) {
          // Strictly greater keeps the first maximum; a NaN wins (as in PyTorch).
          const T v = x[c];
          if (arg[c] < 0 || v > y[c] || (v != v && y[c] == y[c])) {
            y[c] = v;
            arg[c] = static_cast<int32_t>(o);
          }
        }
      }
    }
  });
}

template <typename T>
void sparse_maxpool_backward_cpu(const SparseMaxPoolParams<T>& p) {
  const int64_t C = p.C, K2 = p.K2;
  // Each input row gathers from the outputs that read it (inv): no scatter.
  parallel_range(p.N, row_grain(K2 * C), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      T* __restrict dx = p.dx + i * C;
      std::fill(dx, dx + C, T(0));
      const int32_t* t = p.inv + i * K2;
      for (int64_t o = 0; o < K2; o++) {
        if (t[o] < 0) continue;
        const int64_t m = t[o];
        const int32_t* arg = p.arg_in + m * C;
        const T* g = p.dy + m * C;
        // g loaded unconditionally: a conditional load kept the loop scalar (see act_backward_cpu).
        for (int64_t c = 0; c < C; c++) {
          const T gc = g[c];
          dx[c] += arg[c] == o ? gc : T(0);
        }
      }
    }
  });
}

#define CLOZE_INST(T)                                                                  \
  template void sparse_batchnorm_forward_cpu<T>(const SparseBatchNormParams<T>&);    \
  template void sparse_batchnorm_backward_cpu<T>(const SparseBatchNormParams<T>&);   \
  template void sparse_maxpool_forward_cpu<T>(const SparseMaxPoolParams<T>&);        \
  template void sparse_maxpool_backward_cpu<T>(const SparseMaxPoolParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
