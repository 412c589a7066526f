// Shared pieces of the bfloat16 tensor-core attention kernels
// (attention_mma_fwd.cu, attention_mma_bwd.cu).
//
// Fused attention for bfloat16 on the tensor cores with register-resident
// tiles, FlashAttention-2 style: mma.sync m16n8k16 (bf16 in, float32
// accumulate), ldmatrix from padded shared-memory tiles, cp.async double
// buffering of the streamed tiles. The first GPU run of the shared-memory
// tiled kernels (attention.cu, attention_backward.cu) measured them at 0.03×
// of PyTorch's flash backend: every product went through shared memory and
// back. Here scores, probabilities and accumulators stay in registers.
//
// The same function as the tiled kernels (every mask option through the same
// logit(), lse in float32), but not every output: the row entropy, its
// gradient and the bias gradient stay with the tiled kernels, which the
// dispatch in attention_forward_cuda / attention_backward_cuda falls back to
// (as it does for float32, a head width that is not a multiple of 8, or
// operands not 16-byte aligned). The backward computes dK, dV in one kernel
// and dQ in a second that recomputes S and dP: no atomics, so every gradient
// is deterministic, as the tiled kernels' are.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): with g = lane / 4 and
// t = lane % 4, the float accumulator c0..c3 holds (row g, cols 2t, 2t+1) and
// (row g+8, cols 2t, 2t+1) of a 16×8 tile; the A operand's four registers hold
// (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..) of a 16×16 tile; the
// B operand's two hold (k 2t..2t+1, col g) and (k 2t+8.., col g). ldmatrix
// gives lane l the pair (row l/4, cols 2(l%4)..) of each 8×8 matrix, and with
// .trans the pair (rows 2(l%4).., col l/4). So two accumulator tiles of S are
// the A operand of P·V as they stand, and B operands come from ldmatrix on a
// row-major tile (K for Q·Kᵀ) or ldmatrix.trans (V for P·V).
#pragma once
#include <cfloat>
#include <cstdint>

#include "attention_mma.h"
#include "attention_tiles.cuh"

namespace cloze {
namespace cuda {
namespace fa {

using attn::RowCtx;
using attn::TileId;
using bf = __nv_bfloat16;

constexpr int kThreads = 128;  // 4 warps; each owns 16 rows of the CTA's 64
constexpr int kRows = 64;      // rows per CTA tile (queries forward and in dQ, keys in dK/dV)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// c (16×8, float32) += a (16×16) · b (16×8).
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair, the first in the low half (the lower column).
__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// 16 bytes global → shared, or 16 zero bytes when !valid (src-size 0 reads nothing).
__device__ __forceinline__ void cp16(bf* dst, const bf* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0));
}
// 4 bytes global → shared, or zero when !valid (a float of lse or D).
__device__ __forceinline__ void cp4(float* dst, const float* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ROWS × HD tile of token rows (src = row 0 of the tile, head offset applied)
// into dst with row stride HD + 8 elements (16 bytes of stagger, so the eight
// row addresses of one ldmatrix fall in different banks). Rows ≥ nvalid and
// columns ≥ Dh are zero: they add nothing to any product.
template <int ROWS, int HD>
__device__ __forceinline__ void load_tile(bf* dst, const bf* src, int64_t row, int nvalid, int Dh) {
  constexpr int CH = HD / 8, LD = HD + 8;
  for (int c = threadIdx.x; c < ROWS * CH; c += kThreads) {
    const int r = c / CH, d = (c % CH) * 8;
    const bool ok = r < nvalid && d < Dh;
    cp16(dst + r * LD + d, ok ? src + r * row + d : src, ok);
  }
}

// A operand (16 rows × 16 columns at (r0, c0)) of a row-major tile with stride LD.
template <int LD>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf* tile, int r0, int c0) {
  const int lane = threadIdx.x & 31, m = lane >> 3, r = lane & 7;
  ldsm_x4(a, tile + (r0 + r + ((m & 1) << 3)) * LD + c0 + ((m >> 1) << 3));
}
// B operands of two n-tiles (n0, n0+8) for one k16 step at k0, when the
// product wants tileᵀ (the tile is row-major [n][k], as K in Q·Kᵀ): b[0], b[1]
// for n-tile n0, b[2], b[3] for n0 + 8.
template <int LD>
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const bf* tile, int n0, int k0) {
  const int lane = threadIdx.x & 31, m = lane >> 3, r = lane & 7;
  ldsm_x4(b, tile + (n0 + r + ((m >> 1) << 3)) * LD + k0 + ((m & 1) << 3));
}
// The same when the tile is row-major [k][n] (as V in P·V): transposed loads.
template <int LD>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const bf* tile, int n0, int k0) {
  const int lane = threadIdx.x & 31, m = lane >> 3, r = lane & 7;
  ldsm_x4_t(b, tile + (k0 + r + ((m & 1) << 3)) * LD + n0 + ((m >> 1) << 3));
}

