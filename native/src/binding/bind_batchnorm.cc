// Batch norm bindings, NCHW:
//   batchNorm2d(x, w|null, b|null, runningMean|null, runningVar|null, mask|null, training, momentum, eps)
//     -> [y, mean, rstd]  (updates the running buffers in place when training)
//   batchNorm2dBackward(dy, x, w|null, mean, rstd, mask|null, training, needX, needW, needB[, global|null])
//     -> [dx, dw, db]; global: float64 [2C + 1], the ranks' summed [Σdy, Σdy·x̂, n] (synchronized BN, CPU)
//   batchNorm2dSums(x, mask|null, center|null) -> float64 [C + 1]: per channel Σx, or Σ(x − center)² with
//     center float64 [C], then the active count (synchronized BN's statistics, CPU)
// Every op runs on the device of its first tensor argument (float32/float64 on
// the CPU, float32/bfloat16 on CUDA). On CUDA, batchNorm2d's mean and rstd are
// float32 whatever the input dtype (they only travel back into the backward).
#include <cmath>
#include <type_traits>

#include "../ops/batchnorm.h"
#include "bindings.h"
#include "image_args.h"

namespace cloze {

using namespace image_args;

namespace {

// A per-channel [C] tensor of x's dtype, or null.
NTensor* channel_vec(const ArgReader& a, size_t i, const char* name, NTensor* x) {
  NTensor* t = a.tensor_or_null(i, name);
  if (t) {
    a.want_same_dtype(x, t, name);
    a.want_shape(t, {x->dim(1)}, name);
  }
  return t;
}

const uint8_t* bn_mask(const ArgReader& a, size_t i, NTensor* x) {
  NTensor* m = a.tensor_or_null(i, "mask");
  return m ? checked_mask(a, m, {x->dim(0), x->dim(2), x->dim(3)}, "mask") : nullptr;
}

template <typename T, typename S>
BatchNormParams<T, S> bn_params(NTensor* x, NTensor* w, const uint8_t* mask, bool training) {
  BatchNormParams<T, S> p;
  p.B = x->dim(0);
  p.C = x->dim(1);
  p.S = x->dim(2) * x->dim(3);
  p.x = x->ptr<T>();
  p.w = ptr_or_null<T>(w);
  p.mask = mask;
  p.training = training;
  return p;
}

Napi::Value batchnorm_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  NTensor* w = channel_vec(a, 1, "weight", x);
  NTensor* b = channel_vec(a, 2, "bias", x);
  NTensor* rm = channel_vec(a, 3, "runningMean", x);
  NTensor* rv = channel_vec(a, 4, "runningVar", x);
  const uint8_t* mask = bn_mask(a, 5, x);
  const bool training = a.boolean(6, "training");
  const double momentum = a.number(7, "momentum"), eps = a.number(8, "eps");
  if (!(momentum >= 0 && momentum <= 1)) a.bad(ErrCode::Value, "a number in [0, 1]", "momentum", a.describe(a.info[7]));
  if (!(eps > 0 && std::isfinite(eps))) a.bad(ErrCode::Value, "a positive number", "eps", a.describe(a.info[8]));
  if ((rm == nullptr) != (rv == nullptr))
    a.bad(ErrCode::Value, "runningMean and runningVar both given or both null", rm ? "runningVar" : "runningMean", "null");
  if (!training && !rm) a.bad(ErrCode::Value, "running statistics in eval mode", "runningMean", "null");
  if (rm && (rm->raw() == x->raw() || rv->raw() == x->raw() || rm->raw() == rv->raw()))
    a.bad(ErrCode::Value, "running buffers apart from each other and from the input", "runningVar", "shared storage");
  const int64_t C = x->dim(1);
  Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
  Napi::Object mean = a.alloc(stat_dtype(x), {C});
  Napi::Object rstd = a.alloc(stat_dtype(x), {C});
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    using S = std::conditional_t<decltype(dev)::cuda, float, T>;
    BatchNormParams<T, S> p = bn_params<T, S>(x, w, mask, training);
    p.b = ptr_or_null<T>(b);
    p.momentum = momentum;
    p.eps = eps;
    p.running_mean = ptr_or_null<T>(rm);
    p.running_var = ptr_or_null<T>(rv);
    p.y = out<T>(y);
    p.mean = out<S>(mean);
    p.rstd = out<S>(rstd);
    CLOZE_KERNEL(dev, batchnorm_forward, p);
    return 0;
  });
  Napi::Array res = Napi::Array::New(a.env(), 3);
  res.Set(0u, y);
  res.Set(1u, mean);
  res.Set(2u, rstd);
  return res;
}

