// Fused attention bindings: every mask mode is validated here, before the
// kernel sees a pointer.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "../ops/attention.h"
#include "bindings.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

struct AttnSetup {
  NTensor *q, *k, *v;  // packed: q is the qkv tensor, k and v null
  bool packed = false;
  std::vector<int64_t> tok_shape;  // q's (and out's) shape: [B, L, H, Dh] or [nnz, H, Dh]
  int64_t B, L, H, Dh, nnz;
  bool varlen = false;
  double scale;
  NTensor* cu = nullptr;
  const int32_t* cu_ptr = nullptr;   // cuSeqlens where the kernels read it
  std::shared_ptr<void> cu_upload;   // cuda with host cuSeqlens: the binding's device copy, freed after the launch
  NTensor* key_padding = nullptr;
  NTensor* alibi = nullptr;
  NTensor* bias = nullptr;
  NTensor* attn_mask = nullptr;
  NTensor* token_mask = nullptr;
  bool exclude = false;
  bool entropy = false;
  bool bias_grad = false;
  bool tiled_kernel = false;
  bool mma_general = false;
  bool plain_chain = false;
  std::vector<int64_t> stat_shape;  // lse / entropy
};

// packed: the argument at qi is one qkv tensor, [B, L, 3, H, Dh] (or [nnz, 3, H, Dh] with cuSeqlens), as a fused
// QKV projection writes it: q, k and v are its three slices, read in place with a row stride of 3·H·Dh.
AttnSetup parse(const ArgReader& a, size_t qi, size_t opt_i, bool packed = false) {
  AttnSetup s;
  s.packed = packed;
  const char* qname = packed ? "qkv" : "q";
  s.q = a.tensor(qi, qname);
  s.k = packed ? nullptr : a.tensor(qi + 1, "k");
  s.v = packed ? nullptr : a.tensor(qi + 2, "v");
  a.want_float(s.q, qname);
  Napi::Object o = a.options(opt_i);
  // cuSeqlens may stay on the host for a cuda call: it is validated there with no copy back (a wait for the
  // device, twice per layer per step), then uploaded by the binding.
  s.cu = a.host_or_device_field(o, "cuSeqlens");
  s.varlen = s.cu != nullptr;
  const int64_t nd = (s.varlen ? 3 : 4) + (packed ? 1 : 0);
  a.want_ndim(s.q, nd, nd, qname);
  s.tok_shape = s.q->shape();
  if (packed) {
    if (s.q->dim(-3) != 3)
      a.bad(ErrCode::Shape, s.varlen ? "qkv of shape [nnz, 3, H, Dh]" : "qkv of shape [B, L, 3, H, Dh]", "qkv", tensor_desc(s.q));
    s.tok_shape.erase(s.tok_shape.end() - 3);
  } else {
    for (auto [t, n] : {std::pair{s.k, "k"}, std::pair{s.v, "v"}}) {
      a.want_same_dtype(s.q, t, n);
      a.want_shape(t, s.q->shape(), n);
    }
  }
  s.H = s.q->dim(-2);
  s.Dh = s.q->dim(-1);
  if (s.Dh == 0 || s.H == 0) a.bad(ErrCode::Shape, "non-zero heads and head width", qname, tensor_desc(s.q));
  if (a.on_cuda() && s.Dh > kAttentionCudaMaxDh)
    a.bad(ErrCode::Shape, "a head width of at most " + std::to_string(kAttentionCudaMaxDh) + " on cuda", qname, tensor_desc(s.q));
  if (s.varlen) {
    a.want_dtype(s.cu, DType::I32, "cuSeqlens");
    a.want_ndim(s.cu, 1, 1, "cuSeqlens");
    if (s.cu->numel() < 2) a.bad(ErrCode::Shape, "at least 2 entries (B+1)", "cuSeqlens", tensor_desc(s.cu));
    s.B = s.cu->numel() - 1;
    s.nnz = s.q->dim(0);
    Napi::Value mv = o.Get("maxSeqlen");
    if (!mv.IsNumber()) a.bad(ErrCode::Value, "an integer maxSeqlen with cuSeqlens", "maxSeqlen", a.describe(mv));
    const double ml = mv.As<Napi::Number>().DoubleValue();
    if (!(ml >= 0 && std::floor(ml) == ml && ml < 2147483648.0))
      a.bad(ErrCode::Value, "a non-negative integer", "maxSeqlen", a.describe(mv));
    s.L = static_cast<int64_t>(ml);
    // The offsets are validated on the host; a device cuSeqlens takes a copy
    // (and a wait for the stream) of these B+1 integers, a host one none.
    std::vector<int32_t> cu_host;
    const int32_t* cu = s.cu->ptr<int32_t>();
    s.cu_ptr = cu;
    if (s.cu->on_cuda()) {
#ifdef CLOZE_CUDA
      cu_host.resize(static_cast<size_t>(s.B + 1));
      cuda::copy(cu_host.data(), false, cu, true, sizeof(int32_t) * cu_host.size(), a.op);
      cu = cu_host.data();
#endif
    }
    if (cu[0] != 0) a.bad(ErrCode::Value, "cuSeqlens[0] = 0", "cuSeqlens", std::to_string(cu[0]));
    for (int64_t b = 0; b < s.B; b++) {
      const int64_t len = static_cast<int64_t>(cu[b + 1]) - cu[b];
      if (len < 0 || len > s.L)
        a.bad(ErrCode::Value, "non-decreasing offsets with lengths <= maxSeqlen " + std::to_string(s.L), "cuSeqlens",
              "length " + std::to_string(len) + " for sequence " + std::to_string(b));
    }
    if (cu[s.B] != s.nnz)
      a.bad(ErrCode::Value, "cuSeqlens[B] equal to the " + std::to_string(s.nnz) + " packed tokens of " + qname, "cuSeqlens",
            std::to_string(cu[s.B]));
    if (a.on_cuda() && !s.cu->on_cuda()) {
      s.cu_upload = upload_int32(a, cu, s.B + 1);
      s.cu_ptr = static_cast<const int32_t*>(s.cu_upload.get());
    }
    s.stat_shape = {s.H, s.nnz};
  } else {
    s.B = s.q->dim(0);
    s.L = s.q->dim(1);
    s.nnz = s.B * s.L;
    s.stat_shape = {s.B, s.H, s.L};
  }
  const double dflt = 1.0 / std::sqrt(static_cast<double>(s.Dh));
  s.scale = a.opt_number(o, "scale", dflt);
  s.key_padding = a.tensor_field(o, "keyPadding");
  if (s.key_padding) {
    if (s.varlen) a.bad(ErrCode::Value, "no keyPadding in variable-length mode (cuSeqlens has the lengths)", "keyPadding", "a tensor");
    a.want_dtype(s.key_padding, DType::U8, "keyPadding");
    a.want_shape(s.key_padding, {s.B, s.L}, "keyPadding");
  }
  s.alibi = a.tensor_field(o, "alibiSlopes");
  if (s.alibi) {
    a.want_same_dtype(s.q, s.alibi, "alibiSlopes");
    a.want_shape(s.alibi, {s.H}, "alibiSlopes");
  }
  s.bias = a.tensor_field(o, "bias");
  if (s.bias) {
    a.want_same_dtype(s.q, s.bias, "bias");
    a.want_shape(s.bias, {s.B, s.L, s.L}, "bias");
  }
  s.attn_mask = a.tensor_field(o, "attnMask");
  if (s.attn_mask) {
    a.want_dtype(s.attn_mask, DType::U8, "attnMask");
    a.want_shape(s.attn_mask, {s.B, s.L, s.L}, "attnMask");
  }
  s.token_mask = a.tensor_field(o, "tokenMask");
  if (s.token_mask) {
    a.want_dtype(s.token_mask, DType::U8, "tokenMask");
    if (s.varlen)
      a.want_shape(s.token_mask, {s.nnz}, "tokenMask");
    else
      a.want_shape(s.token_mask, {s.B, s.L}, "tokenMask");
  }
  s.exclude = a.opt_bool(o, "excludeMaskedKeys", false);
  if (s.exclude && !s.token_mask)
    a.bad(ErrCode::Value, "a tokenMask when excludeMaskedKeys is set", "tokenMask", "none");
  s.entropy = a.opt_bool(o, "entropy", false);
  s.bias_grad = a.opt_bool(o, "biasGrad", false);
  s.tiled_kernel = a.opt_bool(o, "tiledKernel", false);
  s.mma_general = a.opt_bool(o, "mmaGeneral", false);
  s.plain_chain = a.opt_bool(o, "plainChain", false);
  if (s.bias_grad && !s.bias) a.bad(ErrCode::Value, "a bias when biasGrad is set", "bias", "none");
  return s;
}

