// matmul and linear, forward and backward, on BLAS (or the built-in GEMM);
// on CUDA through cuBLASLt (gemm_cuda) with small kernels for the bias
// broadcast and the bias gradient (cuda/linalg.h).
#include "../core/blas.h"
#include "../cuda/linalg.h"
#include "../ops/elementwise.h"
#include "bindings.h"

namespace cloze {

namespace {

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

enum class Impl { Auto, Builtin, Blas };

template <typename T, typename Dev>
void run_gemm(Impl impl, const GemmParams& p) {
  if constexpr (Dev::cuda) {
    (void)impl;  // only 'auto' reaches here on cuda (impl_arg)
    gemm_cuda<T>(p);
  } else if (impl == Impl::Builtin)
    gemm_builtin<T>(p);
  else if (impl == Impl::Blas)
    gemm_blas<T>(p);
  else
    gemm<T>(p);
}

GemmParams gp(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, const void* B,
              int64_t ldb, void* C, int64_t ldc, double beta) {
  GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.M = M;
  p.N = N;
  p.K = K;
  p.A = A;
  p.lda = lda;
  p.B = B;
  p.ldb = ldb;
  p.C = C;
  p.ldc = ldc;
  p.beta = beta;
  return p;
}

Impl impl_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  if (v.IsUndefined() || v.IsNull()) return Impl::Auto;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "auto") return Impl::Auto;
  if (s == "builtin") return Impl::Builtin;
  if (s == "blas") return Impl::Blas;
  a.bad(ErrCode::Value, "'auto', 'builtin' or 'blas'", "impl", a.describe(v));
}

// On cuda only 'auto' (cuBLASLt) exists: the BLAS/built-in choice is a CPU matter.
Impl impl_arg_for(const ArgReader& a, size_t i) {
  const Impl impl = impl_arg(a, i);
  if (a.on_cuda() && impl != Impl::Auto)
    a.bad(ErrCode::Value, "'auto' (on cuda every GEMM runs through cuBLASLt; 'builtin' and 'blas' are cpu-only)",
          "impl", a.describe(a.info[i]));
  return impl;
}

