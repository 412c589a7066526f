// Sparse convolution bindings (SparK's submanifold sparse convolution, see ops/sparse_conv.h):
//   sparseConv(x [N, Cin], w [Cout, Cin, k, k], b | null, nbr) -> [M, Cout]
//   sparseConvBackward(g, x, w, nbr, needX, needW, needB) -> [dx, dw, db] (null where not needed)
//   sparseDepthwiseConv(x [N, C], w [C, 1, k, k], b | null, nbr) -> [M, C]; …Backward as above
// nbr is checked (binding/sparse_args.h) before a kernel reads through it.
#include <memory>
#include <string>

#include "../ops/sparse_conv.h"
#include "bindings.h"
#include "sparse_args.h"

namespace cloze {

using namespace sparse_args;

namespace {

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

}  // namespace

void register_sparse_conv(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "sparseConv", [](const ArgReader& a) { return conv_forward<false>(a); });
  CLOZE_EXPORT(exports, "sparseConvBackward", [](const ArgReader& a) { return conv_backward<false>(a); });
  CLOZE_EXPORT(exports, "sparseDepthwiseConv", [](const ArgReader& a) { return conv_forward<true>(a); });
  CLOZE_EXPORT(exports, "sparseDepthwiseConvBackward", [](const ArgReader& a) { return conv_backward<true>(a); });
}

}  // namespace cloze
