// Tensor factories and runtime facts.
#include "bindings.h"

#include "../core/blas.h"
#include "../core/microkernel.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {
DType dtype_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  DType dt;
  if (!v.IsString() || !dtype_from_name(v.As<Napi::String>().Utf8Value(), &dt))
    a.bad(ErrCode::Dtype, "float32, float64, int32 or uint8", "dtype", a.describe(v));
  return dt;
}
}  // namespace

void register_tensor(Napi::Env env, Napi::Object exports) {
  (void)env;
  // empty(dtype, shape): zero-filled.
  CLOZE_EXPORT(exports, "empty", [](const ArgReader& a) -> Napi::Value {
    return NTensor::New(a.env(), dtype_arg(a, 0), a.shape(1, "shape"), a.op);
  });

  // fromTypedArray(array, shape): zero-copy; the tensor keeps the array's buffer alive.
  CLOZE_EXPORT(exports, "fromTypedArray", [](const ArgReader& a) -> Napi::Value {
    Napi::Value v = a.info[0];
    if (!v.IsTypedArray()) a.bad(ErrCode::Value, "a Float32Array, Float64Array, Int32Array or Uint8Array", "array", a.describe(v));
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    DType dt;
    switch (ta.TypedArrayType()) {
      case napi_float32_array: dt = DType::F32; break;
      case napi_float64_array: dt = DType::F64; break;
      case napi_int32_array: dt = DType::I32; break;
      case napi_uint8_array: dt = DType::U8; break;
      default: a.bad(ErrCode::Dtype, "a Float32Array, Float64Array, Int32Array or Uint8Array", "array", "another typed array");
    }
    auto shape = a.shape(1, "shape");
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (n != static_cast<int64_t>(ta.ElementLength()))
      a.bad(ErrCode::Shape, "a shape of " + std::to_string(ta.ElementLength()) + " elements", "shape", shape_str(shape));
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    void* data = static_cast<char*>(ab.Data()) + ta.ByteOffset();
    auto* ref = new Napi::Reference<Napi::ArrayBuffer>(Napi::Persistent(ab));
    auto st = Storage::borrow(data, ta.ByteLength(), [ref] { delete ref; });
    return NTensor::Make(a.env(), std::move(st), 0, dt, shape);
  });

  CLOZE_EXPORT(exports, "liveBytes", [](const ArgReader& a) -> Napi::Value {
    return Napi::Number::New(a.env(), static_cast<double>(Storage::live_bytes()));
  });

  // The large-block cache (see core/storage.h).
  CLOZE_EXPORT(exports, "cachedBytes", [](const ArgReader& a) -> Napi::Value {
    return Napi::Number::New(a.env(), static_cast<double>(Storage::cached_bytes()));
  });
  CLOZE_EXPORT(exports, "releaseCache", [](const ArgReader& a) -> Napi::Value {
    Storage::release_cache();
    return a.env().Undefined();
  });
  CLOZE_EXPORT(exports, "setCacheLimit", [](const ArgReader& a) -> Napi::Value {
    Storage::set_cache_limit(static_cast<size_t>(a.integer(0, "bytes", 0, INT64_C(1) << 50)));
    return a.env().Undefined();
  });

  CLOZE_EXPORT(exports, "setNumThreads", [](const ArgReader& a) -> Napi::Value {
    ThreadPool::get().resize(static_cast<int>(a.integer(0, "threads", 1, 1024)));
    return a.env().Undefined();
  });

  CLOZE_EXPORT(exports, "info", [](const ArgReader& a) -> Napi::Value {
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("backend", "cpu");
    o.Set("blas", blas_name());
    o.Set("blasCore", blas_core());
    o.Set("gemm", gemm_policy());
    o.Set("blasThreads", blas_threads());
    o.Set("threads", ThreadPool::get().size());
    o.Set("simdBytes", kVecBytes);
    o.Set("napiVersion", NAPI_VERSION);
    return o;
  });
}

}  // namespace cloze
