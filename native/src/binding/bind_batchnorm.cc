// Batch norm bindings, NCHW:
//   batchNorm2d(x, w|null, b|null, runningMean|null, runningVar|null, mask|null, training, momentum, eps)
//     -> [y, mean, rstd]  (updates the running buffers in place when training)
//   batchNorm2dBackward(dy, x, w|null, mean, rstd, mask|null, training, needX, needW, needB[, global|null])
//     -> [dx, dw, db]; global: float64 [2C + 1], the ranks' summed [Σdy, Σdy·x̂, n] (synchronized BN; a host
//     tensor, also beside cuda inputs, which get an upload)
//   batchNorm2dSums(x, mask|null, center|null) -> host float64 [C + 1]: per channel Σx, or Σ(x − center)² with
//     center float64 [C] (a host tensor, also beside cuda inputs), then the active count (synchronized BN's
//     statistics, which the ranks sum over MPI on the host; on cuda a copy back, which waits for the stream)
// Every op runs on the device of its first tensor argument (float32/float64 on
// the CPU, float32/bfloat16 on CUDA). On CUDA, batchNorm2d's mean and rstd are
// float32 whatever the input dtype (they only travel back into the backward).
#include <cmath>
#include <type_traits>

#include "../ops/batchnorm.h"
#include "bindings.h"
#include "host_view.h"
#include "image_args.h"
#ifdef CLOZE_CUDA
#include "../cuda/device_temp.h"
#endif

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

// Synchronized BatchNorm's float64 vectors: a host tensor of `n` values, also beside cuda inputs (the ranks'
// sums come from MPI on the host); a cuda tensor must be on the op's device. Null when absent.
NTensor* host_f64(const ArgReader& a, size_t i, const char* name, int64_t n) {
  if (a.info.Length() <= i || a.info[i].IsUndefined() || a.info[i].IsNull()) return nullptr;
  NTensor* t = a.host_or_device_tensor(i, name);
  a.want_dtype(t, DType::F64, name);
  a.want_shape(t, {n}, name);
  return t;
}

// Where a kernel of this op reads t's doubles: in place (CPU op, or a cuda tensor), else an upload of the host
// values (cuda op), held by *keep until after the launch.
const double* f64_for_kernel(const ArgReader& a, NTensor* t, std::shared_ptr<void>* keep) {
  if (!a.on_cuda() || t->on_cuda()) return t->ptr<double>();
  *keep = upload_bytes(a, t->raw(), t->nbytes());
  return static_cast<const double*>(keep->get());
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
  NTensor* global = host_f64(a, 10, "global", 2 * C + 1);
  std::shared_ptr<void> global_upload;
  const double* global_ptr = nullptr;
  if (global) {
    const double n = HostView<double>(global, a.op)[2 * C];
    if (!(n >= 0 && n == std::floor(n) && n < 9.0e15)) a.bad(ErrCode::Value, "a whole active count >= 0 in global[2C]", "global", std::to_string(n));
    global_ptr = f64_for_kernel(a, global, &global_upload);
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
      p.global = global_ptr;
      CLOZE_KERNEL(dev, batchnorm_backward, p);
      return 0;
    });
  return d.result(a);
}

Napi::Value batchnorm_sums(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  const uint8_t* mask = bn_mask(a, 1, x);
  const int64_t C = x->dim(1);
  NTensor* center = host_f64(a, 2, "center", C);
  // On the host whatever the input's device: the caller sums it with the other ranks' over MPI.
  Napi::Object res = NTensor::New(a.env(), DType::F64, {C + 1}, a.op, false, Device::CPU);
  std::shared_ptr<void> center_upload;
  const double* center_ptr = center ? f64_for_kernel(a, center, &center_upload) : nullptr;
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    if constexpr (decltype(dev)::cuda) {
#ifdef CLOZE_CUDA
      cuda::DeviceTemp sums(sizeof(double) * static_cast<size_t>(C + 1), a.op);
      batchnorm_sums_cuda<T>(bn_params<T, float>(x, nullptr, mask, true), center_ptr, sums.as<double>());
      cuda::copy(out<double>(res), false, sums.as<double>(), true, sizeof(double) * static_cast<size_t>(C + 1), a.op);
#endif
      return 0;
    } else {
      batchnorm_sums_cpu<T>(bn_params<T, T>(x, nullptr, mask, true), center_ptr, out<double>(res));
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
