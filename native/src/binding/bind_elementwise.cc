// Elementwise ops, bias add, reductions and activations.
#include <cmath>

#include "../ops/elementwise.h"
#include "bindings.h"

namespace cloze {

namespace {

// A new tensor shaped like t on the op's device; `zero` false where the kernel writes every element.
NTensor* like(const ArgReader& a, NTensor* t, Napi::Object* holder, bool zero = false) {
  *holder = a.alloc(t->dtype(), t->shape(), zero);
  return NTensor::Unwrap(*holder);
}

void same_shape(const ArgReader& a, NTensor* x, NTensor* y, const char* name) {
  a.want_same_dtype(x, y, name);
  a.want_shape(y, x->shape(), name);
}

Napi::Value binary(const ArgReader& a, BinaryOp op) {
  NTensor* x = a.tensor(0, "a");
  NTensor* y = a.tensor(1, "b");
  a.want_float(x, "a");
  same_shape(a, x, y, "b");
  Napi::Object out;
  NTensor* o = like(a, x, &out);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    EltParams<T> p;
    p.n = x->numel();
    p.a = x->ptr<T>();
    p.b = y->ptr<T>();
    p.out = o->ptr<T>();
    CLOZE_KERNEL(dev, binary_forward, op, p);
    return 0;
  });
  return out;
}

Napi::Value activation(const ArgReader& a, Act act, bool backward) {
  NTensor* g = backward ? a.tensor(0, "grad") : nullptr;
  NTensor* x = a.tensor(backward ? 1 : 0, "input");
  a.want_float(x, "input");
  if (g) same_shape(a, x, g, "grad");
  Napi::Object out;
  NTensor* o = like(a, x, &out);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    EltParams<T> p;
    p.n = x->numel();
    p.a = x->ptr<T>();
    p.g = g ? g->ptr<T>() : nullptr;
    p.out = o->ptr<T>();
    if (backward)
      CLOZE_KERNEL(dev, act_backward, act, p);
    else
      CLOZE_KERNEL(dev, act_forward, act, p);
    return 0;
  });
  return out;
}

