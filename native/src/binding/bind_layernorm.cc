// LayerNorm bindings.
#include "../ops/layernorm.h"
#include "bindings.h"

namespace cloze {

void register_layernorm(Napi::Env env, Napi::Object exports) {
  (void)env;
  // layerNorm(x [..., C], w [C] | null, b [C] | null, eps) -> [y, mean [R], rstd [R]]
  // mean/rstd: x's dtype on the CPU, float32 on CUDA.
  CLOZE_EXPORT(exports, "layerNorm", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* w = a.tensor_or_null(1, "weight");
    NTensor* b = a.tensor_or_null(2, "bias");
    const double eps = a.number(3, "eps");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    const int64_t C = x->dim(-1), R = x->numel() / std::max<int64_t>(C, 1);
    if (C == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "input", tensor_desc(x));
    if (!(eps > 0)) a.bad(ErrCode::Value, "a positive number", "eps", a.describe(a.info[3]));
    for (NTensor* t : {w, b})
      if (t) {
        a.want_same_dtype(x, t, t == w ? "weight" : "bias");
        a.want_shape(t, {C}, t == w ? "weight" : "bias");
      }
    Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
    Napi::Object mean = a.alloc(stat_dtype(x), {R}, false);
    Napi::Object rstd = a.alloc(stat_dtype(x), {R}, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      LayerNormParams<T> p;
      p.rows = R;
      p.cols = C;
      p.eps = eps;
      p.x = x->ptr<T>();
      p.w = w ? w->ptr<T>() : nullptr;
      p.b = b ? b->ptr<T>() : nullptr;
      p.y = NTensor::Unwrap(y)->ptr<T>();
      p.mean = NTensor::Unwrap(mean)->ptr<stat_t<T>>();
      p.rstd = NTensor::Unwrap(rstd)->ptr<stat_t<T>>();
      CLOZE_KERNEL(dev, layernorm_forward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, y);
    res.Set(1u, mean);
    res.Set(2u, rstd);
    return res;
  });

  // layerNormBackward(dy, x, w|null, mean, rstd, needX, needW, needB) -> [dx, dw, db] (null where not needed)
  CLOZE_EXPORT(exports, "layerNormBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* dy = a.tensor(0, "grad");
    NTensor* x = a.tensor(1, "input");
    NTensor* w = a.tensor_or_null(2, "weight");
    NTensor* mean = a.tensor(3, "mean");
    NTensor* rstd = a.tensor(4, "rstd");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    const int64_t C = x->dim(-1), R = x->numel() / std::max<int64_t>(C, 1);
    a.want_same_dtype(x, dy, "grad");
    a.want_shape(dy, x->shape(), "grad");
    if (w) {
      a.want_same_dtype(x, w, "weight");
      a.want_shape(w, {C}, "weight");
    }
    want_stat_dtype(a, x, mean, "mean");
    a.want_shape(mean, {R}, "mean");
    want_stat_dtype(a, x, rstd, "rstd");
    a.want_shape(rstd, {R}, "rstd");
    const bool nx = a.boolean(5, "needX"), nw = a.boolean(6, "needW"), nb = a.boolean(7, "needB");
    Napi::Object dx, dw, db;
    if (nx) dx = a.alloc(x->dtype(), x->shape());
    if (nw) dw = a.alloc(x->dtype(), {C});
    if (nb) db = a.alloc(x->dtype(), {C});
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      LayerNormParams<T> p;
      p.rows = R;
      p.cols = C;
      p.x = x->ptr<T>();
      p.w = w ? w->ptr<T>() : nullptr;
      p.mean = mean->ptr<stat_t<T>>();
      p.rstd = rstd->ptr<stat_t<T>>();
      p.dy = dy->ptr<T>();
      p.dx = nx ? NTensor::Unwrap(dx)->ptr<T>() : nullptr;
      p.dw = nw ? NTensor::Unwrap(dw)->ptr<T>() : nullptr;
      p.db = nb ? NTensor::Unwrap(db)->ptr<T>() : nullptr;
      CLOZE_KERNEL(dev, layernorm_backward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, null_or(a, nx, dx));
    res.Set(1u, null_or(a, nw, dw));
    res.Set(2u, null_or(a, nb, db));
    return res;
  });
}

}  // namespace cloze