Napi::Value batchnorm_backward(const ArgReader& a) {
  NTensor* dy = a.tensor(0, "grad");
  NTensor* x = image(a, 1, "input");
  NTensor* w = channel_vec(a, 2, "weight", x);
  NTensor* mean = a.tensor(3, "mean");
  NTensor* rstd = a.tensor(4, "rstd");
  const uint8_t* mask = bn_mask(a, 5, x);
  const bool training = a.boolean(6, "training");
  Grads d(a, 7);
  a.want_same_dtype(x, dy, "grad");
  a.want_shape(dy, x->shape(), "grad");
  const int64_t C = x->dim(1);
  for (NTensor* t : {mean, rstd}) {
    if (a.on_cuda())
      a.want_dtype(t, DType::F32, t == mean ? "mean" : "rstd");
    else
      a.want_same_dtype(x, t, t == mean ? "mean" : "rstd");
    a.want_shape(t, {C}, t == mean ? "mean" : "rstd");
  }
  NTensor* global = a.info.Length() > 10 ? a.tensor_or_null(10, "global") : nullptr;
  if (global) {
    if (a.on_cuda()) a.bad(ErrCode::Device, "a CPU input (synchronized BatchNorm runs on the CPU only)", "input", tensor_desc(x));
    a.want_dtype(global, DType::F64, "global");
    a.want_shape(global, {2 * C + 1}, "global");
    const double n = global->ptr<double>()[2 * C];
    if (!(n >= 0 && n == std::floor(n) && n < 9.0e15)) a.bad(ErrCode::Value, "a whole active count >= 0 in global[2C]", "global", std::to_string(n));
  }
  d.allocate(a, x->dtype(), x->shape(), {C}, C, false);
  if (d.any())
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      using S = std::conditional_t<decltype(dev)::cuda, float, T>;
      BatchNormParams<T, S> p = bn_params<T, S>(x, w, mask, training);
      p.mean = mean->ptr<S>();
      p.rstd = rstd->ptr<S>();
      p.dy = dy->ptr<T>();
      d.set<T>(p);
      if (global) p.global = global->ptr<double>();
      CLOZE_KERNEL(dev, batchnorm_backward, p);
      return 0;
    });
  return d.result(a);
}

Napi::Value batchnorm_sums(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  const uint8_t* mask = bn_mask(a, 1, x);
  NTensor* center = a.tensor_or_null(2, "center");
  if (a.on_cuda()) a.bad(ErrCode::Device, "a CPU input (synchronized BatchNorm runs on the CPU only)", "input", tensor_desc(x));
  const int64_t C = x->dim(1);
  if (center) {
    a.want_dtype(center, DType::F64, "center");
    a.want_shape(center, {C}, "center");
  }
  Napi::Object res = a.alloc(DType::F64, {C + 1}, false);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    if constexpr (decltype(dev)::cuda) {
      return 0;  // refused above
    } else {
      BatchNormParams<T> p = bn_params<T, T>(x, nullptr, mask, true);
      batchnorm_sums_cpu<T>(p, center ? center->ptr<double>() : nullptr, out<double>(res));
      return 0;
    }
  });
  return res;
}

}  // namespace

void register_batchnorm(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "batchNorm2d", batchnorm_forward);
  CLOZE_EXPORT(exports, "batchNorm2dBackward", batchnorm_backward);
  CLOZE_EXPORT(exports, "batchNorm2dSums", batchnorm_sums);
}

}  // namespace cloze