// sum(x) / mean(x) as a 0-d tensor of x's dtype: Σx / divisor. The CPU sums
// in double on the host; CUDA sums on the device, leaving the result there.
Napi::Value reduce_all(const ArgReader& a, NTensor* x, double divisor) {
  return dispatch(a, x, [&](auto t, auto dev) -> Napi::Value {
    using T = decltype(t);
    EltParams<T> p;
    p.n = x->numel();
    p.a = x->ptr<T>();
    if constexpr (decltype(dev)::cuda) {
      Napi::Object out = a.alloc(x->dtype(), {}, false);
      p.out = NTensor::Unwrap(out)->ptr<T>();
      p.alpha = divisor;
      sum_all_cuda<T>(p);
      return out;
    } else {
      const double s = sum_all_cpu<T>(p);
      return scalar_tensor(a, x->dtype(), divisor == 1.0 ? s : s / divisor);
    }
  });
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "add", [](const ArgReader& a) { return binary(a, BinaryOp::Add); });
  CLOZE_EXPORT(exports, "mul", [](const ArgReader& a) { return binary(a, BinaryOp::Mul); });

  // mulBackward(g, a, b, needA, needB) -> [g·b | null, g·a | null]
  CLOZE_EXPORT(exports, "mulBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* x = a.tensor(1, "a");
    NTensor* y = a.tensor(2, "b");
    a.want_float(x, "a");
    same_shape(a, x, y, "b");
    same_shape(a, x, g, "grad");
    const bool na = a.boolean(3, "needA"), nb = a.boolean(4, "needB");
    Napi::Object da, db;
    NTensor* pa = na ? like(a, x, &da) : nullptr;
    NTensor* pb = nb ? like(a, x, &db) : nullptr;
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = x->numel();
      p.a = x->ptr<T>();
      p.b = y->ptr<T>();
      p.g = g->ptr<T>();
      p.out = pa ? pa->ptr<T>() : nullptr;
      p.out2 = pb ? pb->ptr<T>() : nullptr;
      CLOZE_KERNEL(dev, mul_backward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, na ? Napi::Value(da) : a.env().Null());
    res.Set(1u, nb ? Napi::Value(db) : a.env().Null());
    return res;
  });

  // scale(x, s) -> s·x
  CLOZE_EXPORT(exports, "scale", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    const double s = a.number(1, "factor");
    // As the TypeScript wrapper: a NaN or infinite factor would turn every element into NaN or ±∞ silently.
    if (!std::isfinite(s)) a.bad(ErrCode::Value, "a finite number", "factor", a.describe(a.info[1]));
    Napi::Object out;
    NTensor* o = like(a, x, &out);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = x->numel();
      p.a = x->ptr<T>();
      p.out = o->ptr<T>();
      p.alpha = s;
      CLOZE_KERNEL(dev, scale, p);
      return 0;
    });
    return out;
  });

  // axpyInPlace(dst, src, alpha): dst += alpha·src (gradient accumulation).
  CLOZE_EXPORT(exports, "axpyInPlace", [](const ArgReader& a) -> Napi::Value {
    NTensor* dst = a.tensor(0, "target");
    NTensor* src = a.tensor(1, "source");
    a.want_float(dst, "target");
    a.want_same_dtype(dst, src, "source");
    a.want_numel(src, dst->numel(), "source");
    const double alpha = a.number(2, "alpha");
    dispatch(a, dst, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = dst->numel();
      p.a = src->ptr<T>();
      p.out = dst->ptr<T>();
      p.alpha = alpha;
      CLOZE_KERNEL(dev, axpy, p);
      return 0;
    });
    return a.env().Undefined();
  });

  // biasAdd(x [..., N], b [N])
  CLOZE_EXPORT(exports, "biasAdd", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* b = a.tensor(1, "bias");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    a.want_same_dtype(x, b, "bias");
    a.want_shape(b, {x->dim(-1)}, "bias");
    Napi::Object out;
    NTensor* o = like(a, x, &out);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = x->numel();
      p.cols = x->dim(-1);
      p.a = x->ptr<T>();
      p.b = b->ptr<T>();
      p.out = o->ptr<T>();
      if (p.cols > 0) CLOZE_KERNEL(dev, bias_add_forward, p);
      return 0;
    });
    return out;
  });

  // sumRows(x [..., N]) -> [N]: the bias-add backward.
  CLOZE_EXPORT(exports, "sumRows", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    const int64_t N = x->dim(-1);
    Napi::Object out = a.alloc(x->dtype(), {N});
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = x->numel();
      p.cols = N;
      p.a = x->ptr<T>();
      p.out = o->ptr<T>();
      if (N > 0) CLOZE_KERNEL(dev, sum_rows, p);
      return 0;
    });
    return out;
  });

  // sum(x) / mean(x) -> 0-d tensor
  CLOZE_EXPORT(exports, "sum", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    return reduce_all(a, x, 1.0);
  });
  CLOZE_EXPORT(exports, "mean", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    if (x->numel() == 0) a.bad(ErrCode::Shape, "a non-empty tensor", "input", tensor_desc(x));
    return reduce_all(a, x, static_cast<double>(x->numel()));
  });

  // reduceBackward(g 0-d, shape, factor) -> tensor of `shape` filled with g·factor (sum: 1, mean: 1/n).
  CLOZE_EXPORT(exports, "reduceBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    a.want_float(g, "grad");
    a.want_numel(g, 1, "grad");
    auto shape = a.shape(1, "shape");
    const double factor = a.number(2, "factor");
    Napi::Object out = a.alloc(g->dtype(), shape, false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, g, [&](auto t, auto dev) {
      using T = decltype(t);
      EltParams<T> p;
      p.n = o->numel();
      p.out = o->ptr<T>();
      if constexpr (decltype(dev)::cuda) {
        // g stays on the device: the kernel reads it, no host round trip.
        p.g = g->ptr<T>();
        p.alpha = factor;
        fill_scaled_cuda<T>(p);
      } else {
        p.alpha = static_cast<double>(*g->ptr<T>()) * factor;
        fill_cpu<T>(p);
      }
      return 0;
    });
    return out;
  });

  CLOZE_EXPORT(exports, "gelu", [](const ArgReader& a) { return activation(a, Act::Gelu, false); });
  CLOZE_EXPORT(exports, "geluBackward", [](const ArgReader& a) { return activation(a, Act::Gelu, true); });
  CLOZE_EXPORT(exports, "relu", [](const ArgReader& a) { return activation(a, Act::Relu, false); });
  CLOZE_EXPORT(exports, "reluBackward", [](const ArgReader& a) { return activation(a, Act::Relu, true); });
  CLOZE_EXPORT(exports, "relu6", [](const ArgReader& a) { return activation(a, Act::Relu6, false); });
  CLOZE_EXPORT(exports, "relu6Backward", [](const ArgReader& a) { return activation(a, Act::Relu6, true); });
  CLOZE_EXPORT(exports, "tanh", [](const ArgReader& a) { return activation(a, Act::Tanh, false); });
  CLOZE_EXPORT(exports, "tanhBackward", [](const ArgReader& a) { return activation(a, Act::Tanh, true); });
}

}  // namespace cloze
