// Shared pieces of the fused attention kernels (attention.cu,
// attention_backward.cu): tile sizes, shared-memory layouts, tile loads, the
// logit function (every mask option, the same order as the CPU kernel's
// finish_logits), and one matrix-product routine over shared-memory tiles.
//
// Every product reads bf16/float operand tiles from shared memory and adds
// into float32 tiles in shared memory. bfloat16 goes through the tensor cores
// with nvcuda::wmma (16×16×16, fp32 accumulate); float32 uses plain FMA loops.
// The softmax runs on the float32 score tiles in shared memory, a warp per row,
// so no code depends on how an accumulator fragment maps to rows: the layout
// of a wmma fragment is unspecified, and with no GPU to test on, staging the
// scores through shared memory is the choice that can be checked by reading.
#pragma once
#include <mma.h>

#include <type_traits>

#include "../ops/attention.h"
#include "common.cuh"

namespace cloze {
namespace cuda {
namespace attn {

constexpr int kCta = 128;  // threads per CTA: 4 warps
constexpr int kWarps = kCta / 32;

// Tile shapes and shared-memory element type per dtype. bf16 tiles are 64×64
// (wmma needs multiples of 16, and the backward at Dh = 128 takes 187 KB
// of the 227 KB a Hopper block may opt into); float32 tiles are 32×32 so that its wider elements fit too.
template <typename T> struct Cfg;
template <> struct Cfg<float> {
  using E = float;
  static constexpr int BQ = 32, BK = 32;
  __host__ __device__ static int dpad(int Dh) { return Dh; }
  // Odd strides: the FMA loops read K and V by column without bank conflicts.
  __host__ __device__ static int ldx(int Dk) { return Dk + 1; }
  static constexpr int ldp = BK + 1;
};
template <> struct Cfg<bf16> {
  using E = __nv_bfloat16;
  static constexpr int BQ = 64, BK = 64;
  // The head width rounded up to the mma K step; the pad columns hold zeros.
  __host__ __device__ static int dpad(int Dh) { return (Dh + 15) / 16 * 16; }
  // wmma wants strides that are multiples of 8 elements; +8 staggers the banks.
  __host__ __device__ static int ldx(int Dk) { return Dk + 8; }
  static constexpr int ldp = BK + 8;
};

// A bump allocator for the dynamic shared memory, run identically on the host
// (to size the launch) and on the device (to find the regions). 128-byte
// alignment covers wmma's 32-byte pointer rule.
struct Carve {
  size_t off = 0;
  __host__ __device__ size_t take(size_t bytes) {
    const size_t at = off;
    off = (off + bytes + 127) / 128 * 128;
    return at;
  }
};

// Row-major / column-major operands for mm(): element (r, k) of a row-major A
// is A[r·lda + k], of a column-major A is A[k·lda + r]; likewise B(k, c).
enum Lay { kRow, kCol };

// C[M×N] (+)= A[M×K]·B[K×N] over shared-memory tiles, by the whole CTA.
// Each output element (float) or 16×16 output tile (wmma) belongs to one
// thread or warp, so no two threads write the same C entry. The caller
// synchronizes before (inputs written) and after (C read).
template <Lay LA, Lay LB, bool ACC>
__device__ __forceinline__ void mm(float* C, int ldc, const float* A, int lda, const float* B, int ldb, int M, int N, int K) {
  for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
    const int r = idx / N, c = idx % N;
    float acc = ACC ? C[r * ldc + c] : 0.f;
    for (int k = 0; k < K; k++) {
      const float a = LA == kRow ? A[r * lda + k] : A[k * lda + r];
      const float b = LB == kRow ? B[k * ldb + c] : B[c * ldb + k];
      acc = fmaf(a, b, acc);
    }
    C[r * ldc + c] = acc;
  }
}

// bf16 on the tensor cores. M, N, K are multiples of 16; every pointer handed
// to wmma is 32-byte aligned because the region bases are (Carve) and the
// strides are multiples of 8 elements (16 bytes ×16 rows = 256 bytes).
template <Lay LA, Lay LB, bool ACC>
__device__ __forceinline__ void mm(float* C, int ldc, const __nv_bfloat16* A, int lda, const __nv_bfloat16* B, int ldb, int M,
                                   int N, int K) {
  using namespace nvcuda;
  using LayA = std::conditional_t<LA == kRow, wmma::row_major, wmma::col_major>;
  using LayB = std::conditional_t<LB == kRow, wmma::row_major, wmma::col_major>;
  const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int tn = N / 16, tiles = (M / 16) * tn;
  for (int t = warp; t < tiles; t += nw) {
    const int mi = t / tn, ni = t % tn;
    float* cp = C + mi * 16 * ldc + ni * 16;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    if (ACC)
      wmma::load_matrix_sync(acc, cp, ldc, wmma::mem_row_major);
    else
      wmma::fill_fragment(acc, 0.f);
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayA> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayB> b;
      const __nv_bfloat16* ap = LA == kRow ? A + mi * 16 * lda + k : A + k * lda + mi * 16;
      const __nv_bfloat16* bp = LB == kRow ? B + k * ldb + ni * 16 : B + ni * 16 * ldb + k;
      wmma::load_matrix_sync(a, ap, lda);
      wmma::load_matrix_sync(b, bp, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(cp, acc, ldc, wmma::mem_row_major);
  }
}

// rows × Dk tile from token rows src[r·row + d]: rows ≥ nvalid and columns
// ≥ Dh are zero, so padded rows and columns add nothing to any product (and
// hold no stale NaN from an earlier tile).
template <typename T, typename E>
__device__ __forceinline__ void load_rows(E* dst, int ld, const T* src, int64_t row, int nvalid, int rows, int Dh, int Dk) {
  const dev_t<T>* s = reinterpret_cast<const dev_t<T>*>(src);
  for (int idx = threadIdx.x; idx < rows * Dk; idx += blockDim.x) {
    const int r = idx / Dk, d = idx % Dk;
    dst[r * ld + d] = (r < nvalid && d < Dh) ? s[r * row + d] : from_f<E>(0.f);
  }
}

// Where sequence b lives: its first token and its length.
template <typename T>
__device__ __forceinline__ void seq_of(const AttentionParams<T>& p, int64_t b, int64_t* start, int* len) {
  if (p.cu_seqlens) {
    *start = p.cu_seqlens[b];
    *len = p.cu_seqlens[b + 1] - p.cu_seqlens[b];
  } else {
    *start = b * p.L;
    *len = static_cast<int>(p.L);
  }
}

// Offset of (b, h, i = 0) in lse / entropy / D.
template <typename T>
__device__ __forceinline__ int64_t stat_base(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t start) {
  return p.cu_seqlens ? h * p.nnz + start : (b * p.H + h) * p.L;
}

template <typename T>
__device__ __forceinline__ bool entropy_row(const AttentionParams<T>& p, int64_t start, int i) {
  return !p.entropy_masked_only || !p.token_mask || p.token_mask[start + i] != 0;
}

// The per-query constants of the logit function.
struct RowCtx {
  int64_t b, start;
  int i;
  float scale, slope;
  bool drop_masked_keys;  // exclude_masked_keys and this query is visible
};

template <typename T>
__device__ __forceinline__ RowCtx row_ctx(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t start, int i) {
  RowCtx c;
  c.b = b;
  c.start = start;
  c.i = i;
  c.scale = static_cast<float>(p.scale);
  c.slope = p.alibi_slopes ? ld(p.alibi_slopes, h) : 0.f;
  c.drop_masked_keys = p.exclude_masked_keys && p.token_mask && !p.token_mask[start + i];
  return c;
}

// The logit of (query c.i, key j) from its raw q·k product: scale, ALiBi,
// additive bias, then −∞ for every masked pair (as finish_logits on the CPU).
template <typename T>
__device__ __forceinline__ float logit(const AttentionParams<T>& p, const RowCtx& c, float dot, int j) {
  float s = dot * c.scale;
  if (p.alibi_slopes) {
    const int d = c.i - j;
    s -= c.slope * static_cast<float>(d < 0 ? -d : d);
  }
  const int64_t pair = (c.b * p.L + c.i) * p.L + j;
  if (p.bias) s += ld(p.bias, pair);
  if (p.attn_mask && p.attn_mask[pair]) return -INFINITY;
  if (p.key_padding && p.key_padding[c.b * p.L + j]) return -INFINITY;
  if (c.drop_masked_keys && p.token_mask[c.start + j]) return -INFINITY;
  return s;
}

// Decodes a 1-D grid into (tile, head, batch); `heads` is H, or 1 when one CTA
// walks every head itself.
struct TileId {
  int64_t tile, h, b;
};
__device__ __forceinline__ TileId tile_id(int64_t tiles, int64_t heads) {
  const int64_t x = blockIdx.x;
  return TileId{x % tiles, (x / tiles) % heads, x / (tiles * heads)};
}

}  // namespace attn
}  // namespace cuda
}  // namespace cloze
