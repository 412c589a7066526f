// Dense convolution, batch norm, pooling and mask bindings, all NCHW:
//   conv2d(x, w, bias|null, stride, padding, groups) -> y
//   conv2dBackward(dy, x, w, stride, padding, groups, needX, needW, needB) -> [dx, dw, db]
//   convTranspose2d / convTranspose2dBackward: the same arguments
//   batchNorm2d(x, w|null, b|null, runningMean|null, runningVar|null, mask|null, training, momentum, eps)
//     -> [y, mean, rstd]  (updates the running buffers in place when training)
//   batchNorm2dBackward(dy, x, w|null, mean, rstd, mask|null, training, needX, needW, needB) -> [dx, dw, db]
//   maxPool2d(x, kernel, stride, padding) -> [y, argmax]; maxPool2dBackward(dy, argmax, inputShape) -> dx
//   avgPool2d(x, kernel, stride, padding, countIncludePad) -> y
//   avgPool2dBackward(dy, inputShape, kernel, stride, padding, countIncludePad) -> dx
//   globalAvgPool(x) -> [B, C]; globalAvgPoolBackward(dy, inputShape) -> dx
//   applyMask(x, mask) -> y; upsampleMask(mask, factor) -> mask
// Every op runs on the device of its first tensor argument (float32/float64 on
// the CPU, float32/bfloat16 on CUDA). On CUDA, batchNorm2d's mean and rstd are
// float32 whatever the input dtype (they only travel back into the backward).
#include <climits>
#include <cmath>
#include <type_traits>

#include "../ops/batchnorm.h"
#include "../ops/conv.h"
#include "../ops/pool.h"
#include "bindings.h"

