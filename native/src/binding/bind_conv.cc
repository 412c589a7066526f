// Dense convolution bindings, NCHW:
//   conv2d(x, w, bias|null, stride, padding, groups) -> y
//   conv2dBackward(dy, x, w, stride, padding, groups, needX, needW, needB) -> [dx, dw, db]
//   convTranspose2d / convTranspose2dBackward: the same arguments
// Every op runs on the device of its first tensor argument (float32/float64 on
// the CPU, float32/bfloat16 on CUDA).
#include <climits>

#include "../ops/conv.h"
#include "bindings.h"
#include "image_args.h"

namespace cloze {

using namespace image_args;

namespace {

struct ConvArgs {
  ConvGeom g;
  std::vector<int64_t> out_shape;
  std::vector<int64_t> w_shape;
};

// Reads stride, padding and groups at `at`, and checks x and weight for
// conv2d (transposed = false) or convTranspose2d.
ConvArgs conv_args(const ArgReader& a, NTensor* x, NTensor* w, size_t at, bool transposed) {
  const int64_t s = a.integer(at, "stride", 1, kMaxGeom);
  const int64_t pad = a.integer(at + 1, "padding", 0, kMaxGeom);
  const int64_t groups = a.integer(at + 2, "groups", 1, INT32_MAX);
  a.want_same_dtype(x, w, "weight");
  a.want_ndim(w, 4, 4, "weight");
  const int64_t B = x->dim(0), Cin = x->dim(1), H = x->dim(2), W = x->dim(3);
  if (Cin % groups != 0)
    a.bad(ErrCode::Shape, "channels divisible by groups (" + std::to_string(groups) + ")", "input", tensor_desc(x));
  const int64_t kh = w->dim(2), kw = w->dim(3);
  if (kh < 1 || kw < 1) a.bad(ErrCode::Shape, "a kernel of at least 1 × 1", "weight", tensor_desc(w));
  ConvArgs r;
  ConvGeom& g = r.g;
  g.B = B;
  g.groups = groups;
  g.kh = kh;
  g.kw = kw;
  g.stride = s;
  g.pad = pad;
  if (!transposed) {
    const int64_t Cout = w->dim(0);
    r.w_shape = {Cout, Cin / groups, kh, kw};
    if (Cout == 0 || Cout % groups != 0 || w->shape() != r.w_shape)
      a.bad(ErrCode::Shape,
            "a weight [Cout, " + std::to_string(Cin / groups) + ", kh, kw] with Cout a positive multiple of groups (" +
                std::to_string(groups) + ")",
            "weight", tensor_desc(w));
    if (H + 2 * pad < kh || W + 2 * pad < kw)
      a.bad(ErrCode::Shape,
            "a kernel no larger than the padded input (" + std::to_string(H + 2 * pad) + " × " + std::to_string(W + 2 * pad) +
                " with padding " + std::to_string(pad) + ")",
            "weight", tensor_desc(w));
    g.ci = Cin;
    g.ih = H;
    g.iw = W;
    g.cq = Cout;
    g.oh = conv_out_size(H, kh, s, pad);
    g.ow = conv_out_size(W, kw, s, pad);
    r.out_shape = {B, Cout, g.oh, g.ow};
  } else {
    const int64_t Cout = w->dim(1) * groups;
    r.w_shape = {Cin, w->dim(1), kh, kw};
    if (Cout == 0 || w->dim(0) != Cin)
      a.bad(ErrCode::Shape, "a weight [" + std::to_string(Cin) + ", Cout/groups, kh, kw] with Cout/groups ≥ 1", "weight",
            tensor_desc(w));
    const int64_t Ho = (H - 1) * s - 2 * pad + kh, Wo = (W - 1) * s - 2 * pad + kw;
    if (H < 1 || W < 1 || Ho < 1 || Wo < 1)
      a.bad(ErrCode::Shape,
            "a padding that leaves a non-empty output ((H − 1)·stride − 2·padding + k ≥ 1, input " + shape_str(x->shape()) +
                ", kernel " + std::to_string(kh) + " × " + std::to_string(kw) + ")",
            "padding", std::to_string(pad));
    g.ci = Cout;
    g.ih = Ho;
    g.iw = Wo;
    g.cq = Cin;
    g.oh = H;
    g.ow = W;
    r.out_shape = {B, Cout, Ho, Wo};
  }
  return r;
}

template <typename T>
ConvParams<T> conv_params(const ConvGeom& g, NTensor* w) {
  ConvParams<T> p;
  p.g = g;
  p.w = w->ptr<T>();
  return p;
}

template <bool Transposed>
Napi::Value conv_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  NTensor* w = a.tensor(1, "weight");
  NTensor* bias = a.tensor_or_null(2, "bias");
  const ConvArgs c = conv_args(a, x, w, 3, Transposed);
  if (bias) {
    a.want_same_dtype(x, bias, "bias");
    a.want_shape(bias, {c.out_shape[1]}, "bias");
  }
  // The CPU transpose folds by accumulation, so its output starts at zero (CUDA writes it in full).
  Napi::Object y = a.alloc(x->dtype(), c.out_shape, Transposed && !a.on_cuda());
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    ConvParams<T> p = conv_params<T>(c.g, w);
    p.x = x->ptr<T>();
    p.bias = ptr_or_null<T>(bias);
    p.y = out<T>(y);
    if (Transposed)
      CLOZE_KERNEL(dev, conv_transpose2d_forward, p);
    else
      CLOZE_KERNEL(dev, conv2d_forward, p);
    return 0;
  });
  return y;
}

template <bool Transposed>
Napi::Value conv_backward(const ArgReader& a) {
  NTensor* dy = a.tensor(0, "grad");
  NTensor* x = image(a, 1, "input");
  NTensor* w = a.tensor(2, "weight");
  const ConvArgs c = conv_args(a, x, w, 3, Transposed);
  Grads d(a, 6);
  a.want_same_dtype(x, dy, "grad");
  a.want_shape(dy, c.out_shape, "grad");
  // The CPU folds dx by accumulation; CUDA writes every gradient in full.
  d.allocate(a, x->dtype(), x->shape(), c.w_shape, c.out_shape[1], !a.on_cuda());
  if (d.any())
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      ConvParams<T> p = conv_params<T>(c.g, w);
      p.x = x->ptr<T>();
      p.dy = dy->ptr<T>();
      d.set<T>(p);
      if (Transposed)
        CLOZE_KERNEL(dev, conv_transpose2d_backward, p);
      else
        CLOZE_KERNEL(dev, conv2d_backward, p);
      return 0;
    });
  return d.result(a);
}

}  // namespace

void register_conv(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "conv2d", conv_forward<false>);
  CLOZE_EXPORT(exports, "conv2dBackward", conv_backward<false>);
  CLOZE_EXPORT(exports, "convTranspose2d", conv_forward<true>);
  CLOZE_EXPORT(exports, "convTranspose2dBackward", conv_backward<true>);
}

}  // namespace cloze
