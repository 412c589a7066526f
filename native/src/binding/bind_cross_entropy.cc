// Cross-entropy and argmaxRows bindings.
#include "../ops/cross_entropy.h"
#include "bindings.h"

namespace cloze {

void register_cross_entropy(Napi::Env env, Napi::Object exports) {
  (void)env;
  // crossEntropy(logits [N, V], targets [M] int32, rows [M] int32 | null, ignoreIndex[, count])
  //   -> { loss: 0-d mean over non-ignored rows, lse: [M], count }
  // On CUDA the loss stays on the device; count comes from the targets, which
  // validation has already copied to the host (the op's one device→host copy
  // with rows = null, two with rows); lse is float32 there. count: the
  // non-ignored targets, given by a caller that counted (and checked) them on
  // the host before uploading them; cuda targets (without rows) are then
  // checked on the device, with no copy back (cuda::check_indices_deferred).
  // There the count is trusted (only bounded by M): a wrong one scales the
  // loss and its gradient wrongly. A bad target reads nothing out of range: its
  // row's loss is NaN, and the error comes at the next read or synchronize.
  CLOZE_EXPORT(exports, "crossEntropy", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "logits");
    NTensor* tg = a.tensor(1, "targets");
    NTensor* rows = a.tensor_or_null(2, "rows");
    const int64_t ignore = a.integer(3, "ignoreIndex", INT32_MIN, INT32_MAX);
    const bool given = a.info.Length() > 4 && !a.info[4].IsUndefined();
    const int64_t given_count = given ? a.integer(4, "count", 0, INT32_MAX) : -1;
    a.want_float(x, "logits");
    a.want_ndim(x, 2, 2, "logits");
    const int64_t N = x->dim(0), V = x->dim(1);
    if (V == 0) a.bad(ErrCode::Shape, "logits with at least one class", "logits", tensor_desc(x));
    a.want_ndim(tg, 1, 1, "targets");
    const int64_t M = tg->numel();
    std::vector<int32_t> rows_buf, tg_buf;
    if (rows) {
      a.want_shape(rows, {M}, "rows");
      const int32_t* r = checked_indices(a, rows, "rows", N, false, 0, &rows_buf);
      // Duplicate rows would race in the backward scatter.
      std::vector<uint8_t> seen(static_cast<size_t>(N), 0);
      for (int64_t i = 0; i < M; i++) {
        if (seen[r[i]]) a.bad(ErrCode::Index, "distinct row indices", "rows", "row " + std::to_string(r[i]) + " twice");
        seen[r[i]] = 1;
      }
    } else if (M != N) {
      a.bad(ErrCode::Shape, "targets of shape [" + std::to_string(N) + "] (one per logits row)", "targets", tensor_desc(tg));
    }
    if (given && given_count > M)
      a.bad(ErrCode::Value, "at most the " + std::to_string(M) + " rows of targets", "count", std::to_string(given_count));
    // Deferred on cuda when the caller counted: the kernels never index with a bad target (see ce_forward_kernel).
    const bool defer = given && !rows && tg->on_cuda() && x->on_cuda();
    const int32_t* tgh = nullptr;
    if (defer)
      checked_indices_deferred(a, tg, "targets", V, true, static_cast<int32_t>(ignore));
    else
      tgh = checked_indices(a, tg, "targets", V, true, static_cast<int32_t>(ignore), &tg_buf);
    int64_t host_count = -1;  // counted here, where the targets are on the host
    if (tgh) {
      host_count = 0;
      for (int64_t i = 0; i < M; i++) host_count += tgh[i] != static_cast<int32_t>(ignore);
      if (given && given_count != host_count)
        a.bad(ErrCode::Value, std::to_string(host_count) + " (the non-ignored rows of targets)", "count", std::to_string(given_count));
    }
    Napi::Object lse = a.alloc(stat_dtype(x), {M}, false);
    if (x->on_cuda()) {
      const int64_t count = defer ? given_count : host_count;
      Napi::Object loss = a.alloc(x->dtype(), {}, false);
      dispatch(a, x, [&](auto t, auto dev) {
        using T = decltype(t);
        if constexpr (decltype(dev)::cuda) {
          CrossEntropyParams<T> p;
          p.N = N;
          p.V = V;
          p.M = M;
          p.logits = x->ptr<T>();
          p.targets = tg->ptr<int32_t>();
          p.rows = rows ? rows->ptr<int32_t>() : nullptr;
          p.ignore_index = static_cast<int32_t>(ignore);
          p.lse = NTensor::Unwrap(lse)->ptr<stat_t<T>>();
          p.count = count;
          p.loss = NTensor::Unwrap(loss)->ptr<T>();
          cross_entropy_forward_cuda<T>(p);
        }
        return 0;
      });
      // The same object loss_result() builds, with the loss already on the device.
      Napi::Object res = Napi::Object::New(a.env());
      res.Set("loss", loss);
      res.Set("lse", lse);
      res.Set("count", Napi::Number::New(a.env(), static_cast<double>(count)));
      return res;
    }
    int64_t count = 0;
    const double total = dispatch_float(x->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      CrossEntropyParams<T> p;
      p.N = N;
      p.V = V;
      p.M = M;
      p.logits = x->ptr<T>();
      p.targets = tg->ptr<int32_t>();
      p.rows = rows ? rows->ptr<int32_t>() : nullptr;
      p.ignore_index = static_cast<int32_t>(ignore);
      p.lse = NTensor::Unwrap(lse)->ptr<T>();
      const double s = cross_entropy_forward_cpu<T>(p);
      count = p.count;
      return s;
    });
    return loss_result(a, x->dtype(), total, count, lse);
  });

  // crossEntropyBackward(gradLoss number | 0-d tensor, logits, targets, rows|null, lse, ignoreIndex, count)
  //   -> dlogits [N, V]
  // On cuda, gradLoss may be the loss's gradient tensor itself (logits' dtype, 0-d): the kernel reads it there,
  // so the backward does not wait to read it on the host; targets (without rows) are then checked on the device
  // (deferred), their count being the forward's.
  CLOZE_EXPORT(exports, "crossEntropyBackward", [](const ArgReader& a) -> Napi::Value {
    const bool gl_tensor = a.info.Length() > 0 && a.info[0].IsObject();
    double gl = gl_tensor ? 0.0 : a.number(0, "gradLoss");
    NTensor* glt = gl_tensor ? a.tensor(0, "gradLoss") : nullptr;
    NTensor* x = a.tensor(1, "logits");
    NTensor* tg = a.tensor(2, "targets");
    NTensor* rows = a.tensor_or_null(3, "rows");
    NTensor* lse = a.tensor(4, "lse");
    const int64_t ignore = a.integer(5, "ignoreIndex", INT32_MIN, INT32_MAX);
    const int64_t count = a.integer(6, "count", 0, INT64_C(1) << 40);
    a.want_float(x, "logits");
    a.want_ndim(x, 2, 2, "logits");
    const int64_t N = x->dim(0), V = x->dim(1), M = tg->numel();
    a.want_ndim(tg, 1, 1, "targets");
    if (glt) {
      a.want_same_dtype(x, glt, "gradLoss");
      a.want_shape(glt, {}, "gradLoss");
      if (!glt->on_cuda()) {  // on the CPU the value is simply read (float32 or float64, as the logits)
        gl = glt->dtype() == DType::F64 ? *glt->ptr<double>() : static_cast<double>(*glt->ptr<float>());
        glt = nullptr;
      }
    }
    std::vector<int32_t> rows_buf, tg_buf;
    // With rows, a kernel indexes by them: those stay checked on the host. Targets are only compared with
    // column indices (ce_backward_kernel), so a bad one can wait for the deferred report.
    if (glt && !rows)
      checked_indices_deferred(a, tg, "targets", V, true, static_cast<int32_t>(ignore));
    else
      checked_indices(a, tg, "targets", V, true, static_cast<int32_t>(ignore), &tg_buf);
    if (rows) {
      a.want_shape(rows, {M}, "rows");
      checked_indices(a, rows, "rows", N, false, 0, &rows_buf);
    } else if (M != N) {
      a.bad(ErrCode::Shape, "targets of shape [" + std::to_string(N) + "]", "targets", tensor_desc(tg));
    }
    want_stat_dtype(a, x, lse, "lse");
    a.want_shape(lse, {M}, "lse");
    Napi::Object dx = a.alloc(x->dtype(), x->shape());
    if (count == 0) return dx;
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      CrossEntropyParams<T> p;
      p.N = N;
      p.V = V;
      p.M = M;
      p.logits = x->ptr<T>();
      p.targets = tg->ptr<int32_t>();
      p.rows = rows ? rows->ptr<int32_t>() : nullptr;
      p.ignore_index = static_cast<int32_t>(ignore);
      p.lse = lse->ptr<stat_t<T>>();
      p.count = count;
      p.grad_scale = gl / static_cast<double>(count);
      if constexpr (decltype(dev)::cuda)
        if (glt) p.grad_loss = glt->ptr<T>();  // dloss read by the kernel, scaled by 1/count there
      p.dlogits = NTensor::Unwrap(dx)->ptr<T>();
      CLOZE_KERNEL(dev, cross_entropy_backward, p);
      return 0;
    });
    return dx;
  });

  // argmaxRows(x [..., C]) -> int32 [...]: index of each row's largest value (first on ties).
  CLOZE_EXPORT(exports, "argmaxRows", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    const int64_t C = x->dim(-1);
    if (C == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "input", tensor_desc(x));
    std::vector<int64_t> os(x->shape().begin(), x->shape().end() - 1);
    Napi::Object out = a.alloc(DType::I32, os, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      CLOZE_KERNEL(dev, argmax_rows, x->numel() / C, C, x->ptr<T>(), NTensor::Unwrap(out)->ptr<int32_t>());
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
