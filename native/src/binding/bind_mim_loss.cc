// Masked-image-modeling losses: masked patch loss (MAE/SimMIM), masked cosine
// (MTO's data singularity) and HPM's pairwise ranking loss, with backwards.
// On CUDA the mask (and, for the ranking loss, the target) is copied to the host (a sync) to be
// checked and counted, as the CPU does: the counts are returned to JS and scale the gradients. The loss
// itself stays on the device (a 0-d tensor of the input's dtype, as on the CPU).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "../ops/mim_loss.h"
#include "bindings.h"
#include "host_view.h"

namespace cloze {

namespace {

// What a checked mask counts: masked tokens and images with both masked and
// visible tokens (maskedCosine's terms). Backwards recount them from the mask
// rather than trust a count passed back.
struct MaskCounts {
  int64_t masked = 0, mixed_images = 0;
};

// Checks mask uint8 [B, L] holding only 0 and 1, and counts it.
MaskCounts checked_mask(const ArgReader& a, NTensor* m, int64_t B, int64_t L) {
  a.want_dtype(m, DType::U8, "mask");
  a.want_shape(m, {B, L}, "mask");
  const HostView<uint8_t> v(m, a.op);
  MaskCounts c;
  for (int64_t b = 0; b < B; b++) {
    int64_t ones = 0;
    for (int64_t i = b * L; i < (b + 1) * L; i++) {
      if (v[i] > 1) a.bad(ErrCode::Value, "mask values 0 or 1", "mask", std::to_string(v[i]) + " at position " + std::to_string(i));
      ones += v[i];
    }
    c.masked += ones;
    c.mixed_images += ones > 0 && ones < L;
  }
  return c;
}

struct PatchLossArgs {
  NTensor *pred = nullptr, *target = nullptr, *mask = nullptr;
  int64_t B = 0, L = 0, P = 0, masked = 0;
  PatchLossKind kind = PatchLossKind::MSE;
  bool norm_pix = false;
  double eps = 1e-6;
};

// Reads (pred [B, L, P], target [B, L, P], mask [B, L], {kind, normPix, eps}) from argument `first`.
PatchLossArgs patch_loss_args(const ArgReader& a, size_t first) {
  PatchLossArgs s;
  s.pred = a.tensor(first, "pred");
  s.target = a.tensor(first + 1, "target");
  s.mask = a.tensor(first + 2, "mask");
  a.want_float(s.pred, "pred");
  a.want_ndim(s.pred, 3, 3, "pred");
  s.B = s.pred->dim(0);
  s.L = s.pred->dim(1);
  s.P = s.pred->dim(2);
  if (s.P == 0) a.bad(ErrCode::Shape, "a non-empty last dimension (pixels per patch)", "pred", tensor_desc(s.pred));
  a.want_same_dtype(s.pred, s.target, "target");
  a.want_shape(s.target, s.pred->shape(), "target");
  s.masked = checked_mask(a, s.mask, s.B, s.L).masked;
  Napi::Object o = a.options(first + 3);
  Napi::Value kind = o.Get("kind");
  if (!kind.IsUndefined() && !kind.IsNull()) {
    const std::string k = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : std::string();
    if (k == "l1")
      s.kind = PatchLossKind::L1;
    else if (k != "mse")
      a.bad(ErrCode::Value, "'mse' or 'l1'", "kind", a.describe(kind));
  }
  s.norm_pix = a.opt_bool(o, "normPix", false);
  s.eps = a.opt_number(o, "eps", 1e-6);
  if (!(s.eps > 0 && std::isfinite(s.eps))) a.bad(ErrCode::Value, "a finite eps > 0", "eps", a.describe(o.Get("eps")));
  if (s.norm_pix && s.P < 2)
    a.bad(ErrCode::Shape, "at least 2 pixels per patch with normPix (the variance is unbiased)", "pred", tensor_desc(s.pred));
  return s;
}

template <typename T>
MaskedPatchLossParams<T> patch_params(const PatchLossArgs& s) {
  MaskedPatchLossParams<T> p;
  p.B = s.B;
  p.L = s.L;
  p.P = s.P;
  p.kind = s.kind;
  p.norm_pix = s.norm_pix;
  p.eps = s.eps;
  p.pred = s.pred->ptr<T>();
  p.target = s.target->ptr<T>();
  p.mask = s.mask->ptr<uint8_t>();
  return p;
}

// A float tensor of the given rank, named `name`.
NTensor* float_arg(const ArgReader& a, size_t i, const char* name, int64_t rank) {
  NTensor* t = a.tensor(i, name);
  a.want_float(t, name);
  a.want_ndim(t, rank, rank, name);
  return t;
}

struct CosineArgs {
  NTensor *x = nullptr, *mask = nullptr;
  double eps = 1e-8;
  int64_t images = 0;
};

// Reads (x [B, L, D], mask [B, L], eps) from argument `first`.
CosineArgs cosine_args(const ArgReader& a, size_t first) {
  CosineArgs s;
  s.x = float_arg(a, first, "x", 3);
  if (s.x->dim(2) == 0) a.bad(ErrCode::Shape, "a non-empty last dimension", "x", tensor_desc(s.x));
  s.mask = a.tensor(first + 1, "mask");
  s.images = checked_mask(a, s.mask, s.x->dim(0), s.x->dim(1)).mixed_images;
  s.eps = a.number(first + 2, "eps");
  if (!(s.eps > 0 && std::isfinite(s.eps))) a.bad(ErrCode::Value, "a finite eps > 0", "eps", a.describe(a.info[first + 2]));
  return s;
}

template <typename T>
MaskedCosineParams<T> cosine_params(const CosineArgs& s) {
  MaskedCosineParams<T> p;
  p.B = s.x->dim(0);
  p.L = s.x->dim(1);
  p.D = s.x->dim(2);
  p.eps = s.eps;
  p.x = s.x->ptr<T>();
  p.mask = s.mask->ptr<uint8_t>();
  return p;
}

struct RankingArgs {
  NTensor *pred = nullptr, *target = nullptr, *mask = nullptr;
};

// Reads (pred [B, L], target [B, L], mask [B, L]) from argument `first`.
RankingArgs ranking_args(const ArgReader& a, size_t first) {
  RankingArgs s;
  s.pred = float_arg(a, first, "pred", 2);
  s.target = a.tensor(first + 1, "target");
  a.want_same_dtype(s.pred, s.target, "target");
  a.want_shape(s.target, s.pred->shape(), "target");
  s.mask = a.tensor(first + 2, "mask");
  checked_mask(a, s.mask, s.pred->dim(0), s.pred->dim(1));
  return s;
}

// rankingLoss's terms: the masked pairs of each image whose targets differ (t_i < t_j or t_i > t_j).
// Per image: M(M − 1)/2 pairs of its M comparable targets less those within groups of equal
// ones; a NaN target compares with nothing, as in the kernels. Read in the kernels' precision
// (float32 and bf16 widen exactly), so the kernels skip exactly the pairs left out here.
template <typename T>
int64_t untied_pairs(const ArgReader& a, const RankingArgs& s) {
  const int64_t B = s.pred->dim(0), L = s.pred->dim(1);
  const HostView<uint8_t> m(s.mask, a.op);
  const HostView<T> t(s.target, a.op);
  std::vector<double> v;
  int64_t pairs = 0;
  for (int64_t b = 0; b < B; b++) {
    v.clear();
    for (int64_t i = b * L; i < (b + 1) * L; i++)
      if (m[i] && !std::isnan(host_value(t[i]))) v.push_back(host_value(t[i]));
    std::sort(v.begin(), v.end());
    const int64_t M = static_cast<int64_t>(v.size());
    pairs += M * (M - 1) / 2;
    for (int64_t i = 0, j = 0; i < M; i = j) {
      while (j < M && v[j] == v[i]) j++;
      pairs -= (j - i) * (j - i - 1) / 2;
    }
  }
  return pairs;
}

template <typename T>
RankingLossParams<T> ranking_params(const RankingArgs& s) {
  RankingLossParams<T> p;
  p.B = s.pred->dim(0);
  p.L = s.pred->dim(1);
  p.pred = s.pred->ptr<T>();
  p.target = s.target->ptr<T>();
  p.mask = s.mask->ptr<uint8_t>();
  return p;
}

double mean_scale(double grad, int64_t count) { return count > 0 ? grad / static_cast<double>(count) : 0.0; }

Napi::Object loss_and_count(const ArgReader& a, const Napi::Object& loss, int64_t count) {
  Napi::Object res = Napi::Object::New(a.env());
  res.Set("loss", loss);
  res.Set("count", Napi::Number::New(a.env(), static_cast<double>(count)));
  return res;
}

Napi::Object loss_and_count(const ArgReader& a, DType dt, double total, int64_t count) {
  return loss_and_count(a, scalar_tensor(a, dt, mean_scale(total, count)), count);
}

// Runs a loss forward: the CPU kernel returns the sum and the binding divides;
// the CUDA kernel writes loss = sum · (1/count) into a 0-d device tensor.
template <typename Dev, typename P, typename CpuF, typename CudaF>
Napi::Object run_loss(const ArgReader& a, DType dt, int64_t count, P& p, CpuF&& cpu, CudaF&& cuda) {
  if constexpr (std::decay_t<Dev>::cuda) {
    using T = std::remove_pointer_t<decltype(p.loss)>;
    Napi::Object loss = a.alloc(dt, {}, false);
    p.loss = NTensor::Unwrap(loss)->ptr<T>();
    p.loss_scale = mean_scale(1.0, count);
    cuda(p);
    return loss_and_count(a, loss, count);
  } else {
    return loss_and_count(a, dt, cpu(p), count);
  }
}

}  // namespace

void register_mim_loss(Napi::Env env, Napi::Object exports) {
  (void)env;
  // maskedPatchLoss(pred [B, L, P], target [B, L, P], mask u8 [B, L], {kind, normPix, eps})
  //   -> { loss: 0-d mean over masked patches, perPatch: [B, L] every patch, count: #masked }
  CLOZE_EXPORT(exports, "maskedPatchLoss", [](const ArgReader& a) -> Napi::Value {
    const PatchLossArgs s = patch_loss_args(a, 0);
    Napi::Object per = a.alloc(s.pred->dtype(), {s.B, s.L}, false);
    Napi::Object res = dispatch(a, s.pred, [&](auto t, auto dev) {
      using T = decltype(t);
      MaskedPatchLossParams<T> p = patch_params<T>(s);
      p.per_patch = NTensor::Unwrap(per)->ptr<T>();
      return run_loss<decltype(dev)>(
          a, s.pred->dtype(), s.masked, p, [](const auto& q) { return masked_patch_loss_forward_cpu(q); },
          [](const auto& q) { masked_patch_loss_forward_cuda(q); });
    });
    res.Set("perPatch", per);
    return res;
  });

  // maskedPatchLossBackward(gradLoss, pred, target, mask, options, needPred, needTarget) -> [dpred | null, dtarget | null]
  CLOZE_EXPORT(exports, "maskedPatchLossBackward", [](const ArgReader& a) -> Napi::Value {
    const double gl = a.number(0, "gradLoss");
    const PatchLossArgs s = patch_loss_args(a, 1);
    const bool np = a.boolean(5, "needPred"), nt = a.boolean(6, "needTarget");
    Napi::Object dp, dt;
    if (np) dp = a.alloc(s.pred->dtype(), s.pred->shape(), false);
    if (nt) dt = a.alloc(s.pred->dtype(), s.pred->shape(), false);
    if (np || nt)
      dispatch(a, s.pred, [&](auto t, auto dev) {
        using T = decltype(t);
        MaskedPatchLossParams<T> p = patch_params<T>(s);
        p.grad_scale = mean_scale(gl, s.masked);
        p.dpred = np ? NTensor::Unwrap(dp)->ptr<T>() : nullptr;
        p.dtarget = nt ? NTensor::Unwrap(dt)->ptr<T>() : nullptr;
        CLOZE_KERNEL(dev, masked_patch_loss_backward, p);
        return 0;
      });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, np ? Napi::Value(dp) : a.env().Null());
    res.Set(1u, nt ? Napi::Value(dt) : a.env().Null());
    return res;
  });

