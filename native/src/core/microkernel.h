// Small dense product C (+)= A·B on row-major tiles, register-blocked with
// GCC/Clang vector extensions so it compiles to AVX-512, AVX2 or SSE as the
// target allows. Used inside the fused kernels (attention tiles) and by the
// built-in GEMM. (OpenBLAS, single-threaded, is called from pool threads: blas.cc's gemm_blas splits products
// over the pool.)
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

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
  // A lane-0 shuffle compiles to one vbroadcast. An element loop gave one
  // masked broadcast per lane, and `zero + x` a scalar add before the broadcast
  // (0 + x cannot be folded because of signed zeros), in the GEMM's inner loop.
#if defined(__clang__)
  return typename VecT<T>::type{} + x;  // clang lowers a vector+scalar splat to a broadcast
#else
  typename VecT<T>::type v = {x};
  typedef typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type I;
  typedef I M __attribute__((vector_size(kVecBytes)));
  return __builtin_shuffle(v, M{});
#endif
}

// Rows of gemm_panel's register blocks: 8 rows × 2 vectors = 16 accumulators fits AVX-512's 32 registers and
// measured about 2× the 4-row block on a 64×64×64 tile (Zen 4); 16-register ISAs use 4 rows.
constexpr int kPanelRows = kVecBytes == 64 ? 8 : 4;

// Side work for gemm_block's k loop (none by default): a type with step(), called once every 4 k (see
// attention.cc's ExpRows, which computes exponentials between the P·V product's FMAs).
struct NoSideWork {
  void step() {}
};

// How gemm_block's accumulators start: zero, C, or C with its rows scaled.
enum class BlockInit { kZero, kLoad, kLoadScaled };

// gemm_block for one way of starting the accumulators, chosen at compile time: with the choice made at run time
// inside one body, GCC kept the accumulator array in memory around the k loop (zeroed or loaded there, then read
// back into registers before it, and written out again after), which cost about 30 extra loads and stores per
// block; the forward of attention ran 3–5% faster without them (bench/RESULTS.md, "Register-resident
// accumulators").
// ScaledOut: the block goes to out (row stride ldo) with its rows scaled by out_scale instead of to C (attention's
// last key tile writes its normalised output rows straight from the registers; a compile-time choice, as Init's).
template <typename T, int MR, int NV, typename Side, BlockInit Init, bool ScaledOut = false>
inline void gemm_block_init(int64_t K, const T* __restrict A, int64_t ars, int64_t acs, const T* __restrict B,
                            int64_t ldb, T* __restrict C, int64_t ldc, const T* row_scale, Side* side,
                            T* __restrict out = nullptr, int64_t ldo = 0, const T* out_scale = nullptr) {
  using V = typename VecT<T>::type;
  constexpr int W = VecT<T>::W;
  V c[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int s = 0; s < NV; s++) {
      if constexpr (Init == BlockInit::kZero) {
        c[r][s] = vsplat<T>(0);
      } else {
        c[r][s] = vload(C + r * ldc + s * W);
        if constexpr (Init == BlockInit::kLoadScaled) c[r][s] *= row_scale[r];
      }
    }
  for (int64_t k = 0; k < K; k++) {
    V b[NV];
#pragma GCC unroll 4
    for (int s = 0; s < NV; s++) b[s] = vload(B + k * ldb + s * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const V a = vsplat<T>(A[r * ars + k * acs]);
#pragma GCC unroll 4
      for (int s = 0; s < NV; s++) c[r][s] += a * b[s];
    }
    if constexpr (!std::is_same_v<Side, NoSideWork>)
      if ((k & 3) == 3) side->step();
  }
  if constexpr (ScaledOut) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const V sc = vsplat<T>(out_scale[r]);
#pragma GCC unroll 4
      for (int s = 0; s < NV; s++) vstore(out + r * ldo + s * W, c[r][s] * sc);
    }
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int s = 0; s < NV; s++) vstore(C + r * ldc + s * W, c[r][s]);
  }
}

