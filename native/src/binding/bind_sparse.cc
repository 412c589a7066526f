// Sparse-map bindings (SparK's submanifold sparse convolution, see ops/sparse_rulebook.h):
//   activeSites(mask uint8 [B, H, W], 1 = active) -> { coords int32 [N, 3], grid int32 [B, H, W] }
//   neighbourTable(grid, outCoords int32 [M, 3], kernel, stride, padding) -> nbr int32 [M, k²]
//   sparseConv(x [N, Cin], w [Cout, Cin, k, k], b | null, nbr) -> [M, Cout]
//   sparseConvBackward(g, x, w, nbr, needX, needW, needB) -> [dx, dw, db] (null where not needed)
//   sparseDepthwiseConv(x [N, C], w [C, 1, k, k], b | null, nbr) -> [M, C]; …Backward as above
//   sparseBatchNorm(x [N, C], w, b, runningMean, runningVar, training, momentum, eps) -> [y, mean, rstd]
//   sparseBatchNormBackward(g, x, w, mean, rstd, batchStats, needX, needW, needB) -> [dx, dw, db]
//   sparseMaxPool(x [N, C], nbr [M, K2]) -> [y [M, C], arg int32 [M, C]]
//   sparseMaxPoolBackward(g [M, C], nbr, arg, rows N) -> dx [N, C]
//   toDense(x [N, C], coords, B, H, W, fill [C] | null) -> [B, C, H, W]
//   toSparse(dense [B, C, H, W], coords) -> [N, C]; toDenseFillGrad(g [B, C, H, W], coords) -> [C]
// Every index tensor is checked before a kernel reads through it.
//
// On CUDA the same checks run on the device (ops/sparse_rulebook.h): each
// content check (table entries, sites, mask values) ends with one small
// device→host copy, a host sync, so it throws where and what the CPU check
// throws; the offending value is then copied back to name it. activeSites
// needs its count on the host anyway (the size of coords). Outputs keep the
// CPU's dtypes: mean and rstd are T, as sparseBatchNormBackward expects.
#include <string>
#include <vector>

#include "../ops/sparse_conv.h"
#include "../ops/sparse_norm_pool.h"
#include "../ops/sparse_rulebook.h"
#include "bindings.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

constexpr int64_t kMaxI32 = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxKernel = 63;

std::string s(int64_t v) { return std::to_string(v); }
Napi::Array triple(const ArgReader& a, Napi::Value x, Napi::Value y, Napi::Value z) {
  Napi::Array r = Napi::Array::New(a.env(), 3);
  r.Set(0u, x);
  r.Set(1u, y);
  r.Set(2u, z);
  return r;
}

