// Device-side helpers shared by the CUDA kernels: element loads and stores
// that widen bfloat16 to float (all arithmetic is fp32), launch geometry,
// warp and block reductions, and the launch check.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/dtype.h"
#include "../core/error.h"
#include "runtime.h"

namespace cloze {
namespace cuda {

static_assert(sizeof(bf16) == sizeof(__nv_bfloat16), "cloze::bf16 must match __nv_bfloat16");

// Storage type as the kernels see it: cloze::bf16 becomes __nv_bfloat16.
template <typename T> struct dev_type { using type = T; };
template <> struct dev_type<bf16> { using type = __nv_bfloat16; };
template <typename T> using dev_t = typename dev_type<T>::type;

template <typename T>
inline dev_t<T>* dptr(T* p) { return reinterpret_cast<dev_t<T>*>(p); }
template <typename T>
inline const dev_t<T>* dptr(const T* p) { return reinterpret_cast<const dev_t<T>*>(p); }

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(double x) { return static_cast<float>(x); }

template <typename D> __device__ __forceinline__ D from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// Loads and stores through host-visible element types (float or cloze::bf16).
template <typename T>
__device__ __forceinline__ float ld(const T* p, int64_t i) { return to_f(reinterpret_cast<const dev_t<T>*>(p)[i]); }
template <typename T>
__device__ __forceinline__ void st(T* p, int64_t i, float v) { reinterpret_cast<dev_t<T>*>(p)[i] = from_f<dev_t<T>>(v); }

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  // Grid-stride loops cover the rest; 65535·32 keeps the grid within limits and the SMs busy.
  return static_cast<unsigned>(b > 2097120 ? 2097120 : b);
}

#define CLOZE_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace cuda
}  // namespace cloze

// Launches on the current stream and checks the launch, naming the op.
#define CLOZE_LAUNCH(op, kernel, grid, block, smem, ...)                        \
  do {                                                                          \
    kernel<<<(grid), (block), (smem), ::cloze::cuda::stream()>>>(__VA_ARGS__);  \
    ::cloze::cuda::check_launch(op);                                            \
  } while (0)
