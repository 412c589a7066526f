// Masked-image-modeling token bindings (ops/mim_tokens.h):
//   maskFromScores(scores [B, L], keep) -> { idsKeep, idsRestore, mask }
//   uniformNoise(shape, seed, step, low, high) -> float32
//   assembleTokens(x [B, Ls, D], index int32 [B, Lo], tokens [T, D] | null) -> [B, Lo, D]
//   assembleTokensBackward(dout, index, Ls, T, needX, needTokens) -> [dx | null, dtokens | null]
//   restoreIndex(idsRestore int32 [B, L], keep, cls) -> int32 [B, L (+1)]
//   patchify(images [B, C, H, W], p) / unpatchify(patches [B, L, p·p·C], p, C, H, W)
//   tokenMean(x [B, L, D]) -> [B, D]; tokenMeanBackward(g [B, D], L) -> [B, L, D]
// Outputs live on the inputs' device (uniformNoise takes a device argument).
// Index tensors are validated on the host as on the CPU; for CUDA tensors that
// means a device-to-host copy (a sync) of the index, idsRestore or scores.
#include <cmath>
#include <string>

#include "../ops/mim_tokens.h"
#include "bindings.h"
#include "host_view.h"

namespace cloze {

namespace {

constexpr int64_t kMaxI32 = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxSafe = int64_t(1) << 53;

std::string at(int64_t b, int64_t j) { return " at (b, j) = (" + std::to_string(b) + ", " + std::to_string(j) + ")"; }

// Every index[b, j] must lie in [−T, Ls); the first one that does not is reported.
void check_assemble_index(const ArgReader& a, NTensor* index, int64_t Ls, int64_t T) {
  const HostView<int32_t> ix(index, a.op);
  const int64_t Lo = index->dim(1), n = index->numel();
  for (int64_t r = 0; r < n; r++) {
    const int64_t v = ix[r];
    if (v >= -T && v < Ls) continue;
    const std::string what = v < 0 && T == 0
                                 ? "indices in [0, " + std::to_string(Ls) + ") (no tokens, so no negative index)"
                                 : "indices in [" + std::to_string(-T) + ", " + std::to_string(Ls) + ")";
    fail(ErrCode::Index, a.op, expected(what, "index", std::to_string(v) + at(r / Lo, r % Lo)));
  }
}

// index int32 [B, Lo] for a batch of B.
void check_index_tensor(const ArgReader& a, NTensor* index, int64_t B) {
  a.want_dtype(index, DType::I32, "index");
  a.want_ndim(index, 2, 2, "index");
  if (index->dim(0) != B)
    a.bad(ErrCode::Shape, "shape [" + std::to_string(B) + ", Lo] (the batch of the input)", "index", tensor_desc(index));
}

// Checks p against the image sides and returns p.
int64_t patch_size(const ArgReader& a, size_t arg, int64_t C, int64_t H, int64_t W, const std::string& sides) {
  const int64_t P = a.integer(arg, "patchSize", 1, kMaxI32);
  if (H % P != 0 || W % P != 0)
    a.bad(ErrCode::Shape, "a patch size that divides the image sides " + sides, "patchSize", std::to_string(P));
  if (static_cast<double>(P) * static_cast<double>(P) * static_cast<double>(C) > static_cast<double>(kMaxI32))
    a.bad(ErrCode::Shape, "a patch of fewer than 2^31 values (p·p·C)", "patchSize", std::to_string(P));
  return P;
}

template <typename T>
PatchifyParams<T> patch_params(int64_t B, int64_t C, int64_t H, int64_t W, int64_t P, NTensor* images, NTensor* patches) {
  PatchifyParams<T> p;
  p.B = B;
  p.C = C;
  p.H = H;
  p.W = W;
  p.P = P;
  p.images = images->ptr<T>();
  p.patches = patches->ptr<T>();
  return p;
}

template <typename V>
AssembleTokensParams<V> assemble_params(int64_t B, int64_t Ls, int64_t Lo, int64_t D, int64_t T, NTensor* index) {
  AssembleTokensParams<V> p;
  p.B = B;
  p.Ls = Ls;
  p.Lo = Lo;
  p.D = D;
  p.num_tokens = T;
  p.index = index->ptr<int32_t>();
  return p;
}

template <typename T>
TokenMeanParams<T> token_mean_params(int64_t B, int64_t L, int64_t D) {
  TokenMeanParams<T> p;
  p.B = B;
  p.L = L;
  p.D = D;
  return p;
}

// uniformNoise's optional device ('cpu' when absent): it has no tensor argument to take one from.
Device noise_device(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  if (v.IsUndefined() || v.IsNull()) return Device::CPU;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  a.bad(ErrCode::Device, "'cpu' or 'cuda'", "device", a.describe(v));
}

void register_masking(Napi::Object exports) {
  CLOZE_EXPORT(exports, "maskFromScores", [](const ArgReader& a) -> Napi::Value {
    NTensor* s = a.tensor(0, "scores");
    a.want_float(s, "scores");
    a.want_ndim(s, 2, 2, "scores");
    const int64_t B = s->dim(0), L = s->dim(1);
    if (L > kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 tokens per row", "scores", tensor_desc(s));
    const int64_t K = a.integer(1, "keep", 0, L);
    Napi::Object keep = a.alloc(DType::I32, {B, K}, false);
    Napi::Object restore = a.alloc(DType::I32, {B, L}, false);
    Napi::Object mask = a.alloc(DType::U8, {B, L}, false);
    dispatch(a, s, [&](auto t, auto dev) {
      using T = decltype(t);
      // NaN has no place in a sort order; the kernels' comparators rely on its absence.
      const HostView<T> sc(s, a.op);
      for (int64_t i = 0; i < B * L; i++)
        if (std::isnan(host_value(sc[i])))
          fail(ErrCode::Value, a.op, expected("scores without NaN", "scores", "NaN" + at(i / L, i % L)));
      MaskFromScoresParams<T> p;
      p.B = B;
      p.L = L;
      p.K = K;
      p.scores = s->ptr<T>();
      p.ids_keep = NTensor::Unwrap(keep)->ptr<int32_t>();
      p.ids_restore = NTensor::Unwrap(restore)->ptr<int32_t>();
      p.mask = NTensor::Unwrap(mask)->ptr<uint8_t>();
      CLOZE_KERNEL(dev, mask_from_scores, p);
      return 0;
    });
    Napi::Object res = Napi::Object::New(a.env());
    res.Set("idsKeep", keep);
    res.Set("idsRestore", restore);
    res.Set("mask", mask);
    return res;
  });

  CLOZE_EXPORT(exports, "uniformNoise", [](const ArgReader& a) -> Napi::Value {
    const std::vector<int64_t> shape = a.shape(0, "shape");
    UniformNoiseParams p;
    p.seed = static_cast<uint64_t>(a.integer(1, "seed", 0, kMaxSafe));
    p.step = static_cast<uint64_t>(a.integer(2, "step", 0, kMaxSafe));
    p.low = a.number(3, "low");
    p.high = a.number(4, "high");
    if (!std::isfinite(p.low)) a.bad(ErrCode::Value, "a finite number", "low", a.describe(a.info[3]));
    if (!std::isfinite(p.high) || !(p.high > p.low))
      a.bad(ErrCode::Value, "a finite number above low (" + a.describe(a.info[3]) + ")", "high", a.describe(a.info[4]));
    const Device dev = noise_device(a, 5);
    Napi::Object out = NTensor::New(a.env(), DType::F32, shape, a.op, false, dev);
    NTensor* o = NTensor::Unwrap(out);
    p.n = o->numel();
    p.out = o->ptr<float>();
    if (dev == Device::CUDA) {
#ifdef CLOZE_CUDA
      uniform_noise_cuda(p);
#else
      no_cuda_kernel(a.op, DType::F32);
#endif
    } else {
      uniform_noise_cpu(p);
    }
    return out;
  });

  CLOZE_EXPORT(exports, "restoreIndex", [](const ArgReader& a) -> Napi::Value {
    NTensor* r = a.tensor(0, "idsRestore");
    a.want_dtype(r, DType::I32, "idsRestore");
    a.want_ndim(r, 2, 2, "idsRestore");
    const int64_t B = r->dim(0), L = r->dim(1);
    if (L >= kMaxI32) a.bad(ErrCode::Shape, "fewer than 2^31 - 1 tokens per row", "idsRestore", tensor_desc(r));
    const int64_t K = a.integer(1, "keep", 0, L);
    const bool cls = a.boolean(2, "cls");
    const HostView<int32_t> ids(r, a.op);
    for (int64_t i = 0; i < B * L; i++)
      if (ids[i] < 0 || ids[i] >= L)
        fail(ErrCode::Index, a.op,
             expected("indices in [0, " + std::to_string(L) + ")", "idsRestore", std::to_string(ids[i]) + at(i / L, i % L)));
    Napi::Object out = a.alloc(DType::I32, {B, L + (cls ? 1 : 0)}, false);
    RestoreIndexParams p;
    p.B = B;
    p.L = L;
    p.K = K;
    p.cls = cls;
    p.ids_restore = r->ptr<int32_t>();
    p.out = NTensor::Unwrap(out)->ptr<int32_t>();
    if (a.on_cuda()) {
#ifdef CLOZE_CUDA
      restore_index_cuda(p);
#else
      no_cuda_kernel(a.op, DType::I32);
#endif
    } else {
      restore_index_cpu(p);
    }
    return out;
  });
}

void register_assemble(Napi::Object exports) {
  CLOZE_EXPORT(exports, "assembleTokens", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    NTensor* index = a.tensor(1, "index");
    NTensor* tokens = a.tensor_or_null(2, "tokens");
    a.want_float(x, "input");
    a.want_ndim(x, 3, 3, "input");
    const int64_t B = x->dim(0), Ls = x->dim(1), D = x->dim(2);
    check_index_tensor(a, index, B);
    int64_t T = 0;
    if (tokens) {
      a.want_same_dtype(x, tokens, "tokens");
      a.want_ndim(tokens, 2, 2, "tokens");
      if (tokens->dim(1) != D)
        a.bad(ErrCode::Shape, "shape [T, " + std::to_string(D) + "] (the width of the input)", "tokens", tensor_desc(tokens));
      T = tokens->dim(0);
    }
    check_assemble_index(a, index, Ls, T);
    const int64_t Lo = index->dim(1);
    Napi::Object out = a.alloc(x->dtype(), {B, Lo, D}, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using V = decltype(t);
      AssembleTokensParams<V> p = assemble_params<V>(B, Ls, Lo, D, T, index);
      p.x = x->ptr<V>();
      p.tokens = tokens ? tokens->ptr<V>() : nullptr;
      p.out = NTensor::Unwrap(out)->ptr<V>();
      CLOZE_KERNEL(dev, assemble_tokens_forward, p);
      return 0;
    });
    return out;
  });

