#include "geglu.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../core/mathfn.h"
#include "../core/vmathfn.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {
constexpr int64_t kGrain = 1 << 14;  // output elements per task
}  // namespace

template <typename T>
void geglu_forward_cpu(const GegluParams<T>& p) {
  const int64_t I = p.inner;
  parallel_range(p.rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* __restrict xa = p.x + r * 2 * I;
      const T* __restrict xb = xa + I;
      T* __restrict o = p.out + r * I;
      if constexpr (std::is_same_v<T, float>) {
        vmap<2>(I, {xa, xb}, o, [](const VF* v) { return v[0] * vnormal_cdf(v[0]) * v[1]; });
        continue;
      }
      for (int64_t i = 0; i < I; i++) o[i] = xa[i] * normal_cdf(xa[i]) * xb[i];
    }
  });
}

template <typename T>
void geglu_backward_cpu(const GegluParams<T>& p) {
  const int64_t I = p.inner;
  parallel_range(p.rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* __restrict xa = p.x + r * 2 * I;
      const T* __restrict xb = xa + I;
      const T* __restrict g = p.dout + r * I;
      T* __restrict da = p.dx + r * 2 * I;
      T* __restrict db = da + I;
      if constexpr (std::is_same_v<T, float>) {
        vmap<3>(I, {g, xa, xb}, da, [](const VF* v) { return v[0] * v[2] * (vnormal_cdf(v[1]) + v[1] * vnormal_pdf(v[1])); });
        vmap<2>(I, {g, xa}, db, [](const VF* v) { return v[0] * v[1] * vnormal_cdf(v[1]); });
        continue;
      }
      for (int64_t i = 0; i < I; i++) {
        const T a = xa[i], c = normal_cdf(a);
        da[i] = g[i] * xb[i] * (c + a * normal_pdf(a));
        db[i] = g[i] * a * c;
      }
    }
  });
}

template void geglu_forward_cpu<float>(const GegluParams<float>&);
template void geglu_backward_cpu<float>(const GegluParams<float>&);
template void geglu_forward_cpu<double>(const GegluParams<double>&);
template void geglu_backward_cpu<double>(const GegluParams<double>&);

}  // namespace cloze
