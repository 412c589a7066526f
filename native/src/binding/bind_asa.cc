// ASA bindings: the adversary's mask → attention bias and the symmetric KL.
#include <cmath>

#include "../ops/asa.h"
#include "bindings.h"

namespace cloze {

namespace {

// scores [B, L, L] float; keyPadding uint8 [B, L] or null.
void check_scores(const ArgReader& a, NTensor* s, NTensor* kp) {
  a.want_float(s, "scores");
  a.want_ndim(s, 3, 3, "scores");
  if (s->dim(1) != s->dim(2)) a.bad(ErrCode::Shape, "square scores [B, L, L]", "scores", tensor_desc(s));
  if (kp) {
    a.want_dtype(kp, DType::U8, "keyPadding");
    a.want_shape(kp, {s->dim(0), s->dim(1)}, "keyPadding");
  }
}

double mask_value(const ArgReader& a, size_t i) {
  const double v = a.number(i, "maskValue");
  if (!(v > 0 && std::isfinite(v))) a.bad(ErrCode::Value, "a finite mask value > 0", "maskValue", a.describe(a.info[i]));
  return v;
}

void check_pair(const ArgReader& a, NTensor* x, NTensor* y) {
  a.want_float(x, "a");
  a.want_ndim(x, 2, 2, "a");
  a.want_same_dtype(x, y, "b");
  a.want_shape(y, x->shape(), "b");
  if (x->dim(1) == 0) a.bad(ErrCode::Shape, "logits with at least one class", "a", tensor_desc(x));
}

}  // namespace

void register_asa(Napi::Env env, Napi::Object exports) {
  (void)env;
  // asaMask(scores [B, L, L], keyPadding uint8 [B, L] | null, maskValue) -> { bias [B, L, L], kept [B, L] }
  CLOZE_EXPORT(exports, "asaMask", [](const ArgReader& a) -> Napi::Value {
    NTensor* s = a.tensor(0, "scores");
    NTensor* kp = a.tensor_or_null(1, "keyPadding");
    check_scores(a, s, kp);
    const double value = mask_value(a, 2);
    const int64_t B = s->dim(0), L = s->dim(1);
    Napi::Object bias = a.alloc(s->dtype(), s->shape(), false);
    Napi::Object kept = a.alloc(s->dtype(), {B, L}, false);
    dispatch(a, s, [&](auto t, auto dev) {
      using T = decltype(t);
      AsaMaskParams<T> p;
      p.B = B;
      p.L = L;
      p.scores = s->ptr<T>();
      p.key_padding = ptr_or_null<uint8_t>(kp);
      p.value = value;
      p.bias = out<T>(bias);
      p.kept = out<T>(kept);
      CLOZE_KERNEL(dev, asa_mask_forward, p);
      return 0;
    });
    Napi::Object res = Napi::Object::New(a.env());
    res.Set("bias", bias);
    res.Set("kept", kept);
    return res;
  });

  // asaMaskBackward(dbias [B, L, L] | null, dkept [B, L] | null, scores, keyPadding | null, maskValue) -> dscores [B, L, L]
  CLOZE_EXPORT(exports, "asaMaskBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* gb = a.tensor_or_null(0, "dbias");
    NTensor* gk = a.tensor_or_null(1, "dkept");
    NTensor* s = a.tensor(2, "scores");
    NTensor* kp = a.tensor_or_null(3, "keyPadding");
    check_scores(a, s, kp);
    const double value = mask_value(a, 4);
    const int64_t B = s->dim(0), L = s->dim(1);
    if (gb) {
      a.want_same_dtype(s, gb, "dbias");
      a.want_shape(gb, s->shape(), "dbias");
    }
    if (gk) {
      a.want_same_dtype(s, gk, "dkept");
      a.want_shape(gk, {B, L}, "dkept");
    }
    Napi::Object ds = a.alloc(s->dtype(), s->shape(), !gb && !gk);
    if (!gb && !gk) return ds;
    dispatch(a, s, [&](auto t, auto dev) {
      using T = decltype(t);
      AsaMaskParams<T> p;
      p.B = B;
      p.L = L;
      p.scores = s->ptr<T>();
      p.key_padding = ptr_or_null<uint8_t>(kp);
      p.value = value;
      p.dbias = ptr_or_null<T>(gb);
      p.dkept = ptr_or_null<T>(gk);
      p.dscores = out<T>(ds);
      CLOZE_KERNEL(dev, asa_mask_backward, p);
      return 0;
    });
    return ds;
  });

  // symKl(a [N, C], b [N, C]) -> 0-d (1/N)·Σ (p − q)(log p − log q)
  CLOZE_EXPORT(exports, "symKl", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "a");
    NTensor* y = a.tensor(1, "b");
    check_pair(a, x, y);
    Napi::Object loss = a.alloc(x->dtype(), {}, true);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SymKlParams<T> p;
      p.N = x->dim(0);
      p.C = x->dim(1);
      p.a = x->ptr<T>();
      p.b = y->ptr<T>();
      p.loss = out<T>(loss);
      CLOZE_KERNEL(dev, sym_kl_forward, p);
      return 0;
    });
    return loss;
  });

  // symKlBackward(grad 0-d, a, b, needA, needB) -> [da | null, db | null]
  CLOZE_EXPORT(exports, "symKlBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* x = a.tensor(1, "a");
    NTensor* y = a.tensor(2, "b");
    const bool need_a = a.boolean(3, "needA");
    const bool need_b = a.boolean(4, "needB");
    check_pair(a, x, y);
    a.want_same_dtype(x, g, "grad");
    a.want_numel(g, 1, "grad");
    Napi::Object da = a.alloc(x->dtype(), x->shape(), true);
    Napi::Object db = a.alloc(x->dtype(), x->shape(), true);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SymKlParams<T> p;
      p.N = x->dim(0);
      p.C = x->dim(1);
      p.a = x->ptr<T>();
      p.b = y->ptr<T>();
      p.grad = g->ptr<T>();
      p.da = need_a ? out<T>(da) : nullptr;
      p.db = need_b ? out<T>(db) : nullptr;
      CLOZE_KERNEL(dev, sym_kl_backward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, null_or(a, need_a, da));
    res.Set(1u, null_or(a, need_b, db));
    return res;
  });
}

}  // namespace cloze
