#include "tensor_object.h"

#include <cstring>

#include "../core/error.h"
#include "../core/sizes.h"
#include "args.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {
struct InitData {
  std::shared_ptr<Storage> storage;
  size_t offset;
  DType dtype;
  std::vector<int64_t> shape;
};

// A TypedArray of the dtype's JS type over the whole of `ab`. bfloat16 has no
// JS type: read() widens it to float32 first, so it arrives here as F32.
Napi::Value typed_array(Napi::Env env, DType dt, size_t n, Napi::ArrayBuffer ab) {
  switch (dt) {
    case DType::F32: return Napi::Float32Array::New(env, n, ab, 0);
    case DType::F64: return Napi::Float64Array::New(env, n, ab, 0);
    case DType::I32: return Napi::Int32Array::New(env, n, ab, 0);
    default: return Napi::Uint8Array::New(env, n, ab, 0);
  }
}

// Only for shapes already checked (every tensor's shape is, in Make).
int64_t shape_numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
}  // namespace

Napi::Function NTensor::Define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&NTensor::GetShape>("shape"),
                         InstanceAccessor<&NTensor::GetDtype>("dtype"),
                         InstanceAccessor<&NTensor::GetNbytes>("nbytes"),
                         InstanceAccessor<&NTensor::GetDisposed>("disposed"),
                         InstanceAccessor<&NTensor::GetDevice>("device"),
                         InstanceMethod<&NTensor::To>("to"),
                         InstanceMethod<&NTensor::Dispose>("dispose"),
                         InstanceMethod<&NTensor::Data>("data"),
                         InstanceMethod<&NTensor::Read>("read"),
                         InstanceMethod<&NTensor::Write>("write"),
                         InstanceMethod<&NTensor::View>("view"),
                         InstanceMethod<&NTensor::Reshape>("reshape"),
                         InstanceMethod<&NTensor::Clone>("clone"),
                         InstanceMethod<&NTensor::CopyFrom>("copyFrom"),
                         InstanceMethod<&NTensor::Fill>("fill"),
                         InstanceMethod<&NTensor::Cast>("cast"),
                         InstanceMethod<&NTensor::SharesStorage>("sharesStorage"),
                     });
}

NTensor::NTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NTensor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    Napi::TypeError::New(info.Env(), "NativeTensor cannot be constructed directly; use the tensor factories")
        .ThrowAsJavaScriptException();
    return;
  }
  auto* init = info[0].As<Napi::External<InitData>>().Data();
  storage_ = std::move(init->storage);
  offset_ = init->offset;
  dtype_ = init->dtype;
  shape_ = std::move(init->shape);
}

Napi::Object NTensor::Make(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset, DType dt,
                           std::vector<int64_t> shape) {
  // The invariant every kernel relies on: the shape's partial products fit
  // (core/sizes.h), and the bytes it spans lie inside the storage.
  const int64_t n = checked_numel(shape, "tensor", "the tensor");
  if (offset > storage->bytes() || static_cast<size_t>(n) * dtype_size(dt) > storage->bytes() - offset)
    fail(ErrCode::Internal, "tensor",
         "shape " + shape_str(shape) + " at byte offset " + std::to_string(offset) + " reaches past its storage of " +
             std::to_string(storage->bytes()) + " bytes");
  InitData init{std::move(storage), offset, dt, std::move(shape)};
  auto* data = env.GetInstanceData<AddonData>();
  return data->tensor_ctor.New({Napi::External<InitData>::New(env, &init)});
}

Napi::Object NTensor::New(Napi::Env env, DType dt, const std::vector<int64_t>& shape, const char* op, bool zero,
                          Device dev) {
  const int64_t n = checked_numel(shape, op, "the output");
  auto st = Storage::allocate(static_cast<size_t>(n) * dtype_size(dt), op, zero, dev);
  return Make(env, std::move(st), 0, dt, shape);
}

bool NTensor::IsInstance(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) return false;
  auto* data = env.GetInstanceData<AddonData>();
  return v.As<Napi::Object>().InstanceOf(data->tensor_ctor.Value());
}

int64_t NTensor::numel() const { return shape_numel(shape_); }

Napi::Value NTensor::GetShape(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); i++) arr.Set(i, Napi::Number::New(info.Env(), static_cast<double>(shape_[i])));
  return arr;
}
Napi::Value NTensor::GetDtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(dtype_)); }
Napi::Value NTensor::GetNbytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(nbytes()));
}
Napi::Value NTensor::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }
Napi::Value NTensor::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), disposed() ? "cpu" : device_name(device()));
}

namespace {
// Moves bytes between any two storages: memcpy on the host, cudaMemcpy otherwise.
void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes, const char* op) {
  if (bytes == 0) return;
  if (dd == Device::CPU && sd == Device::CPU) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef CLOZE_CUDA
  cuda::copy(dst, dd == Device::CUDA, src, sd == Device::CUDA, bytes, op);
#else
  fail(ErrCode::Device, op, "this is the CPU addon; it cannot copy CUDA memory");
#endif
}

