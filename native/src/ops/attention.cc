#include "attention.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../core/mathfn.h"
#include "../core/microkernel.h"
#include "../core/rowops.h"
#include "../core/storage.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

// Query and key tile sizes, chosen by measurement at B=32 H=4 L=512 Dh=64 on
// the 2-core AVX-512 CI machine (forward ms / forward+backward ms):
// 64×64 41/124, 32×64 39/114, 128×64 39/111, 32×128 38/107, 64×128 34/107,
// 128×128 40/112, 32×256 34/115. Longer key tiles amortise the per-row
// softmax bookkeeping; 64 query rows keep the output accumulator small.
constexpr int64_t BQ = 64, BK = 128;
// The forward gives each thread whole heads when there are at least this many per thread (attention_forward_cpu).
constexpr int64_t kHeadsPerThread = 4;

template <typename T>
struct Geometry {
  const AttentionParams<T>& p;
  int64_t start(int64_t b) const { return p.cu_seqlens ? p.cu_seqlens[b] : b * p.L; }
  int64_t len(int64_t b) const { return p.cu_seqlens ? p.cu_seqlens[b + 1] - p.cu_seqlens[b] : p.L; }
  // Offset of (b, h, i=0) in lse/entropy.
  int64_t stat(int64_t b, int64_t h) const { return p.cu_seqlens ? h * p.nnz + start(b) : (b * p.H + h) * p.L; }
  int64_t longest() const {
    int64_t n = 0;
    for (int64_t b = 0; b < p.B; b++) n = std::max(n, len(b));
    return n;
  }
  // Whether row i of sequence b gets an entropy value.
  bool entropy_row(int64_t start_b, int64_t i) const {
    return !p.entropy_masked_only || !p.token_mask || p.token_mask[start_b + i] != 0;
  }
};

