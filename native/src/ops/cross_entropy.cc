#include "cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/mathfn.h"
#include "../core/threadpool.h"

namespace cloze {

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

#define CLOZE_INST(T)                                                        \
  template double cross_entropy_forward_cpu<T>(CrossEntropyParams<T>&);      \
  template void cross_entropy_backward_cpu<T>(const CrossEntropyParams<T>&); \
  template void argmax_rows_cpu<T>(int64_t, int64_t, const T*, int32_t*);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
