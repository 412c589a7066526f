// Fused attention forward on CUDA: one CTA per (query tile, head, sequence),
// an online softmax over key tiles, the output accumulated in float32 in
// shared memory, nothing of size L×L stored. Same function as
// attention_forward_cpu (ops/attention.cc), lse in float32.
#include "attention_mma.h"
#include "attention_tiles.cuh"

namespace cloze {
namespace cuda {

namespace {

using namespace attn;

template <typename T>
struct FwdSmem {
  using E = typename Cfg<T>::E;
  static constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK, lds = BK + 4, ldp = Cfg<T>::ldp;
  int Dk, ldx, ldo;
  size_t q, k, v, s, pp, o, m, l, e, bytes;
  __host__ __device__ explicit FwdSmem(int Dh) {
    Dk = Cfg<T>::dpad(Dh);
    ldx = Cfg<T>::ldx(Dk);
    ldo = Dk + 4;  // a multiple of 4 floats, as wmma's float accumulator loads want
    Carve c;
    q = c.take(sizeof(E) * BQ * ldx);
    k = c.take(sizeof(E) * BK * ldx);
    v = c.take(sizeof(E) * BK * ldx);
    s = c.take(sizeof(float) * BQ * lds);
    pp = c.take(sizeof(E) * BQ * ldp);
    o = c.take(sizeof(float) * BQ * ldo);
    m = c.take(sizeof(float) * BQ);
    l = c.take(sizeof(float) * BQ);
    e = c.take(sizeof(float) * BQ);
    bytes = c.off;
  }
};

template <typename T>
__global__ void __launch_bounds__(kCta) attention_fwd_kernel(AttentionParams<T> p, int64_t tiles) {
  using E = typename Cfg<T>::E;
  constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK, NC = BK / 32;
  extern __shared__ __align__(128) unsigned char smem[];
  const FwdSmem<T> lay(static_cast<int>(p.Dh));
  E* Qs = reinterpret_cast<E*>(smem + lay.q);
  E* Ks = reinterpret_cast<E*>(smem + lay.k);
  E* Vs = reinterpret_cast<E*>(smem + lay.v);
  float* S = reinterpret_cast<float*>(smem + lay.s);
  E* P = reinterpret_cast<E*>(smem + lay.pp);
  float* O = reinterpret_cast<float*>(smem + lay.o);
  float* rm = reinterpret_cast<float*>(smem + lay.m);
  float* rl = reinterpret_cast<float*>(smem + lay.l);
  float* re = reinterpret_cast<float*>(smem + lay.e);
  const int Dh = static_cast<int>(p.Dh), Dk = lay.Dk, ldx = lay.ldx, ldo = lay.ldo;
  constexpr int lds = FwdSmem<T>::lds, ldp = FwdSmem<T>::ldp;

  const TileId id = tile_id(tiles, p.H);
  int64_t start;
  int len;
  seq_of(p, id.b, &start, &len);
  const int i0 = static_cast<int>(id.tile) * BQ;
  if (i0 >= len) return;  // the whole CTA leaves together: no barrier is skipped by some threads only
  const int bq = min(BQ, len - i0);
  const int h = static_cast<int>(id.h), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  load_rows(Qs, ldx, p.q + (start + i0) * p.q_row + h * p.Dh, p.q_row, bq, BQ, Dh, Dk);
  for (int idx = threadIdx.x; idx < BQ * ldo; idx += blockDim.x) O[idx] = 0.f;
  for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
    rm[r] = -INFINITY;
    rl[r] = 0.f;
    re[r] = 0.f;
  }

