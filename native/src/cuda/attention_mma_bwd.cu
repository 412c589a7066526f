// The backward of the bf16 tensor-core attention, dK/dV and dQ (see attention_mma.cuh).
#include "attention_mma.cuh"

namespace cloze {
namespace cuda {
namespace fa {

// ---------------------------------------------------------------- backward
// Both kernels first form two [16 × NT·8] tiles per warp, from A rows r0..r0+15
// (shared [.][LD]) against the same NT·8 B rows: s = A1·B1ᵀ and dp = A2·B2ᵀ
// (dK/dV: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ; dQ: S = Q·Kᵀ and dP = dO·Vᵀ).
template <int NT, int HD, int LD>
__device__ __forceinline__ void two_products(float (&s)[NT][4], float (&dp)[NT][4], const bf* A1, const bf* A2,
                                             const bf* B1, const bf* B2, int r0) {
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; kk++) {
    uint32_t a1[4], a2[4];
    load_a<LD>(a1, A1, r0, kk * 16);
    load_a<LD>(a2, A2, r0, kk * 16);
#pragma unroll
    for (int n2 = 0; n2 < NT / 2; n2++) {
      uint32_t b[4];
      load_b_nk<LD>(b, B1, n2 * 16, kk * 16);
      mma(s[2 * n2], a1, b[0], b[1]);
      mma(s[2 * n2 + 1], a1, b[2], b[3]);
      load_b_nk<LD>(b, B2, n2 * 16, kk * 16);
      mma(dp[2 * n2], a2, b[0], b[1]);
      mma(dp[2 * n2 + 1], a2, b[2], b[3]);
    }
  }
}

// dK, dV: one CTA per (64-key tile, head, sequence); each warp owns 16 keys
// and computes Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ with keys as rows, so Pᵀ and dSᵀ are
// the A operands of dV += Pᵀ·dO and dK += dSᵀ·Q straight from registers.
// Query tiles of BQ stream through two buffers with their lse and D. FAST: the unmasked fast path (fast_path).
template <int HD, int BQ, bool FAST>
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
  const float sl2 = static_cast<float>(p.scale) * kLog2e;  // FAST: a logit in log2 units is dot·sl2

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
    two_products<NT, HD, LD>(s, dp, Ks, Vs, Qb, dOb, warp * 16);  // Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ
    // Pᵀ and dSᵀ = Pᵀ ∘ (dPᵀ − D), element (key, query).
    if constexpr (FAST) {
      // P = exp2(dot·c − lse·log2 e); one lse and D per query column, shared by the thread's two key rows. Query
      // columns past the sequence (Ls and Ds hold 0 there) get P = 0; key rows past it are never written out.
      const bool tail = q0 + BQ > len;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const int qc = n * 8 + 2 * t + c;
          const float nl = -Lb[qc] * kLog2e, dc = Db[qc];
          const bool live = !tail || q0 + qc < len;
#pragma unroll
          for (int hr = 0; hr < 2; hr++) {
            const int e = 2 * hr + c;
            const float pr = live ? ex2(fmaf(s[n][e], sl2, nl)) : 0.f;
            s[n][e] = pr;
            dp[n][e] = pr * (dp[n][e] - dc);
          }
        }
    } else {
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
// S and dP recomputed, dQ += dS·K with dS from registers. FAST: the unmasked fast path (fast_path).
template <int HD, bool FAST>
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
  const float sl2 = static_cast<float>(p.scale) * kLog2e;  // FAST: a logit in log2 units is dot·sl2
  float lse2[2], Dr[2];
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = row0 + 8 * hr;
    const float lse = r < len ? p.lse_f32[sb + r] : -INFINITY;
    lse2[hr] = lse == -INFINITY ? -INFINITY : lse * kLog2e;
    // FAST: a row past the sequence is never written out; a finite lse keeps its values finite all the same.
    if (FAST && r >= len) lse2[hr] = 0.f;
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
    two_products<NT, HD, LD>(s, dp, Qs, dOs, Kb, Vb, warp * 16);  // S = Q·Kᵀ, dP = dO·Vᵀ
    if constexpr (FAST) {
      // Keys past the sequence, in its last tile only, get P = 0; every row in it has a finite lse.
      const bool tail = j0 + BK > len;
      const float nl[2] = {-lse2[0], -lse2[1]};
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int hr = e >> 1;
          const bool live = !tail || j0 + n * 8 + 2 * t + (e & 1) < len;
          const float pr = live ? ex2(fmaf(s[n][e], sl2, nl[hr])) : 0.f;
          dp[n][e] = pr * (dp[n][e] - Dr[hr]);
        }
    } else {
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int hr = e >> 1;
          const float x = logit2(p, pl, id.b, h, start, len, row0 + 8 * hr, j0 + n * 8 + 2 * t + (e & 1), s[n][e]);
          const float pr = (x == -INFINITY || lse2[hr] == -INFINITY) ? 0.f : exp2f(x - lse2[hr]);
          dp[n][e] = pr * (dp[n][e] - Dr[hr]);
        }
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

template <int HD, bool FAST>
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
    auto* kernel = dkdv_kernel<HD, BQ, FAST>;
    static const cudaError_t attr = opt_in(kernel, b1);
    check(attr, op, "cudaFuncSetAttribute");
    CLOZE_LAUNCH(op, kernel, static_cast<unsigned>(blocks), kThreads, b1, p, D, tiles);
  }
  const size_t b2 = sizeof(bf) * (HD + 8) * (2 * kRows + 4 * 64);
  {
    const int64_t blocks = tiles * p.H * p.B;
    auto* kernel = dq_kernel<HD, FAST>;
    static const cudaError_t attr = opt_in(kernel, b2);
    check(attr, op, "cudaFuncSetAttribute");
    CLOZE_LAUNCH(op, kernel, static_cast<unsigned>(blocks), kThreads, b2, p, D, tiles);
  }
}

}  // namespace fa
}  // namespace cuda

bool attention_backward_mma(const AttentionParams<bf16>& p, const float* D) {
  using namespace cuda::fa;
  if (!fits(p) || p.dentropy || p.dbias) return false;
  for (const void* ptr : {static_cast<const void*>(p.dout), static_cast<const void*>(p.dq), static_cast<const void*>(p.dk),
                          static_cast<const void*>(p.dv)})
    if (!aligned16(ptr)) return false;
  const bool fast = fast_path(p);
  switch (head_tile(p.Dh)) {
    case 32: fast ? backward<32, true>(p, D) : backward<32, false>(p, D); break;
    case 64: fast ? backward<64, true>(p, D) : backward<64, false>(p, D); break;
    default: fast ? backward<128, true>(p, D) : backward<128, false>(p, D); break;
  }
  return true;
}

}  // namespace cloze
