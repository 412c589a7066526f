#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/mathfn.h"
#include "../core/microkernel.h"
#include "../core/rowops.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

// Query and key tile sizes. 64×64 keeps the score tile, the transposed key
// tile and the output accumulator (Dh=64) inside a 48 KiB L1 plus L2.
constexpr int64_t BQ = 64, BK = 64;

template <typename T>
struct Geometry {
  const AttentionParams<T>& p;
  int64_t start(int64_t b) const { return p.cu_seqlens ? p.cu_seqlens[b] : b * p.L; }
  int64_t len(int64_t b) const { return p.cu_seqlens ? p.cu_seqlens[b + 1] - p.cu_seqlens[b] : p.L; }
  // Offset of (b, h, i=0) in lse/entropy.
  int64_t stat(int64_t b, int64_t h) const { return p.cu_seqlens ? h * p.nnz + start(b) : (b * p.H + h) * p.L; }
  // Whether row i of sequence b gets an entropy value.
  bool entropy_row(int64_t start_b, int64_t i) const {
    return !p.entropy_masked_only || !p.token_mask || p.token_mask[start_b + i] != 0;
  }
};

// Turns raw q·k products in S[bq×bk] into logits: scale, ALiBi, additive bias,
// then −inf for every masked pair.
template <typename T>
void finish_logits(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t start_b, int64_t i0, int64_t bq,
                   int64_t j0, int64_t bk, T* S) {
  const T scale = static_cast<T>(p.scale);
  const T slope = p.alibi_slopes ? p.alibi_slopes[h] : T(0);
  const T ninf = neg_inf<T>();
  for (int64_t r = 0; r < bq; r++) {
    const int64_t i = i0 + r;
    T* s = S + r * bk;
    for (int64_t c = 0; c < bk; c++) s[c] *= scale;
    if (p.alibi_slopes) {
      for (int64_t c = 0; c < bk; c++) {
        const int64_t d = i - (j0 + c);
        s[c] -= slope * static_cast<T>(d < 0 ? -d : d);
      }
    }
    if (p.bias) {
      const T* brow = p.bias + (b * p.L + i) * p.L + j0;
      for (int64_t c = 0; c < bk; c++) s[c] += brow[c];
    }
    if (p.attn_mask) {
      const uint8_t* mrow = p.attn_mask + (b * p.L + i) * p.L + j0;
      for (int64_t c = 0; c < bk; c++) s[c] = mrow[c] ? ninf : s[c];
    }
    if (p.key_padding) {
      const uint8_t* kp = p.key_padding + b * p.L + j0;
      for (int64_t c = 0; c < bk; c++) s[c] = kp[c] ? ninf : s[c];
    }
    if (p.exclude_masked_keys && p.token_mask && !p.token_mask[start_b + i]) {
      const uint8_t* tm = p.token_mask + start_b + j0;
      for (int64_t c = 0; c < bk; c++) s[c] = tm[c] ? ninf : s[c];
    }
  }
}

template <typename T>
struct FwdScratch {
  std::vector<T> S, Kt, O, m, l, e;
  void init(int64_t Dh) {
    S.resize(BQ * BK);
    Kt.resize(Dh * BK);
    O.resize(BQ * Dh);
    m.resize(BQ);
    l.resize(BQ);
    e.resize(BQ);
  }
};