template <typename T>
AttentionParams<T> to_params(const AttnSetup& s) {
  AttentionParams<T> p;
  const int64_t D = s.H * s.Dh;
  p.q = s.q->ptr<T>();
  p.k = s.packed ? p.q + D : s.k->ptr<T>();
  p.v = s.packed ? p.q + 2 * D : s.v->ptr<T>();
  // The kernels read (and the backward writes dq, dk, dv) with these strides.
  p.q_row = p.k_row = p.v_row = s.packed ? 3 * D : D;
  p.o_row = D;
  p.B = s.B;
  p.L = s.L;
  p.H = s.H;
  p.Dh = s.Dh;
  p.nnz = s.nnz;
  p.cu_seqlens = s.cu ? s.cu_ptr : nullptr;
  p.scale = s.scale;
  p.key_padding = s.key_padding ? s.key_padding->ptr<uint8_t>() : nullptr;
  p.alibi_slopes = s.alibi ? s.alibi->ptr<T>() : nullptr;
  p.bias = s.bias ? s.bias->ptr<T>() : nullptr;
  p.attn_mask = s.attn_mask ? s.attn_mask->ptr<uint8_t>() : nullptr;
  p.token_mask = s.token_mask ? s.token_mask->ptr<uint8_t>() : nullptr;
  p.exclude_masked_keys = s.exclude;
  p.tiled_kernel = s.tiled_kernel;
  p.mma_general = s.mma_general;
  p.plain_chain = s.plain_chain;
  return p;
}

