#include "args.h"

#include <cmath>
#include <new>

#include "../core/sizes.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

std::string tensor_desc(const NTensor* t) {
  const std::string where = !t->disposed() && t->on_cuda() ? "cuda " : "";
  return where + dtype_name(t->dtype()) + " tensor " + shape_str(t->shape());
}

void no_cuda_kernel(const char* op, DType dt) {
#ifdef CLOZE_CUDA
  fail(ErrCode::Dtype, op,
       std::string("no cuda kernel for dtype ") + dtype_name(dt) + " (cuda kernels take float32 or bfloat16)");
#else
  (void)dt;
  fail(ErrCode::Device, op, "a cuda tensor reached the CPU addon");
#endif
}

void ArgReader::note_device(const NTensor* t, const std::string& name) const {
  if (!dev_known) {
    dev = t->device();
    dev_known = true;
    return;
  }
  if (t->device() != dev)
    bad(ErrCode::Device, with_article(std::string(device_name(dev)) + " tensor") + " (all tensor arguments of " + op +
                             " must be on one device; move them with to())",
        name, std::string(device_name(t->device())) + " " + dtype_name(t->dtype()) + " tensor " + shape_str(t->shape()));
}

Napi::Object ArgReader::alloc(DType dt, const std::vector<int64_t>& shape, bool zero) const {
  return NTensor::New(env(), dt, shape, op, zero, dev);
}

std::string with_article(const std::string& noun) {
  const char c = noun.empty() ? 'x' : noun[0];
  const bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o';  // "a uint8": u is sounded "you"
  return (vowel ? "an " : "a ") + noun;
}

std::string ArgReader::describe(const Napi::Value& v) const {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream o;
    o << v.As<Napi::Number>().DoubleValue();
    return o.str();
  }
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (NTensor::IsInstance(env(), v)) {
    NTensor* t = NTensor::Unwrap(v.As<Napi::Object>());
    return t->disposed() ? "a disposed tensor" : tensor_desc(t);
  }
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

NTensor* ArgReader::live_tensor(const Napi::Value& v, const char* name, DeviceRule device) const {
  if (!NTensor::IsInstance(env(), v)) bad(ErrCode::Value, "a native tensor", name, describe(v));
  NTensor* t = NTensor::Unwrap(v.As<Napi::Object>());
  if (t->disposed()) bad(ErrCode::Value, "a live tensor", name, "a disposed tensor");
  if (device == DeviceRule::kSame || t->device() != Device::CPU) note_device(t, name);
  return t;
}

NTensor* ArgReader::tensor(size_t i, const char* name) const { return live_tensor(info[i], name, DeviceRule::kSame); }

NTensor* ArgReader::host_or_device_tensor(size_t i, const char* name) const {
  return live_tensor(info[i], name, DeviceRule::kHostOk);
}

NTensor* ArgReader::tensor_or_null(size_t i, const char* name) const {
  Napi::Value v = info[i];
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return tensor(i, name);
}

NTensor* ArgReader::tensor_field(const Napi::Object& o, const char* key) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return live_tensor(v, key, DeviceRule::kSame);
}

NTensor* ArgReader::host_or_device_field(const Napi::Object& o, const char* key) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return live_tensor(v, key, DeviceRule::kHostOk);
}

bool ArgReader::boolean(size_t i, const char* name) const {
  Napi::Value v = info[i];
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) bad(ErrCode::Value, "a boolean", name, describe(v));
  return v.As<Napi::Boolean>().Value();
}

double ArgReader::number(size_t i, const char* name) const {
  Napi::Value v = info[i];
  if (!v.IsNumber()) bad(ErrCode::Value, "a number", name, describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t ArgReader::integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
  Napi::Value v = info[i];
  if (!v.IsNumber()) bad(ErrCode::Value, "an integer", name, describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::floor(d) == d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    bad(ErrCode::Value, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name, describe(v));
  return static_cast<int64_t>(d);
}

std::vector<int64_t> ArgReader::shape(size_t i, const char* name) const {
  Napi::Value v = info[i];
  if (!v.IsArray()) bad(ErrCode::Shape, "an array of non-negative integers", name, describe(v));
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() > 8) bad(ErrCode::Shape, "at most 8 dimensions", name, std::to_string(arr.Length()));
  std::vector<int64_t> out;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value e = arr.Get(k);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && std::floor(d) == d && d < 2147483648.0))
      bad(ErrCode::Shape, "an array of non-negative integers below 2^31", name, "element " + describe(e));
    out.push_back(static_cast<int64_t>(d));
  }
  checked_numel(out, op, name);  // the product of the sizes must not overflow (core/sizes.h)
  return out;
}

