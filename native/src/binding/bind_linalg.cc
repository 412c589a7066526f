// matmul and linear bindings: shape checks, then the kernels of ops/linalg.h
// (the CPU's BLAS or built-in GEMM, cuBLASLt on CUDA).
#include "../ops/linalg.h"
#include "bindings.h"

namespace cloze {

namespace {
// Rows of an input [..., K]: the product of its leading dimensions. Not numel / K, which is 0 for K = 0
// while the output still has those rows (each the bias alone, and the bias gradient their sum).
int64_t leading_rows(const NTensor* x) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < x->shape().size(); i++) r *= x->shape()[i];
  return r;
}

struct MatDims {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  int64_t a_rows = 0, a_cols = 0, b_rows = 0, b_cols = 0;
  bool b_broadcast = false;
  std::vector<int64_t> batch_shape;
};

MatDims matmul_dims(const ArgReader& a, const NTensor* A, const NTensor* B, bool ta, bool tb) {
  a.want_ndim(A, 2, 8, "a");
  a.want_ndim(B, 2, 8, "b");
  MatDims d;
  d.a_rows = A->dim(-2);
  d.a_cols = A->dim(-1);
  d.b_rows = B->dim(-2);
  d.b_cols = B->dim(-1);
  d.M = ta ? d.a_cols : d.a_rows;
  d.K = ta ? d.a_rows : d.a_cols;
  const int64_t kb = tb ? d.b_cols : d.b_rows;
  d.N = tb ? d.b_rows : d.b_cols;
  if (kb != d.K)
    a.bad(ErrCode::Shape, "b with inner dimension " + std::to_string(d.K) + " (from a " + tensor_desc(A) + ")", "b",
          tensor_desc(B));
  d.batch_shape.assign(A->shape().begin(), A->shape().end() - 2);
  for (int64_t s : d.batch_shape) d.batch *= s;
  d.b_broadcast = B->ndim() == 2 && A->ndim() > 2;
  if (!d.b_broadcast) {
    std::vector<int64_t> bb(B->shape().begin(), B->shape().end() - 2);
    if (bb != d.batch_shape)
      a.bad(ErrCode::Shape, "b with batch dims " + shape_str(d.batch_shape) + " or a 2-D b", "b", tensor_desc(B));
  }
  return d;
}

GemmImpl impl_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  if (v.IsUndefined() || v.IsNull()) return GemmImpl::Auto;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "auto") return GemmImpl::Auto;
  if (s == "builtin") return GemmImpl::Builtin;
  if (s == "blas") return GemmImpl::Blas;
  a.bad(ErrCode::Value, "'auto', 'builtin' or 'blas'", "impl", a.describe(v));
}

// On cuda only 'auto' (cuBLASLt) exists: the BLAS/built-in choice is a CPU matter.
GemmImpl impl_arg_for(const ArgReader& a, size_t i) {
  const GemmImpl impl = impl_arg(a, i);
  if (a.on_cuda() && impl != GemmImpl::Auto)
    a.bad(ErrCode::Value, "'auto' (on cuda every GEMM runs through cuBLASLt; 'builtin' and 'blas' are cpu-only)",
          "impl", a.describe(a.info[i]));
  return impl;
}

// Not zero-filled: on either device the GEMM or kernel writes every element (beta 0; a product over an empty inner
// dimension writes zeros and the bias: gemm_builtin, which gemm_blas hands K = 0 to, and cuda). Without the fill a bert-mini MLM step
// on the CPU ran 1.7–2.9% faster in paired builds (bench/RESULTS.md, "GEMM outputs no longer zero-filled").
Napi::Object out_tensor(const ArgReader& a, DType dt, const std::vector<int64_t>& shape) {
  return a.alloc(dt, shape, false);
}