template <typename T>
void forward_tile(const AttentionParams<T>& p, const Geometry<T>& g, int64_t b, int64_t h, int64_t i0,
                  FwdScratch<T>& w) {
  const int64_t Dh = p.Dh, start = g.start(b), len = g.len(b);
  const int64_t bq = std::min(BQ, len - i0);
  const T ninf = neg_inf<T>();
  const bool want_entropy = p.entropy != nullptr;
  const T* qp = p.q + (start + i0) * p.q_row + h * Dh;
  std::fill(w.O.begin(), w.O.begin() + bq * Dh, T(0));
  std::fill(w.m.begin(), w.m.end(), ninf);
  std::fill(w.l.begin(), w.l.end(), T(0));
  std::fill(w.e.begin(), w.e.end(), T(0));
  for (int64_t j0 = 0; j0 < len; j0 += BK) {
    const int64_t bk = std::min(BK, len - j0);
    transpose_tile(bk, Dh, p.k + (start + j0) * p.k_row + h * Dh, p.k_row, w.Kt.data(), bk);
    tile_gemm<T>(bq, bk, Dh, qp, p.q_row, w.Kt.data(), bk, w.S.data(), bk, false);
    finish_logits(p, b, h, start, i0, bq, j0, bk, w.S.data());
    for (int64_t r = 0; r < bq; r++) {
      T* s = w.S.data() + r * bk;
      const T m_new = std::max(w.m[r], row_max(s, bk));
      if (m_new == ninf) {  // every key so far is masked for this row
        std::fill(s, s + bk, T(0));
        continue;
      }
      const T corr = w.m[r] == ninf ? T(0) : fexp(w.m[r] - m_new);
      T sum = 0, se = 0;
      exp_row(s, bk, m_new, &sum, &se, want_entropy);
      if (corr != T(1)) {
        T* o = w.O.data() + r * Dh;
        for (int64_t d = 0; d < Dh; d++) o[d] *= corr;
      }
      w.l[r] = w.l[r] * corr + sum;
      w.e[r] = w.e[r] * corr + se;
      w.m[r] = m_new;
    }
    tile_gemm<T>(bq, Dh, bk, w.S.data(), bk, p.v + (start + j0) * p.v_row + h * Dh, p.v_row, w.O.data(), Dh, true);
  }
  const int64_t sbase = g.stat(b, h) + i0;
  for (int64_t r = 0; r < bq; r++) {
    T* o = p.out + (start + i0 + r) * p.o_row + h * Dh;
    const bool empty = w.l[r] == T(0);
    const T inv = empty ? T(0) : T(1) / w.l[r];
    for (int64_t d = 0; d < Dh; d++) o[d] = w.O[r * Dh + d] * inv;
    const T lse = empty ? ninf : w.m[r] + std::log(w.l[r]);
    p.lse[sbase + r] = lse;
    if (want_entropy)
      p.entropy[sbase + r] = (!empty && g.entropy_row(start, i0 + r)) ? lse - w.e[r] * inv : T(0);
  }
}

template <typename T>
struct BwdScratch {
  std::vector<T> S, dP, Kt, Vt, Tr, D;
  void init(int64_t Dh) {
    S.resize(BQ * BK);
    dP.resize(BQ * BK);
    Kt.resize(Dh * BK);
    Vt.resize(Dh * BK);
    Tr.resize(BQ * BK);
    D.resize(BQ);
  }
};

