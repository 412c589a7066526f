// Fused, vocabulary-chunked linear + cross-entropy (the MLM head's last step).
#include <cmath>
#include <vector>

#include "../ops/linear_ce.h"
#include "../core/sizes.h"
#include "bindings.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

struct LceDims {
  int64_t M = 0, D = 0, V = 0;
  int64_t count = 0;  // targets other than the ignore index
};

// Checks h [M, D], weight [V, D], bias [V] | null and int32 targets [M] with
// entries in [0, V) or the ignore index. Cuda targets are copied to the host
// for this (M int32s, a host sync), which also gives the forward its count
// without reading the loss back, unless `deferred`: then the caller knows the
// count (it counted the targets on the host before uploading them, or it is
// the backward, whose count the forward returned), and the targets are checked
// by a kernel whose verdict comes at the next read (cuda::check_indices_deferred;
// the kernels only compare a target with their columns, so a bad one reads
// nothing out of range).
LceDims check_inputs(const ArgReader& a, NTensor* h, NTensor* w, NTensor* b, NTensor* tg, int32_t ignore,
                     bool deferred = false) {
  a.want_float(h, "input");
  a.want_ndim(h, 2, 2, "input");
  LceDims d;
  d.M = h->dim(0);
  d.D = h->dim(1);
  if (d.D == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "input", tensor_desc(h));
  a.want_same_dtype(h, w, "weight");
  a.want_ndim(w, 2, 2, "weight");
  d.V = w->dim(0);
  if (d.V == 0 || w->dim(1) != d.D)
    a.bad(ErrCode::Shape, "weight of shape [V, " + std::to_string(d.D) + "] with V >= 1 (input has " + tensor_desc(h) + ")",
          "weight", tensor_desc(w));
  if (b) {
    a.want_same_dtype(h, b, "bias");
    a.want_shape(b, {d.V}, "bias");
  }
  a.want_dtype(tg, DType::I32, "targets");
  a.want_shape(tg, {d.M}, "targets");
  const int32_t* t = tg->ptr<int32_t>();
  if (deferred && tg->on_cuda()) {
#ifdef CLOZE_CUDA
    cuda::check_indices_deferred(t, d.M, d.V, true, ignore, a.op, "targets");
#endif
    d.count = -1;  // not known here
    return d;
  }
  std::vector<int32_t> host;
  if (tg->on_cuda()) {
#ifdef CLOZE_CUDA
    host.resize(static_cast<size_t>(d.M));
    cuda::copy(host.data(), false, t, true, host.size() * sizeof(int32_t), a.op);
#endif
    t = host.data();
  }
  for (int64_t i = 0; i < d.M; i++) {
    if (t[i] == ignore) continue;
    d.count++;
    if (t[i] < 0 || t[i] >= d.V)
      a.bad(ErrCode::Index,
            "indices in [0, " + std::to_string(d.V) + ") or the ignore index " + std::to_string(ignore), "targets",
            std::to_string(t[i]) + " at position " + std::to_string(i));
  }
  return d;
}

template <typename T>
LinearCEParams<T> params(const LceDims& d, NTensor* h, NTensor* w, NTensor* b, NTensor* tg, int32_t ignore,
                         int64_t chunk) {
  LinearCEParams<T> p;
  p.M = d.M;
  p.D = d.D;
  p.V = d.V;
  p.chunk = chunk;
  p.h = h->ptr<T>();
  p.w = w->ptr<T>();
  p.b = b ? b->ptr<T>() : nullptr;
  p.targets = tg->ptr<int32_t>();
  p.ignore_index = ignore;
  return p;
}

}  // namespace