  // maskedCosine(x [B, L, D], mask u8 [B, L], eps) -> { loss: 0-d mean over images with both kinds, count: #images }
  CLOZE_EXPORT(exports, "maskedCosine", [](const ArgReader& a) -> Napi::Value {
    const CosineArgs s = cosine_args(a, 0);
    return dispatch(a, s.x, [&](auto t, auto dev) {
      MaskedCosineParams<decltype(t)> p = cosine_params<decltype(t)>(s);
      return run_loss<decltype(dev)>(
          a, s.x->dtype(), s.images, p, [](const auto& q) { return masked_cosine_forward_cpu(q); },
          [](const auto& q) { masked_cosine_forward_cuda(q); });
    });
  });

  // maskedCosineBackward(gradLoss, x, mask, eps) -> dx [B, L, D]
  CLOZE_EXPORT(exports, "maskedCosineBackward", [](const ArgReader& a) -> Napi::Value {
    const double gl = a.number(0, "gradLoss");
    const CosineArgs s = cosine_args(a, 1);
    Napi::Object dx = a.alloc(s.x->dtype(), s.x->shape(), false);
    dispatch(a, s.x, [&](auto t, auto dev) {
      using T = decltype(t);
      MaskedCosineParams<T> p = cosine_params<T>(s);
      p.grad_scale = mean_scale(gl, s.images);
      p.dx = NTensor::Unwrap(dx)->ptr<T>();
      CLOZE_KERNEL(dev, masked_cosine_backward, p);
      return 0;
    });
    return dx;
  });