  CLOZE_EXPORT(exports, "assembleTokensBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* index = a.tensor(1, "index");
    a.want_float(g, "grad");
    a.want_ndim(g, 3, 3, "grad");
    const int64_t B = g->dim(0), Lo = g->dim(1), D = g->dim(2);
    check_index_tensor(a, index, B);
    if (index->dim(1) != Lo) a.bad(ErrCode::Shape, "shape " + shape_str({B, Lo}), "index", tensor_desc(index));
    const int64_t Ls = a.integer(2, "sourceTokens", 0, kMaxI32);
    const int64_t T = a.integer(3, "numTokens", 0, kMaxI32);
    const bool need_x = a.boolean(4, "needInput");
    const bool need_tokens = a.boolean(5, "needTokens");
    check_assemble_index(a, index, Ls, T);
    Napi::Object dx, dt;
    if (need_x) dx = a.alloc(g->dtype(), {B, Ls, D}, true);
    if (need_tokens) dt = a.alloc(g->dtype(), {T, D}, true);
    dispatch(a, g, [&](auto t, auto dev) {
      using V = decltype(t);
      AssembleTokensParams<V> p = assemble_params<V>(B, Ls, Lo, D, T, index);
      p.dout = g->ptr<V>();
      p.dx = need_x ? NTensor::Unwrap(dx)->ptr<V>() : nullptr;
      p.dtokens = need_tokens ? NTensor::Unwrap(dt)->ptr<V>() : nullptr;
      CLOZE_KERNEL(dev, assemble_tokens_backward, p);
      return 0;
    });
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, need_x ? Napi::Value(dx) : a.env().Null());
    res.Set(1u, need_tokens ? Napi::Value(dt) : a.env().Null());
    return res;
  });
}