Napi::Value forward(const ArgReader& a, bool packed) {
  AttnSetup s = parse(a, 0, packed ? 1 : 3, packed);
  // The kernel writes every element of its outputs (zeros for empty rows), so no zero-fill.
  // lse is float32 on cuda whatever q's dtype (see AttentionParams::lse_f32).
  const DType lse_dt = a.on_cuda() ? DType::F32 : s.q->dtype();
  Napi::Object out = a.alloc(s.q->dtype(), s.tok_shape, false);
  Napi::Object lse = a.alloc(lse_dt, s.stat_shape, false);
  Napi::Object ent;
  if (s.entropy) ent = a.alloc(s.q->dtype(), s.stat_shape, false);
  dispatch(a, s.q, [&](auto t, auto dev) {
    using T = decltype(t);
    AttentionParams<T> p = to_params<T>(s);
    p.out = NTensor::Unwrap(out)->ptr<T>();
    if constexpr (decltype(dev)::cuda)
      p.lse_f32 = NTensor::Unwrap(lse)->ptr<float>();
    else
      p.lse = NTensor::Unwrap(lse)->ptr<T>();
    p.entropy = s.entropy ? NTensor::Unwrap(ent)->ptr<T>() : nullptr;
    CLOZE_KERNEL(dev, attention_forward, p);
    return 0;
  });
  Napi::Object res = Napi::Object::New(a.env());
  res.Set("out", out);
  res.Set("lse", lse);
  if (s.entropy) res.Set("entropy", ent);
  return res;
}

