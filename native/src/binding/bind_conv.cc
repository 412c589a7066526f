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
#include <climits>
#include <cmath>

#include "../ops/batchnorm.h"
#include "../ops/conv.h"
#include "../ops/pool.h"
#include "bindings.h"

namespace cloze {

namespace {

constexpr int64_t kMaxGeom = INT64_C(1) << 20;  // strides, paddings and factors beyond this are mistakes

Napi::Value null_or(const ArgReader& a, bool cond, const Napi::Object& o) { return cond ? Napi::Value(o) : a.env().Null(); }

Napi::Array triple(const ArgReader& a, bool n0, const Napi::Object& o0, bool n1, const Napi::Object& o1, bool n2,
                   const Napi::Object& o2) {
  Napi::Array res = Napi::Array::New(a.env(), 3);
  res.Set(0u, null_or(a, n0, o0));
  res.Set(1u, null_or(a, n1, o1));
  res.Set(2u, null_or(a, n2, o2));
  return res;
}

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
  for (int64_t i = 0; i < m->numel(); i++)
    if (v[i] > 1) fail(ErrCode::Value, a.op, expected("values 0 or 1", name, std::to_string(v[i]) + " at position " + std::to_string(i)));
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
  // The transpose folds by accumulation, so its output starts at zero.
  Napi::Object out = NTensor::New(a.env(), x->dtype(), c.out_shape, a.op, Transposed);
  dispatch_float(x->dtype(), a.op, [&](auto t) {
    using T = decltype(t);
    ConvParams<T> p = conv_params<T>(c.g, w);
    p.x = x->ptr<T>();
    p.bias = bias ? bias->ptr<T>() : nullptr;
    p.y = NTensor::Unwrap(out)->ptr<T>();
    if (Transposed)
      conv_transpose2d_forward_cpu<T>(p);
    else
      conv2d_forward_cpu<T>(p);
    return 0;
  });
  return out;
}

template <bool Transposed>
Napi::Value conv_backward(const ArgReader& a) {
  NTensor* dy = a.tensor(0, "grad");
  NTensor* x = image(a, 1, "input");
  NTensor* w = a.tensor(2, "weight");
  const ConvArgs c = conv_args(a, x, w, 3, Transposed);
  const bool nx = a.boolean(6, "needInput"), nw = a.boolean(7, "needWeight"), nb = a.boolean(8, "needBias");
  a.want_same_dtype(x, dy, "grad");
  a.want_shape(dy, c.out_shape, "grad");
  Napi::Object dx, dw, db;
  if (nx) dx = NTensor::New(a.env(), x->dtype(), x->shape(), a.op);
  if (nw) dw = NTensor::New(a.env(), x->dtype(), c.w_shape, a.op);
  if (nb) db = NTensor::New(a.env(), x->dtype(), {c.out_shape[1]}, a.op);
  if (nx || nw || nb)
    dispatch_float(x->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      ConvParams<T> p = conv_params<T>(c.g, w);
      p.x = x->ptr<T>();
      p.dy = dy->ptr<T>();
      p.dx = nx ? NTensor::Unwrap(dx)->ptr<T>() : nullptr;
      p.dw = nw ? NTensor::Unwrap(dw)->ptr<T>() : nullptr;
      p.db = nb ? NTensor::Unwrap(db)->ptr<T>() : nullptr;
      if (Transposed)
        conv_transpose2d_backward_cpu<T>(p);
      else
        conv2d_backward_cpu<T>(p);
      return 0;
    });
  return triple(a, nx, dx, nw, dw, nb, db);
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
  Napi::Object y = NTensor::New(a.env(), x->dtype(), x->shape(), a.op, false);
  Napi::Object mean = NTensor::New(a.env(), x->dtype(), {C}, a.op);
  Napi::Object rstd = NTensor::New(a.env(), x->dtype(), {C}, a.op);
  dispatch_float(x->dtype(), a.op, [&](auto t) {
    using T = decltype(t);
    BatchNormParams<T> p;
    p.B = x->dim(0);
    p.C = C;
    p.S = x->dim(2) * x->dim(3);
    p.x = x->ptr<T>();
    p.w = w ? w->ptr<T>() : nullptr;
    p.b = b ? b->ptr<T>() : nullptr;
    p.mask = mask;
    p.training = training;
    p.momentum = momentum;
    p.eps = eps;
    p.running_mean = rm ? rm->ptr<T>() : nullptr;
    p.running_var = rv ? rv->ptr<T>() : nullptr;
    p.y = NTensor::Unwrap(y)->ptr<T>();
    p.mean = NTensor::Unwrap(mean)->ptr<T>();
    p.rstd = NTensor::Unwrap(rstd)->ptr<T>();
    batchnorm_forward_cpu<T>(p);
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
  const bool nx = a.boolean(7, "needInput"), nw = a.boolean(8, "needWeight"), nb = a.boolean(9, "needBias");
  a.want_same_dtype(x, dy, "grad");
  a.want_shape(dy, x->shape(), "grad");
  const int64_t C = x->dim(1);
  for (NTensor* t : {mean, rstd}) {
    a.want_same_dtype(x, t, t == mean ? "mean" : "rstd");
    a.want_shape(t, {C}, t == mean ? "mean" : "rstd");
  }
  Napi::Object dx, dw, db;
  if (nx) dx = NTensor::New(a.env(), x->dtype(), x->shape(), a.op, false);
  if (nw) dw = NTensor::New(a.env(), x->dtype(), {C}, a.op);
  if (nb) db = NTensor::New(a.env(), x->dtype(), {C}, a.op);
  if (nx || nw || nb)
    dispatch_float(x->dtype(), a.op, [&](auto t) {
      using T = decltype(t);
      BatchNormParams<T> p;
      p.B = x->dim(0);
      p.C = C;
      p.S = x->dim(2) * x->dim(3);
      p.x = x->ptr<T>();
      p.w = w ? w->ptr<T>() : nullptr;
      p.mask = mask;
      p.training = training;
      p.mean = mean->ptr<T>();
      p.rstd = rstd->ptr<T>();
      p.dy = dy->ptr<T>();
      p.dx = nx ? NTensor::Unwrap(dx)->ptr<T>() : nullptr;
      p.dw = nw ? NTensor::Unwrap(dw)->ptr<T>() : nullptr;
      p.db = nb ? NTensor::Unwrap(db)->ptr<T>() : nullptr;
      batchnorm_backward_cpu<T>(p);
      return 0;
    });
  return triple(a, nx, dx, nw, dw, nb, db);
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
  Napi::Object y = NTensor::New(a.env(), x->dtype(), {g.B, g.C, g.oh, g.ow}, a.op, false);
  Napi::Object am = NTensor::New(a.env(), DType::I32, {g.B, g.C, g.oh, g.ow}, a.op, false);
  dispatch_float(x->dtype(), a.op, [&](auto t) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g = g;
    p.x = x->ptr<T>();
    p.y = NTensor::Unwrap(y)->ptr<T>();
    p.argmax = NTensor::Unwrap(am)->ptr<int32_t>();
    maxpool_forward_cpu<T>(p);
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
  for (int64_t i = 0; i < am->numel(); i++)
    if (idx[i] < 0 || idx[i] >= S)
      fail(ErrCode::Index, a.op,
           expected("indices in [0, " + std::to_string(S) + ")", "argmax", std::to_string(idx[i]) + " at position " + std::to_string(i)));
  Napi::Object dx = NTensor::New(a.env(), dy->dtype(), in, a.op);
  dispatch_float(dy->dtype(), a.op, [&](auto t) {
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
    p.dx = NTensor::Unwrap(dx)->ptr<T>();
    maxpool_backward_cpu<T>(p);
    return 0;
  });
  return dx;
}

Napi::Value avgpool_forward(const ArgReader& a) {
  NTensor* x = image(a, 0, "input");
  const PoolGeom g = pool_geom(a, x->shape(), 1, "input");
  const bool include_pad = a.boolean(4, "countIncludePad");
  Napi::Object y = NTensor::New(a.env(), x->dtype(), {g.B, g.C, g.oh, g.ow}, a.op, false);
  dispatch_float(x->dtype(), a.op, [&](auto t) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g = g;
    p.count_include_pad = include_pad;
    p.x = x->ptr<T>();
    p.y = NTensor::Unwrap(y)->ptr<T>();
    avgpool_forward_cpu<T>(p);
    return 0;
  });
  return y;
}

Napi::Value avgpool_backward(const ArgReader& a) {
  NTensor* dy = image(a, 0, "grad");
  const std::vector<int64_t> in = input_shape(a, 1);
  const PoolGeom g = pool_geom(a, in, 2, "inputShape");
  const bool include_pad = a.boolean(5, "countIncludePad");
  a.want_shape(dy, {g.B, g.C, g.oh, g.ow}, "grad");
  Napi::Object dx = NTensor::New(a.env(), dy->dtype(), in, a.op);
  dispatch_float(dy->dtype(), a.op, [&](auto t) {
    using T = decltype(t);
    PoolParams<T> p;
    p.g = g;
    p.count_include_pad = include_pad;
    p.dy = dy->ptr<T>();
    p.dx = NTensor::Unwrap(dx)->ptr<T>();
    avgpool_backward_cpu<T>(p);
    return 0;
  });
  return dx;
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
  Napi::Object out = backward ? NTensor::New(a.env(), t->dtype(), in, a.op, false)
                              : NTensor::New(a.env(), t->dtype(), {g.B, g.C}, a.op, false);
  dispatch_float(t->dtype(), a.op, [&](auto tag) {
    using T = decltype(tag);
    PoolParams<T> p;
    p.g = g;
    if (backward) {
      p.dy = t->ptr<T>();
      p.dx = NTensor::Unwrap(out)->ptr<T>();
      global_avgpool_backward_cpu<T>(p);
    } else {
      p.x = t->ptr<T>();
      p.y = NTensor::Unwrap(out)->ptr<T>();
      global_avgpool_forward_cpu<T>(p);
    }
    return 0;
  });
  return out;
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
  Napi::Object y = NTensor::New(a.env(), x->dtype(), x->shape(), a.op, false);
  dispatch_float(x->dtype(), a.op, [&](auto t) {
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
    p.y = NTensor::Unwrap(y)->ptr<T>();
    apply_mask_cpu<T>(p);
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
  Napi::Object out = NTensor::New(a.env(), DType::U8, {B, h * f, w * f}, a.op, false);
  upsample_mask_cpu(mask, B, h, w, f, NTensor::Unwrap(out)->ptr<uint8_t>());
  return out;
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
