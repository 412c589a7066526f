// AdamW, global gradient-norm clipping and the EMA update over flat buffers.
#include <cmath>

#include "../ops/elementwise.h"
#include "../ops/optim.h"
#include "bindings.h"

namespace cloze {

void register_optim(Napi::Env env, Napi::Object exports) {
  (void)env;
  // adamw(param, grad, m, v, {lr, beta1, beta2, eps, weightDecay, step, gradScale}): in place.
  CLOZE_EXPORT(exports, "adamw", [](const ArgReader& a) -> Napi::Value {
    NTensor* p = a.tensor(0, "param");
    NTensor* g = a.tensor(1, "grad");
    NTensor* m = a.tensor(2, "m");
    NTensor* v = a.tensor(3, "v");
    a.want_float(p, "param");
    for (auto [t, n] : {std::pair{g, "grad"}, std::pair{m, "m"}, std::pair{v, "v"}}) {
      a.want_same_dtype(p, t, n);
      a.want_numel(t, p->numel(), n);
    }
    Napi::Object o = a.options(4);
    const double lr = a.opt_number(o, "lr", 1e-3), b1 = a.opt_number(o, "beta1", 0.9),
                 b2 = a.opt_number(o, "beta2", 0.999), eps = a.opt_number(o, "eps", 1e-8),
                 wd = a.opt_number(o, "weightDecay", 0.0), gs = a.opt_number(o, "gradScale", 1.0);
    const double step = a.opt_number(o, "step", 1);
    if (!(lr >= 0 && std::isfinite(lr))) a.bad(ErrCode::Value, "a finite lr >= 0", "lr", std::to_string(lr));
    if (!(b1 >= 0 && b1 < 1)) a.bad(ErrCode::Value, "beta1 in [0, 1)", "beta1", std::to_string(b1));
    if (!(b2 >= 0 && b2 < 1)) a.bad(ErrCode::Value, "beta2 in [0, 1)", "beta2", std::to_string(b2));
    if (!(eps > 0)) a.bad(ErrCode::Value, "eps > 0", "eps", std::to_string(eps));
    if (!(wd >= 0)) a.bad(ErrCode::Value, "weightDecay >= 0", "weightDecay", std::to_string(wd));
    if (!(step >= 1 && std::floor(step) == step)) a.bad(ErrCode::Value, "an integer step >= 1", "step", std::to_string(step));
    dispatch_float(p->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      AdamWParams<T> ap;
      ap.n = p->numel();
      ap.param = p->ptr<T>();
      ap.grad = g->ptr<T>();
      ap.m = m->ptr<T>();
      ap.v = v->ptr<T>();
      ap.lr = lr;
      ap.beta1 = b1;
      ap.beta2 = b2;
      ap.eps = eps;
      ap.weight_decay = wd;
      ap.step = static_cast<int64_t>(step);
      ap.grad_scale = gs;
      adamw_step_cpu<T>(ap);
      return 0;
    });
    return a.env().Undefined();
  });

  // emaUpdate(dst, src, decay): dst ← decay·dst + (1 − decay)·src, in place.
  CLOZE_EXPORT(exports, "emaUpdate", [](const ArgReader& a) -> Napi::Value {
    NTensor* dst = a.tensor(0, "dst");
    NTensor* src = a.tensor(1, "src");
    a.want_float(dst, "dst");
    a.want_same_dtype(dst, src, "src");
    a.want_shape(src, dst->shape(), "src");
    const double decay = a.number(2, "decay");
    if (!(decay >= 0 && decay <= 1)) a.bad(ErrCode::Value, "a number in [0, 1]", "decay", a.describe(a.info[2]));
    dispatch_float(dst->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      ema_update_cpu<T>(dst->numel(), dst->ptr<T>(), src->ptr<T>(), decay);
      return 0;
    });
    return a.env().Undefined();
  });

  // clipGradNorm(grads[], maxNorm) -> total L2 norm before clipping; scales in place when above maxNorm.
  CLOZE_EXPORT(exports, "clipGradNorm", [](const ArgReader& a) -> Napi::Value {
    auto grads = a.tensor_list(0, "grads");
    const double max_norm = a.number(1, "maxNorm");
    if (!(max_norm > 0)) a.bad(ErrCode::Value, "a positive number", "maxNorm", a.describe(a.info[1]));
    double ss = 0;
    for (size_t i = 0; i < grads.size(); i++) {
      a.want_float(grads[i], ("grads[" + std::to_string(i) + "]").c_str());
      ss += dispatch_float(grads[i]->dtype(), a.op,
                           [&](auto t) { return sum_squares_cpu(grads[i]->numel(), grads[i]->ptr<decltype(t)>()); });
    }
    const double norm = std::sqrt(ss);
    if (std::isfinite(norm) && norm > max_norm) {
      const double f = max_norm / (norm + 1e-6);
      for (NTensor* g : grads) {
        dispatch_float(g->dtype(), a.op, [&](auto t) {
          using T = decltype(t);
          EltParams<T> p;
          p.n = g->numel();
          p.a = g->ptr<T>();
          p.out = g->ptr<T>();
          p.alpha = f;
          scale_cpu<T>(p);
          return 0;
        });
      }
    }
    return Napi::Number::New(a.env(), norm);
  });
}

}  // namespace cloze