void register_patches(Napi::Object exports) {
  CLOZE_EXPORT(exports, "patchify", [](const ArgReader& a) -> Napi::Value {
    NTensor* img = a.tensor(0, "images");
    a.want_float(img, "images");
    a.want_ndim(img, 4, 4, "images");
    const int64_t B = img->dim(0), C = img->dim(1), H = img->dim(2), W = img->dim(3);
    const int64_t P = patch_size(a, 1, C, H, W, "H = " + std::to_string(H) + " and W = " + std::to_string(W));
    Napi::Object out = a.alloc(img->dtype(), {B, (H / P) * (W / P), P * P * C}, false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, img, [&](auto t, auto dev) {
      using T = decltype(t);
      CLOZE_KERNEL(dev, patchify, patch_params<T>(B, C, H, W, P, img, o));
      return 0;
    });
    return out;
  });

  CLOZE_EXPORT(exports, "unpatchify", [](const ArgReader& a) -> Napi::Value {
    NTensor* pt = a.tensor(0, "patches");
    a.want_float(pt, "patches");
    a.want_ndim(pt, 3, 3, "patches");
    const int64_t C = a.integer(2, "channels", 1, kMaxI32);
    const int64_t H = a.integer(3, "height", 0, kMaxI32);
    const int64_t W = a.integer(4, "width", 0, kMaxI32);
    const int64_t P = patch_size(a, 1, C, H, W, "height = " + std::to_string(H) + " and width = " + std::to_string(W));
    const int64_t B = pt->dim(0);
    a.want_shape(pt, {B, (H / P) * (W / P), P * P * C}, "patches");
    Napi::Object out = a.alloc(pt->dtype(), {B, C, H, W}, false);
    NTensor* o = NTensor::Unwrap(out);
    dispatch(a, pt, [&](auto t, auto dev) {
      using T = decltype(t);
      CLOZE_KERNEL(dev, unpatchify, patch_params<T>(B, C, H, W, P, o, pt));
      return 0;
    });
    return out;
  });
}