// One register block: C[MR × NV·W] (+)= A[MR × K]·B[K × NV·W], all accumulators
// held in vector registers across the whole K loop.
// A's element (r, k) is A[r·ars + k·acs], so a transposed A costs nothing:
// it is only ever read one scalar at a time, for a broadcast.
// row_scale (with accumulate; null = off): C's row r is multiplied by row_scale[r] as it is loaded, i.e.
// C ← diag(row_scale)·C + A·B: attention's online-softmax correction of its output, without a pass of its own.
// side: work run between the FMAs (Side::step() once every 4 k), for attention's exponentials.
template <typename T, int MR, int NV, typename Side = NoSideWork>
inline void gemm_block(int64_t K, const T* __restrict A, int64_t ars, int64_t acs, const T* __restrict B, int64_t ldb,
                       T* __restrict C, int64_t ldc, bool accumulate, const T* row_scale = nullptr,
                       Side* side = nullptr) {
  if (!accumulate)
    gemm_block_init<T, MR, NV, Side, BlockInit::kZero>(K, A, ars, acs, B, ldb, C, ldc, row_scale, side);
  else if (row_scale)
    gemm_block_init<T, MR, NV, Side, BlockInit::kLoadScaled>(K, A, ars, acs, B, ldb, C, ldc, row_scale, side);
  else
    gemm_block_init<T, MR, NV, Side, BlockInit::kLoad>(K, A, ars, acs, B, ldb, C, ldc, row_scale, side);
}

// Rows of a column panel NV·W wide: MR-row blocks, then 4-row, then single rows.
template <typename T, int NV>
inline void gemm_panel(int64_t M, int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                       int64_t ldc, bool accumulate, const T* row_scale = nullptr) {
  constexpr int MR = kPanelRows;
  int64_t i = 0;
  auto rs = [&](int64_t i) { return row_scale ? row_scale + i : nullptr; };
  for (; i + MR <= M; i += MR)
    gemm_block<T, MR, NV>(K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, accumulate, rs(i));
  if (MR > 4)
    for (; i + 4 <= M; i += 4)
      gemm_block<T, 4, NV>(K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, accumulate, rs(i));
  for (; i < M; i++)
    gemm_block<T, 1, NV>(K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, accumulate, rs(i));
}

// C[M×N] = (accumulate ? diag(row_scale)·C : 0) + A·B[K×N], A's element (r, k) at A[r·ars + k·acs]; row_scale
// null = no scaling.
template <typename T>
void tile_gemm_strided(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t ars, int64_t acs,
                       const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate,
                       const T* row_scale = nullptr) {
  constexpr int W = VecT<T>::W;
  int64_t j = 0;
  for (; j + 2 * W <= N; j += 2 * W)
    gemm_panel<T, 2>(M, K, A, ars, acs, B + j, ldb, C + j, ldc, accumulate, row_scale);
  for (; j + W <= N; j += W)
    gemm_panel<T, 1>(M, K, A, ars, acs, B + j, ldb, C + j, ldc, accumulate, row_scale);
  if (j < N) {
    for (int64_t i = 0; i < M; i++) {
      for (int64_t jj = j; jj < N; jj++) {
        T acc = accumulate ? C[i * ldc + jj] * (row_scale ? row_scale[i] : T(1)) : T(0);
        for (int64_t k = 0; k < K; k++) acc += A[i * ars + k * acs] * B[k * ldb + jj];
        C[i * ldc + jj] = acc;
      }
    }
  }
}

// C[M×N] = (accumulate ? diag(row_scale)·C : 0) + A[M×K]·B[K×N]; lda/ldb/ldc are row strides.
template <typename T>
inline void tile_gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                      int64_t ldc, bool accumulate, const T* row_scale = nullptr) {
  tile_gemm_strided<T>(M, N, K, A, lda, 1, B, ldb, C, ldc, accumulate, row_scale);
}

// C[M×N] = (accumulate ? C : 0) + Aᵀ·B with A stored [K×M] (row stride lda).
template <typename T>
inline void tile_gemm_at(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                         int64_t ldc, bool accumulate) {
  tile_gemm_strided<T>(M, N, K, A, 1, lda, B, ldb, C, ldc, accumulate);
}

