#include "optim.h"

#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

template <typename T>
void adamw_step_cpu(const AdamWParams<T>& p) {
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
  const T step_size = static_cast<T>(p.lr / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T eps = static_cast<T>(p.eps), decay = static_cast<T>(p.lr * p.weight_decay);
  double gsd = 1.0;
  if (!adamw_clip_scale(p.grad_scale, p.clip_norm, p.max_norm, p.guards, p.nguards, &gsd)) return;
  const T gs = static_cast<T>(gsd);
  parallel_range(p.n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const T g = p.grad[i] * gs;
      const T m = b1 * p.m[i] + (T(1) - b1) * g;
      const T v = b2 * p.v[i] + (T(1) - b2) * g * g;
      p.m[i] = m;
      p.v[i] = v;
      p.param[i] -= decay * p.param[i] + step_size * m / (std::sqrt(v) * inv_sqrt_bc2 + eps);
    }
  });
}

template <typename T>
double sum_squares_cpu(int64_t n, const T* x) {
  constexpr int64_t chunk = 1 << 14;
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  ThreadPool::get().parallel_for(chunks, [&](int64_t c, int) {
    const int64_t b = c * chunk, e = std::min(n, b + chunk);
    // Eight independent double accumulators, added in a fixed tree: GCC vectorises
    // them (one ordered scalar sum ran clipGradNorm at 6 GB/s in the MLM step's profile).
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      for (int j = 0; j < 8; j++) a[j] += static_cast<double>(x[i + j]) * static_cast<double>(x[i + j]);
    double acc = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < e; i++) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    part[c] = acc;
  });
  double total = 0;
  for (double v : part) total += v;
  return total;
}

template <typename T>
void ema_update_cpu(int64_t n, T* dst, const T* src, double decay) {
  const T keep = static_cast<T>(decay), take = static_cast<T>(1.0 - decay);
  parallel_range(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) dst[i] = keep * dst[i] + take * src[i];
  });
}

template void adamw_step_cpu<float>(const AdamWParams<float>&);
template void adamw_step_cpu<double>(const AdamWParams<double>&);
template double sum_squares_cpu<float>(int64_t, const float*);
template double sum_squares_cpu<double>(int64_t, const double*);
template void ema_update_cpu<float>(int64_t, float*, const float*, double);
template void ema_update_cpu<double>(int64_t, double*, const double*, double);

}  // namespace cloze
