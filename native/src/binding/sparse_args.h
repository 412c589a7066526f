// Argument checks shared by the sparse bindings (bind_sparse_rulebook.cc,
// bind_sparse_conv.cc, bind_sparse_norm_pool.cc): row tensors, neighbour
// tables, site lists, inverse tables, and the gradient outputs. Every index
// tensor is checked before a kernel reads through it. In their own namespace,
// as the image bindings have helpers of the same names (binding/image_args.h).
//
// On CUDA the same checks run on the device (ops/sparse_rulebook.h): each
// content check (table entries, sites, mask values) ends with one small
// device→host copy, a host sync, so it throws where and what the CPU check
// throws; the offending value is then copied back to name it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../core/sizes.h"
#include "../ops/sparse_rulebook.h"
#include "args.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {
namespace sparse_args {

constexpr int64_t kMaxI32 = (int64_t(1) << 31) - 1;

inline std::string s(int64_t v) { return std::to_string(v); }
inline Napi::Array triple(const ArgReader& a, Napi::Value x, Napi::Value y, Napi::Value z) {
  Napi::Array r = Napi::Array::New(a.env(), 3);
  r.Set(0u, x);
  r.Set(1u, y);
  r.Set(2u, z);
  return r;
}

// A float [rows, C] tensor; returns C.
inline int64_t want_rows(const ArgReader& a, NTensor* t, const char* name) {
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

inline void want_vector(const ArgReader& a, NTensor* ref, NTensor* t, int64_t C, const char* name) {
  if (!t) return;
  a.want_same_dtype(ref, t, name);
  a.want_shape(t, {C}, name);
}

// nbr int32 [M, K2] with entries in [−1, N): the rows of an input of N rows.
inline void want_table(const ArgReader& a, NTensor* nbr, int64_t K2, int64_t N, const char* name) {
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

// B·H·W, checked for overflow (core/sizes.h) and below 2^31 sites.
inline int64_t site_count(const ArgReader& a, int64_t B, int64_t H, int64_t W, const char* name) {
  const int64_t n = checked_product({B, H, W}, a.op, std::string("[B, H, W] of ") + name);
  if (n > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 sites", std::string("B·H·W of ") + name, shape_str({B, H, W}));
  return n;
}

// Sites int32 [N, 3] inside [B, H, W] and distinct. N is checked too when n >= 0.
inline void want_sites(const ArgReader& a, NTensor* coords, int64_t B, int64_t H, int64_t W, int64_t n, const char* name) {
  const int64_t sites = site_count(a, B, H, W, name);
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
  Storage::check_request(static_cast<size_t>(sites), a.op);  // the table of seen sites, before it is allocated
  std::vector<uint8_t> seen(static_cast<size_t>(sites), 0);
  for (int64_t i = 0; i < coords->dim(0); i++) {
    const int64_t b = c[3 * i], y = c[3 * i + 1], x = c[3 * i + 2];
    // Built only on the error path: formatting it for every row cost about 1 ms per call at 12k sites.
    const auto at = [&] { return "(" + s(b) + ", " + s(y) + ", " + s(x) + ") at row " + s(i); };
    if (b < 0 || b >= B || y < 0 || y >= H || x < 0 || x >= W)
      a.bad(ErrCode::Index, "sites inside [B, H, W] = " + shape_str({B, H, W}), name, at());
    uint8_t& f = seen[static_cast<size_t>((b * H + y) * W + x)];
    if (f) a.bad(ErrCode::Index, "distinct sites", name, "a repeat of " + at());
    f = 1;
  }
}

// The inverse of a checked table, in scratch that lives as long as the returned holder.
// On CUDA the scratch is device memory, built on the device.
inline std::shared_ptr<Storage> inverse_of(const ArgReader& a, NTensor* nbr, int64_t N, const char* name) {
  const int64_t M = nbr->dim(0), K2 = nbr->dim(1);
  const size_t bytes = checked_bytes({std::max<int64_t>(N, 1), std::max<int64_t>(K2, 1)}, sizeof(int32_t), a.op,
                                     std::string("the inverse of ") + name + " (rows × k²)");
  auto inv = Storage::allocate(bytes, a.op, false, nbr->device());
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

}  // namespace sparse_args
}  // namespace cloze
