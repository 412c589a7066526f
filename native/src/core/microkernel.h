// Small dense product C (+)= A·B on row-major tiles, register-blocked with
// GCC/Clang vector extensions so it compiles to AVX-512, AVX2 or SSE as the
// target allows. Used inside the fused kernels (attention tiles) and by the
// built-in GEMM; BLAS is not called from pool threads.
#pragma once
#include <cstdint>
#include <cstring>

namespace cloze {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <typename T>
struct VecT {
  static constexpr int W = kVecBytes / static_cast<int>(sizeof(T));
  typedef T type __attribute__((vector_size(kVecBytes), aligned(sizeof(T)), may_alias));
};

template <typename T>
inline typename VecT<T>::type vload(const T* p) { return *reinterpret_cast<const typename VecT<T>::type*>(p); }
template <typename T>
inline void vstore(T* p, typename VecT<T>::type v) { *reinterpret_cast<typename VecT<T>::type*>(p) = v; }
template <typename T>
inline typename VecT<T>::type vsplat(T x) {
  typename VecT<T>::type v;
  for (int i = 0; i < VecT<T>::W; i++) v[i] = x;
  return v;
}

// C[M×N] = (accumulate ? C : 0) + A[M×K]·B[K×N]; lda/ldb/ldc are row strides.
template <typename T>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t lda, const T* __restrict B,
               int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  using V = typename VecT<T>::type;
  constexpr int W = VecT<T>::W;
  constexpr int MR = 4;
  int64_t j = 0;
  for (; j + 2 * W <= N; j += 2 * W) {
    int64_t i = 0;
    for (; i + MR <= M; i += MR) {
      V c[MR][2];
      for (int r = 0; r < MR; r++)
        for (int s = 0; s < 2; s++) c[r][s] = accumulate ? vload(C + (i + r) * ldc + j + s * W) : vsplat<T>(0);
      const T* a0 = A + i * lda;
      for (int64_t k = 0; k < K; k++) {
        V b0 = vload(B + k * ldb + j), b1 = vload(B + k * ldb + j + W);
        for (int r = 0; r < MR; r++) {
          V a = vsplat<T>(a0[r * lda + k]);
          c[r][0] += a * b0;
          c[r][1] += a * b1;
        }
      }
      for (int r = 0; r < MR; r++)
        for (int s = 0; s < 2; s++) vstore(C + (i + r) * ldc + j + s * W, c[r][s]);
    }
    for (; i < M; i++) {
      V c0 = accumulate ? vload(C + i * ldc + j) : vsplat<T>(0);
      V c1 = accumulate ? vload(C + i * ldc + j + W) : vsplat<T>(0);
      for (int64_t k = 0; k < K; k++) {
        V a = vsplat<T>(A[i * lda + k]);
        c0 += a * vload(B + k * ldb + j);
        c1 += a * vload(B + k * ldb + j + W);
      }
      vstore(C + i * ldc + j, c0);
      vstore(C + i * ldc + j + W, c1);
    }
  }
  for (; j + W <= N; j += W) {
    for (int64_t i = 0; i < M; i++) {
      V c0 = accumulate ? vload(C + i * ldc + j) : vsplat<T>(0);
      for (int64_t k = 0; k < K; k++) c0 += vsplat<T>(A[i * lda + k]) * vload(B + k * ldb + j);
      vstore(C + i * ldc + j, c0);
    }
  }
  if (j < N) {
    for (int64_t i = 0; i < M; i++) {
      for (int64_t jj = j; jj < N; jj++) {
        T acc = accumulate ? C[i * ldc + jj] : T(0);
        for (int64_t k = 0; k < K; k++) acc += A[i * lda + k] * B[k * ldb + jj];
        C[i * ldc + jj] = acc;
      }
    }
  }
}

// dst[c×r] = transpose of src[r×c] (row strides given).
template <typename T>
void transpose_tile(int64_t r, int64_t c, const T* src, int64_t lds, T* dst, int64_t ldd) {
  constexpr int64_t BS = 16;
  for (int64_t i0 = 0; i0 < r; i0 += BS)
    for (int64_t j0 = 0; j0 < c; j0 += BS)
      for (int64_t i = i0; i < (i0 + BS < r ? i0 + BS : r); i++)
        for (int64_t j = j0; j < (j0 + BS < c ? j0 + BS : c); j++) dst[j * ldd + i] = src[i * lds + j];
}

}  // namespace cloze
