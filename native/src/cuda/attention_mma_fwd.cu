// The forward of the bf16 tensor-core attention (see attention_mma.cuh).
#include "attention_mma.cuh"

namespace cloze {
namespace cuda {
namespace fa {

// ---------------------------------------------------------------- forward
// One CTA per (64-query tile, head, sequence); key/value tiles of 64 stream
// through two shared-memory buffers. FAST: the unmasked fast path (fast_path in attention_mma.cuh).
template <int HD, bool FAST>
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
  const float sl2 = static_cast<float>(p.scale) * kLog2e;  // FAST: a logit in log2 units is dot·sl2

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
    if constexpr (FAST) {
      // Raw dot products; only the keys past the sequence in its last tile are masked. (Query rows past it hold
      // the zero rows load_tile filled in: finite, and never written out.)
      if (j0 + BK > len) {
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            if (j0 + n * 8 + 2 * t + (e & 1) >= len) s[n][e] = -INFINITY;
      }
    } else {
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          s[n][e] = logit2(p, pl, id.b, h, start, len, row0 + 8 * (e >> 1), j0 + n * 8 + 2 * t + (e & 1), s[n][e]);
    }

    // Online softmax for rows row0 (elements 0, 1) and row0 + 8 (2, 3); a row's
    // 64 columns are spread over the 4 lanes of a quad.
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
      mx = quad_max(mx);
      if constexpr (FAST) {
        // Key j0 is in the sequence, so mx is finite: mn is, and m[hr] is −∞ only before the first tile, where
        // ex2(−∞) = 0 scales the zero o and l.
        const float mn = fmaxf(m[hr], mx * sl2);
        const float corr = ex2(m[hr] - mn);
        m[hr] = mn;
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < NT; n++) {
          const float p0 = ex2(fmaf(s[n][2 * hr], sl2, -mn)), p1 = ex2(fmaf(s[n][2 * hr + 1], sl2, -mn));  // −∞ → 0
          s[n][2 * hr] = p0;
          s[n][2 * hr + 1] = p1;
          sum += p0 + p1;
        }
        l[hr] = l[hr] * corr + sum;
#pragma unroll
        for (int d = 0; d < DT; d++) {
          o[d][2 * hr] *= corr;
          o[d][2 * hr + 1] *= corr;
        }
        continue;
      }
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

template <int HD, bool FAST>
void forward(const AttentionParams<bf16>& p) {
  const int64_t tiles = (p.L + kRows - 1) / kRows;
  const size_t bytes = sizeof(bf) * (HD + 8) * (kRows + 4 * 64);
  const int64_t blocks = tiles * p.H * p.B;
  if (blocks > INT32_MAX) fail(ErrCode::Shape, "attention", "more tiles × heads × sequences than one cuda grid holds");
  auto* kernel = fwd_kernel<HD, FAST>;
  static const cudaError_t attr = opt_in(kernel, bytes);
  check(attr, "attention", "cudaFuncSetAttribute");
  CLOZE_LAUNCH("attention", kernel, static_cast<unsigned>(blocks), kThreads, bytes, p, tiles);
}

}  // namespace fa
}  // namespace cuda

bool attention_forward_mma(const AttentionParams<bf16>& p) {
  using namespace cuda::fa;
  if (!fits(p) || p.entropy) return false;
  const bool fast = fast_path(p);
  switch (head_tile(p.Dh)) {
    case 32: fast ? forward<32, true>(p) : forward<32, false>(p); break;
    case 64: fast ? forward<64, true>(p) : forward<64, false>(p); break;
    default: fast ? forward<128, true>(p) : forward<128, false>(p); break;
  }
  return true;
}

}  // namespace cloze
