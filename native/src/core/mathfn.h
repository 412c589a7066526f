// Elementwise math shared by kernels. fexp(float) is a branch-free Cephes-style
// polynomial (about 2 ulp); double precision stays
// on std::exp because float64 exists only for gradient checks.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace cloze {

// Cephes' expf polynomial for e^r on the reduced range |r| <= ln2/2. V is
// float or a float vector type: the scalar and vector exps share it.
template <typename V>
inline V exp_poly(V r) {
  const V z = r * r;
  V y = r * 1.9875691500E-4f + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  return y * z + r + 1.0f;
}

inline float fexp(float x) {
  x = x < -88.3762626647949f ? -88.3762626647949f : x;
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  const float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  const float y = exp_poly(x - fx * 0.693359375f + fx * 2.12194440e-4f);
  const int32_t e = (static_cast<int32_t>(fx) + 127) << 23;
  float pow2;
  std::memcpy(&pow2, &e, sizeof pow2);
  return y * pow2;
}
inline double fexp(double x) { return std::exp(x); }

// The exact (erf) GELU pieces shared by GELU and GeGLU: Φ(x) and φ(x).
template <typename T>
inline T normal_cdf(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
}
template <typename T>
inline T normal_pdf(T x) {
  return std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
}

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

}  // namespace cloze
