// LayerNorm, softmax, cross-entropy and embedding bindings.
#include <cmath>

#include "../ops/nn.h"
#include "bindings.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

Napi::Value null_or(const ArgReader& a, bool cond, const Napi::Object& o) { return cond ? Napi::Value(o) : a.env().Null(); }

// Validates int32 indices in [lo, hi) (or == allowed) and returns them as
// host memory. A cuda tensor's indices are first copied to *buf: a small
// device→host copy that waits for the stream, the price of reporting a bad
// index as an error here instead of a fault inside a kernel.
const int32_t* checked_indices(const ArgReader& a, NTensor* t, const char* name, int64_t hi, bool allow_special,
                               int32_t special, std::vector<int32_t>* buf) {
  a.want_dtype(t, DType::I32, name);
  const int32_t* p = t->ptr<int32_t>();
  if (t->on_cuda()) {
    buf->resize(static_cast<size_t>(t->numel()));
#ifdef CLOZE_CUDA
    cuda::copy(buf->data(), false, t->raw(), true, t->nbytes(), a.op);
#endif
    p = buf->data();
  }
  for (int64_t i = 0; i < t->numel(); i++) {
    if (allow_special && p[i] == special) continue;
    if (p[i] < 0 || p[i] >= hi)
      fail(ErrCode::Index, a.op,
           expected("indices in [0, " + std::to_string(hi) + ")" +
                        (allow_special ? " or the ignore index " + std::to_string(special) : std::string()),
                    name, std::to_string(p[i]) + " at position " + std::to_string(i)));
  }
  return p;
}

// The dtype of saved statistics (LayerNorm mean/rstd, cross-entropy lse): the
// input's on the CPU, float32 on CUDA (see stat_t in ops/nn.h).
DType stat_dtype(const NTensor* x) { return x->on_cuda() ? DType::F32 : x->dtype(); }
void want_stat_dtype(const ArgReader& a, const NTensor* x, const NTensor* s, const char* name) {
  if (x->on_cuda())
    a.want_dtype(s, DType::F32, name);
  else
    a.want_same_dtype(x, s, name);
}

}  // namespace

void register_nn(Napi::Env env, Napi::Object exports) {
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

  // softmax(x) over the last dim; softmaxBackward(dy, y)
  CLOZE_EXPORT(exports, "softmax", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    a.want_ndim(x, 1, 8, "input");
    Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
    const int64_t C = x->dim(-1);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SoftmaxParams<T> p;
      p.cols = C;
      p.rows = C ? x->numel() / C : 0;
      p.x = x->ptr<T>();
      p.y = NTensor::Unwrap(y)->ptr<T>();
      CLOZE_KERNEL(dev, softmax_forward, p);
      return 0;
    });
    return y;
  });
  CLOZE_EXPORT(exports, "softmaxBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* dy = a.tensor(0, "grad");
    NTensor* y = a.tensor(1, "output");
    a.want_float(y, "output");
    a.want_ndim(y, 1, 8, "output");
    a.want_same_dtype(y, dy, "grad");
    a.want_shape(dy, y->shape(), "grad");
    Napi::Object dx = a.alloc(y->dtype(), y->shape(), false);
    const int64_t C = y->dim(-1);
    dispatch(a, y, [&](auto t, auto dev) {
      using T = decltype(t);
      SoftmaxParams<T> p;
      p.cols = C;
      p.rows = C ? y->numel() / C : 0;
      p.y = y->ptr<T>();
      p.dy = dy->ptr<T>();
      p.dx = NTensor::Unwrap(dx)->ptr<T>();
      CLOZE_KERNEL(dev, softmax_backward, p);
      return 0;
    });
    return dx;
  });

  // crossEntropy(logits [N, V], targets [M] int32, rows [M] int32 | null, ignoreIndex)
  //   -> { loss: 0-d mean over non-ignored rows, lse: [M], count }
  // On CUDA the loss stays on the device; count comes from the targets, which
  // validation has already copied to the host (the op's one device→host copy
  // with rows = null, two with rows); lse is float32 there.
  CLOZE_EXPORT(exports, "crossEntropy", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "logits");
    NTensor* tg = a.tensor(1, "targets");
    NTensor* rows = a.tensor_or_null(2, "rows");
    const int64_t ignore = a.integer(3, "ignoreIndex", INT32_MIN, INT32_MAX);
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
    const int32_t* tgh = checked_indices(a, tg, "targets", V, true, static_cast<int32_t>(ignore), &tg_buf);
    Napi::Object lse = a.alloc(stat_dtype(x), {M}, false);
    if (x->on_cuda()) {
      int64_t count = 0;
      for (int64_t i = 0; i < M; i++) count += tgh[i] != static_cast<int32_t>(ignore);
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

  // crossEntropyBackward(gradLoss number, logits, targets, rows|null, lse, ignoreIndex, count) -> dlogits [N, V]
  CLOZE_EXPORT(exports, "crossEntropyBackward", [](const ArgReader& a) -> Napi::Value {
    const double gl = a.number(0, "gradLoss");
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
    std::vector<int32_t> rows_buf, tg_buf;
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
      p.grad_scale = gl / static_cast<double>(count);
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

  // embedding(table [V, D], ids int32 [...]) -> [..., D]
  CLOZE_EXPORT(exports, "embedding", [](const ArgReader& a) -> Napi::Value {
    NTensor* table = a.tensor(0, "table");
    NTensor* ids = a.tensor(1, "ids");
    a.want_float(table, "table");
    a.want_ndim(table, 2, 2, "table");
    const int64_t V = table->dim(0), D = table->dim(1);
    std::vector<int32_t> ids_buf;
    checked_indices(a, ids, "ids", V, false, 0, &ids_buf);
    std::vector<int64_t> os = ids->shape();
    os.push_back(D);
    Napi::Object out = a.alloc(table->dtype(), os, false);
    dispatch(a, table, [&](auto t, auto dev) {
      using T = decltype(t);
      EmbeddingParams<T> p;
      p.V = V;
      p.D = D;
      p.N = ids->numel();
      p.table = table->ptr<T>();
      p.ids = ids->ptr<int32_t>();
      p.out = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, embedding_forward, p);
      return 0;
    });
    return out;
  });

  // embeddingBackward(dout [..., D], ids [...], V) -> dtable [V, D]
  CLOZE_EXPORT(exports, "embeddingBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* ids = a.tensor(1, "ids");
    const int64_t V = a.integer(2, "vocabSize", 0, INT32_MAX);
    a.want_float(g, "grad");
    a.want_ndim(g, 1, 8, "grad");
    const int64_t D = g->dim(-1);
    std::vector<int64_t> gs = ids->shape();
    gs.push_back(D);
    a.want_shape(g, gs, "grad");
    std::vector<int32_t> ids_buf;
    const int32_t* ids_host = checked_indices(a, ids, "ids", V, false, 0, &ids_buf);
    Napi::Object out = a.alloc(g->dtype(), {V, D});
    dispatch(a, g, [&](auto t, auto dev) {
      using T = decltype(t);
      EmbeddingParams<T> p;
      p.V = V;
      p.D = D;
      p.N = ids->numel();
      p.ids = ids->ptr<int32_t>();
      p.ids_host = ids_host;
      p.dout = g->ptr<T>();
      p.dtable = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, embedding_backward, p);
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