// Same as before on the CPU (zero-filled); on cuda the GEMM or kernel writes every element.
Napi::Object out_tensor(const ArgReader& a, DType dt, const std::vector<int64_t>& shape) {
  return a.alloc(dt, shape, !a.on_cuda());
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
    const Impl impl = impl_arg_for(a, 4);
    const MatDims d = matmul_dims(a, A, B, ta, tb);
    std::vector<int64_t> os = d.batch_shape;
    os.push_back(d.M);
    os.push_back(d.N);
    Napi::Object out = out_tensor(a, A->dtype(), os);
    NTensor* C = NTensor::Unwrap(out);
    dispatch(a, A, [&](auto t, auto dev) {
      using T = decltype(t);
      using Dev = decltype(dev);
      if (d.b_broadcast && !ta) {  // one big GEMM over the flattened batch
        run_gemm<T, Dev>(impl, gp(false, tb, d.batch * d.M, d.N, d.K, A->ptr<T>(), d.a_cols, B->ptr<T>(), d.b_cols,
                                C->ptr<T>(), d.N, 0.0));
        return 0;
      }
      for (int64_t i = 0; i < d.batch; i++) {
        const T* bp = B->ptr<T>() + (d.b_broadcast ? 0 : i * d.b_rows * d.b_cols);
        run_gemm<T, Dev>(impl, gp(ta, tb, d.M, d.N, d.K, A->ptr<T>() + i * d.a_rows * d.a_cols, d.a_cols, bp, d.b_cols,
                                C->ptr<T>() + i * d.M * d.N, d.N, 0.0));
      }
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
      // An empty batch runs no GEMM, so a shared b's gradient must start at zero.
      Napi::Object o = a.alloc(B->dtype(), B->shape(), !a.on_cuda() || d.batch == 0);
      dB = NTensor::Unwrap(o);
      res.Set(1u, o);
    }
    dispatch(a, A, [&](auto t, auto dev) {
      using T = decltype(t);
      using Dev = decltype(dev);
      const auto mm = [&](const GemmParams& p) { run_gemm<T, Dev>(Impl::Auto, p); };
      bool flat_a = false, flat_b = false;
      if constexpr (Dev::cuda) {
        // A 2-D b shared by a non-transposed batched a: the batch flattens into
        // the rows, so dA is one GEMM and dB one GEMM summing over batch·M in
        // fp32 (the CPU loop below accumulates per batch entry instead; on cuda
        // that would round a bf16 dB once per entry).
        if (d.b_broadcast && !ta) {
          const int64_t R = d.batch * d.M;
          if (dA) mm(gp(false, !tb, R, d.K, d.N, G->ptr<T>(), d.N, B->ptr<T>(), d.b_cols, dA->ptr<T>(), d.K, 0.0));
          if (dB) {
            if (!tb)
              mm(gp(true, false, d.K, d.N, R, A->ptr<T>(), d.a_cols, G->ptr<T>(), d.N, dB->ptr<T>(), d.N, 0.0));
            else
              mm(gp(true, false, d.N, d.K, R, G->ptr<T>(), d.N, A->ptr<T>(), d.a_cols, dB->ptr<T>(), d.K, 0.0));
          }
          flat_a = flat_b = true;
        }
      }
      for (int64_t i = 0; i < d.batch && !(flat_a && flat_b); i++) {
        const T* ap = A->ptr<T>() + i * d.a_rows * d.a_cols;
        const int64_t boff = d.b_broadcast ? 0 : i * d.b_rows * d.b_cols;
        const T* bp = B->ptr<T>() + boff;
        const T* g = G->ptr<T>() + i * d.M * d.N;
        if (dA) {
          T* out = dA->ptr<T>() + i * d.a_rows * d.a_cols;
          if (!ta)  // dA[M,K] = dC·op(B)ᵀ
            mm(gp(false, !tb, d.M, d.K, d.N, g, d.N, bp, d.b_cols, out, d.K, 0.0));
          else  // dA[K,M] = op(B)·dCᵀ
            mm(gp(tb, true, d.K, d.M, d.N, bp, d.b_cols, g, d.N, out, d.M, 0.0));
        }
        if (dB) {
          T* out = dB->ptr<T>() + boff;
          const double beta = d.b_broadcast && i > 0 ? 1.0 : 0.0;  // a shared b sums over the batch
          if (!tb)  // dB[K,N] = op(A)ᵀ·dC
            mm(gp(!ta, false, d.K, d.N, d.M, ap, d.a_cols, g, d.N, out, d.N, beta));
          else  // dB[N,K] = dCᵀ·op(A)
            mm(gp(true, ta, d.N, d.K, d.M, g, d.N, ap, d.a_cols, out, d.K, beta));
        }
      }
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
    const int64_t R = X->numel() / std::max<int64_t>(K, 1);
    std::vector<int64_t> os(X->shape().begin(), X->shape().end() - 1);
    os.push_back(N);
    Napi::Object out = out_tensor(a, X->dtype(), os);
    NTensor* Y = NTensor::Unwrap(out);
    dispatch(a, X, [&](auto t, auto dev) {
      using T = decltype(t);
      using Dev = decltype(dev);
      T* y = Y->ptr<T>();
      if (Bi) {  // start from the bias and let the GEMM accumulate (beta = 1)
        if constexpr (Dev::cuda)
          bias_rows_cuda<T>(y, N, Bi->ptr<T>(), R, N, a.op);
        else
          for (int64_t r = 0; r < R; r++) std::copy(Bi->ptr<T>(), Bi->ptr<T>() + N, y + r * N);
      }
      run_gemm<T, Dev>(Impl::Auto, gp(false, true, R, N, K, X->ptr<T>(), K, W->ptr<T>(), K, y, N, Bi ? 1.0 : 0.0));
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
    const int64_t R = X->numel() / std::max<int64_t>(K, 1);
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
      using Dev = decltype(dev);
      const T* g = G->ptr<T>();
      const auto mm = [&](const GemmParams& p) { run_gemm<T, Dev>(Impl::Auto, p); };
      if (outs[0]) mm(gp(false, false, R, K, N, g, N, W->ptr<T>(), K, outs[0]->ptr<T>(), K, 0.0));
      if (outs[1]) mm(gp(true, false, N, K, R, g, N, X->ptr<T>(), K, outs[1]->ptr<T>(), K, 0.0));
      if (outs[2]) {
        if constexpr (Dev::cuda) {
          colsum_cuda<T>(g, R, N, outs[2]->ptr<T>(), a.op);
        } else {
          EltParams<T> p;
          p.n = R * N;
          p.cols = N;
          p.a = g;
          p.out = outs[2]->ptr<T>();
          sum_rows_cpu<T>(p);
        }
      }
      return 0;
    });
    return res;
  });
}

}  // namespace cloze
