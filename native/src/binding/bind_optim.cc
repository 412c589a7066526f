// AdamW, global gradient-norm clipping and the EMA update over flat buffers.
#include <cmath>
#include <string>
#include <vector>

#include "../ops/elementwise.h"
#include "../ops/optim.h"
#include "bindings.h"

namespace cloze {

namespace {

// A float32 tensor of one element on the op's device: a norm or a loss the step reads where it lies.
void want_scalar(const ArgReader& a, NTensor* t, const std::string& name) {
  if (t->dtype() != DType::F32 || t->numel() != 1)
    a.bad(ErrCode::Shape, "a float32 tensor of one element", name, tensor_desc(t));
}

// options.guards: an array of at most kMaxGuards such tensors.
std::vector<NTensor*> guard_list(const ArgReader& a, const Napi::Object& o, int max) {
  const Napi::Value v = o.Get("guards");
  if (v.IsUndefined() || v.IsNull()) return {};
  std::vector<NTensor*> out = a.tensor_array(v, "guards");
  if (out.size() > static_cast<size_t>(max))
    a.bad(ErrCode::Value, "at most " + std::to_string(max) + " guard tensors", "guards", std::to_string(out.size()));
  for (size_t k = 0; k < out.size(); k++) want_scalar(a, out[k], "guards[" + std::to_string(k) + "]");
  return out;
}

// The gradients of gradNorm and clipGradNorm: float tensors, checked.
std::vector<NTensor*> norm_grads(const ArgReader& a) {
  std::vector<NTensor*> grads = a.tensor_list(0, "grads");
  for (size_t i = 0; i < grads.size(); i++) a.want_float(grads[i], ("grads[" + std::to_string(i) + "]").c_str());
  return grads;
}

// Σ g² over CPU tensors, in double, tensor by tensor in order.
double sum_squares_host(const ArgReader& a, const std::vector<NTensor*>& grads) {
  double ss = 0;
  for (NTensor* g : grads)
    ss += dispatch_float(g->dtype(), a.op, [&](auto t) { return sum_squares_cpu(g->numel(), g->ptr<decltype(t)>()); });
  return ss;
}

#ifdef CLOZE_CUDA
// What l2_norm_cuda and l2_norm_into_cuda take: pointers, sizes and dtypes.
struct DeviceNormArgs {
  std::vector<const void*> xs;
  std::vector<int64_t> ns;
  std::vector<int> dts;
  explicit DeviceNormArgs(const std::vector<NTensor*>& grads) {
    for (NTensor* g : grads) {
      xs.push_back(g->raw());
      ns.push_back(g->numel());
      dts.push_back(static_cast<int>(g->dtype()));
    }
  }
};
#endif

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  (void)env;
  // adamw(param, grad, m, v, {lr, beta1, beta2, eps, weightDecay, step, gradScale, master, clipNorm, maxNorm,
  // guards}): in place. clipNorm (float32, one element, e.g. gradNorm's result) clips the gradient to maxNorm
  // as clipGradNorm would; the step is skipped when clipNorm or any guard is not finite. Both are read where
  // they lie (on cuda by the kernel), so the host never waits for them.
  // A bfloat16 param (cuda) needs `master`, its float32 weights; m and v are
  // then float32 and grad bfloat16 or float32. Otherwise all four share a dtype.
  CLOZE_EXPORT(exports, "adamw", [](const ArgReader& a) -> Napi::Value {
    NTensor* p = a.tensor(0, "param");
    NTensor* g = a.tensor(1, "grad");
    NTensor* m = a.tensor(2, "m");
    NTensor* v = a.tensor(3, "v");
    a.want_float(p, "param");
    const bool mixed = p->dtype() == DType::BF16;
    if (!mixed) {
      for (auto [t, n] : {std::pair{g, "grad"}, std::pair{m, "m"}, std::pair{v, "v"}}) {
        a.want_same_dtype(p, t, n);
        a.want_numel(t, p->numel(), n);
      }
    }
    Napi::Object o = a.options(4);
    NTensor* master = a.tensor_field(o, "master");
    if (mixed && !master)
      a.bad(ErrCode::Value, "a float32 tensor (a bfloat16 param is updated through its float32 master weights)",
            "master", "none");
    if (!mixed && master)
      a.bad(ErrCode::Value, "no master (only a bfloat16 param has float32 master weights)", "master",
            tensor_desc(master));
    if (mixed) {
      a.want_dtype(master, DType::F32, "master");
      a.want_numel(master, p->numel(), "master");
      if (g->dtype() != DType::BF16 && g->dtype() != DType::F32)
        a.bad(ErrCode::Dtype, "a bfloat16 or float32 tensor", "grad", tensor_desc(g));
      a.want_numel(g, p->numel(), "grad");
      for (auto [t, n] : {std::pair{m, "m"}, std::pair{v, "v"}}) {
        a.want_dtype(t, DType::F32, n);
        a.want_numel(t, p->numel(), n);
      }
    }
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
    NTensor* clip = a.tensor_field(o, "clipNorm");
    if (clip) want_scalar(a, clip, "clipNorm");
    const double max_norm = a.opt_number(o, "maxNorm", 0.0);
    if (clip && !(max_norm > 0)) a.bad(ErrCode::Value, "a positive maxNorm with clipNorm", "maxNorm", std::to_string(max_norm));
    const std::vector<NTensor*> guards = guard_list(a, o, AdamWParams<float>::kMaxGuards);
    dispatch(a, p, [&](auto t, auto dev) {
      using T = decltype(t);
      AdamWParams<T> ap;
      ap.n = p->numel();
      ap.param = p->ptr<T>();
      if (mixed) {
        ap.master = master->ptr<float>();
        ap.m32 = m->ptr<float>();
        ap.v32 = v->ptr<float>();
        if (g->dtype() == DType::F32)
          ap.grad32 = g->ptr<float>();
        else
          ap.grad = g->ptr<T>();
      } else {
        ap.grad = g->ptr<T>();
        ap.m = m->ptr<T>();
        ap.v = v->ptr<T>();
      }
      ap.lr = lr;
      ap.beta1 = b1;
      ap.beta2 = b2;
      ap.eps = eps;
      ap.weight_decay = wd;
      ap.step = static_cast<int64_t>(step);
      ap.grad_scale = gs;
      ap.clip_norm = clip ? clip->ptr<float>() : nullptr;
      ap.max_norm = max_norm;
      ap.nguards = static_cast<int>(guards.size());
      for (size_t k = 0; k < guards.size(); k++) ap.guards[k] = guards[k]->ptr<float>();
      CLOZE_KERNEL(dev, adamw_step, ap);
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
    dispatch(a, dst, [&](auto t, auto dev) {
      using T = decltype(t);
      CLOZE_KERNEL(dev, ema_update, dst->numel(), dst->ptr<T>(), src->ptr<T>(), decay);
      return 0;
    });
    return a.env().Undefined();
  });

  // gradNorm(grads[]) -> float32 [1]: their global L2 norm (summed in double, in the fixed order
  // clipGradNorm uses), left where the gradients are: on cuda no host sync. adamw's clipNorm reads it.
  CLOZE_EXPORT(exports, "gradNorm", [](const ArgReader& a) -> Napi::Value {
    const std::vector<NTensor*> grads = norm_grads(a);
    if (grads.empty()) a.bad(ErrCode::Value, "at least one gradient tensor", "grads", "an empty array");
    Napi::Object out = a.alloc(DType::F32, {1}, false);
    if (a.on_cuda()) {
#ifdef CLOZE_CUDA
      const DeviceNormArgs d(grads);
      l2_norm_into_cuda(d.xs, d.ns, d.dts, cloze::out<float>(out), a.op);
      return out;
#else
      no_cuda_kernel(a.op, DType::F32);
#endif
    }
    cloze::out<float>(out)[0] = static_cast<float>(std::sqrt(sum_squares_host(a, grads)));
    return out;
  });

  // clipGradNorm(grads[], maxNorm) -> total L2 norm before clipping; scales in place when above maxNorm.
  // On cuda the norm is computed on the device in a fixed order and read back
  // once (the returned number is that one host sync).
  CLOZE_EXPORT(exports, "clipGradNorm", [](const ArgReader& a) -> Napi::Value {
    const std::vector<NTensor*> grads = norm_grads(a);
    const double max_norm = a.number(1, "maxNorm");
    if (!(max_norm > 0)) a.bad(ErrCode::Value, "a positive number", "maxNorm", a.describe(a.info[1]));
    if (a.on_cuda()) {
#ifdef CLOZE_CUDA
      const DeviceNormArgs d(grads);
      const double norm = l2_norm_cuda(d.xs, d.ns, d.dts, a.op);
      if (std::isfinite(norm) && norm > max_norm) {
        const double f = max_norm / (norm + 1e-6);
        for (NTensor* g : grads) scale_cuda(g->raw(), static_cast<int>(g->dtype()), g->numel(), f, a.op);
      }
      return Napi::Number::New(a.env(), norm);
#else
      no_cuda_kernel(a.op, DType::F32);  // a cuda tensor in the CPU addon
#endif
    }
    const double ss = sum_squares_host(a, grads);
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