// A float [rows, C] tensor; returns C.
int64_t want_rows(const ArgReader& a, NTensor* t, const char* name) {
  a.want_float(t, name);
  a.want_ndim(t, 2, 2, name);
  if (t->dim(0) > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 rows", name, tensor_desc(t));
  return t->dim(1);
}

#ifdef CLOZE_CUDA
// One element of a device tensor, for an error message (waits for the stream).
template <typename V>
V device_value(const ArgReader& a, NTensor* t, int64_t j) {
  V v{};
  cuda::copy(&v, false, t->ptr<V>() + j, true, sizeof v, a.op);
  return v;
}
#endif

void want_vector(const ArgReader& a, NTensor* ref, NTensor* t, int64_t C, const char* name) {
  if (!t) return;
  a.want_same_dtype(ref, t, name);
  a.want_shape(t, {C}, name);
}

// nbr int32 [M, K2] with entries in [−1, N): the rows of an input of N rows.
void want_table(const ArgReader& a, NTensor* nbr, int64_t K2, int64_t N, const char* name) {
  a.want_dtype(nbr, DType::I32, name);
  a.want_ndim(nbr, 2, 2, name);
  if (nbr->dim(1) != K2)
    a.bad(ErrCode::Shape, "shape [M, " + s(K2) + "] (k² columns for the kernel)", name, tensor_desc(nbr));
  const auto fail_at = [&](int32_t v, int64_t j) {
    a.bad(ErrCode::Index, "entries in [-1, " + s(N) + ") (rows of the input, or -1)", name,
          s(v) + " at (m, o) = (" + s(j / K2) + ", " + s(j % K2) + ")");
  };
  if (nbr->on_cuda()) {
#ifdef CLOZE_CUDA
    const int64_t j = first_outside_cuda(nbr->ptr<int32_t>(), nbr->numel(), -1, N, a.op);
    if (j >= 0) fail_at(device_value<int32_t>(a, nbr, j), j);
#endif
    return;
  }
  const int32_t* t = nbr->ptr<int32_t>();
  for (int64_t j = 0; j < nbr->numel(); j++)
    if (t[j] < -1 || t[j] >= N) fail_at(t[j], j);
}

// Sites int32 [N, 3] inside [B, H, W] and distinct. N is checked too when n >= 0.
void want_sites(const ArgReader& a, NTensor* coords, int64_t B, int64_t H, int64_t W, int64_t n, const char* name) {
  a.want_dtype(coords, DType::I32, name);
  a.want_ndim(coords, 2, 2, name);
  if (coords->dim(1) != 3 || (n >= 0 && coords->dim(0) != n))
    a.bad(ErrCode::Shape, "shape [" + (n >= 0 ? s(n) : std::string("N")) + ", 3] of (b, y, x)", name, tensor_desc(coords));
  if (coords->on_cuda()) {
#ifdef CLOZE_CUDA
    // The first row the CPU loop below would stop at; its values say why.
    const int64_t i = first_bad_site_cuda(coords->ptr<int32_t>(), coords->dim(0), B, H, W, a.op);
    if (i < 0) return;
    const int64_t b = device_value<int32_t>(a, coords, 3 * i), y = device_value<int32_t>(a, coords, 3 * i + 1),
                  x = device_value<int32_t>(a, coords, 3 * i + 2);
    const std::string at = "(" + s(b) + ", " + s(y) + ", " + s(x) + ") at row " + s(i);
    if (b < 0 || b >= B || y < 0 || y >= H || x < 0 || x >= W)
      a.bad(ErrCode::Index, "sites inside [B, H, W] = " + shape_str({B, H, W}), name, at);
    a.bad(ErrCode::Index, "distinct sites", name, "a repeat of " + at);
#endif
    return;
  }
  const int32_t* c = coords->ptr<int32_t>();
  std::vector<uint8_t> seen(static_cast<size_t>(B * H * W), 0);
  for (int64_t i = 0; i < coords->dim(0); i++) {
    const int64_t b = c[3 * i], y = c[3 * i + 1], x = c[3 * i + 2];
    const std::string at = "(" + s(b) + ", " + s(y) + ", " + s(x) + ") at row " + s(i);
    if (b < 0 || b >= B || y < 0 || y >= H || x < 0 || x >= W)
      a.bad(ErrCode::Index, "sites inside [B, H, W] = " + shape_str({B, H, W}), name, at);
    uint8_t& f = seen[static_cast<size_t>((b * H + y) * W + x)];
    if (f) a.bad(ErrCode::Index, "distinct sites", name, "a repeat of " + at);
    f = 1;
  }
}

// The inverse of a checked table, in scratch that lives as long as the returned holder.
// On CUDA the scratch is device memory, built on the device.
std::shared_ptr<Storage> inverse_of(const ArgReader& a, NTensor* nbr, int64_t N, const char* name) {
  const int64_t M = nbr->dim(0), K2 = nbr->dim(1);
  auto inv = Storage::allocate(sizeof(int32_t) * static_cast<size_t>(std::max<int64_t>(N * K2, 1)), a.op, false,
                               nbr->device());
  int64_t bad = -1;
  int32_t repeated = 0;
  if (nbr->on_cuda()) {
#ifdef CLOZE_CUDA
    bad = inverse_table_cuda(nbr->ptr<int32_t>(), M, K2, N, static_cast<int32_t*>(inv->data()), a.op);
    if (bad >= 0) repeated = device_value<int32_t>(a, nbr, bad);
#endif
  } else {
    bad = inverse_table_cpu(nbr->ptr<int32_t>(), M, K2, N, static_cast<int32_t*>(inv->data()));
    if (bad >= 0) repeated = nbr->ptr<int32_t>()[bad];
  }
  if (bad >= 0)
    a.bad(ErrCode::Index, "a table from neighbourTable (each input row at most once per offset)", name,
          "input row " + s(repeated) + " repeated at (m, o) = (" + s(bad / K2) + ", " + s(bad % K2) + ")");
  return inv;
}

// The gradients of input, weight and bias: read from three needX/needW/needB
// arguments; those not asked for stay unallocated and come back as null.
struct Grads {
  bool need_x, need_w, need_b;
  Napi::Object dx, dw, db;
  Grads(const ArgReader& a, size_t first)
      : need_x(a.boolean(first, "needInput")), need_w(a.boolean(first + 1, "needWeight")), need_b(a.boolean(first + 2, "needBias")) {}
  void allocate(const ArgReader& a, DType dt, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws, int64_t C) {
    if (need_x) dx = a.alloc(dt, xs, false);
    if (need_w) dw = a.alloc(dt, ws, false);
    if (need_b) db = a.alloc(dt, {C}, false);
  }
  template <typename T, typename P>
  void set(P& p) const {
    p.dx = need_x ? out<T>(dx) : nullptr;
    p.dw = need_w ? out<T>(dw) : nullptr;
    p.db = need_b ? out<T>(db) : nullptr;
  }
  Napi::Array result(const ArgReader& a) const { return triple(a, null_or(a, need_x, dx), null_or(a, need_w, dw), null_or(a, need_b, db)); }
};

struct ConvArgs {
  NTensor *x, *w, *nbr;
  int64_t N, Cin, Cout, K2;
};

// x [N, Cin]; w [Cout, Cin, k, k] (depthwise: [C, 1, k, k]); nbr [M, k²] in [−1, N).
ConvArgs conv_args(const ArgReader& a, size_t ix, size_t iw, size_t inbr, bool depthwise) {
  ConvArgs c;
  c.x = a.tensor(ix, "input");
  c.w = a.tensor(iw, "weight");
  c.nbr = a.tensor(inbr, "nbr");
  c.Cin = want_rows(a, c.x, "input");
  c.N = c.x->dim(0);
  a.want_same_dtype(c.x, c.w, "weight");
  a.want_ndim(c.w, 4, 4, "weight");
  const int64_t k = c.w->dim(2);
  const std::string layout = depthwise ? "[" + s(c.Cin) + ", 1, k, k] (C of the input)" : "[Cout, " + s(c.Cin) + ", k, k] (Cin of the input)";
  if (c.w->dim(3) != k || k < 1 || (depthwise ? (c.w->dim(0) != c.Cin || c.w->dim(1) != 1) : c.w->dim(1) != c.Cin))
    a.bad(ErrCode::Shape, "shape " + layout + " with a square kernel", "weight", tensor_desc(c.w));
  c.Cout = c.w->dim(0);
  c.K2 = k * k;
  want_table(a, c.nbr, c.K2, c.N, "nbr");
  return c;
}

template <typename T>
SparseConvParams<T> conv_params(const ConvArgs& c) {
  SparseConvParams<T> p;
  p.N = c.N;
  p.M = c.nbr->dim(0);
  p.K2 = c.K2;
  p.Cin = c.Cin;
  p.Cout = c.Cout;
  p.x = c.x->ptr<T>();
  p.w = c.w->ptr<T>();
  p.nbr = c.nbr->ptr<int32_t>();
  return p;
}

template <bool Depthwise>
Napi::Value conv_forward(const ArgReader& a) {
  const ConvArgs c = conv_args(a, 0, 1, 3, Depthwise);
  NTensor* b = a.tensor_or_null(2, "bias");
  want_vector(a, c.x, b, c.Cout, "bias");
  const int64_t M = c.nbr->dim(0);
  Napi::Object y = a.alloc(c.x->dtype(), {M, c.Cout}, false);
  dispatch(a, c.x, [&](auto t, auto dev) {
    using T = decltype(t);
    SparseConvParams<T> p = conv_params<T>(c);
    p.b = ptr_or_null<T>(b);
    p.y = out<T>(y);
    if constexpr (Depthwise)
      CLOZE_KERNEL(dev, sparse_depthwise_forward, p);
    else
      CLOZE_KERNEL(dev, sparse_conv_forward, p);
    return 0;
  });
  return y;
}

template <bool Depthwise>
Napi::Value conv_backward(const ArgReader& a) {
  NTensor* g = a.tensor(0, "grad");
  const ConvArgs c = conv_args(a, 1, 2, 3, Depthwise);
  Grads d(a, 4);
  const int64_t M = c.nbr->dim(0);
  a.want_same_dtype(c.x, g, "grad");
  a.want_shape(g, {M, c.Cout}, "grad");
  std::shared_ptr<Storage> inv;
  if (d.need_x) inv = inverse_of(a, c.nbr, c.N, "nbr");
  d.allocate(a, c.x->dtype(), c.x->shape(), c.w->shape(), c.Cout);
  dispatch(a, c.x, [&](auto t, auto dev) {
    using T = decltype(t);
    SparseConvParams<T> p = conv_params<T>(c);
    p.inv = inv ? static_cast<const int32_t*>(inv->data()) : nullptr;
    p.dy = g->ptr<T>();
    d.set<T>(p);
    if constexpr (Depthwise)
      CLOZE_KERNEL(dev, sparse_depthwise_backward, p);
    else
      CLOZE_KERNEL(dev, sparse_conv_backward, p);
    return 0;
  });
  return d.result(a);
}

template <typename T>
SiteMapParams<T> site_params(int64_t N, int64_t C, int64_t B, int64_t H, int64_t W, NTensor* coords, const Napi::Object& o) {
  SiteMapParams<T> p;
  p.N = N;
  p.C = C;
  p.B = B;
  p.H = H;
  p.W = W;
  p.coords = coords->ptr<int32_t>();
  p.out = out<T>(o);
  return p;
}

// toSparse (gather: the sites' rows) and toDenseFillGrad (the inactive sites' sum per channel).
Napi::Value from_dense(const ArgReader& a, bool gather) {
  const char* name = gather ? "dense" : "grad";
  NTensor* d = a.tensor(0, name);
  NTensor* coords = a.tensor(1, "coords");
  a.want_float(d, name);
  a.want_ndim(d, 4, 4, name);
  const int64_t B = d->dim(0), C = d->dim(1), H = d->dim(2), W = d->dim(3);
  if (B * H * W > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 sites", name, tensor_desc(d));
  want_sites(a, coords, B, H, W, -1, "coords");
  const int64_t N = coords->dim(0);
  const std::vector<int64_t> shape = gather ? std::vector<int64_t>{N, C} : std::vector<int64_t>{C};
  Napi::Object res = a.alloc(d->dtype(), shape, false);
  dispatch(a, d, [&](auto t, auto dev) {
    using T = decltype(t);
    SiteMapParams<T> p = site_params<T>(N, C, B, H, W, coords, res);
    p.dense = d->ptr<T>();
    if (gather)
      CLOZE_KERNEL(dev, to_sparse, p);
    else
      CLOZE_KERNEL(dev, fill_grad, p);
    return 0;
  });
  return res;
}

void register_sites(Napi::Object exports) {
  CLOZE_EXPORT(exports, "activeSites", [](const ArgReader& a) -> Napi::Value {
    NTensor* mask = a.tensor(0, "mask");
    a.want_dtype(mask, DType::U8, "mask");
    a.want_ndim(mask, 3, 3, "mask");
    if (mask->numel() > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 sites", "mask", tensor_desc(mask));
    const auto bad_value = [&](int v, int64_t i) {
      a.bad(ErrCode::Value, "values 0 or 1 (1 = active)", "mask", s(v) + " at flat index " + s(i));
    };
    const uint8_t* m = mask->ptr<uint8_t>();
    ActiveSitesParams p;
    p.B = mask->dim(0);
    p.H = mask->dim(1);
    p.W = mask->dim(2);
    p.mask = m;
    int64_t n = 0;
    std::shared_ptr<Storage> starts;  // cuda: the line starts active_sites_cuda numbers from
    if (mask->on_cuda()) {
#ifdef CLOZE_CUDA
      starts = Storage::allocate(sizeof(int64_t) * static_cast<size_t>(p.B * p.H + 2), a.op, false, Device::CUDA);
      int64_t first_bad = -1;
      n = active_sites_count_cuda(m, p.B, p.H, p.W, static_cast<int64_t*>(starts->data()), &first_bad, a.op);
      if (first_bad >= 0) bad_value(device_value<uint8_t>(a, mask, first_bad), first_bad);
      p.line_start = static_cast<const int64_t*>(starts->data());
#endif
    } else {
      for (int64_t i = 0; i < mask->numel(); i++)
        if (m[i] > 1) bad_value(m[i], i);
      n = count_active_cpu(m, mask->numel());
    }
    Napi::Object coords = a.alloc(DType::I32, {n, 3}, false);
    Napi::Object grid = a.alloc(DType::I32, mask->shape(), false);
    p.grid = NTensor::Unwrap(grid)->ptr<int32_t>();
    p.coords = NTensor::Unwrap(coords)->ptr<int32_t>();
    if (mask->on_cuda()) {
#ifdef CLOZE_CUDA
      active_sites_cuda(p, a.op);
#endif
    } else {
      active_sites_cpu(p);
    }
    Napi::Object res = Napi::Object::New(a.env());
    res.Set("coords", coords);
    res.Set("grid", grid);
    return res;
  });

  CLOZE_EXPORT(exports, "neighbourTable", [](const ArgReader& a) -> Napi::Value {
    NTensor* grid = a.tensor(0, "grid");
    NTensor* oc = a.tensor(1, "outCoords");
    const int64_t k = a.integer(2, "kernel", 1, kMaxKernel);
    const int64_t stride = a.integer(3, "stride", 1, kMaxKernel);
    const int64_t pad = a.integer(4, "padding", 0, k - 1);
    a.want_dtype(grid, DType::I32, "grid");
    a.want_ndim(grid, 3, 3, "grid");
    const int64_t B = grid->dim(0), H = grid->dim(1), W = grid->dim(2);
    const int32_t* gp = grid->ptr<int32_t>();
    const auto bad_row = [&](int32_t v, int64_t i) {
      a.bad(ErrCode::Index, "rows >= 0 or -1 (inactive)", "grid", s(v) + " at flat index " + s(i));
    };
    if (grid->on_cuda()) {
#ifdef CLOZE_CUDA
      const int64_t i = first_outside_cuda(gp, grid->numel(), -1, INT64_MAX, a.op);
      if (i >= 0) bad_row(device_value<int32_t>(a, grid, i), i);
#endif
    } else {
      for (int64_t i = 0; i < grid->numel(); i++)
        if (gp[i] < -1) bad_row(gp[i], i);
    }
    const int64_t Ho = H + 2 * pad >= k ? (H + 2 * pad - k) / stride + 1 : 0;
    const int64_t Wo = W + 2 * pad >= k ? (W + 2 * pad - k) / stride + 1 : 0;
    want_sites(a, oc, B, Ho, Wo, -1, "outCoords");
    const int64_t M = oc->dim(0);
    Napi::Object nbr = a.alloc(DType::I32, {M, k * k}, false);
    NeighbourParams p;
    p.B = B;
    p.H = H;
    p.W = W;
    p.M = M;
    p.kernel = k;
    p.stride = stride;
    p.padding = pad;
    p.grid = gp;
    p.out_coords = oc->ptr<int32_t>();
    p.nbr = NTensor::Unwrap(nbr)->ptr<int32_t>();
    if (grid->on_cuda()) {
#ifdef CLOZE_CUDA
      neighbour_table_cuda(p, a.op);
#endif
    } else {
      neighbour_table_cpu(p);
    }
    return nbr;
  });

  CLOZE_EXPORT(exports, "toDense", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* coords = a.tensor(1, "coords");
    const int64_t B = a.integer(2, "B", 0, kMaxI32), H = a.integer(3, "H", 0, kMaxI32), W = a.integer(4, "W", 0, kMaxI32);
    NTensor* fill = a.tensor_or_null(5, "fill");
    const int64_t C = want_rows(a, x, "input");
    if (B * H * W > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 sites", "B·H·W", s(B * H * W));
    want_sites(a, coords, B, H, W, x->dim(0), "coords");
    want_vector(a, x, fill, C, "fill");
    Napi::Object res = a.alloc(x->dtype(), {B, C, H, W}, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      SiteMapParams<T> p = site_params<T>(x->dim(0), C, B, H, W, coords, res);
      p.rows = x->ptr<T>();
      p.fill = ptr_or_null<T>(fill);
      CLOZE_KERNEL(dev, to_dense, p);
      return 0;
    });
    return res;
  });

  CLOZE_EXPORT(exports, "toSparse", [](const ArgReader& a) { return from_dense(a, true); });
  CLOZE_EXPORT(exports, "toDenseFillGrad", [](const ArgReader& a) { return from_dense(a, false); });
}

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

void register_norm_pool(Napi::Object exports) {
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
    const std::shared_ptr<Storage> inv = inverse_of(a, nbr, N, "nbr");
    Napi::Object dx = a.alloc(g->dtype(), {N, C}, false);
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

}  // namespace

void register_sparse(Napi::Env env, Napi::Object exports) {
  (void)env;
  register_sites(exports);
  CLOZE_EXPORT(exports, "sparseConv", [](const ArgReader& a) { return conv_forward<false>(a); });
  CLOZE_EXPORT(exports, "sparseConvBackward", [](const ArgReader& a) { return conv_backward<false>(a); });
  CLOZE_EXPORT(exports, "sparseDepthwiseConv", [](const ArgReader& a) { return conv_forward<true>(a); });
  CLOZE_EXPORT(exports, "sparseDepthwiseConvBackward", [](const ArgReader& a) { return conv_backward<true>(a); });
  register_norm_pool(exports);
}

}  // namespace cloze
