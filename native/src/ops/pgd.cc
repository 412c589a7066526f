#include "pgd.h"

#include <cmath>

#include "../core/philox.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

// The uniform in [−1, 1) for flat element i, the same draw as the CUDA kernel's.
inline float start_uniform(uint64_t seed, uint64_t step, int64_t i) {
  const Philox4 r = philox4x32(seed, step, static_cast<uint64_t>(i / 4));
  return 2.f * philox_uniform(r.v[i % 4]) - 1.f;
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

}  // namespace

template <typename T>
void pgd_random_start_cpu(const PgdParams<T>& p) {
  parallel_range(p.examples, 1, [&](int64_t b, int64_t e) {
    for (int64_t ex = b; ex < e; ex++) {
      const int64_t off = static_cast<int64_t>(p.starts[ex]) * p.cols;
      const int64_t n = static_cast<int64_t>(p.lengths[ex]) * p.cols;
      T* o = p.out + off;
      const int64_t flat0 = p.row_offset * p.cols + off;
      for (int64_t i = 0; i < n; i++) o[i] = static_cast<T>(start_uniform(p.seed, p.step, flat0 + i));
      const double norm = std::sqrt(sum_squares(o, n));
      if (norm == 0) continue;
      const double s = p.eps / norm;
      for (int64_t i = 0; i < n; i++) o[i] = static_cast<T>(static_cast<double>(o[i]) * s);
    }
  });
}

template <typename T>
void pgd_step_cpu(const PgdParams<T>& p) {
  parallel_range(p.examples, 1, [&](int64_t b, int64_t e) {
    for (int64_t ex = b; ex < e; ex++) {
      const int64_t off = static_cast<int64_t>(p.starts[ex]) * p.cols;
      const int64_t n = static_cast<int64_t>(p.lengths[ex]) * p.cols;
      const T* d = p.delta + off;
      const T* g = p.grad + off;
      T* o = p.out + off;
      const double gnorm = std::sqrt(sum_squares(g, n));
      const double a = gnorm > 0 ? p.alpha / gnorm : 0.0;
      // The stepped δ in double, projected from its own norm, then rounded once.
      double s = 0;
      for (int64_t i = 0; i < n; i++) {
        const double v = static_cast<double>(d[i]) + a * static_cast<double>(g[i]);
        s += v * v;
      }
      const double norm = std::sqrt(s);
      const double shrink = norm > p.eps ? p.eps / norm : 1.0;
      for (int64_t i = 0; i < n; i++) {
        o[i] = static_cast<T>((static_cast<double>(d[i]) + a * static_cast<double>(g[i])) * shrink);
      }
    }
  });
}

template void pgd_random_start_cpu<float>(const PgdParams<float>&);
template void pgd_random_start_cpu<double>(const PgdParams<double>&);
template void pgd_step_cpu<float>(const PgdParams<float>&);
template void pgd_step_cpu<double>(const PgdParams<double>&);

}  // namespace cloze
