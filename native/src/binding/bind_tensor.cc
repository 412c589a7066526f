// Tensor factories and runtime facts.
#include "bindings.h"

#include <cstring>

#include "../core/blas.h"
#include "../core/sizes.h"
#include "../core/microkernel.h"
#include "../core/threadpool.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {
DType dtype_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  DType dt;
  if (!v.IsString() || !dtype_from_name(v.As<Napi::String>().Utf8Value(), &dt))
    a.bad(ErrCode::Dtype, "float32, float64, int32, uint8 or bfloat16", "dtype", a.describe(v));
  return dt;
}

Device device_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  if (v.IsUndefined() || v.IsNull()) return Device::CPU;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  a.bad(ErrCode::Device, "'cpu' or 'cuda'", "device", a.describe(v));
}

#ifdef CLOZE_CUDA
// Streams cross into JS as externals; the finalizer does not destroy them
// (a trainer destroys its stream explicitly when it ends).
Napi::Value stream_handle(Napi::Env env, cuda::Stream s) { return Napi::External<CUstream_st>::New(env, s); }
cuda::Stream stream_arg(const ArgReader& a, size_t i) {
  Napi::Value v = a.info[i];
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsExternal()) a.bad(ErrCode::Value, "a stream from cudaCreateStream() or null", "stream", a.describe(v));
  return v.As<Napi::External<CUstream_st>>().Data();
}
#endif

[[noreturn, maybe_unused]] void cpu_addon(const ArgReader& a) {
  fail(ErrCode::Device, a.op,
       "this is the CPU addon, which has no CUDA support; build the CUDA addon with `npm run build:cuda` on a machine "
       "with a CUDA toolkit");
}
}  // namespace

