// Products of dimensions, checked. Every element count, B·H·W, rows × columns
// scratch size or byte count formed at the public boundary goes through
// these, so a hostile shape fails with E_SHAPE instead of wrapping around
// int64 (and then passing a "small enough" check, as 2^21·2^21·2^22 = 0 did).
//
// The invariant kept for every tensor (NTensor::Make enforces it): the product
// of its non-zero dimensions is at most kMaxElements. Zero dimensions are left
// out so that a zero-size tensor cannot carry huge other dimensions whose
// partial products (H·W, B·H·W) a kernel would form; with the rule every
// partial product of one tensor's dimensions fits in int64 with room to spare
// for a byte size.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "error.h"

namespace cloze {

constexpr int64_t kMaxElements = int64_t(1) << 40;

// a·b into *out; false on int64 overflow or a negative factor.
inline bool mul_fits(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  return !__builtin_mul_overflow(a, b, out);
}

// The product of `dims`. Throws naming op, what and the factors: E_SHAPE when
// a factor is negative or the product overflows int64, E_OOM ("too large")
// when the product of the non-zero factors exceeds `limit` (a power of two).
inline int64_t checked_product(const std::vector<int64_t>& dims, const char* op, const std::string& what,
                               int64_t limit = kMaxElements) {
  int64_t nonzero = 1;
  bool zero = false, overflow = false;
  for (int64_t d : dims) {
    if (d < 0) fail(ErrCode::Shape, op, expected("non-negative sizes", what, shape_str(dims)));
    if (d == 0)
      zero = true;
    else if (!overflow && !mul_fits(nonzero, d, &nonzero))
      overflow = true;
  }
  if (overflow)
    fail(ErrCode::Shape, op, expected("sizes whose product fits in 64 bits", what, shape_str(dims) + ", whose product overflows"));
  if (nonzero > limit)
    fail(ErrCode::OOM, op,
         expected("sizes whose product is at most 2^" +
                      std::to_string(63 - __builtin_clzll(static_cast<unsigned long long>(limit))) + " (too large)",
                  what, shape_str(dims)));
  return zero ? 0 : nonzero;
}
inline int64_t checked_product(std::initializer_list<int64_t> dims, const char* op, const std::string& what,
                               int64_t limit = kMaxElements) {
  return checked_product(std::vector<int64_t>(dims), op, what, limit);
}

// The element count of a shape (see the invariant above).
inline int64_t checked_numel(const std::vector<int64_t>& shape, const char* op, const std::string& name) {
  return checked_product(shape, op, name);
}

// n elements of `elem` bytes as a byte count (n is at most kMaxElements, so this cannot wrap).
inline size_t checked_bytes(const std::vector<int64_t>& dims, size_t elem, const char* op, const std::string& what) {
  return static_cast<size_t>(checked_product(dims, op, what)) * elem;
}

}  // namespace cloze