bool device_from_name(const std::string& s, Device* out) {
  if (s == "cpu") *out = Device::CPU;
  else if (s == "cuda") *out = Device::CUDA;
  else return false;
  return true;
}
}  // namespace

// to(device): a copy on `device` (the same dtype and shape). The only way
// data crosses devices, so every transfer is visible in the caller's code.
Napi::Value NTensor::To(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.to", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    Device dev;
    if (!a.info[0].IsString() || !device_from_name(a.info[0].As<Napi::String>().Utf8Value(), &dev))
      a.bad(ErrCode::Device, "'cpu' or 'cuda'", "device", a.describe(a.info[0]));
    Napi::Object out = New(a.env(), dtype_, shape_, a.op, false, dev);
    copy_bytes(Unwrap(out)->raw(), dev, raw(), device(), nbytes(), a.op);
    return out;
  });
}

Napi::Value NTensor::Dispose(const Napi::CallbackInfo& info) {
  storage_.reset();
  return info.Env().Undefined();
}

// A zero-copy TypedArray over this tensor's bytes. The ArrayBuffer holds a
// share of the storage, so the memory outlives dispose() until the view is
// collected: a view can never read freed memory.
Napi::Value NTensor::Data(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.data", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    if (on_cuda())
      fail(ErrCode::Device, a.op, "a cuda tensor has no zero-copy host view; use read() or to('cpu')");
    if (dtype_ == DType::BF16) fail(ErrCode::Dtype, a.op, "bfloat16 has no JS typed array; use read(), which widens to float32");
    auto* hold = new std::shared_ptr<Storage>(storage_);
    const size_t n = static_cast<size_t>(numel());
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        a.env(), raw(), nbytes(),
        [](Napi::Env, void*, std::shared_ptr<Storage>* h) { delete h; }, hold);
    return typed_array(a.env(), dtype_, n, ab);
  });
}

// read(): a copy of the data in a JS-owned TypedArray (holds no native memory).
Napi::Value NTensor::Read(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.read", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    const size_t n = static_cast<size_t>(numel());
    if (dtype_ == DType::BF16) {
      std::vector<bf16> h(n);
      copy_bytes(h.data(), Device::CPU, raw(), device(), nbytes(), a.op);
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(a.env(), n * 4);
      float* f = static_cast<float*>(ab.Data());
      for (size_t i = 0; i < n; i++) f[i] = float_from_bf16(h[i]);
      return typed_array(a.env(), DType::F32, n, ab);
    }
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(a.env(), nbytes());
    copy_bytes(ab.Data(), Device::CPU, raw(), device(), nbytes(), a.op);
    return typed_array(a.env(), dtype_, n, ab);
  });
}

// write(typedArray): copies values in; the array's type must match the dtype.
Napi::Value NTensor::Write(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.write", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    Napi::Value v = a.info[0];
    // bfloat16 is written from a Float32Array, rounded to nearest even.
    static const napi_typedarray_type want[] = {napi_float32_array, napi_float64_array, napi_int32_array, napi_uint8_array,
                                                napi_float32_array};
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want[static_cast<int>(dtype_)])
      a.bad(ErrCode::Dtype, std::string("a typed array matching ") + dtype_name(dtype_), "values", a.describe(v));
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (static_cast<int64_t>(ta.ElementLength()) != numel())
      a.bad(ErrCode::Shape, std::to_string(numel()) + " values", "values", std::to_string(ta.ElementLength()) + " values");
    // The element pointer as the array is now (over an ArrayBuffer or a SharedArrayBuffer alike).
    napi_typedarray_type type;
    size_t length = 0, byte_offset = 0;
    void* data = nullptr;
    napi_value buffer;
    if (napi_get_typedarray_info(a.env(), ta, &type, &length, &data, &buffer, &byte_offset) != napi_ok ||
        static_cast<int64_t>(length) != numel())
      a.bad(ErrCode::Value, "a readable typed array of " + std::to_string(numel()) + " values", "values", a.describe(v));
    const void* src = data;
    if (dtype_ == DType::BF16) {
      const size_t n = static_cast<size_t>(numel());
      std::vector<bf16> h(n);
      for (size_t i = 0; i < n; i++) h[i] = bf16_from_float(static_cast<const float*>(src)[i]);
      copy_bytes(raw(), device(), h.data(), Device::CPU, nbytes(), a.op);
    } else {
      copy_bytes(raw(), device(), src, Device::CPU, nbytes(), a.op);
    }
    return a.env().Undefined();
  });
}

// view(offsetElements, shape): shares storage.
Napi::Value NTensor::View(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.view", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    const int64_t off = a.integer(0, "offset", 0, numel());
    auto shape = a.shape(1, "shape");
    const int64_t n = checked_numel(shape, a.op, "shape");
    if (n > numel() - off)
      a.bad(ErrCode::Shape, "a view inside " + std::to_string(numel()) + " elements", "shape",
            shape_str(shape) + " at offset " + std::to_string(off));
    return Make(a.env(), storage_, offset_ + static_cast<size_t>(off) * dtype_size(dtype_), dtype_, shape);
  });
}

