// Pooling and mask bindings, NCHW:
//   maxPool2d(x, kernel, stride, padding) -> [y, argmax]; maxPool2dBackward(dy, argmax, inputShape) -> dx
//   avgPool2d(x, kernel, stride, padding, countIncludePad) -> y
//   avgPool2dBackward(dy, inputShape, kernel, stride, padding, countIncludePad) -> dx
//   globalAvgPool(x) -> [B, C]; globalAvgPoolBackward(dy, inputShape) -> dx
//   applyMask(x, mask) -> y; upsampleMask(mask, factor) -> mask
// Every op runs on the device of its first tensor argument (float32/float64 on
// the CPU, float32/bfloat16 on CUDA).
#include <climits>

#include "../ops/conv.h"  // conv_out_size
#include "../ops/pool.h"
#include "bindings.h"
#include "image_args.h"

namespace cloze {

using namespace image_args;

namespace {

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
  // An empty plane with padding would pass the check below and give windows that lie wholly in the padding: the
  // max pool then read its first pixel out of bounds (a crash for wide planes) and the average divided 0 by 0.
  if (g.H == 0 || g.W == 0)
    a.bad(ErrCode::Shape, "an input plane of at least 1 × 1 pixels", input_name, shape_str(in));
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

void register_pool(Napi::Env env, Napi::Object exports) {
  (void)env;
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