// dst[0, n) = src[0, n) in vector registers: for the short rows (a head's 64 values) that the fused kernels
// pack and unpack, where std::copy's call to memmove cost more than the copy (12% of attention at L = 128).
// The empty asm marks each vector as changed in its register: without it GCC recognised the loop as a copy and
// replaced it with a call to memmove (-ftree-loop-distribute-patterns), which is what this function exists to avoid;
// that call took 5.5% of a single-threaded attention fwd+bwd at L = 512 (perf, 2026-12-05).
template <typename T>
inline void copy_short(const T* __restrict src, T* __restrict dst, int64_t n) {
  constexpr int W = VecT<T>::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    typename VecT<T>::type x = vload(src + i);
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+v"(x));
#elif defined(__aarch64__)
    __asm__("" : "+w"(x));
#else
    __asm__ volatile("" ::: "memory");
#endif
    vstore(dst + i, x);
  }
  for (; i < n; i++) dst[i] = src[i];
}

#if defined(__AVX512F__) && !defined(__clang__)
// dst[16 × 16] = transpose of src[16 × 16] in registers: 64 two-input shuffles (32-bit, then 64-bit
// interleaves within 128-bit lanes, then two lane exchanges) instead of 256 scalar loads and strided stores.
// Measured 4.7× faster than the scalar blocks on a 128 × 64 tile (Zen 4); attention packs Kᵀ and Vᵀ with it.
inline void transpose16_f32(const float* src, int64_t lds, float* dst, int64_t ldd) {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t M __attribute__((vector_size(64)));
  V r[16], a[16], b[16];
  for (int i = 0; i < 16; i++) std::memcpy(&r[i], src + i * lds, sizeof(V));
  const M lo32 = {0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29};
  const M hi32 = {2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31};
  for (int i = 0; i < 8; i++) {
    a[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], lo32);
    a[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], hi32);
  }
  // b[4i + c], 128-bit lane L: rows 4i … 4i+3 of column 4L + c.
  const M lo64 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const M hi64 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  for (int i = 0; i < 4; i++) {
    b[4 * i] = __builtin_shuffle(a[4 * i], a[4 * i + 2], lo64);
    b[4 * i + 1] = __builtin_shuffle(a[4 * i], a[4 * i + 2], hi64);
    b[4 * i + 2] = __builtin_shuffle(a[4 * i + 1], a[4 * i + 3], lo64);
    b[4 * i + 3] = __builtin_shuffle(a[4 * i + 1], a[4 * i + 3], hi64);
  }
  // Column 4L + c is lane L of b[c], b[4 + c], b[8 + c], b[12 + c]: a 4 × 4 transpose of 128-bit lanes.
  const M even = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const M odd = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  const M low = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const M high = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  for (int c = 0; c < 4; c++) {
    const V x0 = __builtin_shuffle(b[c], b[4 + c], even), x1 = __builtin_shuffle(b[c], b[4 + c], odd);
    const V y0 = __builtin_shuffle(b[8 + c], b[12 + c], even), y1 = __builtin_shuffle(b[8 + c], b[12 + c], odd);
    const V o0 = __builtin_shuffle(x0, y0, low), o2 = __builtin_shuffle(x0, y0, high);
    const V o1 = __builtin_shuffle(x1, y1, low), o3 = __builtin_shuffle(x1, y1, high);
    std::memcpy(dst + c * ldd, &o0, sizeof(V));
    std::memcpy(dst + (4 + c) * ldd, &o1, sizeof(V));
    std::memcpy(dst + (8 + c) * ldd, &o2, sizeof(V));
    std::memcpy(dst + (12 + c) * ldd, &o3, sizeof(V));
  }
}
#endif

// dst[c×r] = transpose of src[r×c] (row strides given).
template <typename T>
void transpose_tile(int64_t r, int64_t c, const T* src, int64_t lds, T* dst, int64_t ldd) {
  constexpr int64_t BS = 16;
  for (int64_t i0 = 0; i0 < r; i0 += BS)
    for (int64_t j0 = 0; j0 < c; j0 += BS) {
#if defined(__AVX512F__) && !defined(__clang__)
      if constexpr (std::is_same_v<T, float>) {
        if (i0 + BS <= r && j0 + BS <= c) {
          transpose16_f32(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
          continue;
        }
      }
#endif
      for (int64_t i = i0; i < (i0 + BS < r ? i0 + BS : r); i++)
        for (int64_t j = j0; j < (j0 + BS < c ? j0 + BS : c); j++) dst[j * ldd + i] = src[i * lds + j];
    }
}

}  // namespace cloze
