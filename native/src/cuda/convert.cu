// fill and cast on the device, for every dtype pair.
#include "common.cuh"

namespace cloze {
namespace cuda {

namespace {

template <typename D>
__device__ __forceinline__ D convert_to(double v);
template <> __device__ __forceinline__ float convert_to<float>(double v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ double convert_to<double>(double v) { return v; }
template <> __device__ __forceinline__ int32_t convert_to<int32_t>(double v) { return static_cast<int32_t>(v); }
template <> __device__ __forceinline__ uint8_t convert_to<uint8_t>(double v) { return static_cast<uint8_t>(v); }
template <> __device__ __forceinline__ __nv_bfloat16 convert_to<__nv_bfloat16>(double v) {
  return __float2bfloat16(static_cast<float>(v));
}

__device__ __forceinline__ double as_double(float x) { return x; }
__device__ __forceinline__ double as_double(double x) { return x; }
__device__ __forceinline__ double as_double(int32_t x) { return x; }
__device__ __forceinline__ double as_double(uint8_t x) { return x; }
__device__ __forceinline__ double as_double(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename D>
__global__ void fill_kernel(D* dst, int64_t n, D v) {
  CLOZE_GRID_STRIDE(i, n) dst[i] = v;
}

template <typename S, typename D>
__global__ void cast_kernel(const S* src, D* dst, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) dst[i] = convert_to<D>(as_double(src[i]));
}

// Calls f(T*) with the device element type of dtype.
template <typename F>
void by_dtype(int dtype, F&& f) {
  switch (static_cast<DType>(dtype)) {
    case DType::F32: f(static_cast<float*>(nullptr)); break;
    case DType::F64: f(static_cast<double*>(nullptr)); break;
    case DType::I32: f(static_cast<int32_t*>(nullptr)); break;
    case DType::BF16: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    default: f(static_cast<uint8_t*>(nullptr)); break;
  }
}

}  // namespace

void fill(void* dst, int dtype, int64_t n, double value, const char* op) {
  if (n == 0) return;
  by_dtype(dtype, [&](auto tag) {
    using D = std::remove_pointer_t<decltype(tag)>;
    D v;
    if constexpr (std::is_same_v<D, __nv_bfloat16>) {
      const bf16 h = bf16_from_float(static_cast<float>(value));
      memcpy(&v, &h, sizeof v);
    } else {
      v = static_cast<D>(value);
    }
    CLOZE_LAUNCH(op, fill_kernel<D>, blocks_for(n), kThreads, 0, static_cast<D*>(dst), n, v);
  });
}

void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n, const char* op) {
  if (n == 0) return;
  by_dtype(src_dtype, [&](auto s) {
    using S = std::remove_pointer_t<decltype(s)>;
    by_dtype(dst_dtype, [&](auto d) {
      using D = std::remove_pointer_t<decltype(d)>;
      CLOZE_LAUNCH(op, (cast_kernel<S, D>), blocks_for(n), kThreads, 0, static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
}

}  // namespace cuda
}  // namespace cloze