void register_tensor(Napi::Env env, Napi::Object exports) {
  (void)env;
  // empty(dtype, shape, device = 'cpu'): zero-filled.
  CLOZE_EXPORT(exports, "empty", [](const ArgReader& a) -> Napi::Value {
    return NTensor::New(a.env(), dtype_arg(a, 0), a.shape(1, "shape"), a.op, true, device_arg(a, 2));
  });

  // fromTypedArray(array, shape): a copy of the array's values, except over a
  // SharedArrayBuffer, which it wraps without copying.
  //
  // An ArrayBuffer is copied. A borrowed pointer into one is only valid while
  // its backing store lives and keeps its length, and N-API gives an addon no
  // share of the backing store (V8's std::shared_ptr<BackingStore> is not
  // reachable through it): a reference to the ArrayBuffer object keeps the
  // object, not the memory. Any JS code could then free or shrink the memory
  // under the tensor between two ops: transfer the buffer (structuredClone or
  // postMessage with a transfer list) and let its new owner be collected, or
  // resize a resizable ArrayBuffer to 0. Checking for detachment at each use
  // is not possible (kernels run on pool threads, without the env), so the
  // tensor owns its bytes: one memcpy, after which nothing the caller does to
  // the array reaches the tensor.
  //
  // A SharedArrayBuffer can be neither transferred nor detached nor shrunk
  // (a growable one only grows, in place), and the SharedArrayBuffer object
  // holds its backing store: a reference to the object keeps the memory, so
  // the zero-copy path stays for callers who need it. It is told apart with
  // napi_is_arraybuffer (false for a SharedArrayBuffer, the only other buffer
  // a typed array can have), which JS cannot fool the way it can instanceof.
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
    auto shape = a.shape(1, "shape");  // its product is checked for overflow there
    // The array as it is now (a detached buffer reads as length 0).
    napi_typedarray_type type;
    size_t length = 0, byte_offset = 0;
    void* data = nullptr;
    napi_value buffer;
    if (napi_get_typedarray_info(a.env(), ta, &type, &length, &data, &buffer, &byte_offset) != napi_ok)
      a.bad(ErrCode::Value, "a readable typed array", "array", "one whose buffer cannot be read");
    const int64_t n = checked_numel(shape, a.op, "shape");
    if (n != static_cast<int64_t>(length))
      a.bad(ErrCode::Shape, "a shape of " + std::to_string(length) + " elements", "shape", shape_str(shape));
    const size_t bytes = static_cast<size_t>(n) * dtype_size(dt);
    bool is_ab = true;
    if (napi_is_arraybuffer(a.env(), buffer, &is_ab) != napi_ok) is_ab = true;
    if (!is_ab) {
      auto* ref = new Napi::Reference<Napi::Object>(Napi::Persistent(Napi::Value(a.env(), buffer).As<Napi::Object>()));
      auto st = Storage::borrow(data, bytes, [ref] { delete ref; });
      return NTensor::Make(a.env(), std::move(st), 0, dt, shape);
    }
    auto st = Storage::allocate(bytes, a.op, false);
    if (bytes) std::memcpy(st->data(), data, bytes);
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
#ifdef CLOZE_CUDA
    o.Set("backend", "cuda");
#else
    o.Set("backend", "cpu");
#endif
    o.Set("blas", blas_name());
    o.Set("blasCore", blas_core());
    o.Set("blasConfig", blas_config());
    o.Set("gemm", gemm_policy());
    o.Set("blasThreads", blas_threads());
    o.Set("threads", ThreadPool::get().size());
    o.Set("simdBytes", kVecBytes);
    o.Set("napiVersion", NAPI_VERSION);
    return o;
  });

  // CUDA runtime. The CPU addon exports the same names: cudaAvailable()
  // answers false with the reason, the others throw E_DEVICE.
  CLOZE_EXPORT(exports, "cudaAvailable", [](const ArgReader& a) -> Napi::Value {
    Napi::Object o = Napi::Object::New(a.env());
#ifdef CLOZE_CUDA
    std::string why;
    const bool ok = cuda::available(&why);
    o.Set("available", ok);
    o.Set("reason", ok ? "" : why);
#else
    o.Set("available", false);
    o.Set("reason", "the loaded addon is the CPU build (no CUDA support compiled in)");
#endif
    return o;
  });
  CLOZE_EXPORT(exports, "cudaInfo", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    const cuda::DeviceInfo d = cuda::device_info(a.op);
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("multiprocessors", d.sms);
    o.Set("memoryBytes", static_cast<double>(d.memory_bytes));
    o.Set("l2Bytes", static_cast<double>(d.l2_bytes));
    o.Set("sharedMemoryPerBlockOptin", static_cast<double>(d.smem_optin_bytes));
    o.Set("driverVersion", d.driver_version);
    o.Set("runtimeVersion", d.runtime_version);
    return o;
#else
    cpu_addon(a);
#endif
  });
  // cudaSelectDevice(localRank) -> device index: data parallel over host copies (--distributed-backend mpi), rank
  // `localRank` of a node takes device localRank % device count, as NCCL's set-up does for its ranks.
  CLOZE_EXPORT(exports, "cudaSelectDevice", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    const int local_rank = static_cast<int>(a.integer(0, "localRank", 0, INT32_MAX));
    return Napi::Number::New(a.env(), cuda::select_device(local_rank, a.op));
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaSynchronize", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    cuda::synchronize(a.op);
    return a.env().Undefined();
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaMemStats", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    const cuda::MemStats m = cuda::mem_stats();
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("liveBytes", static_cast<double>(m.live_bytes));
    o.Set("cachedBytes", static_cast<double>(m.cached_bytes));
    o.Set("peakBytes", static_cast<double>(m.peak_bytes));
    o.Set("mallocCalls", static_cast<double>(m.malloc_calls));
    return o;
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaReleaseCache", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    cuda::release_cache(a.op);
    return a.env().Undefined();
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaResetPeak", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    cuda::reset_peak();
    return a.env().Undefined();
#else
    cpu_addon(a);
#endif
  });
  // cudaCreateStream() -> handle; cudaSetStream(handle | null); cudaDestroyStream(handle).
  CLOZE_EXPORT(exports, "cudaCreateStream", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    return stream_handle(a.env(), cuda::create_stream(a.op));
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaSetStream", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    cuda::set_stream(stream_arg(a, 0), a.op);
    return a.env().Undefined();
#else
    cpu_addon(a);
#endif
  });
  CLOZE_EXPORT(exports, "cudaDestroyStream", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    cuda::destroy_stream(stream_arg(a, 0), a.op);
    return a.env().Undefined();
#else
    cpu_addon(a);
#endif
  });
}

}  // namespace cloze