namespace cloze {

namespace {

constexpr int64_t kMaxGeom = INT64_C(1) << 20;  // strides, paddings and factors beyond this are mistakes

// The buffer of a tensor a binding allocated.
template <typename T>
T* out(const Napi::Object& o) { return NTensor::Unwrap(o)->ptr<T>(); }

// The buffer of an optional tensor argument, or null.
template <typename T>
T* ptr_or_null(NTensor* t) { return t ? t->ptr<T>() : nullptr; }

// The gradients of input, weight and bias: read from three needX/needW/needB
// arguments; those not asked for stay unallocated and come back as null.
struct Grads {
  bool nx, nw, nb;
  Napi::Object dx, dw, db;
  Grads(const ArgReader& a, size_t first)
      : nx(a.boolean(first, "needInput")), nw(a.boolean(first + 1, "needWeight")), nb(a.boolean(first + 2, "needBias")) {}
  bool any() const { return nx || nw || nb; }
  // A kernel that writes every element of dx can skip its zeroing (zero_dx = false).
  void allocate(const ArgReader& a, DType dt, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws, int64_t C,
                bool zero_dx) {
    if (nx) dx = a.alloc(dt, xs, zero_dx);
    if (nw) dw = a.alloc(dt, ws);
    if (nb) db = a.alloc(dt, {C});
  }
  template <typename T, typename P>
  void set(P& p) const {
    p.dx = nx ? out<T>(dx) : nullptr;
    p.dw = nw ? out<T>(dw) : nullptr;
    p.db = nb ? out<T>(db) : nullptr;
  }
  Napi::Array result(const ArgReader& a) const {
    Napi::Array res = Napi::Array::New(a.env(), 3);
    res.Set(0u, null_or(a, nx, dx));
    res.Set(1u, null_or(a, nw, dw));
    res.Set(2u, null_or(a, nb, db));
    return res;
  }
};

NTensor* image(const ArgReader& a, size_t i, const char* name) {
  NTensor* x = a.tensor(i, name);
  a.want_float(x, name);
  a.want_ndim(x, 4, 4, name);
  return x;
}

// Checks a uint8 mask of the given shape holding only 0 and 1.
const uint8_t* checked_mask(const ArgReader& a, NTensor* m, const std::vector<int64_t>& shape, const char* name) {
  a.want_dtype(m, DType::U8, name);
  a.want_shape(m, shape, name);
  const uint8_t* v = m->ptr<uint8_t>();
  auto bad = [&](int64_t value, int64_t i) {
    fail(ErrCode::Value, a.op, expected("values 0 or 1", name, std::to_string(value) + " at position " + std::to_string(i)));
  };
  if (m->on_cuda()) {
#ifdef CLOZE_CUDA
    // Checked on the device; the answer costs one 8-byte read-back (a stream sync).
    int64_t value = 0;
    const int64_t at = mask_first_invalid_cuda(v, m->numel(), &value, a.op);
    if (at >= 0) bad(value, at);
#else
    no_cuda_kernel(a.op, m->dtype());
#endif
    return v;
  }
  for (int64_t i = 0; i < m->numel(); i++)
    if (v[i] > 1) bad(v[i], i);
  return v;
}

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

// A per-channel [C] tensor of x's dtype, or null.
NTensor* channel_vec(const ArgReader& a, size_t i, const char* name, NTensor* x) {
  NTensor* t = a.tensor_or_null(i, name);
  if (t) {
    a.want_same_dtype(x, t, name);
    a.want_shape(t, {x->dim(1)}, name);
  }
  return t;
}

const uint8_t* bn_mask(const ArgReader& a, size_t i, NTensor* x) {
  NTensor* m = a.tensor_or_null(i, "mask");
  return m ? checked_mask(a, m, {x->dim(0), x->dim(2), x->dim(3)}, "mask") : nullptr;
}

// The saved statistics' dtype: x's on the CPU, float32 on CUDA.
DType stat_dtype(const ArgReader& a, const NTensor* x) { return a.on_cuda() ? DType::F32 : x->dtype(); }

template <typename T, typename S>
BatchNormParams<T, S> bn_params(NTensor* x, NTensor* w, const uint8_t* mask, bool training) {
  BatchNormParams<T, S> p;
  p.B = x->dim(0);
  p.C = x->dim(1);
  p.S = x->dim(2) * x->dim(3);
  p.x = x->ptr<T>();
  p.w = ptr_or_null<T>(w);
  p.mask = mask;
  p.training = training;
  return p;
}

Napi::Value batchnorm_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  NTensor* w = channel_vec(a, 1, "weight", x);
  NTensor* b = channel_vec(a, 2, "bias", x);
  NTensor* rm = channel_vec(a, 3, "runningMean", x);
  NTensor* rv = channel_vec(a, 4, "runningVar", x);
  const uint8_t* mask = bn_mask(a, 5, x);
  const bool training = a.boolean(6, "training");
  const double momentum = a.number(7, "momentum"), eps = a.number(8, "eps");
  if (!(momentum >= 0 && momentum <= 1)) a.bad(ErrCode::Value, "a number in [0, 1]", "momentum", a.describe(a.info[7]));
  if (!(eps > 0 && std::isfinite(eps))) a.bad(ErrCode::Value, "a positive number", "eps", a.describe(a.info[8]));
  if ((rm == nullptr) != (rv == nullptr))
    a.bad(ErrCode::Value, "runningMean and runningVar both given or both null", rm ? "runningVar" : "runningMean", "null");
  if (!training && !rm) a.bad(ErrCode::Value, "running statistics in eval mode", "runningMean", "null");
  if (rm && (rm->raw() == x->raw() || rv->raw() == x->raw() || rm->raw() == rv->raw()))
    a.bad(ErrCode::Value, "running buffers apart from each other and from the input", "runningVar", "shared storage");
  const int64_t C = x->dim(1);
  Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
  Napi::Object mean = a.alloc(stat_dtype(a, x), {C});
  Napi::Object rstd = a.alloc(stat_dtype(a, x), {C});
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    using S = std::conditional_t<decltype(dev)::cuda, float, T>;
    BatchNormParams<T, S> p = bn_params<T, S>(x, w, mask, training);
    p.b = ptr_or_null<T>(b);
    p.momentum = momentum;
    p.eps = eps;
    p.running_mean = ptr_or_null<T>(rm);
    p.running_var = ptr_or_null<T>(rv);
    p.y = out<T>(y);
    p.mean = out<S>(mean);
    p.rstd = out<S>(rstd);
    CLOZE_KERNEL(dev, batchnorm_forward, p);
    return 0;
  });
  Napi::Array res = Napi::Array::New(a.env(), 3);
  res.Set(0u, y);
  res.Set(1u, mean);
  res.Set(2u, rstd);
  return res;
}