// A operand for the k16 step kc from accumulator tiles 2kc and 2kc+1 (16 rows × 8 columns each).
template <int N>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&x)[N][4], int kc) {
  a[0] = pack(x[2 * kc][0], x[2 * kc][1]);
  a[1] = pack(x[2 * kc][2], x[2 * kc][3]);
  a[2] = pack(x[2 * kc + 1][0], x[2 * kc + 1][1]);
  a[3] = pack(x[2 * kc + 1][2], x[2 * kc + 1][3]);
}

// Whether the logit needs only scale and the key-side checks (padding, past
// the sequence); otherwise every option goes through attn::logit.
__host__ __device__ __forceinline__ bool plain(const AttentionParams<bf16>& p) {
  return !p.alibi_slopes && !p.bias && !p.attn_mask && !(p.exclude_masked_keys && p.token_mask);
}

// Whether the kernels take their unmasked fast path (the FAST template instances): plain, no key padding, and a
// positive scale. There every logit is scale·dot, so the kernels keep the raw dot products, fold scale·log2 e into
// the exponent's FMA (exp2(dot·c − m) with m in log2 units; max(dot)·c = max(dot·c) because c > 0 and rounding
// is monotone) and mask by index only on a partial tile; every row in the sequence has a live key, so no maximum
// or log-sum-exp of a row that is kept is −∞. The general path spends a logit2 per element: two index compares, a
// select, a multiply and exp2f's range handling, several times the FMA and MUFU.EX2 the fast path issues.
// (Not measured on a GPU yet; p.mma_general keeps the general path for the tests' and bench:cuda's comparison.)
// The test is on the float the kernels use, scale·log2 e: a positive double scale below float's range rounds it to
// 0, where a masked key's −∞·0 would be NaN (a review emulated it: every row of a partial tile NaN), and one above
// gives +∞; both take the general path. Normal floats only (FLT_MIN and up), for the scale itself as well as the
// product: the kernels round the scale to float first, and a build flushing denormals would make a denormal float
// scale (1e-38, say, whose product with log2 e is normal) 0 on the device.
__host__ __device__ __forceinline__ bool fast_path(const AttentionParams<bf16>& p) {
  const float s = static_cast<float>(p.scale);
  const float sl2 = s * kLog2e;
  return plain(p) && !p.key_padding && s >= FLT_MIN && sl2 >= FLT_MIN && sl2 < INFINITY && !p.mma_general;
}

// 2^x by the SFU alone (MUFU.EX2, flush-to-zero): −∞ gives +0, and the relative error (about 2^-22) is far below the
// bf16 rounding P gets before the P·V product. exp2f adds range handling for denormal results around it.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The logit of (query i, key j) in log2 units (× log2 e), −∞ when masked or
// when either index is past the sequence. The forward and both backward
// kernels call this one function, so P is recomputed exactly.
__device__ __forceinline__ float logit2(const AttentionParams<bf16>& p, bool pl, int64_t b, int h, int64_t start, int len,
                                        int i, int j, float dot) {
  if (i >= len || j >= len) return -INFINITY;
  if (pl) {
    if (p.key_padding && p.key_padding[b * p.L + j]) return -INFINITY;
    return dot * static_cast<float>(p.scale) * kLog2e;
  }
  const RowCtx ctx = attn::row_ctx(p, b, h, start, i);
  const float x = attn::logit(p, ctx, dot, j);
  return x == -INFINITY ? -INFINITY : x * kLog2e;
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

template <typename T>
__device__ __forceinline__ const bf* rows_of(const T* base, int64_t start, int64_t r0, int64_t row, int h, int64_t Dh) {
  return reinterpret_cast<const bf*>(base) + (start + r0) * row + h * Dh;
}


// ---------------------------------------------------------------- dispatch
inline bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// Whether these kernels take the call: a head width that is a multiple of 8
// (16-byte rows) up to 128, every row stride a multiple of 8 elements and
// every base 16-byte aligned.
inline bool fits(const AttentionParams<bf16>& p) {
  if (p.tiled_kernel || p.Dh <= 0 || p.Dh > 128 || p.Dh % 8 != 0) return false;
  for (int64_t r : {p.q_row, p.k_row, p.v_row, p.o_row})
    if (r % 8 != 0) return false;
  for (const void* ptr : {static_cast<const void*>(p.q), static_cast<const void*>(p.k), static_cast<const void*>(p.v),
                          static_cast<const void*>(p.out)})
    if (!aligned16(ptr)) return false;
  return true;
}

inline int head_tile(int64_t Dh) { return Dh <= 32 ? 32 : Dh <= 64 ? 64 : 128; }

// The dynamic shared-memory opt-in (above 48 KB), made once per kernel: the
// caller keeps the result in a function-local static of its own template
// instantiation, one per kernel. (A static inside a helper templated on the
// kernel's type would be shared by every kernel of that signature: the first
// GPU run that launched these kernels found dq_kernel launched without its opt-in that way.)
template <typename K>
inline cudaError_t opt_in(K kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}


}  // namespace fa
}  // namespace cuda
}  // namespace cloze
