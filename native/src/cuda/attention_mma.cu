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
__device__ __forceinline__ bool plain(const AttentionParams<bf16>& p) {
  return !p.alibi_slopes && !p.bias && !p.attn_mask && !(p.exclude_masked_keys && p.token_mask);
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

// ---------------------------------------------------------------- forward
// One CTA per (64-query tile, head, sequence); key/value tiles of 64 stream
// through two shared-memory buffers.
template <int HD>
__global__ void __launch_bounds__(kThreads) fwd_kernel(AttentionParams<bf16> p, int64_t tiles) {
  constexpr int LD = HD + 8, BK = 64, NT = BK / 8, DT = HD / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf* Qs = reinterpret_cast<bf*>(smem);
  bf* Ks = Qs + kRows * LD;      // [2][BK][LD]
  bf* Vs = Ks + 2 * BK * LD;     // [2][BK][LD]
  const TileId id = attn::tile_id(tiles, p.H);
  int64_t start;
  int len;
  attn::seq_of(p, id.b, &start, &len);
  const int i0 = static_cast<int>(id.tile) * kRows;
  if (i0 >= len) return;  // the whole CTA leaves together
  const int h = static_cast<int>(id.h), Dh = static_cast<int>(p.Dh);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const bool pl = plain(p);
  const int nk = (len + BK - 1) / BK;

  load_tile<kRows, HD>(Qs, rows_of(p.q, start, i0, p.q_row, h, p.Dh), p.q_row, min(kRows, len - i0), Dh);
  load_tile<BK, HD>(Ks, rows_of(p.k, start, 0, p.k_row, h, p.Dh), p.k_row, min(BK, len), Dh);
  load_tile<BK, HD>(Vs, rows_of(p.v, start, 0, p.v_row, h, p.Dh), p.v_row, min(BK, len), Dh);
  cp_commit();

  uint32_t qf[HD / 16][4];
  float o[DT][4];
#pragma unroll
  for (int d = 0; d < DT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int row0 = i0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int kt = 0; kt < nk; kt++) {
    if (kt + 1 < nk) {  // the next tile into the other buffer (freed by the barrier that ended tile kt − 1)
      const int j1 = (kt + 1) * BK;
      bf* kb = Ks + ((kt + 1) & 1) * BK * LD;
      bf* vb = Vs + ((kt + 1) & 1) * BK * LD;
      load_tile<BK, HD>(kb, rows_of(p.k, start, j1, p.k_row, h, p.Dh), p.k_row, min(BK, len - j1), Dh);
      load_tile<BK, HD>(vb, rows_of(p.v, start, j1, p.v_row, h, p.Dh), p.v_row, min(BK, len - j1), Dh);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; kk++) load_a<LD>(qf[kk], Qs, warp * 16, kk * 16);
    }
    const bf* Kb = Ks + (kt & 1) * BK * LD;
    const bf* Vb = Vs + (kt & 1) * BK * LD;
    const int j0 = kt * BK;

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
#pragma unroll
      for (int n2 = 0; n2 < NT / 2; n2++) {
        uint32_t b[4];
        load_b_nk<LD>(b, Kb, n2 * 16, kk * 16);
        mma(s[2 * n2], qf[kk], b[0], b[1]);
        mma(s[2 * n2 + 1], qf[kk], b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        s[n][e] = logit2(p, pl, id.b, h, start, len, row0 + 8 * (e >> 1), j0 + n * 8 + 2 * t + (e & 1), s[n][e]);

    // Online softmax for rows row0 (elements 0, 1) and row0 + 8 (2, 3); a row's
    // 64 columns are spread over the 4 lanes of a quad.
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
      mx = quad_max(mx);
      const float mn = fmaxf(m[hr], mx);
      // Nothing live yet (mn = −∞): o and l are 0 and stay so; exp2(−∞ − finite) = 0 otherwise.
      const float corr = mn == -INFINITY ? 1.f : exp2f(m[hr] - mn);
      const float sub = mn == -INFINITY ? 0.f : mn;
      m[hr] = mn;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; n++) {
        const float p0 = exp2f(s[n][2 * hr] - sub), p1 = exp2f(s[n][2 * hr + 1] - sub);  // −∞ → 0
        s[n][2 * hr] = p0;
        s[n][2 * hr + 1] = p1;
        sum += p0 + p1;
      }
      l[hr] = l[hr] * corr + sum;  // this lane's partial sum; the quad's are added at the end
#pragma unroll
      for (int d = 0; d < DT; d++) {
        o[d][2 * hr] *= corr;
        o[d][2 * hr + 1] *= corr;
      }
    }

    // O += P·V, P rounded to bf16 as the tensor cores take it.
#pragma unroll
    for (int kc = 0; kc < BK / 16; kc++) {
      uint32_t a[4];
      acc_to_a(a, s, kc);
#pragma unroll
      for (int d2 = 0; d2 < DT / 2; d2++) {
        uint32_t b[4];
        load_b_kn<LD>(b, Vb, d2 * 16, kc * 16);
        mma(o[2 * d2], a, b[0], b[1]);
        mma(o[2 * d2 + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with buffer kt & 1 before tile kt + 2 is loaded into it
  }

  const int64_t sb = attn::stat_base(p, id.b, h, start);
  bf* outp = reinterpret_cast<bf*>(p.out);
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const float lt = quad_sum(l[hr]);
    const int r = row0 + 8 * hr;
    if (r >= len) continue;
    const float inv = lt == 0.f ? 0.f : 1.f / lt;
    bf* dst = outp + (start + r) * p.o_row + h * p.Dh;
#pragma unroll
    for (int d = 0; d < DT; d++) {
      const int c = d * 8 + 2 * t;
      if (c < Dh) *reinterpret_cast<uint32_t*>(dst + c) = pack(o[d][2 * hr] * inv, o[d][2 * hr + 1] * inv);
    }
    if (t == 0) p.lse_f32[sb + r] = lt == 0.f ? -INFINITY : m[hr] * kLn2 + logf(lt);
  }
}

// ---------------------------------------------------------------- backward
// dK, dV: one CTA per (64-key tile, head, sequence); each warp owns 16 keys
// and computes Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ with keys as rows, so Pᵀ and dSᵀ are
// the A operands of dV += Pᵀ·dO and dK += dSᵀ·Q straight from registers.
// Query tiles of BQ stream through two buffers with their lse and D.
template <int HD, int BQ>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(AttentionParams<bf16> p, const float* D, int64_t tiles) {
  constexpr int LD = HD + 8, NT = BQ / 8, DT = HD / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf* Ks = reinterpret_cast<bf*>(smem);
  bf* Vs = Ks + kRows * LD;
  bf* Qs = Vs + kRows * LD;  // [2][BQ][LD]
  bf* dOs = Qs + 2 * BQ * LD;  // [2][BQ][LD]
  float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LD);  // [2][BQ] lse (0 past the sequence)
  float* Ds = Ls + 2 * BQ;                                  // [2][BQ]
  const TileId id = attn::tile_id(tiles, p.H);
  int64_t start;
  int len;
  attn::seq_of(p, id.b, &start, &len);
  const int j0 = static_cast<int>(id.tile) * kRows;
  if (j0 >= len) return;
  const int h = static_cast<int>(id.h), Dh = static_cast<int>(p.Dh);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const bool pl = plain(p);
  const int nq = (len + BQ - 1) / BQ;
  const int64_t sb = attn::stat_base(p, id.b, h, start);

  auto stage = [&](int qt) {  // query tile qt into buffer qt & 1
    const int q0 = qt * BQ, nv = min(BQ, len - q0), buf = qt & 1;
    load_tile<BQ, HD>(Qs + buf * BQ * LD, rows_of(p.q, start, q0, p.q_row, h, p.Dh), p.q_row, nv, Dh);
    load_tile<BQ, HD>(dOs + buf * BQ * LD, rows_of(p.dout, start, q0, p.o_row, h, p.Dh), p.o_row, nv, Dh);
    // lse and D ride the same cp.async group as the tiles (no load stalls
    // the warp here); past the sequence they are 0, where P is 0 anyway.
    for (int r = threadIdx.x; r < BQ; r += kThreads) {
      const bool in = r < nv;
      cp4(Ls + buf * BQ + r, p.lse_f32 + sb + (in ? q0 + r : 0), in);
      cp4(Ds + buf * BQ + r, D + sb + (in ? q0 + r : 0), in);
    }
  };
  load_tile<kRows, HD>(Ks, rows_of(p.k, start, j0, p.k_row, h, p.Dh), p.k_row, min(kRows, len - j0), Dh);
  load_tile<kRows, HD>(Vs, rows_of(p.v, start, j0, p.v_row, h, p.Dh), p.v_row, min(kRows, len - j0), Dh);
  stage(0);
  cp_commit();

  float dk[DT][4], dv[DT][4];
#pragma unroll
  for (int d = 0; d < DT; d++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[d][e] = dv[d][e] = 0.f;
  const int key0 = j0 + warp * 16 + g;  // this thread's keys: key0 and key0 + 8

  for (int qt = 0; qt < nq; qt++) {
    if (qt + 1 < nq) {
      stage(qt + 1);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const int buf = qt & 1, q0 = qt * BQ;
    const bf* Qb = Qs + buf * BQ * LD;
    const bf* dOb = dOs + buf * BQ * LD;
    const float* Lb = Ls + buf * BQ;
    const float* Db = Ds + buf * BQ;

    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
      uint32_t ka[4], va[4];
      load_a<LD>(ka, Ks, warp * 16, kk * 16);
      load_a<LD>(va, Vs, warp * 16, kk * 16);
#pragma unroll
      for (int n2 = 0; n2 < NT / 2; n2++) {
        uint32_t b[4];
        load_b_nk<LD>(b, Qb, n2 * 16, kk * 16);  // Sᵀ = K·Qᵀ
        mma(s[2 * n2], ka, b[0], b[1]);
        mma(s[2 * n2 + 1], ka, b[2], b[3]);
        load_b_nk<LD>(b, dOb, n2 * 16, kk * 16);  // dPᵀ = V·dOᵀ
        mma(dp[2 * n2], va, b[0], b[1]);
        mma(dp[2 * n2 + 1], va, b[2], b[3]);
      }
    }
    // Pᵀ and dSᵀ = Pᵀ ∘ (dPᵀ − D), element (key, query).
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int qc = n * 8 + 2 * t + (e & 1);
        const float x = logit2(p, pl, id.b, h, start, len, q0 + qc, key0 + 8 * (e >> 1), s[n][e]);
        const float lse = Lb[qc] * kLog2e;  // −∞ stays −∞
        const float pr = (x == -INFINITY || lse == -INFINITY) ? 0.f : exp2f(x - lse);
        s[n][e] = pr;
        dp[n][e] = pr * (dp[n][e] - Db[qc]);
      }
#pragma unroll
    for (int kc = 0; kc < BQ / 16; kc++) {
      uint32_t pa[4], da[4];
      acc_to_a(pa, s, kc);
      acc_to_a(da, dp, kc);
#pragma unroll
      for (int d2 = 0; d2 < DT / 2; d2++) {
        uint32_t b[4];
        load_b_kn<LD>(b, dOb, d2 * 16, kc * 16);  // dV += Pᵀ·dO
        mma(dv[2 * d2], pa, b[0], b[1]);
        mma(dv[2 * d2 + 1], pa, b[2], b[3]);
        load_b_kn<LD>(b, Qb, d2 * 16, kc * 16);  // dK += dSᵀ·Q
        mma(dk[2 * d2], da, b[0], b[1]);
        mma(dk[2 * d2 + 1], da, b[2], b[3]);
      }
    }
    __syncthreads();  // buffer qt & 1 is free for tile qt + 2
  }

  const float scale = static_cast<float>(p.scale);
  bf* dkp = reinterpret_cast<bf*>(p.dk);
  bf* dvp = reinterpret_cast<bf*>(p.dv);
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = key0 + 8 * hr;
    if (r >= len) continue;
    bf* kd = dkp + (start + r) * p.k_row + h * p.Dh;
    bf* vd = dvp + (start + r) * p.v_row + h * p.Dh;
#pragma unroll
    for (int d = 0; d < DT; d++) {
      const int c = d * 8 + 2 * t;
      if (c >= Dh) continue;
      *reinterpret_cast<uint32_t*>(kd + c) = pack(dk[d][2 * hr] * scale, dk[d][2 * hr + 1] * scale);
      *reinterpret_cast<uint32_t*>(vd + c) = pack(dv[d][2 * hr], dv[d][2 * hr + 1]);
    }
  }
}

// dQ: one CTA per (64-query tile, head, sequence), key/value tiles streaming;
// S and dP recomputed, dQ += dS·K with dS from registers.
template <int HD>
__global__ void __launch_bounds__(kThreads) dq_kernel(AttentionParams<bf16> p, const float* D, int64_t tiles) {
  constexpr int LD = HD + 8, BK = 64, NT = BK / 8, DT = HD / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf* Qs = reinterpret_cast<bf*>(smem);
  bf* dOs = Qs + kRows * LD;
  bf* Ks = dOs + kRows * LD;   // [2][BK][LD]
  bf* Vs = Ks + 2 * BK * LD;   // [2][BK][LD]
  const TileId id = attn::tile_id(tiles, p.H);
  int64_t start;
  int len;
  attn::seq_of(p, id.b, &start, &len);
  const int i0 = static_cast<int>(id.tile) * kRows;
  if (i0 >= len) return;
  const int h = static_cast<int>(id.h), Dh = static_cast<int>(p.Dh);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const bool pl = plain(p);
  const int nk = (len + BK - 1) / BK;
  const int64_t sb = attn::stat_base(p, id.b, h, start);
  const int row0 = i0 + warp * 16 + g;
  float lse2[2], Dr[2];
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = row0 + 8 * hr;
    const float lse = r < len ? p.lse_f32[sb + r] : -INFINITY;
    lse2[hr] = lse == -INFINITY ? -INFINITY : lse * kLog2e;
    Dr[hr] = r < len ? D[sb + r] : 0.f;
  }

  load_tile<kRows, HD>(Qs, rows_of(p.q, start, i0, p.q_row, h, p.Dh), p.q_row, min(kRows, len - i0), Dh);
  load_tile<kRows, HD>(dOs, rows_of(p.dout, start, i0, p.o_row, h, p.Dh), p.o_row, min(kRows, len - i0), Dh);
  load_tile<BK, HD>(Ks, rows_of(p.k, start, 0, p.k_row, h, p.Dh), p.k_row, min(BK, len), Dh);
  load_tile<BK, HD>(Vs, rows_of(p.v, start, 0, p.v_row, h, p.Dh), p.v_row, min(BK, len), Dh);
  cp_commit();

  float dq[DT][4];
#pragma unroll
  for (int d = 0; d < DT; d++) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;

  for (int kt = 0; kt < nk; kt++) {
    if (kt + 1 < nk) {
      const int j1 = (kt + 1) * BK;
      load_tile<BK, HD>(Ks + ((kt + 1) & 1) * BK * LD, rows_of(p.k, start, j1, p.k_row, h, p.Dh), p.k_row, min(BK, len - j1), Dh);
      load_tile<BK, HD>(Vs + ((kt + 1) & 1) * BK * LD, rows_of(p.v, start, j1, p.v_row, h, p.Dh), p.v_row, min(BK, len - j1), Dh);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const bf* Kb = Ks + (kt & 1) * BK * LD;
    const bf* Vb = Vs + (kt & 1) * BK * LD;
    const int j0 = kt * BK;
    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
      uint32_t qa[4], da[4];
      load_a<LD>(qa, Qs, warp * 16, kk * 16);
      load_a<LD>(da, dOs, warp * 16, kk * 16);
#pragma unroll
      for (int n2 = 0; n2 < NT / 2; n2++) {
        uint32_t b[4];
        load_b_nk<LD>(b, Kb, n2 * 16, kk * 16);  // S = Q·Kᵀ
        mma(s[2 * n2], qa, b[0], b[1]);
        mma(s[2 * n2 + 1], qa, b[2], b[3]);
        load_b_nk<LD>(b, Vb, n2 * 16, kk * 16);  // dP = dO·Vᵀ
        mma(dp[2 * n2], da, b[0], b[1]);
        mma(dp[2 * n2 + 1], da, b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int hr = e >> 1;
        const float x = logit2(p, pl, id.b, h, start, len, row0 + 8 * hr, j0 + n * 8 + 2 * t + (e & 1), s[n][e]);
        const float pr = (x == -INFINITY || lse2[hr] == -INFINITY) ? 0.f : exp2f(x - lse2[hr]);
        dp[n][e] = pr * (dp[n][e] - Dr[hr]);
      }
#pragma unroll
    for (int kc = 0; kc < BK / 16; kc++) {
      uint32_t a[4];
      acc_to_a(a, dp, kc);
#pragma unroll
      for (int d2 = 0; d2 < DT / 2; d2++) {
        uint32_t b[4];
        load_b_kn<LD>(b, Kb, d2 * 16, kc * 16);  // dQ += dS·K
        mma(dq[2 * d2], a, b[0], b[1]);
        mma(dq[2 * d2 + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();
  }

  const float scale = static_cast<float>(p.scale);
  bf* dqp = reinterpret_cast<bf*>(p.dq);
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = row0 + 8 * hr;
    if (r >= len) continue;
    bf* dst = dqp + (start + r) * p.q_row + h * p.Dh;
#pragma unroll
    for (int d = 0; d < DT; d++) {
      const int c = d * 8 + 2 * t;
      if (c < Dh) *reinterpret_cast<uint32_t*>(dst + c) = pack(dq[d][2 * hr] * scale, dq[d][2 * hr + 1] * scale);
    }
  }
}

// ---------------------------------------------------------------- dispatch
bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// Whether these kernels take the call: a head width that is a multiple of 8
// (16-byte rows) up to 128, every row stride a multiple of 8 elements and
// every base 16-byte aligned.
bool fits(const AttentionParams<bf16>& p) {
  if (p.tiled_kernel || p.Dh <= 0 || p.Dh > 128 || p.Dh % 8 != 0) return false;
  for (int64_t r : {p.q_row, p.k_row, p.v_row, p.o_row})
    if (r % 8 != 0) return false;
  for (const void* ptr : {static_cast<const void*>(p.q), static_cast<const void*>(p.k), static_cast<const void*>(p.v),
                          static_cast<const void*>(p.out)})
    if (!aligned16(ptr)) return false;
  return true;
}

int head_tile(int64_t Dh) { return Dh <= 32 ? 32 : Dh <= 64 ? 64 : 128; }

// The dynamic shared-memory opt-in (above 48 KB), made once per kernel: the
// caller keeps the result in a function-local static of its own template
// instantiation, one per kernel. (A static inside a helper templated on the
// kernel's type would be shared by every kernel of that signature: the first
// GPU run found dq_kernel launched without its opt-in that way.)
template <typename K>
cudaError_t opt_in(K kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

template <int HD>
void forward(const AttentionParams<bf16>& p) {
  const int64_t tiles = (p.L + kRows - 1) / kRows;
  const size_t bytes = sizeof(bf) * (HD + 8) * (kRows + 4 * 64);
  const int64_t blocks = tiles * p.H * p.B;
  if (blocks > INT32_MAX) fail(ErrCode::Shape, "attention", "more tiles × heads × sequences than one cuda grid holds");
  auto* kernel = fwd_kernel<HD>;
  static const cudaError_t attr = opt_in(kernel, bytes);
  check(attr, "attention", "cudaFuncSetAttribute");
  CLOZE_LAUNCH("attention", kernel, static_cast<unsigned>(blocks), kThreads, bytes, p, tiles);
}

template <int HD>
void backward(const AttentionParams<bf16>& p, const float* D) {
  constexpr const char* op = "attentionBackward";
  // 128-wide heads: query tiles of 32 in dK/dV, so that the two 16×128
  // accumulators and the score tiles fit the registers without spilling.
  constexpr int BQ = HD == 128 ? 32 : 64;
  const int64_t tiles = (p.L + kRows - 1) / kRows;
  const size_t b1 = sizeof(bf) * (HD + 8) * (2 * kRows + 4 * BQ) + sizeof(float) * 4 * BQ;
  {
    const int64_t blocks = tiles * p.H * p.B;
    if (blocks > INT32_MAX) fail(ErrCode::Shape, op, "more tiles × heads × sequences than one cuda grid holds");
    auto* kernel = dkdv_kernel<HD, BQ>;
    static const cudaError_t attr = opt_in(kernel, b1);
    check(attr, op, "cudaFuncSetAttribute");
    CLOZE_LAUNCH(op, kernel, static_cast<unsigned>(blocks), kThreads, b1, p, D, tiles);
  }
  const size_t b2 = sizeof(bf) * (HD + 8) * (2 * kRows + 4 * 64);
  {
    const int64_t blocks = tiles * p.H * p.B;
    auto* kernel = dq_kernel<HD>;
    static const cudaError_t attr = opt_in(kernel, b2);
    check(attr, op, "cudaFuncSetAttribute");
    CLOZE_LAUNCH(op, kernel, static_cast<unsigned>(blocks), kThreads, b2, p, D, tiles);
  }
}

}  // namespace fa
}  // namespace cuda

bool attention_forward_mma(const AttentionParams<bf16>& p) {
  using namespace cuda::fa;
  if (!fits(p) || p.entropy) return false;
  switch (head_tile(p.Dh)) {
    case 32: forward<32>(p); break;
    case 64: forward<64>(p); break;
    default: forward<128>(p); break;
  }
  return true;
}

bool attention_backward_mma(const AttentionParams<bf16>& p, const float* D) {
  using namespace cuda::fa;
  if (!fits(p) || p.dentropy || p.dbias) return false;
  for (const void* ptr : {static_cast<const void*>(p.dout), static_cast<const void*>(p.dq), static_cast<const void*>(p.dk),
                          static_cast<const void*>(p.dv)})
    if (!aligned16(ptr)) return false;
  switch (head_tile(p.Dh)) {
    case 32: backward<32>(p, D); break;
    case 64: backward<64>(p, D); break;
    default: backward<128>(p, D); break;
  }
  return true;
}

}  // namespace cloze