void register_token_mean(Napi::Object exports) {
  CLOZE_EXPORT(exports, "tokenMean", [](const ArgReader& a) -> Napi::Value {
    NTensor* x = a.tensor(0, "input");
    a.want_float(x, "input");
    a.want_ndim(x, 3, 3, "input");
    const int64_t B = x->dim(0), L = x->dim(1), D = x->dim(2);
    if (L == 0) a.bad(ErrCode::Shape, "at least one token (L > 0)", "input", tensor_desc(x));
    Napi::Object out = a.alloc(x->dtype(), {B, D}, false);
    dispatch(a, x, [&](auto t, auto dev) {
      using T = decltype(t);
      TokenMeanParams<T> p = token_mean_params<T>(B, L, D);
      p.x = x->ptr<T>();
      p.out = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, token_mean_forward, p);
      return 0;
    });
    return out;
  });

  CLOZE_EXPORT(exports, "tokenMeanBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    a.want_float(g, "grad");
    a.want_ndim(g, 2, 2, "grad");
    const int64_t B = g->dim(0), D = g->dim(1);
    const int64_t L = a.integer(1, "tokens", 1, kMaxI32);
    Napi::Object out = a.alloc(g->dtype(), {B, L, D}, false);
    dispatch(a, g, [&](auto t, auto dev) {
      using T = decltype(t);
      TokenMeanParams<T> p = token_mean_params<T>(B, L, D);
      p.dout = g->ptr<T>();
      p.dx = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, token_mean_backward, p);
      return 0;
    });
    return out;
  });
}

}  // namespace

void register_mim_tokens(Napi::Env env, Napi::Object exports) {
  (void)env;
  register_masking(exports);
  register_assemble(exports);
  register_patches(exports);
  register_token_mean(exports);
}

}  // namespace cloze