Napi::Value batchnorm_backward(const ArgReader& a) {
  NTensor* dy = a.tensor(0, "grad");
  NTensor* x = image(a, 1, "input");
  NTensor* w = channel_vec(a, 2, "weight", x);
  NTensor* mean = a.tensor(3, "mean");
  NTensor* rstd = a.tensor(4, "rstd");
  const uint8_t* mask = bn_mask(a, 5, x);
  const bool training = a.boolean(6, "training");
  Grads d(a, 7);
  a.want_same_dtype(x, dy, "grad");
  a.want_shape(dy, x->shape(), "grad");
  const int64_t C = x->dim(1);
  for (NTensor* t : {mean, rstd}) {
    if (a.on_cuda())
      a.want_dtype(t, DType::F32, t == mean ? "mean" : "rstd");
    else
      a.want_same_dtype(x, t, t == mean ? "mean" : "rstd");
    a.want_shape(t, {C}, t == mean ? "mean" : "rstd");
  }
  d.allocate(a, x->dtype(), x->shape(), {C}, C, false);
  if (d.any())
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      using S = std::conditional_t<decltype(dev)::cuda, float, T>;
      BatchNormParams<T, S> p = bn_params<T, S>(x, w, mask, training);
      p.mean = mean->ptr<S>();
      p.rstd = rstd->ptr<S>();
      p.dy = dy->ptr<T>();
      d.set<T>(p);
      CLOZE_KERNEL(dev, batchnorm_backward, p);
      return 0;
    });
  return d.result(a);
}

// Reads kernel, stride and padding at `at` for an input [B, C, H, W].
PoolGeom pool_geom(const ArgReader& a, const std::vector<int64_t>& in, size_t at, const char* input_name) {
  PoolGeom g;
  g.k = a.integer(at, "kernel", 1, kMaxGeom);
  g.stride = a.integer(at + 1, "stride", 1, kMaxGeom);
  g.pad = a.integer(at + 2, "padding", 0, kMaxGeom);
  if (g.pad > g.k / 2)
    a.bad(ErrCode::Value, "a padding of at most half the kernel (" + std::to_string(g.k / 2) + ")", "padding",
          std::to_string(g.pad));
  g.B = in[0];
  g.C = in[1];
  g.H = in[2];
  g.W = in[3];
  if (g.H + 2 * g.pad < g.k || g.W + 2 * g.pad < g.k)
    a.bad(ErrCode::Shape, "an input no smaller than the kernel (" + std::to_string(g.k) + ") after padding", input_name,
          shape_str(in));
  g.oh = conv_out_size(g.H, g.k, g.stride, g.pad);
  g.ow = conv_out_size(g.W, g.k, g.stride, g.pad);
  return g;
}

std::vector<int64_t> input_shape(const ArgReader& a, size_t i) {
  std::vector<int64_t> s = a.shape(i, "inputShape");
  if (s.size() != 4) a.bad(ErrCode::Shape, "a shape of 4 dimensions [B, C, H, W]", "inputShape", shape_str(s));
  return s;
}

Napi::Value maxpool_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  const PoolGeom g = pool_geom(a, x->shape(), 1, "input");
  if (g.H * g.W > INT32_MAX) a.bad(ErrCode::Shape, "planes of fewer than 2^31 pixels", "input", tensor_desc(x));
  Napi::Object y = a.alloc(x->dtype(), {g.B, g.C, g.oh, g.ow}, false);
  Napi::Object am = a.alloc(DType::I32, {g.B, g.C, g.oh, g.ow}, false);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g = g;
    p.x = x->ptr<T>();
    p.y = out<T>(y);
    p.argmax = out<int32_t>(am);
    CLOZE_KERNEL(dev, maxpool_forward, p);
    return 0;
  });
  Napi::Array res = Napi::Array::New(a.env(), 2);
  res.Set(0u, y);
  res.Set(1u, am);
  return res;
}