  for (int j0 = 0; j0 < len; j0 += BK) {
    const int bk = min(BK, len - j0);
    __syncthreads();  // the previous tile's product has finished reading Ks, Vs and P
    load_rows(Ks, ldx, p.k + (start + j0) * p.k_row + h * p.Dh, p.k_row, bk, BK, Dh, Dk);
    load_rows(Vs, ldx, p.v + (start + j0) * p.v_row + h * p.Dh, p.v_row, bk, BK, Dh, Dk);
    __syncthreads();
    mm<kRow, kCol, false>(S, lds, Qs, ldx, Ks, ldx, BQ, BK, Dk);  // S = Q·Kᵀ
    __syncthreads();
    // Online softmax, one warp per row. The warp owns row r of S, P, O and the
    // row statistics, so only the product below needs a CTA barrier.
    for (int r = warp; r < BQ; r += kWarps) {
      if (r >= bq) {  // rows past the sequence: P stays 0 (their output is never written)
        for (int c = lane; c < BK; c += 32) P[r * ldp + c] = from_f<E>(0.f);
        continue;
      }
      const RowCtx ctx = row_ctx(p, id.b, h, start, i0 + r);
      float sv[NC];
      float mx = -INFINITY;
#pragma unroll
      for (int u = 0; u < NC; u++) {
        const int c = lane + 32 * u;
        sv[u] = c < bk ? logit(p, ctx, S[r * lds + c], j0 + c) : -INFINITY;
        mx = fmaxf(mx, sv[u]);
      }
      mx = warp_max(mx);
      const float m_old = rm[r];
      const float m_new = fmaxf(m_old, mx);
      if (m_new == -INFINITY) {  // every key so far is masked for this row (the whole warp agrees)
        for (int c = lane; c < BK; c += 32) P[r * ldp + c] = from_f<E>(0.f);
        continue;
      }
      const float corr = m_old == -INFINITY ? 0.f : expf(m_old - m_new);
      float sum = 0.f, se = 0.f;
#pragma unroll
      for (int u = 0; u < NC; u++) {
        const bool live = sv[u] != -INFINITY;
        const float x = live ? sv[u] - m_new : 0.f;
        const float pr = live ? expf(x) : 0.f;
        sum += pr;
        // Entropy: Σ p·(s − m) against the running max, as the CPU kernel (see there).
        se += pr * x;
        P[r * ldp + lane + 32 * u] = from_f<E>(pr);
      }
      sum = warp_sum(sum);
      se = warp_sum(se);
      for (int d = lane; d < Dk; d += 32) O[r * ldo + d] *= corr;
      const float l_old = rl[r], e_old = re[r];
      __syncwarp();  // every lane has read the old statistics before lane 0 replaces them
      if (lane == 0) {
        re[r] = m_old == -INFINITY ? se : corr * (e_old + (m_old - m_new) * l_old) + se;
        rl[r] = l_old * corr + sum;
        rm[r] = m_new;
      }
    }
    __syncthreads();
    mm<kRow, kRow, true>(O, ldo, P, ldp, Vs, ldx, BQ, Dk, BK);  // O += P·V
  }
  __syncthreads();

  for (int idx = threadIdx.x; idx < bq * Dh; idx += blockDim.x) {
    const int r = idx / Dh, d = idx % Dh;
    const float l = rl[r];
    const float inv = l == 0.f ? 0.f : 1.f / l;
    st(p.out, (start + i0 + r) * p.o_row + h * p.Dh + d, O[r * ldo + d] * inv);
  }
  const int64_t sb = stat_base(p, id.b, h, start) + i0;
  for (int r = threadIdx.x; r < bq; r += blockDim.x) {
    const float l = rl[r];
    const bool empty = l == 0.f;
    p.lse_f32[sb + r] = empty ? -INFINITY : rm[r] + logf(l);
    if (p.entropy) st(p.entropy, sb + r, (!empty && entropy_row(p, start, i0 + r)) ? logf(l) - re[r] / l : 0.f);
  }
}

}  // namespace
}  // namespace cuda

template <typename T>
void attention_forward_cuda(const AttentionParams<T>& p) {
  using namespace cuda;
  using namespace cuda::attn;
  constexpr const char* op = "attention";
  const int64_t tiles = (p.L + Cfg<T>::BQ - 1) / Cfg<T>::BQ;
  const int64_t blocks = tiles * p.H * p.B;
  if (blocks == 0) return;  // no tokens: nothing to write
  if (blocks > INT32_MAX) fail(ErrCode::Shape, op, "more query tiles × heads × sequences than one cuda grid holds");
  if (p.Dh > kAttentionCudaMaxDh) fail(ErrCode::Shape, op, "head width above the cuda kernel's 128");
  if constexpr (std::is_same_v<T, bf16>) {
    if (attention_forward_mma(p)) return;  // the tensor-core kernel, where it applies
  }
  const size_t bytes = FwdSmem<T>(static_cast<int>(p.Dh)).bytes;
  check(cudaFuncSetAttribute(attention_fwd_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op,
        "cudaFuncSetAttribute");
  CLOZE_LAUNCH(op, attention_fwd_kernel<T>, static_cast<unsigned>(blocks), kCta, bytes, p, tiles);
}

template void attention_forward_cuda<float>(const AttentionParams<float>&);
template void attention_forward_cuda<bf16>(const AttentionParams<bf16>&);

}  // namespace cloze