template <typename T>
MatmulParams<T> matmul_params(const MatDims& d, bool ta, bool tb, const NTensor* A, const NTensor* B) {
  MatmulParams<T> p;
  p.batch = d.batch;
  p.M = d.M;
  p.N = d.N;
  p.K = d.K;
  p.a_rows = d.a_rows;
  p.a_cols = d.a_cols;
  p.b_rows = d.b_rows;
  p.b_cols = d.b_cols;
  p.trans_a = ta;
  p.trans_b = tb;
  p.b_broadcast = d.b_broadcast;
  p.a = A->ptr<T>();
  p.b = B->ptr<T>();
  return p;
}

}  // namespace

void register_linalg(Napi::Env env, Napi::Object exports) {
  (void)env;
  // matmul(a, b, transA, transB, impl): [..., M, N] = op(a)·op(b); a 2-D b is shared across a's batch.
  CLOZE_EXPORT(exports, "matmul", [](const ArgReader& a) -> Napi::Value {
    NTensor* A = a.tensor(0, "a");
    NTensor* B = a.tensor(1, "b");
    a.want_float(A, "a");
    a.want_same_dtype(A, B, "b");
    const bool ta = a.boolean(2, "transA"), tb = a.boolean(3, "transB");
    const GemmImpl impl = impl_arg_for(a, 4);
    const MatDims d = matmul_dims(a, A, B, ta, tb);
    std::vector<int64_t> os = d.batch_shape;
    os.push_back(d.M);
    os.push_back(d.N);
    Napi::Object out = out_tensor(a, A->dtype(), os);
    NTensor* C = NTensor::Unwrap(out);
    dispatch(a, A, [&](auto t, auto dev) {
      using T = decltype(t);
      MatmulParams<T> p = matmul_params<T>(d, ta, tb, A, B);
      p.impl = impl;
      p.c = C->ptr<T>();
      CLOZE_KERNEL(dev, matmul_forward, p);
      return 0;
    });
    return out;
  });

  // matmulBackward(g, a, b, transA, transB, needA, needB) -> [da|null, db|null]
  CLOZE_EXPORT(exports, "matmulBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* G = a.tensor(0, "grad");
    NTensor* A = a.tensor(1, "a");
    NTensor* B = a.tensor(2, "b");
    a.want_float(A, "a");
    a.want_same_dtype(A, B, "b");
    a.want_same_dtype(A, G, "grad");
    const bool ta = a.boolean(3, "transA"), tb = a.boolean(4, "transB");
    const bool needA = a.boolean(5, "needA"), needB = a.boolean(6, "needB");
    const MatDims d = matmul_dims(a, A, B, ta, tb);
    std::vector<int64_t> gs = d.batch_shape;
    gs.push_back(d.M);
    gs.push_back(d.N);
    a.want_shape(G, gs, "grad");
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, a.env().Null());
    res.Set(1u, a.env().Null());
    NTensor* dA = nullptr;
    NTensor* dB = nullptr;
    if (needA) {
      Napi::Object o = out_tensor(a, A->dtype(), A->shape());
      dA = NTensor::Unwrap(o);
      res.Set(0u, o);
    }
    if (needB) {
      // An empty batch runs no GEMM, so a shared b's gradient must start at zero; otherwise the first GEMM writes it
      // (beta 0) and the others add to it.
      Napi::Object o = a.alloc(B->dtype(), B->shape(), d.batch == 0);
      dB = NTensor::Unwrap(o);
      res.Set(1u, o);
    }
    dispatch(a, A, [&](auto t, auto dev) {
      using T = decltype(t);
      MatmulParams<T> p = matmul_params<T>(d, ta, tb, A, B);
      p.dc = G->ptr<T>();
      p.da = dA ? dA->ptr<T>() : nullptr;
      p.db = dB ? dB->ptr<T>() : nullptr;
      CLOZE_KERNEL(dev, matmul_backward, p);
      return 0;
    });
    return res;
  });

  // linear(x [..., K], w [N, K], bias [N] | null) -> [..., N]
  CLOZE_EXPORT(exports, "linear", [](const ArgReader& a) -> Napi::Value {
    NTensor* X = a.tensor(0, "input");
    NTensor* W = a.tensor(1, "weight");
    NTensor* Bi = a.tensor_or_null(2, "bias");
    a.want_float(X, "input");
    a.want_same_dtype(X, W, "weight");
    a.want_ndim(X, 1, 8, "input");
    a.want_ndim(W, 2, 2, "weight");
    const int64_t K = X->dim(-1), N = W->dim(0);
    if (W->dim(1) != K)
      a.bad(ErrCode::Shape, "weight of shape [N, " + std::to_string(K) + "] (input has " + tensor_desc(X) + ")",
            "weight", tensor_desc(W));
    if (Bi) {
      a.want_same_dtype(X, Bi, "bias");
      a.want_shape(Bi, {N}, "bias");
    }
    const int64_t R = leading_rows(X);
    std::vector<int64_t> os(X->shape().begin(), X->shape().end() - 1);
    os.push_back(N);
    Napi::Object out = out_tensor(a, X->dtype(), os);
    NTensor* Y = NTensor::Unwrap(out);
    dispatch(a, X, [&](auto t, auto dev) {
      using T = decltype(t);
      LinearParams<T> p;
      p.R = R;
      p.K = K;
      p.N = N;
      p.x = X->ptr<T>();
      p.w = W->ptr<T>();
      p.bias = Bi ? Bi->ptr<T>() : nullptr;
      p.y = Y->ptr<T>();
      CLOZE_KERNEL(dev, linear_forward, p);
      return 0;
    });
    return out;
  });

  // linearBackward(g, x, w, needX, needW, needBias) -> [dx|null, dw|null, dbias|null]
  CLOZE_EXPORT(exports, "linearBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* G = a.tensor(0, "grad");
    NTensor* X = a.tensor(1, "input");
    NTensor* W = a.tensor(2, "weight");
    a.want_float(X, "input");
    a.want_same_dtype(X, W, "weight");
    a.want_same_dtype(X, G, "grad");
    a.want_ndim(W, 2, 2, "weight");
    const int64_t K = X->dim(-1), N = W->dim(0);
    if (W->dim(1) != K) a.bad(ErrCode::Shape, "weight [N, " + std::to_string(K) + "]", "weight", tensor_desc(W));
    std::vector<int64_t> gs(X->shape().begin(), X->shape().end() - 1);
    gs.push_back(N);
    a.want_shape(G, gs, "grad");
    const int64_t R = leading_rows(X);
    Napi::Array res = Napi::Array::New(a.env(), 3);
    NTensor* outs[3] = {nullptr, nullptr, nullptr};
    const std::vector<int64_t> shapes[3] = {X->shape(), W->shape(), {N}};
    for (uint32_t i = 0; i < 3; i++) {
      if (a.boolean(3 + i, i == 0 ? "needX" : i == 1 ? "needW" : "needBias")) {
        Napi::Object o = out_tensor(a, X->dtype(), shapes[i]);
        outs[i] = NTensor::Unwrap(o);
        res.Set(i, o);
      } else {
        res.Set(i, a.env().Null());
      }
    }
    dispatch(a, X, [&](auto t, auto dev) {
      using T = decltype(t);
      LinearParams<T> p;
      p.R = R;
      p.K = K;
      p.N = N;
      p.x = X->ptr<T>();
      p.w = W->ptr<T>();
      p.dy = G->ptr<T>();
      p.dx = outs[0] ? outs[0]->ptr<T>() : nullptr;
      p.dw = outs[1] ? outs[1]->ptr<T>() : nullptr;
      p.dbias = outs[2] ? outs[2]->ptr<T>() : nullptr;
      CLOZE_KERNEL(dev, linear_backward, p);
      return 0;
    });
    return res;
  });
}

}  // namespace cloze