Napi::Value maxpool_backward(const ArgReader& a) {
  NTensor* dy = image(a, 0, "grad");
  NTensor* am = a.tensor(1, "argmax");
  const std::vector<int64_t> in = input_shape(a, 2);
  a.want_dtype(am, DType::I32, "argmax");
  a.want_shape(am, dy->shape(), "argmax");
  if (dy->dim(0) != in[0] || dy->dim(1) != in[1])
    a.bad(ErrCode::Shape, "a gradient [" + std::to_string(in[0]) + ", " + std::to_string(in[1]) + ", oh, ow]", "grad",
          tensor_desc(dy));
  const int64_t S = in[2] * in[3];
  const int32_t* idx = am->ptr<int32_t>();
  auto bad = [&](int64_t value, int64_t i) {
    fail(ErrCode::Index, a.op,
         expected("indices in [0, " + std::to_string(S) + ")", "argmax", std::to_string(value) + " at position " + std::to_string(i)));
  };
  if (am->on_cuda()) {
#ifdef CLOZE_CUDA
    // Checked on the device; the answer costs one 8-byte read-back (a stream sync).
    int64_t value = 0;
    const int64_t at = index_first_invalid_cuda(idx, am->numel(), S, &value, a.op);
    if (at >= 0) bad(value, at);
#else
    no_cuda_kernel(a.op, am->dtype());
#endif
  } else {
    for (int64_t i = 0; i < am->numel(); i++)
      if (idx[i] < 0 || idx[i] >= S) bad(idx[i], i);
  }
  // The CPU routes gradients by accumulation into zeros; CUDA writes dx in full.
  Napi::Object dx = a.alloc(dy->dtype(), in, !a.on_cuda());
  dispatch(a, dy, [&](auto t, auto dev) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g.B = in[0];
    p.g.C = in[1];
    p.g.H = in[2];
    p.g.W = in[3];
    p.g.oh = dy->dim(2);
    p.g.ow = dy->dim(3);
    p.argmax_in = idx;
    p.dy = dy->ptr<T>();
    p.dx = out<T>(dx);
    CLOZE_KERNEL(dev, maxpool_backward, p);
    return 0;
  });
  return dx;
}

// Average pooling of src (x forward, dy backward) into a new tensor of the given shape.
Napi::Value avgpool_run(const ArgReader& a, NTensor* src, const std::vector<int64_t>& shape, const PoolGeom& g,
                        bool include_pad, bool backward) {
  // The CPU backward adds each window's share into dx, so dx starts at zero (CUDA gathers).
  Napi::Object res = a.alloc(src->dtype(), shape, backward && !a.on_cuda());
  dispatch(a, src, [&](auto t, auto dev) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g = g;
    p.count_include_pad = include_pad;
    if (backward) {
      p.dy = src->ptr<T>();
      p.dx = out<T>(res);
      CLOZE_KERNEL(dev, avgpool_backward, p);
    } else {
      p.x = src->ptr<T>();
      p.y = out<T>(res);
      CLOZE_KERNEL(dev, avgpool_forward, p);
    }
    return 0;
  });
  return res;
}

Napi::Value avgpool_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  const PoolGeom g = pool_geom(a, x->shape(), 1, "input");
  const bool include_pad = a.boolean(4, "countIncludePad");
  return avgpool_run(a, x, {g.B, g.C, g.oh, g.ow}, g, include_pad, false);
}

Napi::Value avgpool_backward(const ArgReader& a) {
  NTensor* dy = image(a, 0, "grad");
  const std::vector<int64_t> in = input_shape(a, 1);
  const PoolGeom g = pool_geom(a, in, 2, "inputShape");
  const bool include_pad = a.boolean(5, "countIncludePad");
  a.want_shape(dy, {g.B, g.C, g.oh, g.ow}, "grad");
  return avgpool_run(a, dy, in, g, include_pad, true);
}

