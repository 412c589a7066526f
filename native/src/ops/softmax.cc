#include "softmax.h"

#include <algorithm>

#include "../core/mathfn.h"
#include "../core/threadpool.h"

namespace cloze {

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

#define CLOZE_INST(T)                                             \
  template void softmax_forward_cpu<T>(const SoftmaxParams<T>&);  \
  template void softmax_backward_cpu<T>(const SoftmaxParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
