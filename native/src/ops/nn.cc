#include "nn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/mathfn.h"
#include "../core/philox.h"
#include "../core/threadpool.h"

namespace cloze {

template <typename T>
void dropout_apply_cpu(const DropoutParams<T>& p) {
  const float drop = static_cast<float>(p.p);
  const T keep_scale = p.p >= 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p.p));
  // One Philox call yields four uniforms: element i uses lane i%4 of block i/4.
  const int64_t blocks = (p.n + 3) / 4;
  parallel_range(blocks, 4096, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; blk++) {
      const Philox4 r = philox4x32(p.seed, p.step, static_cast<uint64_t>(blk));
      for (int l = 0; l < 4; l++) {
        const int64_t i = blk * 4 + l;
        if (i >= p.n) break;
        p.out[i] = philox_uniform(r.v[l]) >= drop ? p.x[i] * keep_scale : T(0);
      }
    }
  });
}

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

template <typename T>
void softmax_forward_cpu(const SoftmaxParams<T>& p) {
  const int64_t C = p.cols;
  const T ninf = neg_inf<T>();
  parallel_range(p.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* x = p.x + r * C;
      T* y = p.y + r * C;
      T mx = ninf;
      for (int64_t c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
      if (mx == ninf) {  // a fully masked row gives zeros, not NaN
        for (int64_t c = 0; c < C; c++) y[c] = T(0);
        continue;
      }
      T sum = 0;
      for (int64_t c = 0; c < C; c++) {
        const T v = x[c] == ninf ? T(0) : fexp(x[c] - mx);
        y[c] = v;
        sum += v;
      }
      const T inv = T(1) / sum;
      for (int64_t c = 0; c < C; c++) y[c] *= inv;
    }
  });
}

template <typename T>
void softmax_backward_cpu(const SoftmaxParams<T>& p) {
  const int64_t C = p.cols;
  parallel_range(p.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* y = p.y + r * C;
      const T* dy = p.dy + r * C;
      T* dx = p.dx + r * C;
      T dot = 0;
      for (int64_t c = 0; c < C; c++) dot += y[c] * dy[c];
      for (int64_t c = 0; c < C; c++) dx[c] = y[c] * (dy[c] - dot);
    }
  });
}

template <typename T>
double cross_entropy_forward_cpu(CrossEntropyParams<T>& p) {
  const int64_t V = p.V;
  std::vector<double> loss(static_cast<size_t>(p.M), 0.0);
  std::vector<uint8_t> used(static_cast<size_t>(p.M), 0);
  parallel_range(p.M, std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; m++) {
      const int32_t t = p.targets[m];
      if (t == p.ignore_index) {
        p.lse[m] = T(0);
        continue;
      }
      const T* x = p.logits + (p.rows ? p.rows[m] : m) * V;
      T mx = x[0];
      for (int64_t c = 1; c < V; c++) mx = x[c] > mx ? x[c] : mx;
      T sum = 0;
      for (int64_t c = 0; c < V; c++) sum += fexp(x[c] - mx);
      const T lse = mx + std::log(sum);
      p.lse[m] = lse;
      loss[m] = static_cast<double>(lse - x[t]);
      used[m] = 1;
    }
  });
  double total = 0;
  int64_t count = 0;
  for (int64_t m = 0; m < p.M; m++) {
    total += loss[m];
    count += used[m];
  }
  p.count = count;
  return total;
}

template <typename T>
void cross_entropy_backward_cpu(const CrossEntropyParams<T>& p) {
  const int64_t V = p.V;
  const T gs = static_cast<T>(p.grad_scale);
  parallel_range(p.M, std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; m++) {
      const int32_t t = p.targets[m];
      if (t == p.ignore_index) continue;
      const int64_t row = p.rows ? p.rows[m] : m;
      const T* x = p.logits + row * V;
      T* d = p.dlogits + row * V;
      const T lse = p.lse[m];
      for (int64_t c = 0; c < V; c++) d[c] = gs * fexp(x[c] - lse);
      d[t] -= gs;
    }
  });
}

template <typename T>
void argmax_rows_cpu(int64_t rows, int64_t cols, const T* x, int32_t* out) {
  parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* row = x + r * cols;
      int64_t best = 0;
      for (int64_t c = 1; c < cols; c++) best = row[c] > row[best] ? c : best;
      out[r] = static_cast<int32_t>(best);
    }
  });
}

template <typename T>
void embedding_forward_cpu(const EmbeddingParams<T>& p) {
  parallel_range(p.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(p.D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) std::copy(p.table + p.ids[i] * p.D, p.table + (p.ids[i] + 1) * p.D, p.out + i * p.D);
  });
}

template <typename T>
void embedding_backward_cpu(const EmbeddingParams<T>& p) {
  // Column blocks own disjoint slices of dtable, so repeated ids never race
  // and the summation order is fixed.
  constexpr int64_t CB = 64;
  const int64_t blocks = (p.D + CB - 1) / CB;
  ThreadPool::get().parallel_for(blocks, [&](int64_t blk, int) {
    const int64_t c0 = blk * CB, c1 = std::min(p.D, c0 + CB);
    for (int64_t i = 0; i < p.N; i++) {
      T* dst = p.dtable + p.ids[i] * p.D;
      const T* src = p.dout + i * p.D;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
}

#define CLOZE_INST(T)                                                          \
  template void dropout_apply_cpu<T>(const DropoutParams<T>&);                \
  template void layernorm_forward_cpu<T>(const LayerNormParams<T>&);          \
  template void layernorm_backward_cpu<T>(const LayerNormParams<T>&);         \
  template void softmax_forward_cpu<T>(const SoftmaxParams<T>&);              \
  template void softmax_backward_cpu<T>(const SoftmaxParams<T>&);             \
  template double cross_entropy_forward_cpu<T>(CrossEntropyParams<T>&);       \
  template void cross_entropy_backward_cpu<T>(const CrossEntropyParams<T>&);  \
  template void argmax_rows_cpu<T>(int64_t, int64_t, const T*, int32_t*);      \
  template void embedding_forward_cpu<T>(const EmbeddingParams<T>&);          \
  template void embedding_backward_cpu<T>(const EmbeddingParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