  // rankingLoss(pred [B, L], target [B, L], mask u8 [B, L])
  //   -> { loss: 0-d mean over the untied masked pairs, count: #untied pairs }
  CLOZE_EXPORT(exports, "rankingLoss", [](const ArgReader& a) -> Napi::Value {
    const RankingArgs s = ranking_args(a, 0);
    return dispatch(a, s.pred, [&](auto t, auto dev) {
      RankingLossParams<decltype(t)> p = ranking_params<decltype(t)>(s);
      return run_loss<decltype(dev)>(
          a, s.pred->dtype(), untied_pairs<decltype(t)>(a, s), p, [](const auto& q) { return ranking_loss_forward_cpu(q); },
          [](const auto& q) { ranking_loss_forward_cuda(q); });
    });
  });

  // rankingLossBackward(gradLoss, pred, target, mask) -> dpred [B, L]
  CLOZE_EXPORT(exports, "rankingLossBackward", [](const ArgReader& a) -> Napi::Value {
    const double gl = a.number(0, "gradLoss");
    const RankingArgs s = ranking_args(a, 1);
    Napi::Object dp = a.alloc(s.pred->dtype(), s.pred->shape(), false);
    dispatch(a, s.pred, [&](auto t, auto dev) {
      using T = decltype(t);
      RankingLossParams<T> p = ranking_params<T>(s);
      p.grad_scale = mean_scale(gl, untied_pairs<T>(a, s));
      p.dpred = NTensor::Unwrap(dp)->ptr<T>();
      CLOZE_KERNEL(dev, ranking_loss_backward, p);
      return 0;
    });
    return dp;
  });
}

}  // namespace cloze
