// GeGLU bindings: geglu(x [..., 2I]) -> [..., I]; gegluBackward(g [..., I], x [..., 2I]) -> dx.
#include "../ops/geglu.h"
#include "bindings.h"

namespace cloze {

namespace {

// Checks x [..., 2I] and returns its shape with the last dim halved.
std::vector<int64_t> half_shape(const ArgReader& a, NTensor* x) {
  a.want_float(x, "input");
  a.want_ndim(x, 1, 8, "input");
  const int64_t C = x->dim(-1);
  if (C % 2 != 0 || C == 0) a.bad(ErrCode::Shape, "a tensor whose last dimension is even and non-zero", "input", tensor_desc(x));
  std::vector<int64_t> s = x->shape();
  s.back() = C / 2;
  return s;
}

}  // namespace

void register_geglu(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "geglu", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    const std::vector<int64_t> s = half_shape(a, x);
    Napi::Object out = a.alloc(x->dtype(), s, false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      GegluParams<T> p;
      p.inner = s.back();
      p.rows = p.inner > 0 ? o->numel() / p.inner : 0;
      p.x = x->ptr<T>();
      p.out = o->ptr<T>();
      CLOZE_KERNEL(dev, geglu_forward, p);
      return 0;
    });
    return out;
  });

  CLOZE_EXPORT(exports, "gegluBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* x = a.tensor(1, "input");
    const std::vector<int64_t> s = half_shape(a, x);
    a.want_same_dtype(x, g, "grad");
    a.want_shape(g, s, "grad");
    Napi::Object out = a.alloc(x->dtype(), x->shape(), false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      GegluParams<T> p;
      p.inner = s.back();
      p.rows = p.inner > 0 ? g->numel() / p.inner : 0;
      p.x = x->ptr<T>();
      p.dout = g->ptr<T>();
      p.dx = o->ptr<T>();
      CLOZE_KERNEL(dev, geglu_backward, p);
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
