// Dropout binding.
#include "../ops/dropout.h"
#include "bindings.h"

namespace cloze {

namespace {

// dropout (residual false) and dropoutAdd (residual true: a residual tensor after x, the rest shifted by one).
Napi::Value apply(const ArgReader& a, bool with_residual) {
  NTensor* x = a.tensor(0, "input");
  a.want_float(x, "input");
  NTensor* res = with_residual ? a.tensor(1, "residual") : nullptr;
  if (res) {
    a.want_same_dtype(x, res, "residual");
    a.want_shape(res, x->shape(), "residual");
  }
  const size_t k = with_residual ? 1 : 0;
  const double prob = a.number(1 + k, "p");
  if (!(prob >= 0 && prob <= 1)) a.bad(ErrCode::Value, "a probability in [0, 1]", "p", a.describe(a.info[1 + k]));
  const int64_t seed = a.integer(2 + k, "seed", 0, (int64_t(1) << 53));
  const int64_t step = a.integer(3 + k, "step", 0, (int64_t(1) << 53));
  const bool has_offset = a.info.Length() > 4 + k && !a.info[4 + k].IsUndefined();
  const int64_t offset = has_offset ? a.integer(4 + k, "offset", 0, (int64_t(1) << 53)) : 0;
  Napi::Object out = a.alloc(x->dtype(), x->shape(), false);
  NTensor* o = NTensor::Unwrap(out);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    DropoutParams<T> p;
    p.n = x->numel();
    p.p = prob;
    p.seed = static_cast<uint64_t>(seed);
    p.step = static_cast<uint64_t>(step);
    p.offset = static_cast<uint64_t>(offset);
    p.x = x->ptr<T>();
    p.out = o->ptr<T>();
    p.residual = res ? res->ptr<T>() : nullptr;
    CLOZE_KERNEL(dev, dropout_apply, p);
    return 0;
  });
  return out;
}

}  // namespace

void register_dropout(Napi::Env env, Napi::Object exports) {
  (void)env;
  // dropout(x, p, seed, step, offset = 0): the same call applies the mask to the gradient in backward.
  // offset: x is elements [offset, offset + numel) of a larger tensor, and draws that slice of its mask.
  CLOZE_EXPORT(exports, "dropout", [](const ArgReader& a) { return apply(a, false); });
  // dropoutAdd(x, residual, p, seed, step, offset = 0) = add(residual, dropout(x, …)) bit for bit, in one pass (the
  // residual connection after a sublayer); its backward is dropout on the gradient, and the gradient itself.
  CLOZE_EXPORT(exports, "dropoutAdd", [](const ArgReader& a) { return apply(a, true); });
}

}  // namespace cloze
