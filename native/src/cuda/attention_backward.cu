// Fused attention backward on CUDA, flash-attention-2 style: P is recomputed
// from the saved float32 lse, and nothing of size L×L is stored. Three kernels:
//   delta: D = rowsum(dO ∘ O) per (token, head), float32;
//   dkdv:  one CTA per (key tile, head, sequence) walks every query tile and
//          accumulates dK and dV in shared memory;
//   dq:    one CTA per (query tile, head, sequence) walks every key tile and
//          accumulates dQ in shared memory; with a bias gradient, one CTA per
//          (query tile, sequence) walks the heads in order and owns its dbias
//          rows, so dbias sums over heads in a fixed order.
// dQ in its own pass recomputes S and dP once more, but needs no atomics:
// every gradient is deterministic, and no float32 dQ buffer is needed.
//
// Per element, with s the logit, p = exp(s − lse), dp = dO·v:
//   ds = p·(dp − D) − dH·p·(s − lse + H)     (the entropy term, as the CPU)
// dbias += ds; dQ += scale·ds·K; dK += scale·dsᵀ·Q; dV += pᵀ·dO.
#include <memory>

#include "attention_mma.h"
#include "attention_tiles.cuh"

namespace cloze {
namespace cuda {

namespace {

using namespace attn;

template <typename T>
struct BwdSmem {
  using E = typename Cfg<T>::E;
  static constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK, lds = BK + 4, ldp = Cfg<T>::ldp;
  int Dk, ldx, ldo;
  size_t q, dout, k, v, s, dp, pp, ds, acc1, acc2, lse, dd, dh, hh, bytes;
  // dkdv needs two accumulators (dK, dV) and the P tile; dq one accumulator and no P.
  __host__ __device__ BwdSmem(int Dh, bool dkdv) {
    Dk = Cfg<T>::dpad(Dh);
    ldx = Cfg<T>::ldx(Dk);
    ldo = Dk + 4;
    Carve c;
    q = c.take(sizeof(E) * BQ * ldx);
    dout = c.take(sizeof(E) * BQ * ldx);
    k = c.take(sizeof(E) * BK * ldx);
    v = c.take(sizeof(E) * BK * ldx);
    s = c.take(sizeof(float) * BQ * lds);
    dp = c.take(sizeof(float) * BQ * lds);
    pp = dkdv ? c.take(sizeof(E) * BQ * ldp) : 0;
    ds = c.take(sizeof(E) * BQ * ldp);
    acc1 = c.take(sizeof(float) * (dkdv ? BK : BQ) * ldo);
    acc2 = dkdv ? c.take(sizeof(float) * BK * ldo) : 0;
    lse = c.take(sizeof(float) * BQ);
    dd = c.take(sizeof(float) * BQ);
    dh = c.take(sizeof(float) * BQ);
    hh = c.take(sizeof(float) * BQ);
    bytes = c.off;
  }
};

// Per-row saved values of query tile i0 (bq rows of sequence b, head h).
template <typename T>
__device__ void load_row_stats(const AttentionParams<T>& p, const float* D, int64_t b, int h, int64_t start, int i0, int bq,
                               float* rl, float* rD, float* rdH, float* rH) {
  constexpr int BQ = Cfg<T>::BQ;
  const int64_t sb = stat_base(p, b, h, start) + i0;
  for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
    const bool in = r < bq;
    const bool ent = in && p.dentropy && entropy_row(p, start, i0 + r);
    rl[r] = in ? p.lse_f32[sb + r] : 0.f;
    rD[r] = in ? D[sb + r] : 0.f;
    rdH[r] = ent ? ld(p.dentropy, sb + r) : 0.f;
    rH[r] = ent ? ld(p.entropy, sb + r) : 0.f;
  }
}

// From S = Q·Kᵀ and dP = dO·Vᵀ of one (query tile, key tile) pair, writes P
// (when Pt is given) and scale·dS into E tiles, zero outside the bq × bk
// block, and adds dS into the float32 dbias rows (when dbias is given; the
// caller's CTA owns those rows). A warp per row.
template <typename T>
__device__ void softmax_grad_tile(const AttentionParams<T>& p, int64_t b, int h, int64_t start, int i0, int bq, int j0, int bk,
                                  const float* S, const float* dP, const float* rl, const float* rD, const float* rdH,
                                  const float* rH, typename Cfg<T>::E* Pt, typename Cfg<T>::E* dSt, float* dbias) {
  using E = typename Cfg<T>::E;
  constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK, lds = BK + 4, ldp = Cfg<T>::ldp;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float scale = static_cast<float>(p.scale);
  for (int r = warp; r < BQ; r += kWarps) {
    if (r >= bq) {
      for (int c = lane; c < BK; c += 32) {
        if (Pt) Pt[r * ldp + c] = from_f<E>(0.f);
        dSt[r * ldp + c] = from_f<E>(0.f);
      }
      continue;
    }
    const RowCtx ctx = row_ctx(p, b, h, start, i0 + r);
    const float lse = rl[r], D = rD[r], dH = rdH[r], Hn = rH[r];
    for (int c = lane; c < BK; c += 32) {
      float pr = 0.f, ds = 0.f;
      if (c < bk) {
        const float x = logit(p, ctx, S[r * lds + c], j0 + c);
        if (x != -INFINITY) {  // a fully masked row (lse = −∞) has every x = −∞
          pr = expf(x - lse);
          ds = pr * (dP[r * lds + c] - D) - dH * pr * (x - lse + Hn);
        }
        if (dbias) dbias[(b * p.L + i0 + r) * p.L + j0 + c] += ds;
      }
      if (Pt) Pt[r * ldp + c] = from_f<E>(pr);
      dSt[r * ldp + c] = from_f<E>(ds * scale);
    }
  }
}

// D[stat(b, h, i)] = Σ_d dO·O, float32. One thread per (token, head).
template <typename T>
__global__ void attention_delta_kernel(AttentionParams<T> p, float* D) {
  const int64_t n = p.nnz * p.H;
  CLOZE_GRID_STRIDE(x, n) {
    const int64_t t = x / p.H, h = x % p.H;
    const int64_t si = p.cu_seqlens ? h * p.nnz + t : ((t / p.L) * p.H + h) * p.L + t % p.L;
    const int64_t o = t * p.o_row + h * p.Dh;
    float acc = 0.f;
    for (int64_t d = 0; d < p.Dh; d++) acc += ld(p.out, o + d) * ld(p.dout, o + d);
    D[si] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kCta) attention_dkdv_kernel(AttentionParams<T> p, const float* D, int64_t tiles) {
  using E = typename Cfg<T>::E;
  constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK;
  constexpr int lds = BwdSmem<T>::lds, ldp = BwdSmem<T>::ldp;
  extern __shared__ __align__(128) unsigned char smem[];
  const BwdSmem<T> lay(static_cast<int>(p.Dh), true);
  E* Qs = reinterpret_cast<E*>(smem + lay.q);
  E* dOs = reinterpret_cast<E*>(smem + lay.dout);
  E* Ks = reinterpret_cast<E*>(smem + lay.k);
  E* Vs = reinterpret_cast<E*>(smem + lay.v);
  float* S = reinterpret_cast<float*>(smem + lay.s);
  float* dP = reinterpret_cast<float*>(smem + lay.dp);
  E* Pt = reinterpret_cast<E*>(smem + lay.pp);
  E* dSt = reinterpret_cast<E*>(smem + lay.ds);
  float* dK = reinterpret_cast<float*>(smem + lay.acc1);
  float* dV = reinterpret_cast<float*>(smem + lay.acc2);
  float* rl = reinterpret_cast<float*>(smem + lay.lse);
  float* rD = reinterpret_cast<float*>(smem + lay.dd);
  float* rdH = reinterpret_cast<float*>(smem + lay.dh);
  float* rH = reinterpret_cast<float*>(smem + lay.hh);
  const int Dh = static_cast<int>(p.Dh), Dk = lay.Dk, ldx = lay.ldx, ldo = lay.ldo;

  const TileId id = tile_id(tiles, p.H);
  int64_t start;
  int len;
  seq_of(p, id.b, &start, &len);
  const int j0 = static_cast<int>(id.tile) * BK;
  if (j0 >= len) return;  // uniform over the CTA
  const int bk = min(BK, len - j0);
  const int h = static_cast<int>(id.h);

  load_rows(Ks, ldx, p.k + (start + j0) * p.k_row + h * p.Dh, p.k_row, bk, BK, Dh, Dk);
  load_rows(Vs, ldx, p.v + (start + j0) * p.v_row + h * p.Dh, p.v_row, bk, BK, Dh, Dk);
  for (int idx = threadIdx.x; idx < BK * ldo; idx += blockDim.x) {
    dK[idx] = 0.f;
    dV[idx] = 0.f;
  }
  for (int i0 = 0; i0 < len; i0 += BQ) {
    const int bq = min(BQ, len - i0);
    __syncthreads();  // the previous query tile's products are done with Qs, dOs, Pt, dSt
    load_rows(Qs, ldx, p.q + (start + i0) * p.q_row + h * p.Dh, p.q_row, bq, BQ, Dh, Dk);
    load_rows(dOs, ldx, p.dout + (start + i0) * p.o_row + h * p.Dh, p.o_row, bq, BQ, Dh, Dk);
    load_row_stats(p, D, id.b, h, start, i0, bq, rl, rD, rdH, rH);
    __syncthreads();
    mm<kRow, kCol, false>(S, lds, Qs, ldx, Ks, ldx, BQ, BK, Dk);    // S = Q·Kᵀ
    mm<kRow, kCol, false>(dP, lds, dOs, ldx, Vs, ldx, BQ, BK, Dk);  // dP = dO·Vᵀ
    __syncthreads();
    softmax_grad_tile(p, id.b, h, start, i0, bq, j0, bk, S, dP, rl, rD, rdH, rH, Pt, dSt, static_cast<float*>(nullptr));
    __syncthreads();
    mm<kCol, kRow, true>(dV, ldo, Pt, ldp, dOs, ldx, BK, Dk, BQ);  // dV += Pᵀ·dO
    mm<kCol, kRow, true>(dK, ldo, dSt, ldp, Qs, ldx, BK, Dk, BQ);  // dK += (scale·dS)ᵀ·Q
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < bk * Dh; idx += blockDim.x) {
    const int r = idx / Dh, d = idx % Dh;
    st(p.dk, (start + j0 + r) * p.k_row + h * p.Dh + d, dK[r * ldo + d]);
    st(p.dv, (start + j0 + r) * p.v_row + h * p.Dh + d, dV[r * ldo + d]);
  }
}

// dbias32: the float32 [B, L, L] bias gradient to add into (null: none).
template <typename T>
__global__ void __launch_bounds__(kCta) attention_dq_kernel(AttentionParams<T> p, const float* D, float* dbias32, int64_t tiles) {
  using E = typename Cfg<T>::E;
  constexpr int BQ = Cfg<T>::BQ, BK = Cfg<T>::BK;
  constexpr int lds = BwdSmem<T>::lds, ldp = BwdSmem<T>::ldp;
  extern __shared__ __align__(128) unsigned char smem[];
  const BwdSmem<T> lay(static_cast<int>(p.Dh), false);
  E* Qs = reinterpret_cast<E*>(smem + lay.q);
  E* dOs = reinterpret_cast<E*>(smem + lay.dout);
  E* Ks = reinterpret_cast<E*>(smem + lay.k);
  E* Vs = reinterpret_cast<E*>(smem + lay.v);
  float* S = reinterpret_cast<float*>(smem + lay.s);
  float* dP = reinterpret_cast<float*>(smem + lay.dp);
  E* dSt = reinterpret_cast<E*>(smem + lay.ds);
  float* dQ = reinterpret_cast<float*>(smem + lay.acc1);
  float* rl = reinterpret_cast<float*>(smem + lay.lse);
  float* rD = reinterpret_cast<float*>(smem + lay.dd);
  float* rdH = reinterpret_cast<float*>(smem + lay.dh);
  float* rH = reinterpret_cast<float*>(smem + lay.hh);
  const int Dh = static_cast<int>(p.Dh), Dk = lay.Dk, ldx = lay.ldx, ldo = lay.ldo;

  const TileId id = tile_id(tiles, dbias32 ? 1 : p.H);
  int64_t start;
  int len;
  seq_of(p, id.b, &start, &len);
  const int i0 = static_cast<int>(id.tile) * BQ;
  if (i0 >= len) return;  // uniform over the CTA
  const int bq = min(BQ, len - i0);
  const int h_begin = dbias32 ? 0 : static_cast<int>(id.h);
  const int h_end = dbias32 ? static_cast<int>(p.H) : h_begin + 1;

  for (int h = h_begin; h < h_end; h++) {
    __syncthreads();  // the previous head's dQ has been written out
    load_rows(Qs, ldx, p.q + (start + i0) * p.q_row + h * p.Dh, p.q_row, bq, BQ, Dh, Dk);
    load_rows(dOs, ldx, p.dout + (start + i0) * p.o_row + h * p.Dh, p.o_row, bq, BQ, Dh, Dk);
    load_row_stats(p, D, id.b, h, start, i0, bq, rl, rD, rdH, rH);
    for (int idx = threadIdx.x; idx < BQ * ldo; idx += blockDim.x) dQ[idx] = 0.f;
    for (int j0 = 0; j0 < len; j0 += BK) {
      const int bk = min(BK, len - j0);
      __syncthreads();  // the previous key tile's product is done with Ks and dSt (and the loads above are visible)
      load_rows(Ks, ldx, p.k + (start + j0) * p.k_row + h * p.Dh, p.k_row, bk, BK, Dh, Dk);
      load_rows(Vs, ldx, p.v + (start + j0) * p.v_row + h * p.Dh, p.v_row, bk, BK, Dh, Dk);
      __syncthreads();
      mm<kRow, kCol, false>(S, lds, Qs, ldx, Ks, ldx, BQ, BK, Dk);
      mm<kRow, kCol, false>(dP, lds, dOs, ldx, Vs, ldx, BQ, BK, Dk);
      __syncthreads();
      // Heads run in order and a (row, column) of dbias always falls to the
      // same thread, so the sum over heads has a fixed order and no race.
      softmax_grad_tile(p, id.b, h, start, i0, bq, j0, bk, S, dP, rl, rD, rdH, rH, static_cast<E*>(nullptr), dSt, dbias32);
      __syncthreads();
      mm<kRow, kRow, true>(dQ, ldo, dSt, ldp, Ks, ldx, BQ, Dk, BK);  // dQ += (scale·dS)·K
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < bq * Dh; idx += blockDim.x) {
      const int r = idx / Dh, d = idx % Dh;
      st(p.dq, (start + i0 + r) * p.q_row + h * p.Dh + d, dQ[r * ldo + d]);
    }
  }
}

template <typename F>
__global__ void attention_cast_kernel(const float* src, F* dst, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) dst[i] = from_f<F>(src[i]);
}

// A device buffer freed when the call returns; the caching allocator hands it
// out again only in stream order, after the kernels queued here have run.
struct Scratch {
  void* ptr = nullptr;
  Scratch(size_t bytes, const char* op) : ptr(alloc(bytes, op)) {}
  ~Scratch() { cuda::free(ptr); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

}  // namespace
}  // namespace cuda

template <typename T>
void attention_backward_cuda(const AttentionParams<T>& p) {
  using namespace cuda;
  using namespace cuda::attn;
  constexpr const char* op = "attentionBackward";
  if (p.nnz * p.H == 0 || p.L == 0) return;  // no tokens: nothing to write
  if (p.Dh > kAttentionCudaMaxDh) fail(ErrCode::Shape, op, "head width above the cuda kernel's 128");
  const int64_t qtiles = (p.L + Cfg<T>::BQ - 1) / Cfg<T>::BQ, ktiles = (p.L + Cfg<T>::BK - 1) / Cfg<T>::BK;
  const int64_t dkdv_blocks = ktiles * p.H * p.B, dq_blocks = qtiles * (p.dbias ? 1 : p.H) * p.B;
  if (dkdv_blocks > INT32_MAX || dq_blocks > INT32_MAX)
    fail(ErrCode::Shape, op, "more tiles × heads × sequences than one cuda grid holds");

  // D has the lse layout: [B, H, L] padded, [H, nnz] varlen.
  const int64_t nstat = p.cu_seqlens ? p.H * p.nnz : p.B * p.H * p.L;
  Scratch D(sizeof(float) * nstat, op);
  float* Dp = static_cast<float*>(D.ptr);
  CLOZE_LAUNCH(op, attention_delta_kernel<T>, blocks_for(p.nnz * p.H), kThreads, 0, p, Dp);
  if constexpr (std::is_same_v<T, bf16>) {
    if (attention_backward_mma(p, Dp)) return;  // the tensor-core kernels, where they apply
  }

  const int Dh = static_cast<int>(p.Dh);
  const size_t b1 = BwdSmem<T>(Dh, true).bytes;
  check(cudaFuncSetAttribute(attention_dkdv_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(b1)), op,
        "cudaFuncSetAttribute");
  CLOZE_LAUNCH(op, attention_dkdv_kernel<T>, static_cast<unsigned>(dkdv_blocks), kCta, b1, p, Dp, ktiles);

  // dbias: float32 accumulation; bfloat16 goes through a float32 buffer cast at the end.
  const int64_t nbias = p.B * p.L * p.L;
  float* db32 = nullptr;
  std::unique_ptr<Scratch> db_tmp;
  if (p.dbias) {
    if constexpr (std::is_same_v<T, float>) {
      db32 = p.dbias;  // zero-filled by the binding
    } else {
      db_tmp = std::make_unique<Scratch>(sizeof(float) * nbias, op);
      db32 = static_cast<float*>(db_tmp->ptr);
      memset_zero(db32, sizeof(float) * nbias, op);
    }
  }
  const size_t b2 = BwdSmem<T>(Dh, false).bytes;
  check(cudaFuncSetAttribute(attention_dq_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(b2)), op,
        "cudaFuncSetAttribute");
  CLOZE_LAUNCH(op, attention_dq_kernel<T>, static_cast<unsigned>(dq_blocks), kCta, b2, p, Dp, db32, qtiles);
  if constexpr (!std::is_same_v<T, float>) {
    if (p.dbias) CLOZE_LAUNCH(op, attention_cast_kernel<dev_t<T>>, blocks_for(nbias), kThreads, 0, db32, dptr(p.dbias), nbias);
  }
}

template void attention_backward_cuda<float>(const AttentionParams<float>&);
template void attention_backward_cuda<bf16>(const AttentionParams<bf16>&);

}  // namespace cloze