// Turns raw q·k products in S[bq×bk] into logits: scale, ALiBi, additive bias,
// then −inf for every masked pair. Without ALiBi and bias the caller may leave the
// scale to the row kernels (apply_scale false: exp_row / softmax_grad_row's scale),
// which saves a pass over the tile.
template <typename T>
void finish_logits(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t start_b, int64_t i0, int64_t bq,
                   int64_t j0, int64_t bk, T* S, bool apply_scale = true) {
  const T scale = static_cast<T>(p.scale);
  const T slope = p.alibi_slopes ? p.alibi_slopes[h] : T(0);
  const T ninf = neg_inf<T>();
  for (int64_t r = 0; r < bq; r++) {
    const int64_t i = i0 + r;
    T* s = S + r * bk;
    if (apply_scale)
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

// One head's rows of src (a token-major input, row stride `row`), the sequence from token `start` on:
// transposed into key tiles of [Dh × BK], tile j at dst + j·tile_stride, or copied into [len × Dh].
// Shared by the batch-wide packs below and the whole-head tasks' own packs.
template <typename T>
void pack_head_tiles(const T* src, int64_t row, int64_t start, int64_t len, int64_t h, int64_t Dh, T* dst,
                     int64_t tile_stride) {
  for (int64_t j0 = 0; j0 < len; j0 += BK)
    transpose_tile(std::min(BK, len - j0), Dh, src + (start + j0) * row + h * Dh, row, dst + (j0 / BK) * tile_stride, BK);
}
template <typename T>
void pack_head_rows(const T* src, int64_t row, int64_t start, int64_t len, int64_t h, int64_t Dh, T* dst) {
  for (int64_t i = 0; i < len; i++) copy_short(src + (start + i) * row + h * Dh, dst + i * Dh, Dh);
}

// Kᵀ (or Vᵀ) of every (sequence, head), cut into key tiles of [Dh × BK] that
// are each contiguous: transposed once per call rather than once per query
// tile, and read with a short, cache-friendly row stride. O(L) extra memory.
template <typename T>
struct TransposedTiles {
  std::shared_ptr<Storage> data;  // from the block cache: no page faults on repeat calls
  std::vector<int64_t> tile_base;  // first tile of each sequence
  int64_t H = 0, Dh = 0;
  const T* tile(int64_t b, int64_t h, int64_t j0) const {
    return static_cast<T*>(data->data()) + ((tile_base[b] + j0 / BK) * H + h) * Dh * BK;
  }
};

template <typename T>
TransposedTiles<T> pack_transposed(const AttentionParams<T>& p, const Geometry<T>& g, const T* src, int64_t row) {
  TransposedTiles<T> t;
  t.H = p.H;
  t.Dh = p.Dh;
  t.tile_base.assign(p.B + 1, 0);
  for (int64_t b = 0; b < p.B; b++) t.tile_base[b + 1] = t.tile_base[b] + (g.len(b) + BK - 1) / BK;
  t.data = Storage::allocate(sizeof(T) * t.tile_base[p.B] * p.H * p.Dh * BK, "attention", false);
  ThreadPool::get().parallel_for(p.B * p.H, [&](int64_t task, int) {
    const int64_t b = task / p.H, h = task % p.H;
    pack_head_tiles(src, row, g.start(b), g.len(b), h, p.Dh, const_cast<T*>(t.tile(b, h, 0)), p.H * p.Dh * BK);
  });
  return t;
}

// Q, K, V or dO of every (sequence, head) as one contiguous [len × Dh] block.
// The token-major inputs have a row stride of H·Dh (often a power of two),
// which maps a tile's rows onto a few cache sets; contiguous blocks do not.
template <typename T>
struct PackedRows {
  std::shared_ptr<Storage> data;
  int64_t H = 0, Dh = 0;
  const T* rows(int64_t start, int64_t len, int64_t h) const {
    return static_cast<T*>(data->data()) + (start * H + h * len) * Dh;
  }
};

template <typename T>
PackedRows<T> pack_rows(const AttentionParams<T>& p, const Geometry<T>& g, const T* src, int64_t row) {
  PackedRows<T> t;
  t.H = p.H;
  t.Dh = p.Dh;
  t.data = Storage::allocate(sizeof(T) * p.nnz * p.H * p.Dh, "attention", false);
  ThreadPool::get().parallel_for(p.B * p.H, [&](int64_t task, int) {
    const int64_t b = task / p.H, h = task % p.H, start = g.start(b), len = g.len(b);
    pack_head_rows(src, row, start, len, h, p.Dh, const_cast<T*>(t.rows(start, len, h)));
  });
  return t;
}

template <typename T>
struct FwdScratch {
  std::vector<T> S, O, m, l, e, mn, corr, inv;
  // One head's Kᵀ tiles and V rows (whole-head tasks), from the block cache: a vector of this size would be
  // mapped, zero-filled and unmapped on every call.
  std::shared_ptr<Storage> packs;
  T *kt = nullptr, *v = nullptr;
  void init(int64_t Dh, int64_t head_len) {
    S.resize(BQ * BK);
    O.resize(BQ * Dh);
    m.resize(BQ);
    l.resize(BQ);
    e.resize(BQ);
    mn.resize(BQ);
    corr.resize(BQ);
    inv.resize(BQ);
    if (head_len == 0) return;
    const int64_t nkt = (head_len + BK - 1) / BK * BK * Dh;
    packs = Storage::allocate(sizeof(T) * (nkt + head_len * Dh), "attention", false);
    kt = static_cast<T*>(packs->data());
    v = kt + nkt;
  }
};

// The exponentials of up to kPanelRows rows of a full key tile: p = exp(scale·s − m_new) in place, and the rows'
// sums Σ p, exactly as exp_row computes them without the entropy (the same vector steps, the sums in the same
// order), one vector per step(). forward_tile runs them as gemm_block's side work inside the P·V product of the
// rows before, where they execute between its FMAs: the forward ran 5–6% faster on one thread than with them in a
// pass of their own (bench/RESULTS.md, "Exponentials inside the P·V product").
// The select on −∞ that exp_row makes is not needed: the scale here is positive in float (the folded scale, or 1),
// so a masked logit gives exp(−∞) = 0. A row whose maximum is −∞ (every key so far masked) gets p = 0.
// Bit for bit (NaN payloads aside: with ±∞ among the logits, the order of operands can change a NaN's sign bit):
// that rests on GCC not contracting differently in the two instantiations of gemm_block (row_scale's multiply
// before the first FMA), which the tests check.
struct ExpRows {
  float* s = nullptr;         // the first row; row stride BK
  const float* mn = nullptr;  // the rows' new maxima
  int64_t rows = 0, r = 0, c = 0;
  VF vs{}, vm{}, acc[kPanelRows]{};
  bool dead = false;
  void start(float* s_, const float* mn_, int64_t rows_, float scale) {
    s = s_;
    mn = mn_;
    rows = rows_;
    r = c = 0;
    vs = vsplat<float>(scale);
    if (rows > 0) begin_row();
  }
  void begin_row() {
    acc[r] = vsplat<float>(0);
    vm = vsplat<float>(mn[r]);
    dead = mn[r] == neg_inf<float>();
  }
  void step() {
    if (r == rows) return;
    float* p = s + r * BK + c;
    const VF e = dead ? vsplat<float>(0) : vexp_sf(vload(p) * vs - vm);
    acc[r] += e;
    vstore(p, e);
    c += kWF;
    if (c == BK) {
      c = 0;
      if (++r < rows) begin_row();
    }
  }
  void drain() {
    while (r < rows) step();
  }
};

// P·V for a full key tile with the exponentials interleaved: the rows' P for the first register block of rows
// first, then each block's product runs the next block's exponentials as its side work (ExpRows), and the rows'
// sums update l and m as the row loop in forward_tile does. The same FMAs in the same order as tile_gemm: the
// blocks of kPanelRows rows, 2-vector panels (Dh is a multiple of their width), and tile_gemm's own blocks for
// the last rows.
// first: the head's first key tile, whose products start from zero (O is not read, so not filled either). out
// (non-null on the head's last key tile): each full block of rows, whose l is final by then, goes straight from
// the registers to the output rows (row stride o_row), times 1/l as forward_tile's last loop would write them;
// returns how many rows from 0 it wrote so (the rest stay in O).
inline int64_t pv_with_exponentials(FwdScratch<float>& w, int64_t bq, int64_t Dh, const float* vt, float scale, bool first,
                                    float* out, int64_t o_row) {
  constexpr int64_t MR = kPanelRows;
  float* S = w.S.data();
  ExpRows job;
  auto update = [&](int64_t r0) {  // l and m of the rows the job has just finished
    for (int64_t r = 0; r < job.rows; r++) {
      if (w.mn[r0 + r] == neg_inf<float>()) continue;
      w.l[r0 + r] = w.l[r0 + r] * w.corr[r0 + r] + hsum(job.acc[r]);
      w.m[r0 + r] = w.mn[r0 + r];
    }
  };
  // One row block's product, its start (zero or O scaled by corr) and its destination (O, or out scaled by 1/l)
  // chosen at compile time (gemm_block_init).
  auto block = [&](int64_t r0, auto init, auto scaled_out) {
    constexpr BlockInit I = decltype(init)::value;
    constexpr bool SO = decltype(scaled_out)::value;
    for (int64_t j = 0; j < Dh; j += 2 * kWF)
      gemm_block_init<float, MR, 2, ExpRows, I, SO>(BK, S + r0 * BK, BK, 1, vt + j, Dh, w.O.data() + r0 * Dh + j, Dh,
                                                    w.corr.data() + r0, &job, SO ? out + r0 * o_row + j : nullptr,
                                                    o_row, w.inv.data() + r0);
  };
  using Zero = std::integral_constant<BlockInit, BlockInit::kZero>;
  using Scaled = std::integral_constant<BlockInit, BlockInit::kLoadScaled>;
  job.start(S, w.mn.data(), std::min(MR, bq), scale);
  job.drain();
  update(0);
  int64_t r0 = 0;
  for (; r0 + MR <= bq; r0 += MR) {
    const int64_t next = r0 + MR;
    job.start(S + next * BK, w.mn.data() + next, std::max<int64_t>(0, std::min(MR, bq - next)), scale);
    if (out) {
      for (int64_t r = r0; r < next; r++) w.inv[r] = w.l[r] == 0.f ? 0.f : 1.f / w.l[r];
      if (first)
        block(r0, Zero{}, std::true_type{});
      else
        block(r0, Scaled{}, std::true_type{});
    } else if (first) {
      block(r0, Zero{}, std::false_type{});
    } else {
      block(r0, Scaled{}, std::false_type{});
    }
    job.drain();
    update(next);
  }
  if (r0 < bq)
    tile_gemm<float>(bq - r0, Dh, BK, S + r0 * BK, BK, vt, Dh, w.O.data() + r0 * Dh, Dh, !first,
                     first ? nullptr : w.corr.data() + r0);
  return out ? r0 : 0;
}

// qh: this head's query rows (row stride q_row); kth: its Kᵀ, key tile j0 at kth + (j0 / BK)·kt_stride as
// [Dh × BK]; vh: its V rows, [len × Dh].
template <typename T>
void forward_tile(const AttentionParams<T>& p, const Geometry<T>& g, const T* qh, int64_t q_row, const T* kth,
                  int64_t kt_stride, const T* vh, int64_t b, int64_t h, int64_t i0, FwdScratch<T>& w) {
  const int64_t Dh = p.Dh, start = g.start(b), len = g.len(b);
  const int64_t bq = std::min(BQ, len - i0);
  const T ninf = neg_inf<T>();
  const bool want_entropy = p.entropy != nullptr;
  const T* qp = qh + i0 * q_row;
  // O is not filled: the first key tile's products start from zero (accumulate false), which gives the bits that
  // accumulating onto zeros scaled by the correction did.
  std::fill(w.m.begin(), w.m.end(), ninf);
  std::fill(w.l.begin(), w.l.end(), T(0));
  std::fill(w.e.begin(), w.e.end(), T(0));
  // The scale goes into the exponent unless ALiBi, a bias or the entropy need the scaled logits first (a
  // positive scale keeps the row's maximum: max(scale·s) = scale·max(s), rounding included).
  // Only for a positive scale: max(scale·s) = scale·max(s) needs it, and 0·(−∞) is NaN. Positive in T: a scale
  // such as 1e-46 is positive as a double and 0 as a float.
  const T scale = static_cast<T>(p.scale);
  const bool fold = !p.alibi_slopes && !p.bias && !want_entropy && scale > T(0);
  const T scale_in_exp = fold ? scale : T(1);
  // Without the entropy, the exponentials of a full key tile run inside its P·V product (pv_with_exponentials)
  // when the head width fills whole register panels; bit for bit the plain chain (p.plain_chain, which the
  // tests compare).
  const bool interleave = !p.plain_chain && !want_entropy && Dh % (2 * VecT<T>::W) == 0;
  T* const out_rows = p.out + (start + i0) * p.o_row + h * Dh;  // this tile's first output row
  int64_t written = 0;  // rows the last key tile's product wrote to out already
  for (int64_t j0 = 0; j0 < len; j0 += BK) {
    const int64_t bk = std::min(BK, len - j0);
    tile_gemm<T>(bq, bk, Dh, qp, q_row, kth + (j0 / BK) * kt_stride, BK, w.S.data(), bk, false);
    finish_logits(p, b, h, start, i0, bq, j0, bk, w.S.data(), !fold);
    for (int64_t r = 0; r < bq; r++) {
      const T* s = w.S.data() + r * bk;
      w.mn[r] = std::max(w.m[r], fold ? row_max(s, bk) * scale : row_max(s, bk));
    }
    // The correction factors exp(m_old − m_new) of all rows in one vector pass: row by row, a scalar exp and two
    // horizontal reductions sat on every row's dependency chain. They scale O's rows as the P·V product loads
    // them (tile_gemm's row_scale); a row whose maximum is still −∞ keeps O (all 0) and its statistics.
    exp_diff(w.m.data(), w.mn.data(), w.corr.data(), bq);
    for (int64_t r = 0; r < bq; r++)
      if (w.mn[r] == ninf) w.corr[r] = T(1);
    const T* vt = vh + j0 * Dh;
    const bool first = j0 == 0, last = j0 + BK >= len;
    if constexpr (std::is_same_v<T, float>) {
      if (interleave && bk == BK) {
        written = pv_with_exponentials(w, bq, Dh, vt, scale_in_exp, first, last ? out_rows : nullptr, p.o_row);
        continue;
      }
    }
    for (int64_t r = 0; r < bq; r++) {
      const T m_new = w.mn[r];
      T* s = w.S.data() + r * bk;
      if (m_new == ninf) {  // every key so far is masked for this row
        std::fill(s, s + bk, T(0));
        continue;
      }
      const T m_old = w.m[r];
      const T corr = w.corr[r];
      T sum = 0, se = 0;
      // For the entropy, e accumulates Σ p·(s − m) against the running max m, so
      // that H = log l − e/l adds two non-negative terms. Accumulating Σ p·s and
      // taking lse − E[s] cancels two numbers of the logits' size and, in float32,
      // lost several times the error of a naive softmax on peaked rows.
      if (want_entropy)
        for (int64_t c = 0; c < bk; c++) s[c] -= m_new;  // −∞ stays −∞
      exp_row(s, bk, want_entropy ? T(0) : m_new, &sum, &se, want_entropy, scale_in_exp);
      if (want_entropy) w.e[r] = m_old == ninf ? se : corr * (w.e[r] + (m_old - m_new) * w.l[r]) + se;
      w.l[r] = w.l[r] * corr + sum;
      w.m[r] = m_new;
    }
    tile_gemm<T>(bq, Dh, bk, w.S.data(), bk, vt, Dh, w.O.data(), Dh, !first, first ? nullptr : w.corr.data());
  }
  const int64_t sbase = g.stat(b, h) + i0;
  for (int64_t r = 0; r < bq; r++) {
    T* o = out_rows + r * p.o_row;
    const bool empty = w.l[r] == T(0);
    const T inv = empty ? T(0) : T(1) / w.l[r];
    if (r >= written)
      for (int64_t d = 0; d < Dh; d++) o[d] = w.O[r * Dh + d] * inv;
    const T lse = empty ? ninf : w.m[r] + std::log(w.l[r]);
    p.lse[sbase + r] = lse;
    if (want_entropy)
      p.entropy[sbase + r] = (!empty && g.entropy_row(start, i0 + r)) ? std::log(w.l[r]) - w.e[r] * inv : T(0);
  }
}

template <typename T>
struct BwdScratch {
  std::vector<T> S, dP, D, dQ;
  // dK and dV of one head, and its packs (pack_head) when the tasks are whole heads: from the block cache, as
  // in FwdScratch.
  std::shared_ptr<Storage> head;
  T *dK = nullptr, *dV = nullptr, *kt = nullptr, *vt = nullptr, *q = nullptr, *k = nullptr, *dout = nullptr;
  void init(int64_t L, int64_t Dh, bool head_packs) {
    S.resize(BQ * BK);
    dP.resize(BQ * BK);
    D.resize(BQ);
    dQ.resize(BQ * Dh);
    const int64_t nkt = head_packs ? (L + BK - 1) / BK * BK * Dh : 0;
    head = Storage::allocate(sizeof(T) * (2 * L * Dh + (head_packs ? 2 * nkt + 3 * L * Dh : 0)), "attention", false);
    dK = static_cast<T*>(head->data());
    dV = dK + L * Dh;
    if (!head_packs) return;
    kt = dV + L * Dh;
    vt = kt + nkt;
    q = vt + nkt;
    k = q + L * Dh;
    dout = k + L * Dh;
  }
};

// Everything the backward reads, repacked once per call (see PackedRows).
template <typename T>
struct BwdPacks {
  TransposedTiles<T> kt, vt;
  PackedRows<T> q, k, dout;
};

// One head's packed inputs for backward_head: Kᵀ and Vᵀ key tiles (tile j0 at kt + (j0 / BK)·t_stride), and the
// Q, K and dO rows, [len × Dh] each.
template <typename T>
struct HeadPacks {
  const T *kt, *vt, *q, *k, *dout;
  int64_t t_stride;
};

// Packs head h of sequence b into w's own buffers (whole-head tasks: see attention_forward_cpu).
template <typename T>
HeadPacks<T> pack_head(const AttentionParams<T>& p, const Geometry<T>& g, int64_t b, int64_t h, BwdScratch<T>& w) {
  const int64_t Dh = p.Dh, start = g.start(b), len = g.len(b);
  pack_head_tiles(p.k, p.k_row, start, len, h, Dh, w.kt, Dh * BK);
  pack_head_tiles(p.v, p.v_row, start, len, h, Dh, w.vt, Dh * BK);
  pack_head_rows(p.q, p.q_row, start, len, h, Dh, w.q);
  pack_head_rows(p.k, p.k_row, start, len, h, Dh, w.k);
  pack_head_rows(p.dout, p.o_row, start, len, h, Dh, w.dout);
  return {w.kt, w.vt, w.q, w.k, w.dout, Dh * BK};
}

template <typename T>
HeadPacks<T> shared_head(const BwdPacks<T>& pk, const Geometry<T>& g, int64_t b, int64_t h) {
  const int64_t start = g.start(b), len = g.len(b);
  return {pk.kt.tile(b, h, 0), pk.vt.tile(b, h, 0), pk.q.rows(start, len, h), pk.k.rows(start, len, h),
          pk.dout.rows(start, len, h), pk.kt.H * pk.kt.Dh * BK};
}

template <typename T>
void backward_head(const AttentionParams<T>& p, const Geometry<T>& g, const HeadPacks<T>& pk, int64_t b, int64_t h,
                   BwdScratch<T>& w) {
  const int64_t Dh = p.Dh, start = g.start(b), len = g.len(b);
  const T scale = static_cast<T>(p.scale);
  // As the forward: the scale into the row kernel unless ALiBi or a bias need scaled logits, or dbias unscaled dS.
  const bool fold = !p.alibi_slopes && !p.bias && !p.dbias && scale > T(0);
  const int64_t sbase = g.stat(b, h);
  const T *qh = pk.q, *kh = pk.k, *doh = pk.dout;
  // dK and dV accumulate in contiguous scratch over all query tiles.
  std::fill(w.dK, w.dK + len * Dh, T(0));
  std::fill(w.dV, w.dV + len * Dh, T(0));
  for (int64_t i0 = 0; i0 < len; i0 += BQ) {
    const int64_t bq = std::min(BQ, len - i0);
    const T* qp = qh + i0 * Dh;
    const T* dop = doh + i0 * Dh;
    std::fill(w.dQ.begin(), w.dQ.begin() + bq * Dh, T(0));
    for (int64_t r = 0; r < bq; r++) {
      const T* o = p.out + (start + i0 + r) * p.o_row + h * Dh;
      const T* d = dop + r * Dh;
      T acc = 0;
      for (int64_t c = 0; c < Dh; c++) acc += o[c] * d[c];
      w.D[r] = acc;
    }
    for (int64_t j0 = 0; j0 < len; j0 += BK) {
      const int64_t bk = std::min(BK, len - j0);
      tile_gemm<T>(bq, bk, Dh, qp, Dh, pk.kt + (j0 / BK) * pk.t_stride, BK, w.S.data(), bk, false);
      finish_logits(p, b, h, start, i0, bq, j0, bk, w.S.data(), !fold);
      tile_gemm<T>(bq, bk, Dh, dop, Dh, pk.vt + (j0 / BK) * pk.t_stride, BK, w.dP.data(), bk, false);
      for (int64_t r = 0; r < bq; r++) {
        T* s = w.S.data() + r * bk;    // becomes P
        T* dp = w.dP.data() + r * bk;  // becomes dS
        const T lse = p.lse[sbase + i0 + r];
        const bool ent = p.dentropy && g.entropy_row(start, i0 + r);
        const T dH = ent ? p.dentropy[sbase + i0 + r] : T(0);
        const T H = ent ? p.entropy[sbase + i0 + r] : T(0);
        // dH/ds = −p·(log p + H), with log p = s − lse; folded into the row kernel.
        // Folded: the logits' scale and dS's scale are applied inside the row kernel (no passes over the tile).
        softmax_grad_row(s, dp, bk, lse, w.D[r], dH, H, fold ? scale : T(1), fold ? scale : T(1));
        if (fold) continue;
        if (p.dbias) {
          T* db = p.dbias + (b * p.L + i0 + r) * p.L + j0;
          for (int64_t c = 0; c < bk; c++) db[c] += dp[c];
        }
        for (int64_t c = 0; c < bk; c++) dp[c] *= scale;
      }
      // dV += Pᵀ·dO, dQ += dS·K, dK += dSᵀ·Q
      tile_gemm_at<T>(bk, Dh, bq, w.S.data(), bk, dop, Dh, w.dV + j0 * Dh, Dh, true);
      tile_gemm<T>(bq, Dh, bk, w.dP.data(), bk, kh + j0 * Dh, Dh, w.dQ.data(), Dh, true);
      tile_gemm_at<T>(bk, Dh, bq, w.dP.data(), bk, qp, Dh, w.dK + j0 * Dh, Dh, true);
    }
    for (int64_t r = 0; r < bq; r++) copy_short(w.dQ.data() + r * Dh, p.dq + (start + i0 + r) * p.q_row + h * Dh, Dh);
  }
  for (int64_t r = 0; r < len; r++) {
    copy_short(w.dK + r * Dh, p.dk + (start + r) * p.k_row + h * Dh, Dh);
    copy_short(w.dV + r * Dh, p.dv + (start + r) * p.v_row + h * Dh, Dh);
  }
}

// Scratch per pool thread, each allocated by its own thread on that thread's first task. Allocated together on
// the calling thread, the threads' buffers lay side by side in one heap arena; a loop of forwards alone then ran
// 8–33% slower on two threads (builds alternated; most likely false sharing where one thread's buffers end and the
// next thread's begin), while loops of forward and backward, and the bench suite, showed no difference: the effect
// depends on where the allocations land. Each thread writes only its own slot.
template <typename S>
struct PerThread {
  std::vector<S> slots;
  std::vector<char> ready;
  explicit PerThread(int n) : slots(n), ready(n, 0) {}
  template <typename Init>
  S& get(int tid, Init&& init) {
    if (!ready[tid]) {
      init(slots[tid]);
      ready[tid] = 1;
    }
    return slots[tid];
  }
};

}  // namespace

template <typename T>
void attention_forward_cpu(const AttentionParams<T>& p) {
  const Geometry<T> g{p};
  const int64_t tiles = (p.L + BQ - 1) / BQ;
  ThreadPool& pool = ThreadPool::get();
  PerThread<FwdScratch<T>> scratch(pool.size());
  if (p.B * p.H >= kHeadsPerThread * pool.size()) {
    // Enough heads to keep every thread busy: one task per (sequence, head), which packs that head's Kᵀ and V
    // into its own scratch and runs all its query tiles. The packs (2·len·Dh values) stay in the core's L2 while
    // they are read; packed for the whole batch up front, they had been written to memory and read back
    // (32 MB at B = 32, L = 512, H = 4, Dh = 64), and the forward ran at 70% of its key-tile speed.
    // Each thread takes a contiguous share of the heads (parallel_for_contiguous): handed out one at a time, the
    // heads alternated between the threads, and each thread's next head began a new memory stream.
    parallel_for_contiguous(p.B * p.H, [&](int64_t t, int tid) {
      const int64_t b = t / p.H, h = t % p.H, start = g.start(b), len = g.len(b);
      FwdScratch<T>& w = scratch.get(tid, [&](FwdScratch<T>& s) { s.init(p.Dh, g.longest()); });
      pack_head_tiles(p.k, p.k_row, start, len, h, p.Dh, w.kt, p.Dh * BK);
      // (Packing Q as well measured 3% slower: its rows are read straight from the input, 4 times per query tile.)
      pack_head_rows(p.v, p.v_row, start, len, h, p.Dh, w.v);
      const T* qh = p.q + start * p.q_row + h * p.Dh;
      for (int64_t i0 = 0; i0 < len; i0 += BQ)
        forward_tile(p, g, qh, p.q_row, w.kt, p.Dh * BK, w.v, b, h, i0, w);
    });
    return;
  }
  // Few heads (one sequence at inference, say): query tiles are the tasks, over packs shared by all threads.
  const TransposedTiles<T> kt = pack_transposed(p, g, p.k, p.k_row);
  const PackedRows<T> vr = pack_rows(p, g, p.v, p.v_row);
  const int64_t kt_stride = p.H * p.Dh * BK;  // TransposedTiles interleaves the heads' tiles
  pool.parallel_for(p.B * p.H * tiles, [&](int64_t t, int tid) {
    const int64_t b = t / (p.H * tiles), h = (t / tiles) % p.H, i0 = (t % tiles) * BQ;
    const int64_t start = g.start(b), len = g.len(b);
    if (i0 < len)
      forward_tile(p, g, p.q + start * p.q_row + h * p.Dh, p.q_row, kt.tile(b, h, 0), kt_stride, vr.rows(start, len, h),
                   b, h, i0, scratch.get(tid, [&](FwdScratch<T>& s) { s.init(p.Dh, 0); }));
  });
}

template <typename T>
void attention_backward_cpu(const AttentionParams<T>& p) {
  const Geometry<T> g{p};
  ThreadPool& pool = ThreadPool::get();
  PerThread<BwdScratch<T>> scratch(pool.size());
  // As the forward: with enough heads per thread, each task packs its own head into its scratch (kept in the
  // core's L2) instead of reading packs of the whole batch written to memory up front.
  const bool own = p.B * p.H >= kHeadsPerThread * pool.size();
  auto mine = [&](int tid) -> BwdScratch<T>& {
    return scratch.get(tid, [&](BwdScratch<T>& s) { s.init(std::max(p.L, g.longest()), p.Dh, own); });
  };
  BwdPacks<T> pk;
  if (!own)
    pk = {pack_transposed(p, g, p.k, p.k_row), pack_transposed(p, g, p.v, p.v_row), pack_rows(p, g, p.q, p.q_row),
          pack_rows(p, g, p.k, p.k_row), pack_rows(p, g, p.dout, p.o_row)};
  auto head = [&](int64_t b, int64_t h, BwdScratch<T>& w) {
    backward_head(p, g, own ? pack_head(p, g, b, h, w) : shared_head(pk, g, b, h), b, h, w);
  };
  if (p.dbias) {
    // dbias sums over heads, so one task owns a whole sequence: no races and a fixed summation order.
    pool.parallel_for(p.B, [&](int64_t b, int tid) {
      for (int64_t h = 0; h < p.H; h++) head(b, h, mine(tid));
    });
  } else {
    parallel_for_contiguous(p.B * p.H, [&](int64_t t, int tid) { head(t / p.H, t % p.H, mine(tid)); });
  }
}

template void attention_forward_cpu<float>(const AttentionParams<float>&);
template void attention_forward_cpu<double>(const AttentionParams<double>&);
template void attention_backward_cpu<float>(const AttentionParams<float>&);
template void attention_backward_cpu<double>(const AttentionParams<double>&);

}  // namespace cloze
