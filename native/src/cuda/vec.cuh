// 16-byte packs for the memory-bound kernels: one 128-bit load or store moves
// kVec<T> elements (4 floats or 8 bf16) where ld/st move one 2- or 4-byte
// element, which is what it takes to get near the HBM bandwidth. A pack widens
// to float f[kVec<T>] and rounds back per element exactly as ld/st do (bf16:
// exact widening, round to nearest even), so a kernel that runs the same fp32
// formula per element gives the same bits through packs as through ld/st.
#pragma once
#include <cstdint>
#include <cstring>

#include "common.cuh"

namespace cloze {
namespace cuda {

// Elements of storage type T (float, cloze::bf16 or __nv_bfloat16) per 16-byte pack.
template <typename T> inline constexpr int kVec = 16 / static_cast<int>(sizeof(T));

template <typename D> struct Pack;

template <> struct Pack<float> {
  __device__ __forceinline__ static void load(const float* p, float* f) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    f[0] = v.x;
    f[1] = v.y;
    f[2] = v.z;
    f[3] = v.w;
  }
  __device__ __forceinline__ static void store(float* p, const float* f) {
    *reinterpret_cast<float4*>(p) = make_float4(f[0], f[1], f[2], f[3]);
  }
};

template <> struct Pack<__nv_bfloat16> {
  // Four 32-bit words, each a __nv_bfloat162 whose .x is the element at the lower address.
  __device__ __forceinline__ static void load(const __nv_bfloat16* p, float* f) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
      __nv_bfloat162 h;
      memcpy(&h, &w[k], 4);
      const float2 v = __bfloat1622float2(h);
      f[2 * k] = v.x;
      f[2 * k + 1] = v.y;
    }
  }
  // __floats2bfloat162_rn rounds each half as __float2bfloat16 (cvt.rn), so the bits match st().
  __device__ __forceinline__ static void store(__nv_bfloat16* p, const float* f) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
      memcpy(&w[k], &h, 4);
    }
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  }
};

// Pack j of p: elements [j·kVec, (j + 1)·kVec). p must be 16-byte aligned.
template <typename T>
__device__ __forceinline__ void ld_pack(const T* p, int64_t j, float (&f)[kVec<T>]) {
  Pack<dev_t<T>>::load(reinterpret_cast<const dev_t<T>*>(p) + j * kVec<T>, f);
}
template <typename T>
__device__ __forceinline__ void st_pack(T* p, int64_t j, const float (&f)[kVec<T>]) {
  Pack<dev_t<T>>::store(reinterpret_cast<dev_t<T>*>(p) + j * kVec<T>, f);
}

// Host side: whether every non-null pointer is 16-byte aligned (views at an
// element offset need not be), i.e. whether a kernel may take the pack path.
template <typename... P>
inline bool aligned16(P... p) {
  return ((p == nullptr || reinterpret_cast<uintptr_t>(static_cast<const void*>(p)) % 16 == 0) && ...);
}

}  // namespace cuda
}  // namespace cloze