Napi::Value global_avgpool(const ArgReader& a, bool backward) {
  NTensor* t = backward ? a.tensor(0, "grad") : image(a, 0, "input");
  std::vector<int64_t> in = t->shape();
  if (backward) {
    in = input_shape(a, 1);
    a.want_float(t, "grad");
    a.want_shape(t, {in[0], in[1]}, "grad");
  }
  PoolGeom g;
  g.B = in[0];
  g.C = in[1];
  g.H = in[2];
  g.W = in[3];
  Napi::Object res = backward ? a.alloc(t->dtype(), in, false) : a.alloc(t->dtype(), {g.B, g.C}, false);
  dispatch(a, t, [&](auto tag, auto dev) {
    using T = decltype(tag);
    PoolParams<T> p;
    p.g = g;
    if (backward) {
      p.dy = t->ptr<T>();
      p.dx = out<T>(res);
      CLOZE_KERNEL(dev, global_avgpool_backward, p);
    } else {
      p.x = t->ptr<T>();
      p.y = out<T>(res);
      CLOZE_KERNEL(dev, global_avgpool_forward, p);
    }
    return 0;
  });
  return res;
}

Napi::Value apply_mask(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  NTensor* m = a.tensor(1, "mask");
  a.want_dtype(m, DType::U8, "mask");
  a.want_ndim(m, 3, 3, "mask");
  const int64_t B = x->dim(0), H = x->dim(2), W = x->dim(3), h = m->dim(1), w = m->dim(2);
  if (m->dim(0) != B || h < 1 || w < 1 || H % h != 0 || W % w != 0)
    a.bad(ErrCode::Shape,
          "a mask [" + std::to_string(B) + ", h, w] whose h and w divide the input's " + std::to_string(H) + " × " +
              std::to_string(W),
          "mask", tensor_desc(m));
  const uint8_t* mask = checked_mask(a, m, m->shape(), "mask");
  Napi::Object y = a.alloc(x->dtype(), x->shape(), false);
  dispatch(a, x, [&](auto t, auto dev) {
    using T = decltype(t);
    ApplyMaskParams<T> p;
    p.B = B;
    p.C = x->dim(1);
    p.H = H;
    p.W = W;
    p.fy = H / h;
    p.fx = W / w;
    p.x = x->ptr<T>();
    p.mask = mask;
    p.y = out<T>(y);
    CLOZE_KERNEL(dev, apply_mask, p);
    return 0;
  });
  return y;
}

Napi::Value upsample_mask(const ArgReader& a) {
  NTensor* m = a.tensor(0, "mask");
  const int64_t f = a.integer(1, "factor", 1, kMaxGeom);
  a.want_dtype(m, DType::U8, "mask");
  a.want_ndim(m, 3, 3, "mask");
  const uint8_t* mask = checked_mask(a, m, m->shape(), "mask");
  const int64_t B = m->dim(0), h = m->dim(1), w = m->dim(2);
  Napi::Object res = a.alloc(DType::U8, {B, h * f, w * f}, false);
  if (a.on_cuda()) {
#ifdef CLOZE_CUDA
    upsample_mask_cuda(mask, B, h, w, f, out<uint8_t>(res));
#else
    no_cuda_kernel(a.op, m->dtype());
#endif
  } else {
    upsample_mask_cpu(mask, B, h, w, f, out<uint8_t>(res));
  }
  return res;
}

}  // namespace

void register_conv(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "conv2d", conv_forward<false>);
  CLOZE_EXPORT(exports, "conv2dBackward", conv_backward<false>);
  CLOZE_EXPORT(exports, "convTranspose2d", conv_forward<true>);
  CLOZE_EXPORT(exports, "convTranspose2dBackward", conv_backward<true>);
  CLOZE_EXPORT(exports, "batchNorm2d", batchnorm_forward);
  CLOZE_EXPORT(exports, "batchNorm2dBackward", batchnorm_backward);
  CLOZE_EXPORT(exports, "maxPool2d", maxpool_forward);
  CLOZE_EXPORT(exports, "maxPool2dBackward", maxpool_backward);
  CLOZE_EXPORT(exports, "avgPool2d", avgpool_forward);
  CLOZE_EXPORT(exports, "avgPool2dBackward", avgpool_backward);
  CLOZE_EXPORT(exports, "globalAvgPool", [](const ArgReader& a) { return global_avgpool(a, false); });
  CLOZE_EXPORT(exports, "globalAvgPoolBackward", [](const ArgReader& a) { return global_avgpool(a, true); });
  CLOZE_EXPORT(exports, "applyMask", apply_mask);
  CLOZE_EXPORT(exports, "upsampleMask", upsample_mask);
}

}  // namespace cloze