Napi::Object ArgReader::options(size_t i) const {
  Napi::Value v = info[i];
  if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(env());
  if (!v.IsObject() || v.IsArray()) bad(ErrCode::Value, "an options object", "options", describe(v));
  return v.As<Napi::Object>();
}

double ArgReader::opt_number(const Napi::Object& o, const char* key, double dflt) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) bad(ErrCode::Value, "a number", key, describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

bool ArgReader::opt_bool(const Napi::Object& o, const char* key, bool dflt) const {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) bad(ErrCode::Value, "a boolean", key, describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::vector<NTensor*> ArgReader::tensor_list(size_t i, const char* name) const { return tensor_array(info[i], name); }

std::vector<NTensor*> ArgReader::tensor_array(const Napi::Value& v, const char* name) const {
  if (!v.IsArray()) bad(ErrCode::Value, "an array of tensors", name, describe(v));
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<NTensor*> out;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value e = arr.Get(k);
    const std::string nm = std::string(name) + "[" + std::to_string(k) + "]";
    if (!NTensor::IsInstance(env(), e)) bad(ErrCode::Value, "a native tensor", nm, describe(e));
    NTensor* t = NTensor::Unwrap(e.As<Napi::Object>());
    if (t->disposed()) bad(ErrCode::Value, "a live tensor", nm, "a disposed tensor");
    note_device(t, nm);
    out.push_back(t);
  }
  return out;
}

void ArgReader::want_float(const NTensor* t, const char* name) const {
  if (t->on_cuda()) {
    if (t->dtype() != DType::F32 && t->dtype() != DType::BF16)
      bad(ErrCode::Dtype, "a float32 or bfloat16 tensor", name, tensor_desc(t));
  } else if (t->dtype() != DType::F32 && t->dtype() != DType::F64) {
    bad(ErrCode::Dtype, "a float32 or float64 tensor", name, tensor_desc(t));
  }
}
void ArgReader::want_dtype(const NTensor* t, DType dt, const char* name) const {
  if (t->dtype() != dt) bad(ErrCode::Dtype, with_article(std::string(dtype_name(dt)) + " tensor"), name, tensor_desc(t));
}
void ArgReader::want_same_dtype(const NTensor* a, const NTensor* b, const char* name) const {
  if (a->dtype() != b->dtype())
    bad(ErrCode::Dtype, with_article(std::string(dtype_name(a->dtype())) + " tensor"), name, tensor_desc(b));
}
void ArgReader::want_ndim(const NTensor* t, int64_t lo, int64_t hi, const char* name) const {
  if (t->ndim() < lo || t->ndim() > hi) {
    const std::string what = lo == hi ? std::to_string(lo) + "-D" : std::to_string(lo) + " to " + std::to_string(hi) + "-D";
    bad(ErrCode::Shape, "a " + what + " tensor", name, tensor_desc(t));
  }
}
void ArgReader::want_shape(const NTensor* t, const std::vector<int64_t>& s, const char* name) const {
  if (t->shape() != s) bad(ErrCode::Shape, "shape " + shape_str(s), name, tensor_desc(t));
}
void ArgReader::want_numel(const NTensor* t, int64_t n, const char* name) const {
  if (t->numel() != n) bad(ErrCode::Shape, std::to_string(n) + " elements", name, tensor_desc(t));
}

Napi::Object scalar_tensor(const ArgReader& a, DType dt, double v) {
  Napi::Object out = a.alloc(dt, {}, false);
  NTensor* o = NTensor::Unwrap(out);
  if (o->on_cuda()) {
#ifdef CLOZE_CUDA
    cuda::fill(o->raw(), static_cast<int>(dt), 1, v, a.op);
#endif
  } else if (dt == DType::F32)
    *o->ptr<float>() = static_cast<float>(v);
  else
    *o->ptr<double>() = v;
  return out;
}

Napi::Object loss_result(const ArgReader& a, DType dt, double total, int64_t count, const Napi::Object& lse) {
  Napi::Object res = Napi::Object::New(a.env());
  res.Set("loss", scalar_tensor(a, dt, count > 0 ? total / static_cast<double>(count) : 0.0));
  res.Set("lse", lse);
  res.Set("count", Napi::Number::New(a.env(), static_cast<double>(count)));
  return res;
}

const int32_t* checked_indices(const ArgReader& a, NTensor* t, const char* name, int64_t hi, bool allow_special,
                               int32_t special, std::vector<int32_t>* buf) {
  a.want_dtype(t, DType::I32, name);
  const int32_t* p = t->ptr<int32_t>();
  if (t->on_cuda()) {
    buf->resize(static_cast<size_t>(t->numel()));
#ifdef CLOZE_CUDA
    cuda::copy(buf->data(), false, t->raw(), true, t->nbytes(), a.op);
#endif
    p = buf->data();
  }
  for (int64_t i = 0; i < t->numel(); i++) {
    if (allow_special && p[i] == special) continue;
    if (p[i] < 0 || p[i] >= hi)
      fail(ErrCode::Index, a.op,
           expected("indices in [0, " + std::to_string(hi) + ")" +
                        (allow_special ? " or the ignore index " + std::to_string(special) : std::string()),
                    name, std::to_string(p[i]) + " at position " + std::to_string(i)));
  }
  return p;
}

void checked_indices_deferred(const ArgReader& a, NTensor* t, const char* name, int64_t hi, bool allow_special,
                              int32_t special) {
  if (t->on_cuda()) {
    a.want_dtype(t, DType::I32, name);
#ifdef CLOZE_CUDA
    cuda::check_indices_deferred(t->ptr<int32_t>(), t->numel(), hi, allow_special, special, a.op, name);
#endif
    return;
  }
  std::vector<int32_t> unused;
  checked_indices(a, t, name, hi, allow_special, special, &unused);
}

std::shared_ptr<void> upload_bytes(const ArgReader& a, const void* host, size_t bytes) {
#ifdef CLOZE_CUDA
  std::shared_ptr<void> d(cuda::alloc(bytes > 0 ? bytes : 1, a.op), [](void* q) { cuda::free(q); });
  cuda::copy(d.get(), true, host, false, bytes, a.op);
  return d;
#else
  (void)host;
  (void)bytes;
  fail(ErrCode::Device, a.op, "Expected the cuda build for an upload to the device (this is the CPU build)");
#endif
}

std::shared_ptr<void> upload_int32(const ArgReader& a, const int32_t* host, int64_t n) {
  return upload_bytes(a, host, sizeof(int32_t) * static_cast<size_t>(n));
}

void kernel_indices(const ArgReader& a, NTensor* t, const char* name, int64_t hi, KernelIndices* out) {
  out->host = checked_indices(a, t, name, hi, false, 0, &out->buf);
  out->kernel = t->ptr<int32_t>();
  if (a.on_cuda() && !t->on_cuda()) {
    out->upload = upload_int32(a, out->host, t->numel());
    out->kernel = static_cast<const int32_t*>(out->upload.get());
  }
}

DType stat_dtype(const NTensor* x) { return x->on_cuda() ? DType::F32 : x->dtype(); }
void want_stat_dtype(const ArgReader& a, const NTensor* x, const NTensor* s, const char* name) {
  if (x->on_cuda())
    a.want_dtype(s, DType::F32, name);
  else
    a.want_same_dtype(x, s, name);
}

Napi::Value guarded(const Napi::CallbackInfo& info, const char* op,
                    const std::function<Napi::Value(const ArgReader&)>& body) {
  Napi::Env env = info.Env();
  std::string code, msg;
  try {
    return body(ArgReader{info, op});
  } catch (const Napi::Error&) {
    throw;
  } catch (const OpError& e) {
    code = err_code_name(e.code);
    msg = e.what();
  } catch (const std::bad_alloc&) {
    code = "E_OOM";
    msg = std::string(op) + ": out of memory";
  } catch (const std::exception& e) {
    code = "E_INTERNAL";
    msg = std::string(op) + ": " + e.what();
  }
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  err.Set("op", Napi::String::New(env, op));
  throw err;
}

}  // namespace cloze
