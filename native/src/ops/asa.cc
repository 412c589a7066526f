#include "asa.h"

#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

namespace {

inline double dsigmoid(double s) {
  const double g = 1.0 / (1.0 + std::exp(-s));
  return g * (1.0 - g);
}

// log-softmax of one row, in double.
template <typename T>
void log_softmax_row(const T* x, int64_t C, double* out) {
  double m = -INFINITY;
  for (int64_t c = 0; c < C; c++) m = std::max(m, static_cast<double>(x[c]));
  double s = 0;
  for (int64_t c = 0; c < C; c++) s += std::exp(static_cast<double>(x[c]) - m);
  const double lse = m + std::log(s);
  for (int64_t c = 0; c < C; c++) out[c] = static_cast<double>(x[c]) - lse;
}

}  // namespace

template <typename T>
void asa_mask_forward_cpu(const AsaMaskParams<T>& p) {
  const int64_t L = p.L;
  parallel_range(p.B * L, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; row++) {
      const int64_t b = row / L, q = row % L;
      const uint8_t* kp = p.key_padding ? p.key_padding + b * L : nullptr;
      const T* s = p.scores + row * L;
      T* o = p.bias + row * L;
      int64_t n = 0;
      for (int64_t k = 0; k < L; k++) {
        const bool m = !(kp && kp[k]) && s[k] > T(0);
        o[k] = m ? T(0) : static_cast<T>(-p.value);
        n += m;
      }
      p.kept[row] = (kp && kp[q]) ? T(0) : static_cast<T>(n);
    }
  });
}

template <typename T>
void asa_mask_backward_cpu(const AsaMaskParams<T>& p) {
  const int64_t L = p.L;
  parallel_range(p.B * L, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; row++) {
      const int64_t b = row / L, q = row % L;
      const uint8_t* kp = p.key_padding ? p.key_padding + b * L : nullptr;
      const double gk = (p.dkept && !(kp && kp[q])) ? static_cast<double>(p.dkept[row]) : 0.0;
      const T* s = p.scores + row * L;
      const T* gb = p.dbias ? p.dbias + row * L : nullptr;
      T* d = p.dscores + row * L;
      for (int64_t k = 0; k < L; k++) {
        if (kp && kp[k]) {
          d[k] = T(0);
          continue;
        }
        const double g = (gb ? p.value * static_cast<double>(gb[k]) : 0.0) + gk;
        d[k] = static_cast<T>(dsigmoid(static_cast<double>(s[k])) * g);
      }
    }
  });
}

template <typename T>
void sym_kl_forward_cpu(const SymKlParams<T>& p) {
  if (p.N == 0) {  // before the row buffers, which for a wide empty input would be gigabytes
    p.loss[0] = T(0);
    return;
  }
  std::vector<double> la(p.C), lb(p.C);
  double total = 0;
  for (int64_t n = 0; n < p.N; n++) {
    log_softmax_row(p.a + n * p.C, p.C, la.data());
    log_softmax_row(p.b + n * p.C, p.C, lb.data());
    for (int64_t c = 0; c < p.C; c++) total += (std::exp(la[c]) - std::exp(lb[c])) * (la[c] - lb[c]);
  }
  p.loss[0] = static_cast<T>(p.N > 0 ? total / static_cast<double>(p.N) : 0.0);
}

template <typename T>
void sym_kl_backward_cpu(const SymKlParams<T>& p) {
  if (p.N == 0) return;
  const double g = static_cast<double>(p.grad[0]) / static_cast<double>(p.N);
  std::vector<double> la(p.C), lb(p.C);
  for (int64_t n = 0; n < p.N; n++) {
    log_softmax_row(p.a + n * p.C, p.C, la.data());
    log_softmax_row(p.b + n * p.C, p.C, lb.data());
    // d = log p − log q; ∂/∂a_c = p_c(d_c − E_p[d]) + p_c − q_c, ∂/∂b_c = q_c(E_q[d] − d_c) + q_c − p_c.
    double ep = 0, eq = 0;
    for (int64_t c = 0; c < p.C; c++) {
      const double d = la[c] - lb[c];
      ep += std::exp(la[c]) * d;
      eq += std::exp(lb[c]) * d;
    }
    for (int64_t c = 0; c < p.C; c++) {
      const double pc = std::exp(la[c]), qc = std::exp(lb[c]), d = la[c] - lb[c];
      if (p.da) p.da[n * p.C + c] = static_cast<T>(g * (pc * (d - ep) + pc - qc));
      if (p.db) p.db[n * p.C + c] = static_cast<T>(g * (qc * (eq - d) + qc - pc));
    }
  }
}

template void asa_mask_forward_cpu<float>(const AsaMaskParams<float>&);
template void asa_mask_forward_cpu<double>(const AsaMaskParams<double>&);
template void asa_mask_backward_cpu<float>(const AsaMaskParams<float>&);
template void asa_mask_backward_cpu<double>(const AsaMaskParams<double>&);
template void sym_kl_forward_cpu<float>(const SymKlParams<float>&);
template void sym_kl_forward_cpu<double>(const SymKlParams<double>&);
template void sym_kl_backward_cpu<float>(const SymKlParams<float>&);
template void sym_kl_backward_cpu<double>(const SymKlParams<double>&);

}  // namespace cloze