void register_linear_ce(Napi::Env env, Napi::Object exports) {
  (void)env;
  // linearCrossEntropy(h [M, D], w [V, D], b [V] | null, targets int32 [M], ignoreIndex, chunkSize[, count])
  //   -> { loss: 0-d mean over non-ignored rows, lse: [M], count }
  // count: the non-ignored targets, given by a caller that counted (and checked) them on the host before
  // uploading them; cuda targets are then checked on the device, with no copy back (check_inputs).
  CLOZE_EXPORT(exports, "linearCrossEntropy", [](const ArgReader& a) -> Napi::Value {
    NTensor* h = a.tensor(0, "input");
    NTensor* w = a.tensor(1, "weight");
    NTensor* b = a.tensor_or_null(2, "bias");
    NTensor* tg = a.tensor(3, "targets");
    const int32_t ignore = static_cast<int32_t>(a.integer(4, "ignoreIndex", INT32_MIN, INT32_MAX));
    const int64_t chunk = a.integer(5, "chunkSize", 1, INT32_MAX);
    const bool given = a.info.Length() > 6 && !a.info[6].IsUndefined();
    const int64_t given_count = given ? a.integer(6, "count", 0, INT32_MAX) : 0;
    LceDims d = check_inputs(a, h, w, b, tg, ignore, given);
    if (given) {
      if (given_count > d.M)
        a.bad(ErrCode::Value, "at most the " + std::to_string(d.M) + " rows of targets", "count", std::to_string(given_count));
      if (d.count >= 0 && d.count != given_count)  // counted here too (the CPU): they must agree
        a.bad(ErrCode::Value, std::to_string(d.count) + " (the non-ignored rows of targets)", "count", std::to_string(given_count));
      d.count = given_count;
    }
    // The [M, chunk] logits scratch, overflow-checked and within the memory limit before anything is allocated.
    const size_t chunk_bytes = checked_bytes({d.M, std::min(chunk, d.V)}, dtype_size(h->dtype()), a.op, "the logits chunk [M, chunkSize]");
    if (!a.on_cuda()) Storage::check_request(chunk_bytes, a.op);
    if (a.on_cuda()) {
      // lse is float32 for bfloat16 too (see LinearCEParams::lse_f32; the JS side
      // only hands it back to the backward); the loss has h's dtype and stays on
      // the device.
      Napi::Object lse = a.alloc(DType::F32, {d.M}, false);
      Napi::Object loss = a.alloc(h->dtype(), {}, false);
      dispatch(a, h, [&](auto t, auto dev) {
        using T = decltype(t);
        if constexpr (decltype(dev)::cuda) {
          LinearCEParams<T> p = params<T>(d, h, w, b, tg, ignore, chunk);
          p.lse_f32 = NTensor::Unwrap(lse)->ptr<float>();
          p.loss = NTensor::Unwrap(loss)->ptr<T>();
          p.count = d.count;
          linear_ce_forward_cuda<T>(p);
        }
        return 0;
      });
      Napi::Object res = Napi::Object::New(a.env());
      res.Set("loss", loss);
      res.Set("lse", lse);
      res.Set("count", Napi::Number::New(a.env(), static_cast<double>(d.count)));
      return res;
    }
    Napi::Object lse = NTensor::New(a.env(), h->dtype(), {d.M}, a.op);
    int64_t count = 0;
    const double total = dispatch_float(h->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      LinearCEParams<T> p = params<T>(d, h, w, b, tg, ignore, chunk);
      p.lse = NTensor::Unwrap(lse)->ptr<T>();
      const double s = linear_ce_forward_cpu<T>(p);
      count = p.count;
      return s;
    });
    return loss_result(a, h->dtype(), total, count, lse);
  });

  // linearSample(h [M, D], w [V, D], b [V] | null, seed, step, chunkSize, temperature[, rowOffset]) -> int32 [M]:
  //   one id per row drawn from softmax((h·wᵀ + b) / temperature) by Gumbel-max in vocabulary chunks
  //   (ops/linear_ce.h); forward only.
  CLOZE_EXPORT(exports, "linearSample", [](const ArgReader& a) -> Napi::Value {
    NTensor* h = a.tensor(0, "input");
    NTensor* w = a.tensor(1, "weight");
    NTensor* b = a.tensor_or_null(2, "bias");
    const int64_t seed = a.integer(3, "seed", 0, (int64_t(1) << 53));
    const int64_t step = a.integer(4, "step", 0, (int64_t(1) << 53));
    const int64_t chunk = a.integer(5, "chunkSize", 1, INT32_MAX);
    const double temperature = a.number(6, "temperature");
    if (!(temperature > 0) || !std::isfinite(temperature))
      a.bad(ErrCode::Value, "a finite temperature > 0", "temperature", a.describe(a.info[6]));
    // Row m draws as global row m + rowOffset; the key's row field is 32 bits (linear_sample_uniform).
    const int64_t row_offset = a.info.Length() > 7 && !a.info[7].IsUndefined() ? a.integer(7, "rowOffset", 0, INT32_MAX) : 0;
    a.want_float(h, "input");
    a.want_ndim(h, 2, 2, "input");
    const int64_t M = h->dim(0), D = h->dim(1);
    if (D == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "input", tensor_desc(h));
    if (M + row_offset > (int64_t(1) << 32))
      a.bad(ErrCode::Value, "rows + rowOffset at most 2^32 (the draw key's row field)", "rowOffset", std::to_string(row_offset));
    a.want_same_dtype(h, w, "weight");
    a.want_ndim(w, 2, 2, "weight");
    const int64_t V = w->dim(0);
    if (V == 0 || w->dim(1) != D)
      a.bad(ErrCode::Shape, "weight of shape [V, " + std::to_string(D) + "] with V >= 1 (input has " + tensor_desc(h) + ")",
            "weight", tensor_desc(w));
    if (V >= (int64_t(1) << 31)) a.bad(ErrCode::Shape, "fewer than 2^31 vocabulary rows", "weight", tensor_desc(w));
    if (b) {
      a.want_same_dtype(h, b, "bias");
      a.want_shape(b, {V}, "bias");
    }
    const size_t chunk_bytes = checked_bytes({M, std::min(chunk, V)}, dtype_size(h->dtype()), a.op, "the logits chunk [M, chunkSize]");
    if (!a.on_cuda()) Storage::check_request(chunk_bytes, a.op);
    Napi::Object out = a.alloc(DType::I32, {M}, false);
    dispatch(a, h, [&](auto t, auto dev) {
      using T = decltype(t);
      LinearSampleParams<T> p;
      p.M = M;
      p.D = D;
      p.V = V;
      p.chunk = chunk;
      p.h = h->ptr<T>();
      p.w = w->ptr<T>();
      p.b = b ? b->ptr<T>() : nullptr;
      p.temperature = temperature;
      p.seed = static_cast<uint64_t>(seed);
      p.step = static_cast<uint64_t>(step);
      p.row_offset = row_offset;
      p.out = NTensor::Unwrap(out)->ptr<int32_t>();
      CLOZE_KERNEL(dev, linear_sample, p);
      return 0;
    });
    return out;
  });

  // linearCrossEntropyBackward(gradLoss number | 0-d tensor, h, w, b | null, targets, lse, ignoreIndex, count, chunkSize,
  //   needH, needW, needB[, intoH | null, intoW | null, intoB | null]) -> [dh | null, dw | null, db | null]
  // On cuda, gradLoss may be the loss's gradient tensor itself (h's dtype, 0-d): the kernel reads it there, so
  // the backward does not wait to read it on the host; the targets are checked on the device (deferred), their
  // count being the forward's.
  // intoX: a tensor of X's shape and dtype (a parameter's .grad, e.g. a view of
  // the optimizer's flat gradient buffer) that X's gradient is added into in
  // place; its slot of the result is then null and no gradient tensor is made.
  CLOZE_EXPORT(exports, "linearCrossEntropyBackward", [](const ArgReader& a) -> Napi::Value {
    const bool gl_tensor = a.info.Length() > 0 && a.info[0].IsObject();
    double gl = gl_tensor ? 0.0 : a.number(0, "gradLoss");
    NTensor* glt = gl_tensor ? a.tensor(0, "gradLoss") : nullptr;
    NTensor* h = a.tensor(1, "input");
    NTensor* w = a.tensor(2, "weight");
    NTensor* b = a.tensor_or_null(3, "bias");
    NTensor* tg = a.tensor(4, "targets");
    NTensor* lse = a.tensor(5, "lse");
    const int32_t ignore = static_cast<int32_t>(a.integer(6, "ignoreIndex", INT32_MIN, INT32_MAX));
    const int64_t count = a.integer(7, "count", 0, INT64_C(1) << 40);
    const int64_t chunk = a.integer(8, "chunkSize", 1, INT32_MAX);
    const bool nh = a.boolean(9, "needInput"), nw = a.boolean(10, "needWeight"), nb = a.boolean(11, "needBias");
    NTensor* ih = a.tensor_or_null(12, "intoInput");
    NTensor* iw = a.tensor_or_null(13, "intoWeight");
    NTensor* ib = a.tensor_or_null(14, "intoBias");
    const LceDims d = check_inputs(a, h, w, b, tg, ignore, a.on_cuda());
    if (glt) {
      a.want_same_dtype(h, glt, "gradLoss");
      a.want_shape(glt, {}, "gradLoss");
      if (!glt->on_cuda()) {  // on the CPU the value is simply read (float32 or float64, as h, checked above)
        gl = glt->dtype() == DType::F64 ? *glt->ptr<double>() : static_cast<double>(*glt->ptr<float>());
        glt = nullptr;
      }
    }
    const auto want_into = [&](NTensor* into, NTensor* of, bool need, const char* name) {
      if (!into) return;
      if (!need) a.bad(ErrCode::Value, "null when that gradient is not needed", name, tensor_desc(into));
      if (!of) a.bad(ErrCode::Value, "null without a bias", name, tensor_desc(into));
      a.want_same_dtype(h, into, name);
      a.want_shape(into, of->shape(), name);
      if (into == h || into == w || into == b || into == tg || into == lse)
        a.bad(ErrCode::Value, "a gradient buffer, not one of the operands", name, tensor_desc(into));
    };
    want_into(ih, h, nh, "intoInput");
    want_into(iw, w, nw, "intoWeight");
    want_into(ib, b, nb, "intoBias");
    // The [M, chunk] logits scratch, overflow-checked and within the memory limit before anything is allocated.
    const size_t chunk_bytes = checked_bytes({d.M, std::min(chunk, d.V)}, dtype_size(h->dtype()), a.op, "the logits chunk [M, chunkSize]");
    if (!a.on_cuda()) Storage::check_request(chunk_bytes, a.op);
    if (a.on_cuda())
      a.want_dtype(lse, DType::F32, "lse");  // the cuda forward saves a float32 lse for every dtype
    else
      a.want_same_dtype(h, lse, "lse");
    a.want_shape(lse, {d.M}, "lse");
    // count divides the summed loss: the non-ignored rows of this call, or more (a data-parallel rank divides by
    // the global batch's count, so its gradient is its exact share of the single-process mean's); never fewer.
    // (On cuda the targets were not counted here: check_inputs' deferred path.)
    if (d.count >= 0 && count < d.count)
      a.bad(ErrCode::Value, "at least " + std::to_string(d.count) + " (the non-ignored rows of targets)", "count", std::to_string(count));
    Napi::Object dh, dw, db;
    // Both backends write every element of a fresh output (the GEMMs with beta = 0, the fill
    // when every row is ignored), so no zero-fill: for dW that was a [V, D] pass for nothing.
    const bool zero = false;
    if (nh && !ih) dh = a.alloc(h->dtype(), {d.M, d.D}, zero);
    if (nw && !iw) dw = a.alloc(h->dtype(), {d.V, d.D}, zero);
    if (nb && !ib) db = a.alloc(h->dtype(), {d.V}, zero);
    if (nh || nw || nb)
      dispatch(a, h, [&](auto t, auto dev) {
        using T = decltype(t);
        LinearCEParams<T> p = params<T>(d, h, w, b, tg, ignore, chunk);
        if constexpr (decltype(dev)::cuda)
          p.lse_f32 = lse->ptr<float>();
        else
          p.lse = lse->ptr<T>();
        p.count = count;
        p.grad_scale = count > 0 ? gl / static_cast<double>(count) : 0.0;
        if (glt) p.grad_loss = glt->ptr<T>();  // cuda: dloss read by the kernel, scaled by 1/count there
        p.dh = ih ? ih->ptr<T>() : nh ? NTensor::Unwrap(dh)->ptr<T>() : nullptr;
        p.dw = iw ? iw->ptr<T>() : nw ? NTensor::Unwrap(dw)->ptr<T>() : nullptr;
        p.db = ib ? ib->ptr<T>() : nb ? NTensor::Unwrap(db)->ptr<T>() : nullptr;
        p.acc_dh = ih != nullptr;
        p.acc_dw = iw != nullptr;
        p.acc_db = ib != nullptr;
        CLOZE_KERNEL(dev, linear_ce_backward, p);
        return 0;
      });
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, null_or(a, nh && !ih, dh));
    res.Set(1u, null_or(a, nw && !iw, dw));
    res.Set(2u, null_or(a, nb && !ib, db));
    return res;
  });
}

}  // namespace cloze