Napi::Value NTensor::Reshape(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.reshape", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    auto shape = a.shape(0, "shape");
    if (checked_numel(shape, a.op, "shape") != numel())
      a.bad(ErrCode::Shape, "a shape of " + std::to_string(numel()) + " elements", "shape", shape_str(shape));
    return Make(a.env(), storage_, offset_, dtype_, shape);
  });
}

Napi::Value NTensor::Clone(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.clone", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    Napi::Object out = New(a.env(), dtype_, shape_, a.op, false, device());
    copy_bytes(Unwrap(out)->raw(), device(), raw(), device(), nbytes(), a.op);
    return out;
  });
}

Napi::Value NTensor::CopyFrom(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.copyFrom", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    NTensor* src = a.tensor(0, "source");
    a.want_dtype(src, dtype_, "source");
    a.want_numel(src, numel(), "source");
    copy_bytes(raw(), device(), src->raw(), src->device(), nbytes(), a.op);
    return a.env().Undefined();
  });
}

Napi::Value NTensor::Fill(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.fill", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    const double v = a.number(0, "value");
    const int64_t n = numel();
    if (on_cuda()) {
#ifdef CLOZE_CUDA
      cuda::fill(raw(), static_cast<int>(dtype_), n, v, a.op);
#endif
      return a.env().Undefined();
    }
    switch (dtype_) {
      case DType::BF16: std::fill(ptr<bf16>(), ptr<bf16>() + n, bf16_from_float(static_cast<float>(v))); break;
      case DType::F32: std::fill(ptr<float>(), ptr<float>() + n, static_cast<float>(v)); break;
      case DType::F64: std::fill(ptr<double>(), ptr<double>() + n, v); break;
      case DType::I32: std::fill(ptr<int32_t>(), ptr<int32_t>() + n, static_cast<int32_t>(v)); break;
      default: std::fill(ptr<uint8_t>(), ptr<uint8_t>() + n, static_cast<uint8_t>(v)); break;
    }
    return a.env().Undefined();
  });
}

namespace {
template <typename S, typename D>
void convert(const void* src, void* dst, int64_t n) {
  const S* s = static_cast<const S*>(src);
  D* d = static_cast<D*>(dst);
  for (int64_t i = 0; i < n; i++) d[i] = static_cast<D>(s[i]);
}
template <typename S>
void convert_from(const void* src, DType to, void* dst, int64_t n) {
  switch (to) {
    case DType::BF16: {
      const S* s = static_cast<const S*>(src);
      bf16* d = static_cast<bf16*>(dst);
      for (int64_t i = 0; i < n; i++) d[i] = bf16_from_float(static_cast<float>(s[i]));
      break;
    }
    case DType::F32: convert<S, float>(src, dst, n); break;
    case DType::F64: convert<S, double>(src, dst, n); break;
    case DType::I32: convert<S, int32_t>(src, dst, n); break;
    default: convert<S, uint8_t>(src, dst, n); break;
  }
}
}  // namespace

Napi::Value NTensor::Cast(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.cast", [this](const ArgReader& a) -> Napi::Value {
    if (disposed()) fail(ErrCode::Value, a.op, "the tensor was disposed");
    if (!a.info[0].IsString()) a.bad(ErrCode::Dtype, "a dtype name", "dtype", a.describe(a.info[0]));
    DType to;
    const std::string name = a.info[0].As<Napi::String>().Utf8Value();
    if (!dtype_from_name(name, &to))
      a.bad(ErrCode::Dtype, "float32, float64, int32, uint8 or bfloat16", "dtype", "'" + name + "'");
    Napi::Object out = New(a.env(), to, shape_, a.op, false, device());
    void* dst = Unwrap(out)->raw();
    if (on_cuda()) {
#ifdef CLOZE_CUDA
      cuda::cast(raw(), static_cast<int>(dtype_), dst, static_cast<int>(to), numel(), a.op);
#endif
      return out;
    }
    if (dtype_ == DType::BF16) {
      std::vector<float> wide(static_cast<size_t>(numel()));
      for (size_t i = 0; i < wide.size(); i++) wide[i] = float_from_bf16(ptr<bf16>()[i]);
      convert_from<float>(wide.data(), to, dst, numel());
      return out;
    }
    switch (dtype_) {
      case DType::F32: convert_from<float>(raw(), to, dst, numel()); break;
      case DType::F64: convert_from<double>(raw(), to, dst, numel()); break;
      case DType::I32: convert_from<int32_t>(raw(), to, dst, numel()); break;
      default: convert_from<uint8_t>(raw(), to, dst, numel()); break;
    }
    return out;
  });
}

Napi::Value NTensor::SharesStorage(const Napi::CallbackInfo& info) {
  return guarded(info, "tensor.sharesStorage", [this](const ArgReader& a) -> Napi::Value {
    NTensor* o = a.tensor(0, "other");
    return Napi::Boolean::New(a.env(), !disposed() && o->storage_ == storage_);
  });
}

}  // namespace cloze
