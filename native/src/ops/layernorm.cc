#include "layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

template <typename T>
void layernorm_forward_cpu(const LayerNormParams<T>& p) {
  const int64_t C = p.cols;
  parallel_range(p.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* x = p.x + r * C;
      T* y = p.y + r * C;
      // Two passes over a row that sits in L1: stable, and exact in float64.
      T mean = 0;
      for (int64_t c = 0; c < C; c++) mean += x[c];
      mean /= static_cast<T>(C);
      T var = 0;
      for (int64_t c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
      var /= static_cast<T>(C);
      const T rstd = T(1) / std::sqrt(var + static_cast<T>(p.eps));
      for (int64_t c = 0; c < C; c++) {
        T v = (x[c] - mean) * rstd;
        if (p.w) v *= p.w[c];
        if (p.b) v += p.b[c];
        y[c] = v;
      }
      p.mean[r] = mean;
      p.rstd[r] = rstd;
    }
  });
}

template <typename T>
void layernorm_backward_cpu(const LayerNormParams<T>& p) {
  const int64_t C = p.cols, R = p.rows;
  ThreadPool& pool = ThreadPool::get();
  // dw/db: partial sums over fixed 64-row chunks, combined in chunk order, so
  // the result does not depend on the thread count.
  const bool param_grads = p.dw || p.db;
  const int64_t step = 64;
  const int64_t chunks = (R + step - 1) / step;
  std::vector<std::vector<T>> part_w(chunks), part_b(chunks);
  pool.parallel_for(chunks, [&](int64_t ch, int) {
    const int64_t r0 = ch * step, r1 = std::min(R, r0 + step);
    std::vector<T>& dw = part_w[ch];
    std::vector<T>& db = part_b[ch];
    if (param_grads) {
      dw.assign(C, T(0));
      db.assign(C, T(0));
    }
    for (int64_t r = r0; r < r1; r++) {
      const T* x = p.x + r * C;
      const T* dy = p.dy + r * C;
      const T mean = p.mean[r], rstd = p.rstd[r];
      T sum_g = 0, sum_gx = 0;
      for (int64_t c = 0; c < C; c++) {
        const T xhat = (x[c] - mean) * rstd;
        const T g = p.w ? dy[c] * p.w[c] : dy[c];
        sum_g += g;
        sum_gx += g * xhat;
        if (param_grads) {
          dw[c] += dy[c] * xhat;
          db[c] += dy[c];
        }
      }
      if (p.dx) {
        const T invC = T(1) / static_cast<T>(C);
        T* dx = p.dx + r * C;
        for (int64_t c = 0; c < C; c++) {
          const T xhat = (x[c] - mean) * rstd;
          const T g = p.w ? dy[c] * p.w[c] : dy[c];
          dx[c] = rstd * (g - invC * sum_g - xhat * invC * sum_gx);
        }
      }
    }
  });
  if (param_grads) {
    for (int64_t c = 0; c < C; c++) {
      T sw = 0, sb = 0;
      for (int64_t ch = 0; ch < chunks; ch++) {
        sw += part_w[ch][c];
        sb += part_b[ch][c];
      }
      if (p.dw) p.dw[c] = sw;
      if (p.db) p.db[c] = sb;
    }
  }
}

#define CLOZE_INST(T)                                                 \
  template void layernorm_forward_cpu<T>(const LayerNormParams<T>&);  \
  template void layernorm_backward_cpu<T>(const LayerNormParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