Napi::Value backward(const ArgReader& a, bool packed) {
  // Arguments after q, k, v (or qkv) move by two for the packed form.
  const size_t sh = packed ? 2 : 0;
  AttnSetup s = parse(a, 1, 6 - sh, packed);
  NTensor* dout = a.tensor(0, "dout");
  NTensor* out = a.tensor(4 - sh, "out");
  NTensor* lse = a.tensor(5 - sh, "lse");
  NTensor* dent = a.tensor_or_null(7 - sh, "dentropy");
  NTensor* ent = a.tensor_or_null(8 - sh, "entropy");
  for (auto [t, n] : {std::pair{dout, "dout"}, std::pair{out, "out"}}) {
    a.want_same_dtype(s.q, t, n);
    a.want_shape(t, s.tok_shape, n);
  }
  if (a.on_cuda())
    a.want_dtype(lse, DType::F32, "lse");
  else
    a.want_same_dtype(s.q, lse, "lse");
  a.want_shape(lse, s.stat_shape, "lse");
  if (dent) {
    if (!ent) a.bad(ErrCode::Value, "the forward entropy with dentropy", "entropy", "none");
    a.want_same_dtype(s.q, dent, "dentropy");
    a.want_shape(dent, s.stat_shape, "dentropy");
    a.want_same_dtype(s.q, ent, "entropy");
    a.want_shape(ent, s.stat_shape, "entropy");
  }
  // dq, dk, dv are written in full (copied out of per-head accumulators); dbias is accumulated into. Packed: one
  // dqkv, whose three slices the kernels write with qkv's strides.
  Napi::Object dq = a.alloc(s.q->dtype(), s.q->shape(), false);
  Napi::Object dk = packed ? dq : a.alloc(s.q->dtype(), s.q->shape(), false);
  Napi::Object dv = packed ? dq : a.alloc(s.q->dtype(), s.q->shape(), false);
  Napi::Object db;
  if (s.bias_grad) db = a.alloc(s.q->dtype(), {s.B, s.L, s.L});
  dispatch(a, s.q, [&](auto t, auto dev) {
    using T = decltype(t);
    AttentionParams<T> p = to_params<T>(s);
    p.out = out->ptr<T>();
    if constexpr (decltype(dev)::cuda)
      p.lse_f32 = lse->ptr<float>();
    else
      p.lse = lse->ptr<T>();
    p.dout = dout->ptr<T>();
    p.dentropy = dent ? dent->ptr<T>() : nullptr;
    p.entropy = dent ? ent->ptr<T>() : nullptr;
    p.dq = NTensor::Unwrap(dq)->ptr<T>();
    p.dk = packed ? p.dq + s.H * s.Dh : NTensor::Unwrap(dk)->ptr<T>();
    p.dv = packed ? p.dq + 2 * s.H * s.Dh : NTensor::Unwrap(dv)->ptr<T>();
    p.dbias = s.bias_grad ? NTensor::Unwrap(db)->ptr<T>() : nullptr;
    CLOZE_KERNEL(dev, attention_backward, p);
    return 0;
  });
  Napi::Object res = Napi::Object::New(a.env());
  if (packed) {
    res.Set("dqkv", dq);
  } else {
    res.Set("dq", dq);
    res.Set("dk", dk);
    res.Set("dv", dv);
  }
  if (s.bias_grad) res.Set("dbias", db);
  return res;
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  (void)env;
  // attention(q, k, v, options) -> { out, lse, entropy? }
  CLOZE_EXPORT(exports, "attention", [](const ArgReader& a) { return forward(a, false); });
  // attentionQkv(qkv, options) -> { out, lse, entropy? }: qkv [B, L, 3, H, Dh] (or [nnz, 3, H, Dh]), out [B, L, H, Dh]
  CLOZE_EXPORT(exports, "attentionQkv", [](const ArgReader& a) { return forward(a, true); });
  // attentionBackward(dout, q, k, v, out, lse, options, dentropy?, entropy?) -> { dq, dk, dv, dbias? }
  CLOZE_EXPORT(exports, "attentionBackward", [](const ArgReader& a) { return backward(a, false); });
  // attentionQkvBackward(dout, qkv, out, lse, options, dentropy?, entropy?) -> { dqkv, dbias? }
  CLOZE_EXPORT(exports, "attentionQkvBackward", [](const ArgReader& a) { return backward(a, true); });
}

}  // namespace cloze
