// Softmax bindings.
#include "../ops/softmax.h"
#include "bindings.h"

namespace cloze {

void register_softmax(Napi::Env env, Napi::Object exports) {
  (void)env;
  // softmax(x) over the last dim; softmaxBackward(dy, y)
  CLOZE_EXPORT(exports, "softmax", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
    const int64_t C = x->dim(-1);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SoftmaxParams<T> p;
      p.cols = C;
      p.rows = C ? x->numel() / C : 0;
      p.x = x->ptr<T>();
      p.y = NTensor::Unwrap(y)->ptr<T>();
      CLOZE_KERNEL(dev, softmax_forward, p);
      return 0;
    });
    return y;
  });
  CLOZE_EXPORT(exports, "softmaxBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* dy = a.tensor(0, "grad");
    NTensor* y = a.tensor(1, "output");
    a.want_float(y, "output");
    a.want_ndim(y, 1, 8, "output");
    a.want_same_dtype(y, dy, "grad");
    a.want_shape(dy, y->shape(), "grad");
    Napi::Object dx = a.alloc(y->dtype(), y->shape(), false);
    const int64_t C = y->dim(-1);
    dispatch(a, y, [&](auto t, auto dev) {
      using T = decltype(t);
      SoftmaxParams<T> p;
      p.cols = C;
      p.rows = C ? y->numel() / C : 0;
      p.y = y->ptr<T>();
      p.dy = dy->ptr<T>();
      p.dx = NTensor::Unwrap(dx)->ptr<T>();
      CLOZE_KERNEL(dev, softmax_backward, p);
      return 0;
    });
    return dx;
  });
}

}  // namespace cloze
