// The masked linear's bindings: every shape, dtype, device and τ check, then
// the kernels of ops/masked_linear.h. W and bias are frozen, so the backward
// offers gradients for x and scores only.
#include <cmath>

#include "../core/sizes.h"
#include "../core/storage.h"
#include "../ops/masked_linear.h"
#include "bindings.h"

namespace cloze {

namespace {

// OpenBLAS takes int dimensions; a larger one would wrap inside cblas_?gemm.
constexpr int64_t kMaxGemmDim = (int64_t(1) << 31) - 1;

struct Dims {
  int64_t R = 0, K = 0, N = 0;
};

// x [..., K], W [N, K], scores [N, K], all the same float dtype (the device
// is checked as each is read); the scratch the call may take is W's size.
Dims check_operands(const ArgReader& a, NTensor* X, NTensor* W, NTensor* S) {
  a.want_float(X, "input");
  a.want_same_dtype(X, W, "weight");
  a.want_same_dtype(X, S, "scores");
  a.want_ndim(X, 1, 8, "input");
  a.want_ndim(W, 2, 2, "weight");
  Dims d;
  d.K = X->dim(-1);
  d.N = W->dim(0);
  if (W->dim(1) != d.K)
    a.bad(ErrCode::Shape, "weight of shape [O, " + std::to_string(d.K) + "] (input has " + tensor_desc(X) + ")",
          "weight", tensor_desc(W));
  a.want_shape(S, W->shape(), "scores");
  std::vector<int64_t> lead(X->shape().begin(), X->shape().end() - 1);
  d.R = checked_product(lead, a.op, "the input's leading dimensions");
  for (int64_t v : {d.R, d.K, d.N})
    if (v > kMaxGemmDim)
      a.bad(ErrCode::Shape, "rows, in- and out-features each below 2^31 (one GEMM dimension)", "input",
            tensor_desc(X) + " with " + tensor_desc(W));
  const size_t bytes = checked_bytes({d.N, d.K}, dtype_size(X->dtype()), a.op, "the masked-weight scratch [O, I]");
  if (!a.on_cuda()) Storage::check_request(bytes, a.op);
  return d;
}

double threshold(const ArgReader& a, size_t i) {
  const double tau = a.number(i, "threshold");
  if (!std::isfinite(tau)) a.bad(ErrCode::Value, "a finite threshold", "threshold", a.describe(a.info[i]));
  return tau;
}

// The forward of both exports: the mask from scores S and τ, or from packed bits (then S is W, only for the checks).
Napi::Value forward(const ArgReader& a, NTensor* W, NTensor* S, NTensor* Bits, NTensor* Bi, double tau) {
  NTensor* X = a.tensor(0, "input");
  const Dims d = check_operands(a, X, W, S);
  if (Bits) {
    a.want_dtype(Bits, DType::U8, "bits");
    a.want_shape(Bits, {(d.N * d.K + 7) / 8}, "bits");
  }
  if (Bi) {
    a.want_same_dtype(X, Bi, "bias");
    a.want_shape(Bi, {d.N}, "bias");
  }
  std::vector<int64_t> os(X->shape().begin(), X->shape().end() - 1);
  os.push_back(d.N);
  // Zero-filled on the CPU, as linear's; on cuda the GEMM writes every element.
  Napi::Object out = a.alloc(X->dtype(), os, !a.on_cuda());
  dispatch(a, X, [&](auto t, auto dev) {
    using T = decltype(t);
    MaskedLinearParams<T> p;
    p.R = d.R;
    p.K = d.K;
    p.N = d.N;
    p.x = X->ptr<T>();
    p.w = W->ptr<T>();
    if (Bits)
      p.bits = Bits->ptr<uint8_t>();
    else
      p.scores = S->ptr<T>();
    p.bias = ptr_or_null<T>(Bi);
    p.threshold = tau;
    p.y = cloze::out<T>(out);
    CLOZE_KERNEL(dev, masked_linear_forward, p);
    return 0;
  });
  return out;
}

}  // namespace

void register_masked_linear(Napi::Env env, Napi::Object exports) {
  (void)env;
  // maskedLinear(x [..., I], w [O, I], scores [O, I], bias [O] | null, threshold) -> [..., O]
  CLOZE_EXPORT(exports, "maskedLinear", [](const ArgReader& a) -> Napi::Value {
    NTensor* W = a.tensor(1, "weight");
    NTensor* S = a.tensor(2, "scores");
    return forward(a, W, S, nullptr, a.tensor_or_null(3, "bias"), threshold(a, 4));
  });

  // maskedLinearPacked(x [..., I], w [O, I], bits uint8 [ceil(O·I/8)], bias [O] | null) -> [..., O]; no backward
  CLOZE_EXPORT(exports, "maskedLinearPacked", [](const ArgReader& a) -> Napi::Value {
    NTensor* W = a.tensor(1, "weight");
    return forward(a, W, W, a.tensor(2, "bits"), a.tensor_or_null(3, "bias"), 0);
  });

  // maskedLinearBackward(g [..., O], x, w, scores, threshold, needX, needScores) -> [dx | null, dscores | null]
  CLOZE_EXPORT(exports, "maskedLinearBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* G = a.tensor(0, "grad");
    NTensor* X = a.tensor(1, "input");
    NTensor* W = a.tensor(2, "weight");
    NTensor* S = a.tensor(3, "scores");
    const Dims d = check_operands(a, X, W, S);
    a.want_same_dtype(X, G, "grad");
    std::vector<int64_t> gs(X->shape().begin(), X->shape().end() - 1);
    gs.push_back(d.N);
    a.want_shape(G, gs, "grad");
    const double tau = threshold(a, 4);
    const bool need_x = a.boolean(5, "needX"), need_s = a.boolean(6, "needScores");
    Napi::Object dx = need_x ? a.alloc(X->dtype(), X->shape(), !a.on_cuda()) : Napi::Object();
    Napi::Object ds = need_s ? a.alloc(X->dtype(), S->shape(), !a.on_cuda()) : Napi::Object();
    dispatch(a, X, [&](auto t, auto dev) {
      using T = decltype(t);
      MaskedLinearParams<T> p;
      p.R = d.R;
      p.K = d.K;
      p.N = d.N;
      p.x = X->ptr<T>();
      p.w = W->ptr<T>();
      p.scores = S->ptr<T>();
      p.threshold = tau;
      p.dy = G->ptr<T>();
      p.dx = need_x ? cloze::out<T>(dx) : nullptr;
      p.dscores = need_s ? cloze::out<T>(ds) : nullptr;
      CLOZE_KERNEL(dev, masked_linear_backward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, null_or(a, need_x, dx));
    res.Set(1u, null_or(a, need_s, ds));
    return res;
  });
}

}  // namespace cloze