template <typename T>
void backward_head(const AttentionParams<T>& p, const Geometry<T>& g, int64_t b, int64_t h, BwdScratch<T>& w) {
  const int64_t Dh = p.Dh, start = g.start(b), len = g.len(b);
  const T scale = static_cast<T>(p.scale);
  const int64_t sbase = g.stat(b, h);
  for (int64_t i0 = 0; i0 < len; i0 += BQ) {
    const int64_t bq = std::min(BQ, len - i0);
    const T* qp = p.q + (start + i0) * p.q_row + h * Dh;
    const T* dop = p.dout + (start + i0) * p.o_row + h * Dh;
    T* dqp = p.dq + (start + i0) * p.q_row + h * Dh;
    for (int64_t r = 0; r < bq; r++) {
      const T* o = p.out + (start + i0 + r) * p.o_row + h * Dh;
      const T* d = dop + r * p.o_row;
      T acc = 0;
      for (int64_t c = 0; c < Dh; c++) acc += o[c] * d[c];
      w.D[r] = acc;
    }
    for (int64_t j0 = 0; j0 < len; j0 += BK) {
      const int64_t bk = std::min(BK, len - j0);
      const T* kp = p.k + (start + j0) * p.k_row + h * Dh;
      const T* vp = p.v + (start + j0) * p.v_row + h * Dh;
      transpose_tile(bk, Dh, kp, p.k_row, w.Kt.data(), bk);
      transpose_tile(bk, Dh, vp, p.v_row, w.Vt.data(), bk);
      tile_gemm<T>(bq, bk, Dh, qp, p.q_row, w.Kt.data(), bk, w.S.data(), bk, false);
      finish_logits(p, b, h, start, i0, bq, j0, bk, w.S.data());
      tile_gemm<T>(bq, bk, Dh, dop, p.o_row, w.Vt.data(), bk, w.dP.data(), bk, false);
      for (int64_t r = 0; r < bq; r++) {
        T* s = w.S.data() + r * bk;  // becomes P
        T* dp = w.dP.data() + r * bk;  // becomes dS
        const T lse = p.lse[sbase + i0 + r];
        const T Dr = w.D[r];
        const bool ent = p.dentropy && g.entropy_row(start, i0 + r);
        const T dH = ent ? p.dentropy[sbase + i0 + r] : T(0);
        const T H = ent ? p.entropy[sbase + i0 + r] : T(0);
        // dH/ds = −p·(log p + H), with log p = s − lse; folded into the row kernel.
        softmax_grad_row(s, dp, bk, lse, Dr, dH, H);
        if (p.dbias) {
          T* db = p.dbias + (b * p.L + i0 + r) * p.L + j0;
          for (int64_t c = 0; c < bk; c++) db[c] += dp[c];
        }
        for (int64_t c = 0; c < bk; c++) dp[c] *= scale;
      }
      // dV += Pᵀ·dO
      transpose_tile(bq, bk, w.S.data(), bk, w.Tr.data(), bq);
      tile_gemm<T>(bk, Dh, bq, w.Tr.data(), bq, dop, p.o_row, p.dv + (start + j0) * p.v_row + h * Dh, p.v_row, true);
      // dQ += dS·K
      tile_gemm<T>(bq, Dh, bk, w.dP.data(), bk, kp, p.k_row, dqp, p.q_row, true);
      // dK += dSᵀ·Q
      transpose_tile(bq, bk, w.dP.data(), bk, w.Tr.data(), bq);
      tile_gemm<T>(bk, Dh, bq, w.Tr.data(), bq, qp, p.q_row, p.dk + (start + j0) * p.k_row + h * Dh, p.k_row, true);
    }
  }
}

}  // namespace

template <typename T>
void attention_forward_cpu(const AttentionParams<T>& p) {
  const Geometry<T> g{p};
  const int64_t tiles = (p.L + BQ - 1) / BQ;
  ThreadPool& pool = ThreadPool::get();
  std::vector<FwdScratch<T>> scratch(pool.size());
  for (auto& s : scratch) s.init(p.Dh);
  pool.parallel_for(p.B * p.H * tiles, [&](int64_t t, int tid) {
    const int64_t b = t / (p.H * tiles), h = (t / tiles) % p.H, i0 = (t % tiles) * BQ;
    if (i0 < g.len(b)) forward_tile(p, g, b, h, i0, scratch[tid]);
  });
}

template <typename T>
void attention_backward_cpu(const AttentionParams<T>& p) {
  const Geometry<T> g{p};
  ThreadPool& pool = ThreadPool::get();
  std::vector<BwdScratch<T>> scratch(pool.size());
  for (auto& s : scratch) s.init(p.Dh);
  if (p.dbias) {
    // dbias sums over heads, so one task owns a whole sequence: no races and a fixed summation order.
    pool.parallel_for(p.B, [&](int64_t b, int tid) {
      for (int64_t h = 0; h < p.H; h++) backward_head(p, g, b, h, scratch[tid]);
    });
  } else {
    pool.parallel_for(p.B * p.H, [&](int64_t t, int tid) { backward_head(p, g, t / p.H, t % p.H, scratch[tid]); });
  }
}

template void attention_forward_cpu<float>(const AttentionParams<float>&);
template void attention_forward_cpu<double>(const AttentionParams<double>&);
template void attention_backward_cpu<float>(const AttentionParams<float>&);
template void attention_backward_cpu<double>(const AttentionParams<double>&);

}  // namespace cloze
