// MVP's label-word scoring: labelWordLogits (the MLM logits of K verbalizer
// words at the [MASK] rows, without the [M, V] logits) and verbalizerPool
// (max over a class's words, mean over templates). See ops/label_words.h.
#include <string>
#include <vector>

#include "../ops/label_words.h"
#include "bindings.h"

namespace cloze {

namespace {

// The most elements an output may have: a JS number counts them exactly, and
// the byte size cannot overflow.
constexpr int64_t kMaxElements = INT64_C(1) << 53;

// a·b, or an E_SHAPE error naming `name` when it passes kMaxElements.
int64_t checked_product(const ArgReader& a, int64_t x, int64_t y, const std::string& what, const char* name,
                        const std::string& got) {
  int64_t r = 0;
  if (__builtin_mul_overflow(x, y, &r) || r > kMaxElements)
    a.bad(ErrCode::Shape, what + " of at most 2^53 elements", name, got);
  return r;
}

struct LwDims {
  int64_t M = 0, D = 0, V = 0, K = 0;
};

// h [M, D] float with D >= 1, weight [V, D] with V >= 1, int32 words [K] with
// K >= 1 and every entry in [0, V), and an [M, K] output that fits. Words on
// the host are checked there and, for a cuda op, uploaded (no wait); cuda words
// are copied to the host for the check (K int32s, a wait). See kernel_indices.
LwDims check_logits_inputs(const ArgReader& a, NTensor* h, NTensor* w, NTensor* words, KernelIndices* wi) {
  a.want_float(h, "input");
  a.want_ndim(h, 2, 2, "input");
  LwDims d;
  d.M = h->dim(0);
  d.D = h->dim(1);
  if (d.D == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "input", tensor_desc(h));
  a.want_same_dtype(h, w, "weight");
  a.want_ndim(w, 2, 2, "weight");
  d.V = w->dim(0);
  if (d.V == 0 || w->dim(1) != d.D)
    a.bad(ErrCode::Shape, "weight of shape [V, " + std::to_string(d.D) + "] with V >= 1 (input has " + tensor_desc(h) + ")",
          "weight", tensor_desc(w));
  a.want_dtype(words, DType::I32, "words");
  a.want_ndim(words, 1, 1, "words");
  d.K = words->dim(0);
  if (d.K == 0) a.bad(ErrCode::Shape, "at least one label word ([K] with K >= 1)", "words", tensor_desc(words));
  kernel_indices(a, words, "words", d.V, wi);
  checked_product(a, d.M, d.K, "an [M, K] output (M = " + std::to_string(d.M) + " rows)", "words", tensor_desc(words));
  return d;
}

template <typename T>
LabelWordParams<T> logits_params(const LwDims& d, NTensor* h, NTensor* w, const KernelIndices& words) {
  LabelWordParams<T> p;
  p.M = d.M;
  p.D = d.D;
  p.V = d.V;
  p.K = d.K;
  p.h = h->ptr<T>();
  p.w = w->ptr<T>();
  p.words = words.kernel;
  return p;
}

struct PoolDims {
  int64_t B = 0, T = 0, K = 0, C = 0;
};

// scores [B, T, K] float with T, K >= 1; int32 classOf [K] with entries in
// [0, C) and every class in [0, C) given at least one word (so C <= K).
PoolDims check_pool_inputs(const ArgReader& a, NTensor* scores, NTensor* class_of, int64_t C, KernelIndices* ci) {
  a.want_float(scores, "scores");
  a.want_ndim(scores, 3, 3, "scores");
  PoolDims d;
  d.B = scores->dim(0);
  d.T = scores->dim(1);
  d.K = scores->dim(2);
  d.C = C;
  if (d.T == 0 || d.K == 0)
    a.bad(ErrCode::Shape, "scores [B, T, K] with at least one template (T) and one word (K)", "scores", tensor_desc(scores));
  a.want_dtype(class_of, DType::I32, "classOf");
  a.want_shape(class_of, {d.K}, "classOf");
  kernel_indices(a, class_of, "classOf", C, ci);  // on the host or uploaded, as words (check_logits_inputs)
  const int32_t* cls = ci->host;
  if (C > d.K)
    a.bad(ErrCode::Value, "at most K = " + std::to_string(d.K) + " classes (each class needs a word)", "numClasses",
          std::to_string(C));
  std::vector<char> seen(static_cast<size_t>(C), 0);
  for (int64_t k = 0; k < d.K; k++) seen[cls[k]] = 1;
  for (int64_t c = 0; c < C; c++)
    if (!seen[c])
      a.bad(ErrCode::Value, "at least one word for every class in [0, " + std::to_string(C) + ")", "classOf",
            "no word of class " + std::to_string(c));
  return d;
}

template <typename T>
VerbalizerPoolParams<T> pool_params(const PoolDims& d, NTensor* scores, const KernelIndices& class_of) {
  VerbalizerPoolParams<T> p;
  p.B = d.B;
  p.T_ = d.T;
  p.K = d.K;
  p.C = d.C;
  p.scores = scores->ptr<T>();
  p.class_of = class_of.kernel;
  return p;
}

}  // namespace

void register_label_words(Napi::Env env, Napi::Object exports) {
  (void)env;
  // labelWordLogits(h [M, D], w [V, D], bias [V] | null, words int32 [K]) -> [M, K]
  CLOZE_EXPORT(exports, "labelWordLogits", [](const ArgReader& a) -> Napi::Value {
    NTensor* h = a.tensor(0, "input");
    NTensor* w = a.tensor(1, "weight");
    NTensor* b = a.tensor_or_null(2, "bias");
    NTensor* words = a.host_or_device_tensor(3, "words");
    KernelIndices wi;
    const LwDims d = check_logits_inputs(a, h, w, words, &wi);
    if (b) {
      a.want_same_dtype(h, b, "bias");
      a.want_shape(b, {d.V}, "bias");
    }
    Napi::Object out = a.alloc(h->dtype(), {d.M, d.K}, false);  // every element written
    dispatch(a, h, [&](auto t, auto dev) {
      using T = decltype(t);
      LabelWordParams<T> p = logits_params<T>(d, h, w, wi);
      p.b = ptr_or_null<T>(b);
      p.out = cloze::out<T>(out);
      CLOZE_KERNEL(dev, label_word_logits_forward, p);
      return 0;
    });
    return out;
  });

  // labelWordLogitsBackward(grad [M, K], h, w, words, needInput, needWeight, needBias)
  //   -> [dh [M, D] | null, dw [V, D] | null, dbias [V] | null]; dw and dbias are zero off the word rows.
  CLOZE_EXPORT(exports, "labelWordLogitsBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* h = a.tensor(1, "input");
    NTensor* w = a.tensor(2, "weight");
    NTensor* words = a.host_or_device_tensor(3, "words");
    const bool nh = a.boolean(4, "needInput"), nw = a.boolean(5, "needWeight"), nb = a.boolean(6, "needBias");
    KernelIndices wi;
    const LwDims d = check_logits_inputs(a, h, w, words, &wi);
    a.want_same_dtype(h, g, "grad");
    a.want_shape(g, {d.M, d.K}, "grad");
    Napi::Object dh, dw, db;
    if (nh) dh = a.alloc(h->dtype(), {d.M, d.D}, false);  // overwritten by the GEMM
    if (nw) dw = a.alloc(h->dtype(), {d.V, d.D}, true);   // zero off the word rows
    if (nb) db = a.alloc(h->dtype(), {d.V}, true);
    if (nh || nw || nb)
      dispatch(a, h, [&](auto t, auto dev) {
        using T = decltype(t);
        LabelWordParams<T> p = logits_params<T>(d, h, w, wi);
        p.dout = g->ptr<T>();
        p.dh = nh ? cloze::out<T>(dh) : nullptr;
        p.dw = nw ? cloze::out<T>(dw) : nullptr;
        p.db = nb ? cloze::out<T>(db) : nullptr;
        CLOZE_KERNEL(dev, label_word_logits_backward, p);
        return 0;
      });
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, null_or(a, nh, dh));
    res.Set(1u, null_or(a, nw, dw));
    res.Set(2u, null_or(a, nb, db));
    return res;
  });

  // verbalizerPool(scores [B, T, K], classOf int32 [K], numClasses C) -> [B, C]
  CLOZE_EXPORT(exports, "verbalizerPool", [](const ArgReader& a) -> Napi::Value {
    NTensor* scores = a.tensor(0, "scores");
    NTensor* class_of = a.host_or_device_tensor(1, "classOf");
    const int64_t C = a.integer(2, "numClasses", 1, INT32_MAX);
    KernelIndices ci;
    const PoolDims d = check_pool_inputs(a, scores, class_of, C, &ci);
    Napi::Object out = a.alloc(scores->dtype(), {d.B, d.C}, false);  // every element written
    dispatch(a, scores, [&](auto t, auto dev) {
      using T = decltype(t);
      VerbalizerPoolParams<T> p = pool_params<T>(d, scores, ci);
      p.out = cloze::out<T>(out);
      CLOZE_KERNEL(dev, verbalizer_pool_forward, p);
      return 0;
    });
    return out;
  });

  // verbalizerPoolBackward(grad [B, C], scores [B, T, K], classOf int32 [K], numClasses C) -> dscores [B, T, K]
  CLOZE_EXPORT(exports, "verbalizerPoolBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* scores = a.tensor(1, "scores");
    NTensor* class_of = a.host_or_device_tensor(2, "classOf");
    const int64_t C = a.integer(3, "numClasses", 1, INT32_MAX);
    KernelIndices ci;
    const PoolDims d = check_pool_inputs(a, scores, class_of, C, &ci);
    a.want_same_dtype(scores, g, "grad");
    a.want_shape(g, {d.B, d.C}, "grad");
    Napi::Object ds = a.alloc(scores->dtype(), {d.B, d.T, d.K}, false);  // every element written
    dispatch(a, scores, [&](auto t, auto dev) {
      using T = decltype(t);
      VerbalizerPoolParams<T> p = pool_params<T>(d, scores, ci);
      p.dout = g->ptr<T>();
      p.dscores = cloze::out<T>(ds);
      CLOZE_KERNEL(dev, verbalizer_pool_backward, p);
      return 0;
    });
    return ds;
  });
}

}  // namespace cloze
