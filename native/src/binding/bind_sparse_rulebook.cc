// Sparse-map bindings (SparK's submanifold sparse convolution, see ops/sparse_rulebook.h):
//   activeSites(mask uint8 [B, H, W], 1 = active) -> { coords int32 [N, 3], grid int32 [B, H, W] }
//   neighbourTable(grid, outCoords int32 [M, 3], kernel, stride, padding) -> nbr int32 [M, k²]
//   toDense(x [N, C], coords, B, H, W, fill [C] | null) -> [B, C, H, W]
//   toSparse(dense [B, C, H, W], coords) -> [N, C]; toDenseFillGrad(g [B, C, H, W], coords) -> [C]
// Every index tensor is checked (binding/sparse_args.h) before a kernel reads
// through it; on CUDA each content check costs a host sync, and activeSites
// needs its count on the host anyway (the size of coords).
#include <string>
#include <vector>

#include "../ops/sparse_rulebook.h"
#include "bindings.h"
#include "sparse_args.h"

namespace cloze {

using namespace sparse_args;

namespace {

constexpr int64_t kMaxKernel = 63;

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
  site_count(a, B, H, W, name);
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

}  // namespace

void register_sparse_rulebook(Napi::Env env, Napi::Object exports) {
  (void)env;
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
    site_count(a, B, H, W, "the output");  // B·H·W overflow-checked before anything is sized by it
    want_vector(a, x, fill, C, "fill");
    checked_product({B, C, H, W}, a.op, "the output [B, C, H, W]");
    want_sites(a, coords, B, H, W, x->dim(0), "coords");
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

}  // namespace cloze
