// A sum whose order of additions depends on n alone, so reductions built on it
// are identical for any thread count. Eight interleaved partial sums let the
// compiler vectorize it.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
inline T sum_fixed(const T* a, int64_t n) {
  T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) s[l] += a[i + l];
  T tail = 0;
  for (; i < n; i++) tail += a[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

}  // namespace cloze
