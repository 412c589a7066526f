// Sparse batch norm and max pool bindings (SparK, see ops/sparse_norm_pool.h):
//   sparseBatchNorm(x [N, C], w, b, runningMean, runningVar, training, momentum, eps) -> [y, mean, rstd]
//   sparseBatchNormBackward(g, x, w, mean, rstd, batchStats, needX, needW, needB) -> [dx, dw, db]
//   sparseMaxPool(x [N, C], nbr [M, K2]) -> [y [M, C], arg int32 [M, C]]
//   sparseMaxPoolBackward(g [M, C], nbr, arg, rows N) -> dx [N, C]
// Index tensors are checked (binding/sparse_args.h) before a kernel reads
// through them. Outputs keep the CPU's dtypes: mean and rstd are T, as
// sparseBatchNormBackward expects.
#include <memory>

#include "../ops/sparse_norm_pool.h"
#include "bindings.h"
#include "sparse_args.h"

namespace cloze {

using namespace sparse_args;

namespace {

template <typename T>
SparseBatchNormParams<T> norm_params(int64_t N, int64_t C, bool training, NTensor* x, NTensor* w) {
  SparseBatchNormParams<T> p;
  p.N = N;
  p.C = C;
  p.training = training;
  p.x = x->ptr<T>();
  p.w = ptr_or_null<T>(w);
  return p;
}

template <typename T>
SparseMaxPoolParams<T> pool_params(int64_t N, int64_t M, int64_t C, int64_t K2, NTensor* nbr) {
  SparseMaxPoolParams<T> p;
  p.N = N;
  p.M = M;
  p.C = C;
  p.K2 = K2;
  p.nbr = nbr->ptr<int32_t>();
  return p;
}

}  // namespace

void register_sparse_norm_pool(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "sparseBatchNorm", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* w = a.tensor_or_null(1, "weight");
    NTensor* b = a.tensor_or_null(2, "bias");
    NTensor* rm = a.tensor_or_null(3, "runningMean");
    NTensor* rv = a.tensor_or_null(4, "runningVar");
    const bool training = a.boolean(5, "training");
    const double momentum = a.number(6, "momentum"), eps = a.number(7, "eps");
    const int64_t C = want_rows(a, x, "input"), N = x->dim(0);
    want_vector(a, x, w, C, "weight");
    want_vector(a, x, b, C, "bias");
    want_vector(a, x, rm, C, "runningMean");
    want_vector(a, x, rv, C, "runningVar");
    if (!rm != !rv) a.bad(ErrCode::Value, "both running statistics or neither", rm ? "runningVar" : "runningMean", "null");
    if (!(momentum >= 0 && momentum <= 1)) a.bad(ErrCode::Value, "a number in [0, 1]", "momentum", a.describe(a.info[6]));
    if (!(eps > 0)) a.bad(ErrCode::Value, "a positive number", "eps", a.describe(a.info[7]));
    // As PyTorch: the unbiased variance of one value is undefined.
    if (training && N == 1) a.bad(ErrCode::Shape, "more than 1 active row per channel when training", "input", tensor_desc(x));
    Napi::Object y = a.alloc(x->dtype(), {N, C}, false);
    Napi::Object mean = a.alloc(x->dtype(), {C}, true);
    Napi::Object rstd = a.alloc(x->dtype(), {C}, true);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SparseBatchNormParams<T> p = norm_params<T>(N, C, training, x, w);
      p.eps = eps;
      p.momentum = momentum;
      p.b = ptr_or_null<T>(b);
      p.running_mean = ptr_or_null<T>(rm);
      p.running_var = ptr_or_null<T>(rv);
      p.y = out<T>(y);
      p.mean = out<T>(mean);
      p.rstd = out<T>(rstd);
      CLOZE_KERNEL(dev, sparse_batchnorm_forward, p);
      return 0;
    });
    return triple(a, y, mean, rstd);
  });

  CLOZE_EXPORT(exports, "sparseBatchNormBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* x = a.tensor(1, "input");
    NTensor* w = a.tensor_or_null(2, "weight");
    NTensor* mean = a.tensor(3, "mean");
    NTensor* rstd = a.tensor(4, "rstd");
    const bool batch_stats = a.boolean(5, "batchStats");
    Grads d(a, 6);
    const int64_t C = want_rows(a, x, "input"), N = x->dim(0);
    a.want_same_dtype(x, g, "grad");
    a.want_shape(g, {N, C}, "grad");
    want_vector(a, x, w, C, "weight");
    want_vector(a, x, mean, C, "mean");
    want_vector(a, x, rstd, C, "rstd");
    d.allocate(a, x->dtype(), {N, C}, {C}, C);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SparseBatchNormParams<T> p = norm_params<T>(N, C, batch_stats, x, w);
      p.mean = mean->ptr<T>();
      p.rstd = rstd->ptr<T>();
      p.dy = g->ptr<T>();
      d.set<T>(p);
      CLOZE_KERNEL(dev, sparse_batchnorm_backward, p);
      return 0;
    });
    return d.result(a);
  });

  CLOZE_EXPORT(exports, "sparseMaxPool", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* nbr = a.tensor(1, "nbr");
    const int64_t C = want_rows(a, x, "input"), N = x->dim(0);
    a.want_dtype(nbr, DType::I32, "nbr");
    a.want_ndim(nbr, 2, 2, "nbr");
    const int64_t M = nbr->dim(0), K2 = nbr->dim(1);
    want_table(a, nbr, K2, N, "nbr");
    Napi::Object y = a.alloc(x->dtype(), {M, C}, false);
    Napi::Object arg = a.alloc(DType::I32, {M, C}, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SparseMaxPoolParams<T> p = pool_params<T>(N, M, C, K2, nbr);
      p.x = x->ptr<T>();
      p.y = out<T>(y);
      p.arg = out<int32_t>(arg);
      CLOZE_KERNEL(dev, sparse_maxpool_forward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, y);
    res.Set(1u, arg);
    return res;
  });

  CLOZE_EXPORT(exports, "sparseMaxPoolBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* nbr = a.tensor(1, "nbr");
    NTensor* arg = a.tensor(2, "arg");
    const int64_t N = a.integer(3, "rows", 0, kMaxI32);
    const int64_t C = want_rows(a, g, "grad"), M = g->dim(0);
    a.want_dtype(nbr, DType::I32, "nbr");
    a.want_ndim(nbr, 2, 2, "nbr");
    const int64_t K2 = nbr->dim(1);
    if (nbr->dim(0) != M) a.bad(ErrCode::Shape, "shape [" + s(M) + ", K2] (the rows of grad)", "nbr", tensor_desc(nbr));
    want_table(a, nbr, K2, N, "nbr");
    a.want_dtype(arg, DType::I32, "arg");
    a.want_shape(arg, {M, C}, "arg");
    const int32_t* ap = arg->ptr<int32_t>();
    const auto bad_offset = [&](int32_t v, int64_t j) {
      a.bad(ErrCode::Index, "offsets in [-1, " + s(K2) + ")", "arg", s(v) + " at flat index " + s(j));
    };
    if (arg->on_cuda()) {
#ifdef CLOZE_CUDA
      const int64_t j = first_outside_cuda(ap, arg->numel(), -1, K2, a.op);
      if (j >= 0) bad_offset(device_value<int32_t>(a, arg, j), j);
#endif
    } else {
      for (int64_t j = 0; j < arg->numel(); j++)
        if (ap[j] < -1 || ap[j] >= K2) bad_offset(ap[j], j);
    }
    // Every size is known before anything is allocated: the output [N, C]
    // and the inverse table [N, K2] together must be possible (rows = 2^31−1
    // used to build an 8 GiB table before the output was refused).
    const size_t dx_bytes = checked_bytes({N, C}, dtype_size(g->dtype()), a.op, "the output [rows, C]");
    const size_t inv_bytes = checked_bytes({std::max<int64_t>(N, 1), std::max<int64_t>(K2, 1)}, sizeof(int32_t), a.op,
                                           "the inverse of nbr [rows, K2]");
    if (!g->on_cuda()) Storage::check_request(dx_bytes + inv_bytes, a.op);
    Napi::Object dx = a.alloc(g->dtype(), {N, C}, false);
    const std::shared_ptr<Storage> inv = inverse_of(a, nbr, N, "nbr");
    dispatch(a, g, [&](auto t, auto dev) {
      using T = decltype(t);
      SparseMaxPoolParams<T> p = pool_params<T>(N, M, C, K2, nbr);
      p.inv = static_cast<const int32_t*>(inv->data());
      p.arg_in = ap;
      p.dy = g->ptr<T>();
      p.dx = out<T>(dx);
      CLOZE_KERNEL(dev, sparse_maxpool_backward, p);
      return 0;
    });
    return dx;
  });
}

}  // namespace cloze
