// Argument helpers shared by the NCHW image bindings: bind_conv.cc,
// bind_batchnorm.cc and bind_pool.cc. In their own namespace, as the sparse
// bindings have helpers of the same names (binding/sparse_args.h).
#pragma once
#include <string>
#include <vector>

#include "../ops/pool.h"
#include "args.h"

namespace cloze {
namespace image_args {

constexpr int64_t kMaxGeom = INT64_C(1) << 20;  // strides, paddings and factors beyond this are mistakes

// The gradients of input, weight and bias: read from three needX/needW/needB
// arguments; those not asked for stay unallocated and come back as null.
struct Grads {
  bool nx, nw, nb;
  Napi::Object dx, dw, db;
  Grads(const ArgReader& a, size_t first)
      : nx(a.boolean(first, "needInput")), nw(a.boolean(first + 1, "needWeight")), nb(a.boolean(first + 2, "needBias")) {}
  bool any() const { return nx || nw || nb; }
  // A kernel that writes every element of dx can skip its zeroing (zero_dx = false).
  void allocate(const ArgReader& a, DType dt, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws, int64_t C,
                bool zero_dx) {
    if (nx) dx = a.alloc(dt, xs, zero_dx);
    if (nw) dw = a.alloc(dt, ws);
    if (nb) db = a.alloc(dt, {C});
  }
  template <typename T, typename P>
  void set(P& p) const {
    p.dx = nx ? out<T>(dx) : nullptr;
    p.dw = nw ? out<T>(dw) : nullptr;
    p.db = nb ? out<T>(db) : nullptr;
  }
  Napi::Array result(const ArgReader& a) const {
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, null_or(a, nx, dx));
    res.Set(1u, null_or(a, nw, dw));
    res.Set(2u, null_or(a, nb, db));
    return res;
  }
};

inline NTensor* image(const ArgReader& a, size_t i, const char* name) {
  NTensor* x = a.tensor(i, name);
  a.want_float(x, name);
  a.want_ndim(x, 4, 4, name);
  return x;
}

// Checks a uint8 mask of the given shape holding only 0 and 1.
inline const uint8_t* checked_mask(const ArgReader& a, NTensor* m, const std::vector<int64_t>& shape, const char* name) {
  a.want_dtype(m, DType::U8, name);
  a.want_shape(m, shape, name);
  const uint8_t* v = m->ptr<uint8_t>();
  auto bad = [&](int64_t value, int64_t i) {
    fail(ErrCode::Value, a.op, expected("values 0 or 1", name, std::to_string(value) + " at position " + std::to_string(i)));
  };
  if (m->on_cuda()) {
#ifdef CLOZE_CUDA
    // Checked on the device; the answer costs one 8-byte read-back (a stream sync).
    int64_t value = 0;
    const int64_t at = mask_first_invalid_cuda(v, m->numel(), &value, a.op);
    if (at >= 0) bad(value, at);
#else
    no_cuda_kernel(a.op, m->dtype());
#endif
    return v;
  }
  for (int64_t i = 0; i < m->numel(); i++)
    if (v[i] > 1) bad(v[i], i);
  return v;
}

}  // namespace image_args
}  // namespace cloze
