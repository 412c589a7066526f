#include "batchnorm.h"

#include <algorithm>
#include <cmath>

#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per parallel_range chunk

// Σ_i f(i) for i in [0, n) in double, over eight interleaved partial sums so
// the loop vectorizes while the order of additions depends on n alone.
template <typename F>
double sum8(int64_t n, F f) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) s[l] += f(i + l);
  double tail = 0;
  for (; i < n; i++) tail += f(i);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

// Σ f(k) over the flat indices k of channel c's active elements in [B, C, S].
template <typename T, typename F>
double channel_sum(const BatchNormParams<T>& p, int64_t c, F f) {
  double acc = 0;
  for (int64_t b = 0; b < p.B; b++) {
    const int64_t off = (b * p.C + c) * p.S;
    const uint8_t* m = p.mask ? p.mask + b * p.S : nullptr;
    acc += m ? sum8(p.S, [&](int64_t i) { return m[i] ? f(off + i) : 0.0; }) : sum8(p.S, [&](int64_t i) { return f(off + i); });
  }
  return acc;
}

template <typename T>
int64_t active_count(const BatchNormParams<T>& p) {
  if (!p.mask) return p.B * p.S;
  int64_t n = 0;
  for (int64_t i = 0; i < p.B * p.S; i++) n += p.mask[i];
  return n;
}

}  // namespace

template <typename T>
void batchnorm_forward_cpu(const BatchNormParams<T>& p) {
  const int64_t n = active_count(p);
  parallel_range(p.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(p.B * p.S, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double mean = 0, rstd = 1 / std::sqrt(p.eps);
      if (p.training) {
        if (n > 0) {
          mean = channel_sum(p, c, [&](int64_t k) { return static_cast<double>(p.x[k]); }) / n;
          // Two passes: Σ(x − mean)² keeps precision that E[x²] − mean² loses.
          const double var = channel_sum(p, c, [&](int64_t k) {
                               const double d = p.x[k] - mean;
                               return d * d;
                             }) / n;
          rstd = 1 / std::sqrt(var + p.eps);
          if (p.running_mean) {
            const double m = p.momentum;
            p.running_mean[c] = static_cast<T>((1 - m) * p.running_mean[c] + m * mean);
            if (n > 1) p.running_var[c] = static_cast<T>((1 - m) * p.running_var[c] + m * var * n / (n - 1));
          }
        }
      } else {
        mean = p.running_mean[c];
        rstd = 1 / std::sqrt(static_cast<double>(p.running_var[c]) + p.eps);
      }
      p.mean[c] = static_cast<T>(mean);
      p.rstd[c] = static_cast<T>(rstd);
      // (x − mean)·scale rather than x·scale − mean·scale: the latter cancels
      // catastrophically when |mean| is large against the spread.
      const T scale = static_cast<T>((p.w ? p.w[c] : 1.0) * rstd);
      const T shift = static_cast<T>(p.b ? p.b[c] : 0.0);
      const T mt = static_cast<T>(mean);
      for (int64_t b = 0; b < p.B; b++) {
        const T* __restrict x = p.x + (b * p.C + c) * p.S;
        T* __restrict y = p.y + (b * p.C + c) * p.S;
        if (p.mask) {
          const uint8_t* __restrict m = p.mask + b * p.S;
          for (int64_t i = 0; i < p.S; i++) y[i] = m[i] ? (x[i] - mt) * scale + shift : T(0);
        } else {
          for (int64_t i = 0; i < p.S; i++) y[i] = (x[i] - mt) * scale + shift;
        }
      }
    }
  });
}

template <typename T>
void batchnorm_sums_cpu(const BatchNormParams<T>& p, const double* center, double* out) {
  parallel_range(p.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(p.B * p.S, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      if (center) {
        const double m = center[c];
        out[c] = channel_sum(p, c, [&](int64_t k) {
          const double d = p.x[k] - m;
          return d * d;
        });
      } else {
        out[c] = channel_sum(p, c, [&](int64_t k) { return static_cast<double>(p.x[k]); });
      }
    }
  });
  out[p.C] = static_cast<double>(active_count(p));
}

template <typename T>
void batchnorm_backward_cpu(const BatchNormParams<T>& p) {
  const int64_t n_local = active_count(p);
  // Synchronized: dx's means are over every rank's active elements.
  const int64_t n = p.global ? static_cast<int64_t>(p.global[2 * p.C]) : n_local;
  parallel_range(p.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(p.B * p.S, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const double mean = p.mean[c], rstd = p.rstd[c];
      double sum_dy = 0, sum_dy_xhat = 0;
      if (n_local > 0) {
        sum_dy = channel_sum(p, c, [&](int64_t k) { return static_cast<double>(p.dy[k]); });
        sum_dy_xhat = channel_sum(p, c, [&](int64_t k) { return static_cast<double>(p.dy[k]) * (p.x[k] - mean); }) * rstd;
      }
      if (p.dw) p.dw[c] = static_cast<T>(sum_dy_xhat);
      if (p.db) p.db[c] = static_cast<T>(sum_dy);
      if (!p.dx) continue;
      if (p.global) {
        sum_dy = p.global[c];
        sum_dy_xhat = p.global[p.C + c];
      }
      // training: dx = w·rstd·(dy − Σdy/n − x̂·Σ(dy·x̂)/n); eval: dx = w·rstd·dy.
      const double k = (p.w ? p.w[c] : 1.0) * rstd;
      const bool batch = p.training && n > 0;
      const T a = static_cast<T>(k);
      const T c1t = static_cast<T>(batch ? -k * sum_dy / n : 0.0);
      const T c2t = static_cast<T>(batch ? -k * sum_dy_xhat * rstd / n : 0.0);
      const T mt = static_cast<T>(mean);
      for (int64_t b = 0; b < p.B; b++) {
        const T* __restrict x = p.x + (b * p.C + c) * p.S;
        const T* __restrict dy = p.dy + (b * p.C + c) * p.S;
        T* __restrict dx = p.dx + (b * p.C + c) * p.S;
        if (p.mask) {
          const uint8_t* __restrict m = p.mask + b * p.S;
          for (int64_t i = 0; i < p.S; i++) dx[i] = m[i] ? a * dy[i] + c1t + c2t * (x[i] - mt) : T(0);
        } else {
          for (int64_t i = 0; i < p.S; i++) dx[i] = a * dy[i] + c1t + c2t * (x[i] - mt);
        }
      }
    }
  });
}

template void batchnorm_forward_cpu<float>(const BatchNormParams<float>&);
template void batchnorm_forward_cpu<double>(const BatchNormParams<double>&);
template void batchnorm_backward_cpu<float>(const BatchNormParams<float>&);
template void batchnorm_backward_cpu<double>(const BatchNormParams<double>&);
template void batchnorm_sums_cpu<float>(const BatchNormParams<float>&, const double*, double*);
template void batchnorm_sums_cpu<double>(const BatchNormParams<double>&, const double*, double*);

}  // namespace cloze
