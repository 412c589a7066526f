// Vectorised row kernels for the softmax parts of fused attention: row max,
// and exp(s − m) with its sums. Plain loops would stay scalar because float
// reductions cannot be reordered without -ffast-math, and -ffast-math would
// break the −∞ masking these kernels rely on.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "mathfn.h"
#include "microkernel.h"

namespace cloze {

using VF = VecT<float>::type;
typedef int32_t VI __attribute__((vector_size(kVecBytes)));
constexpr int kWF = VecT<float>::W;

// exp on a float vector; same polynomial as fexp(float).
inline VF vexp(VF x) {
  const VF lo = vsplat<float>(-88.3762626647949f), hi = vsplat<float>(88.3762626647949f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const VF magic = vsplat<float>(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
  const VF t = x * 1.44269504088896341f + magic;
  const VF n = t - magic;
  const VF y = exp_poly(x - n * 0.693359375f + n * 2.12194440e-4f);
  // Same-size vector casts reinterpret the bits.
  const VI e = (((VI)t - (VI)magic) + 127) << 23;
  return y * (VF)e;
}

// exp on a float vector for the softmax-style kernels (attention's online softmax and its backward, the fused
// MLM head): 2^t with t = x·log2 e split as 2^n·2^f, n = round(t), |f| ≤ ½, and AVX-512's vscalefps applying 2^n.
// vscalefps handles the range itself (overflow to ∞, underflow to 0), so the clamps, the magic-number rounding and
// the exponent's integer arithmetic of vexp go: 11 vector operations instead of 19. For arguments up to about 88
// (softmax's x − max ≤ 0); +∞ gives NaN, where vexp clamps. −∞ gives exactly 0 (t is held at −200 first, below
// float's range, so f stays finite) and NaN stays NaN (vmaxps returns its second operand, t, when t is NaN). The degree-6 polynomial for 2^f on [−½, ½] is a weighted least-squares fit at Chebyshev nodes
// (relative error about 1.5e-8 with its coefficients rounded to float, below 1e-7 evaluated in float32).
// Accuracy: t = x·log2 e is rounded once before the split (vexp splits ln 2 in two instead), so the relative error
// grows with |x|: about 1 ulp near 0, 5e-7 at x = −20, 2.6e-6 (some 30 ulp) at x = −88. Its absolute error stays
// below half an ulp of 1, which is what softmax sums and log-sum-exps see. Other ISAs use vexp.
// 2^f for |f| ≤ ½ (vexp_sf and fexp_sf: one template, so that lanes and tails take the same steps).
template <typename V>
inline V exp2_poly(V f) {
  V y = f * 1.5346503641922027e-4f + 1.33999390527606e-3f;
  y = y * f + 9.618486277759075e-3f;
  y = y * f + 5.550328642129898e-2f;
  y = y * f + 2.4022646248340607e-1f;
  y = y * f + 6.931471824645996e-1f;
  return y * f + 1.0f;
}

inline VF vexp_sf(VF x) {
#if defined(__AVX512F__)
  const __m512 t = _mm512_max_ps(_mm512_set1_ps(-200.0f), (__m512)(x * 1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const VF f = (VF)_mm512_sub_ps(t, n);
  return (VF)_mm512_scalef_ps((__m512)exp2_poly(f), n);
#else
  return vexp(x);
#endif
}

// The scalar twin of vexp_sf for the kernels' last partial vectors: the same steps (rint and ldexp are exact, as
// vrndscaleps and vscalefps are), so an element's value does not depend on whether it falls in a vector or in the
// tail, and results stay the same across thread splits. Other ISAs: fexp, vexp's twin.
inline float fexp_sf(float x) {
#if defined(__AVX512F__)
  float t = x * 1.44269504088896341f;
  t = t < -200.0f ? -200.0f : t;
  const float n = std::nearbyint(t);
  const float f = t - n;
  const float y = exp2_poly(f);
  // n is finite here except for t = +∞ or NaN, where y is NaN already (vexp_sf gives NaN there too).
  return std::ldexp(y, static_cast<int>(std::max(-300.0f, std::min(300.0f, n))));
#else
  return fexp(x);
#endif
}
inline double fexp_sf(double x) { return fexp(x); }

#if defined(__clang__)
inline float hsum(VF v) {
  float s = 0;
  for (int i = 0; i < kWF; i++) s += v[i];
  return s;
}
inline float hmax(VF v) {
  float m = v[0];
  for (int i = 1; i < kWF; i++) m = v[i] > m ? v[i] : m;
  return m;
}
#else
// Horizontal sum and max as a tree of lane swaps (log2 of the width in
// shuffles): a lane-by-lane loop is a chain of 16 dependent scalar adds per
// reduction, and attention's softmax makes two per row of every tile (about
// a fifth of the softmax's time at 64 × 128 tiles, measured on AVX-512). The
// order of the sum is fixed by the width, not by the data or the threads.
template <int w>
inline VF swap_lanes(VF v) {
  VI m;  // constant after unrolling: one shuffle instruction
  for (int i = 0; i < kWF; i++) m[i] = i ^ w;
  return __builtin_shuffle(v, m);
}
inline float hsum(VF v) {
  if constexpr (kWF >= 16) v += swap_lanes<8>(v);
  if constexpr (kWF >= 8) v += swap_lanes<4>(v);
  v += swap_lanes<2>(v);
  v += swap_lanes<1>(v);
  return v[0];
}
inline float hmax(VF v) {
  VF w;
  if constexpr (kWF >= 16) {
    w = swap_lanes<8>(v);
    v = w > v ? w : v;
  }
  if constexpr (kWF >= 8) {
    w = swap_lanes<4>(v);
    v = w > v ? w : v;
  }
  w = swap_lanes<2>(v);
  v = w > v ? w : v;
  w = swap_lanes<1>(v);
  v = w > v ? w : v;
  return v[0];
}
#endif

template <typename T>
inline T row_max(const T* s, int64_t n) {
  T m = neg_inf<T>();
  int64_t c = 0;
  if constexpr (std::is_same_v<T, float>) {
    VF vm = vsplat<float>(m);
    for (; c + kWF <= n; c += kWF) {
      const VF x = vload(s + c);
      vm = x > vm ? x : vm;
    }
    m = hmax(vm);
  }
  for (; c < n; c++) m = s[c] > m ? s[c] : m;
  return m;
}

// s[c] ← exp(scale·s[c] − m), 0 where s[c] is −∞. Adds Σ p to *sum and, when
// want_ps, Σ p·s (the old logits) to *sum_ps (callers that want it pass scale 1).
// scale folds attention's 1/√Dh into the exponent (one FMA) instead of a pass over
// the tile; at scale 1 the result is bit-identical to exp(s[c] − m).
template <typename T>
inline void exp_row(T* s, int64_t n, T m, T* sum, T* sum_ps, bool want_ps, T scale = T(1)) {
  const T ninf = neg_inf<T>();
  T acc = 0, acc_ps = 0;
  int64_t c = 0;
  if constexpr (std::is_same_v<T, float>) {
    VF va = vsplat<float>(0), vps = vsplat<float>(0);
    const VF vm = vsplat<float>(m), vninf = vsplat<float>(ninf), zero = vsplat<float>(0), vs = vsplat<float>(scale);
    for (; c + kWF <= n; c += kWF) {
      const VF x = vload(s + c);
      // The select, although vexp_sf(−∞) is 0: with a scale of 0, 0·(−∞) is NaN (the scalar tail selects too).
      const auto live = x != vninf;
      const VF p = live ? vexp_sf(x * vs - vm) : zero;
      va += p;
      if (want_ps) vps += live ? p * x : zero;
      vstore(s + c, p);
    }
    acc = hsum(va);
    acc_ps = hsum(vps);
  }
  for (; c < n; c++) {
    const bool live = s[c] != ninf;
    const T p = live ? fexp_sf(s[c] * scale - m) : T(0);
    acc += p;
    acc_ps += live ? p * s[c] : T(0);
    s[c] = p;
  }
  *sum += acc;
  if (want_ps) *sum_ps += acc_ps;
}

// out[i] = exp(a[i] − b[i]), 0 where a[i] is −∞ (b[i] ≥ a[i]; rows whose b[i] is −∞ get any value): the online
// softmax's correction factors for a tile's rows, old maxima a against new maxima b.
template <typename T>
inline void exp_diff(const T* a, const T* b, T* out, int64_t n) {
  int64_t i = 0;
  if constexpr (std::is_same_v<T, float>)
    for (; i + kWF <= n; i += kWF) vstore(out + i, vexp_sf(vload(a + i) - vload(b + i)));  // vexp_sf(−∞) = 0
  for (; i < n; i++) out[i] = a[i] == neg_inf<T>() ? T(0) : fexp_sf(a[i] - b[i]);
}

// The backward's per-tile softmax gradient for one row, with P recomputed from the logits
// l = scale·s (scale as in exp_row):
//   p = exp(l − lse), ds = p·(dp − D) − dH·p·(l − lse + H);
// writes p into s and out_scale·ds into dp; masked entries (s = −∞) give 0. At scale and
// out_scale 1 the results are bit-identical to the unscaled formulas.
template <typename T>
inline void softmax_grad_row(T* s, T* dp, int64_t n, T lse, T D, T dH, T H, T scale = T(1), T out_scale = T(1)) {
  const T ninf = neg_inf<T>();
  int64_t c = 0;
  if constexpr (std::is_same_v<T, float>) {
    const VF vl = vsplat<float>(lse), vD = vsplat<float>(D), vdH = vsplat<float>(dH), vH = vsplat<float>(H);
    const VF vninf = vsplat<float>(ninf), zero = vsplat<float>(0), vs = vsplat<float>(scale), vo = vsplat<float>(out_scale);
    for (; c + kWF <= n; c += kWF) {
      const VF x = vload(s + c);
      const auto live = x != vninf;
      const VF l = (live ? x : zero) * vs;
      const VF p = live ? vexp_sf(l - vl) : zero;
      const VF g = vload(dp + c);
      const VF ds = p * (g - vD) - vdH * p * (l - vl + vH);
      vstore(s + c, p);
      vstore(dp + c, live ? ds * vo : zero);
    }
  }
  for (; c < n; c++) {
    const bool live = s[c] != ninf;
    const T l = live ? s[c] * scale : T(0);
    const T p = live ? fexp_sf(l - lse) : T(0);
    const T ds = live ? (p * (dp[c] - D) - dH * p * (l - lse + H)) * out_scale : T(0);
    s[c] = p;
    dp[c] = ds;
  }
}

}  // namespace cloze
