// Layout bindings: toChannelsLast(x [B, C, H, W]) -> [B, H, W, C]; toChannelsFirst(x [B, H, W, C]) -> [B, C, H, W].
#include "../ops/layout.h"
#include "bindings.h"

namespace cloze {

namespace {
Napi::Value permute(const ArgReader& a, bool toLast) {
  NTensor* x = a.tensor(0, "input");
  a.want_float(x, "input");
  a.want_ndim(x, 4, 4, "input");
  const auto s = x->shape();
  const std::vector<int64_t> out_shape = toLast ? std::vector<int64_t>{s[0], s[2], s[3], s[1]} : std::vector<int64_t>{s[0], s[3], s[1], s[2]};
  Napi::Object out = a.alloc(x->dtype(), out_shape, false);
  NTensor* o = NTensor::Unwrap(out);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    LayoutParams<T> p;
    p.B = s[0];
    p.C = toLast ? s[1] : s[3];
    p.HW = toLast ? s[2] * s[3] : s[1] * s[2];
    p.in = x->ptr<T>();
    p.out = o->ptr<T>();
    if (toLast)
      CLOZE_KERNEL(dev, to_channels_last, p);
    else
      CLOZE_KERNEL(dev, to_channels_first, p);
    return 0;
  });
  return out;
}
}  // namespace

void register_layout(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "toChannelsLast", [](const ArgReader& a) -> Napi::Value { return permute(a, true); });
  CLOZE_EXPORT(exports, "toChannelsFirst", [](const ArgReader& a) -> Napi::Value { return permute(a, false); });
}

}  // namespace cloze
