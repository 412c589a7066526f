// Image batch binding: imageBatch(images uint8 [N, C, H, W], indices int32 [B],
// boxes [B, 4], flip uint8 [B], mean [C], std [C], outH, outW) -> [B, C, outH, outW].
// boxes, mean and std share one float dtype, which is the output's.
// On CUDA every argument lives on the device (the image set included, so the
// gather, crop-resize, flip and normalisation run in one kernel); the small
// tensors (indices, boxes, flip, mean, std) are copied to the host to be
// checked as on the CPU, which waits for the stream.
#include <cmath>
#include <sstream>
#include <string>

#include "../ops/image_aug.h"
#include "bindings.h"
#include "host_view.h"

namespace cloze {

namespace {

constexpr int64_t kMaxOutSide = 1 << 15;

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

template <typename T>
void check_values(const ArgReader& a, const NTensor* idx, const NTensor* boxes, const NTensor* flip, const NTensor* mean,
                  const NTensor* stdv, int64_t N) {
  const int64_t B = idx->dim(0), C = mean->dim(0);
  const HostView<int32_t> pi(idx, a.op);
  const HostView<T> pb(boxes, a.op);
  const HostView<uint8_t> pf(flip, a.op);
  for (int64_t b = 0; b < B; b++) {
    if (pi[b] < 0 || pi[b] >= N)
      fail(ErrCode::Index, a.op,
           expected("image indices in [0, " + std::to_string(N) + ")", "indices",
                    std::to_string(pi[b]) + " at position " + std::to_string(b)));
    const double bx[4] = {host_value(pb[b * 4]), host_value(pb[b * 4 + 1]), host_value(pb[b * 4 + 2]),
                          host_value(pb[b * 4 + 3])};
    const bool finite = std::isfinite(bx[0]) && std::isfinite(bx[1]) && std::isfinite(bx[2]) && std::isfinite(bx[3]);
    if (!finite || !(bx[2] > 0) || !(bx[3] > 0))
      fail(ErrCode::Value, a.op,
           expected("finite boxes (y0, x0, h, w) with h > 0 and w > 0", "boxes",
                    "[" + num(bx[0]) + ", " + num(bx[1]) + ", " + num(bx[2]) + ", " + num(bx[3]) + "] at row " +
                        std::to_string(b)));
    if (pf[b] > 1)
      fail(ErrCode::Value, a.op, expected("values 0 or 1", "flip", std::to_string(pf[b]) + " at position " + std::to_string(b)));
  }
  const HostView<T> hm(mean, a.op), hs(stdv, a.op);
  for (int64_t c = 0; c < C; c++) {
    const double m = host_value(hm[c]), s = host_value(hs[c]);
    if (!std::isfinite(m))
      fail(ErrCode::Value, a.op, expected("finite values", "mean", num(m) + " at channel " + std::to_string(c)));
    if (!std::isfinite(s) || !(s > 0))
      fail(ErrCode::Value, a.op, expected("finite positive values", "std", num(s) + " at channel " + std::to_string(c)));
  }
}

}  // namespace

void register_image_aug(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "imageBatch", [](const ArgReader& a) -> Napi::Value {
    NTensor* images = a.tensor(0, "images");
    NTensor* idx = a.tensor(1, "indices");
    NTensor* boxes = a.tensor(2, "boxes");
    NTensor* flip = a.tensor(3, "flip");
    NTensor* mean = a.tensor(4, "mean");
    NTensor* stdv = a.tensor(5, "std");
    a.want_dtype(images, DType::U8, "images");
    a.want_ndim(images, 4, 4, "images");
    const int64_t N = images->dim(0), C = images->dim(1), H = images->dim(2), W = images->dim(3);
    if (C < 1 || H < 1 || W < 1)
      a.bad(ErrCode::Shape, "a [N, C, H, W] tensor with C, H, W >= 1", "images", tensor_desc(images));
    a.want_dtype(idx, DType::I32, "indices");
    a.want_ndim(idx, 1, 1, "indices");
    const int64_t B = idx->dim(0);
    a.want_float(boxes, "boxes");
    a.want_shape(boxes, {B, 4}, "boxes");
    a.want_dtype(flip, DType::U8, "flip");
    a.want_shape(flip, {B}, "flip");
    a.want_same_dtype(boxes, mean, "mean");
    a.want_shape(mean, {C}, "mean");
    a.want_same_dtype(boxes, stdv, "std");
    a.want_shape(stdv, {C}, "std");
    const int64_t OH = a.integer(6, "outH", 1, kMaxOutSide);
    const int64_t OW = a.integer(7, "outW", 1, kMaxOutSide);

    Napi::Object out = a.alloc(boxes->dtype(), {B, C, OH, OW}, false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, boxes, [&](auto t, auto dev) {
      using T = decltype(t);
      check_values<T>(a, idx, boxes, flip, mean, stdv, N);
      ImageBatchParams<T> p;
      p.N = N;
      p.C = C;
      p.H = H;
      p.W = W;
      p.B = B;
      p.OH = OH;
      p.OW = OW;
      p.images = images->ptr<uint8_t>();
      p.indices = idx->ptr<int32_t>();
      p.boxes = boxes->ptr<T>();
      p.flip = flip->ptr<uint8_t>();
      p.mean = mean->ptr<T>();
      p.std = stdv->ptr<T>();
      p.out = o->ptr<T>();
      CLOZE_KERNEL(dev, image_batch, p);
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
