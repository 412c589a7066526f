#include "label_words.h"

#include <algorithm>
#include <vector>

#include "../core/blas.h"
#include "../core/threadpool.h"
#include "elementwise.h"

namespace cloze {

namespace {

// Rows per pool task for a row of n elements: about 16K elements a task.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)); }

// The K word rows of w, [K, D]: the GEMM's B operand (K·D is at most a few
// tens of thousands of elements, so the copy is noise next to the product).
template <typename T>
std::vector<T> gather_word_rows(const LabelWordParams<T>& p) {
  std::vector<T> wk(static_cast<size_t>(p.K * p.D));
  for (int64_t k = 0; k < p.K; k++) std::copy(p.w + p.words[k] * p.D, p.w + (p.words[k] + 1) * p.D, wk.data() + k * p.D);
  return wk;
}

// dst[words[k]·width + j] = Σ over every k' with words[k'] = words[k], in
// increasing k', of src[k'·width + j]. dst is zero-filled beforehand, so the
// first occurrence stores and later ones add: a fixed order, and the same
// whether a word is listed once or several times. Column blocks own disjoint
// slices of dst, so tasks never share an element.
template <typename T>
void scatter_word_rows(const int32_t* words, int64_t K, int64_t width, const T* src, T* dst) {
  constexpr int64_t CB = 256;
  const int64_t blocks = (width + CB - 1) / CB;
  ThreadPool::get().parallel_for(blocks, [&](int64_t blk, int) {
    const int64_t c0 = blk * CB, c1 = std::min(width, c0 + CB);
    for (int64_t k = 0; k < K; k++) {
      T* d = dst + static_cast<int64_t>(words[k]) * width;
      const T* s = src + k * width;
      for (int64_t c = c0; c < c1; c++) d[c] += s[c];
    }
  });
}

}  // namespace

template <typename T>
void label_word_logits_forward_cpu(const LabelWordParams<T>& p) {
  const int64_t M = p.M, K = p.K;
  if (M == 0) return;
  std::vector<T> bk;  // the words' biases, added by the GEMM's blocks (blas.h)
  if (p.b) {
    bk.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; k++) bk[k] = p.b[p.words[k]];
  }
  const std::vector<T> wk = gather_word_rows(p);
  GemmParams g;  // out [M, K] = h [M, D] · wkᵀ (+ bk)
  g.trans_b = true;
  g.M = M;
  g.N = K;
  g.K = p.D;
  g.A = p.h;
  g.lda = p.D;
  g.B = wk.data();
  g.ldb = p.D;
  g.C = p.out;
  g.ldc = K;
  g.bias = p.b ? bk.data() : nullptr;
  gemm<T>(g);
}

template <typename T>
void label_word_logits_backward_cpu(const LabelWordParams<T>& p) {
  const int64_t M = p.M, D = p.D, K = p.K;
  if (M == 0) return;  // dh is empty; dw and db stay zero
  if (p.dh) {  // dh [M, D] = dout [M, K] · wk [K, D]
    const std::vector<T> wk = gather_word_rows(p);
    GemmParams g;
    g.M = M;
    g.N = D;
    g.K = K;
    g.A = p.dout;
    g.lda = K;
    g.B = wk.data();
    g.ldb = D;
    g.C = p.dh;
    g.ldc = D;
    gemm<T>(g);
  }
  if (p.dw) {  // dwk [K, D] = doutᵀ · h, then each row into its word's row of dw
    std::vector<T> dwk(static_cast<size_t>(K * D));
    GemmParams g;
    g.trans_a = true;
    g.M = K;
    g.N = D;
    g.K = M;
    g.A = p.dout;
    g.lda = K;
    g.B = p.h;
    g.ldb = D;
    g.C = dwk.data();
    g.ldc = D;
    gemm<T>(g);
    scatter_word_rows(p.words, K, D, dwk.data(), p.dw);
  }
  if (p.db) {  // dbk [K] = column sums of dout (fixed order), then into db at the words
    std::vector<T> dbk(static_cast<size_t>(K));
    EltParams<T> e;
    e.n = M * K;
    e.cols = K;
    e.a = p.dout;
    e.out = dbk.data();
    sum_rows_cpu<T>(e);
    scatter_word_rows(p.words, K, 1, dbk.data(), p.db);
  }
}

namespace {

// The words of each class, grouped: class c's words are order[starts[c] ..
// starts[c+1]), in increasing k (so "first on ties" is the smallest k). Built
// once per call; each row then keeps its running best in a register.
struct ClassWords {
  std::vector<int64_t> starts, order;
  ClassWords(const int32_t* class_of, int64_t K, int64_t C) : starts(static_cast<size_t>(C) + 1, 0), order(static_cast<size_t>(K)) {
    for (int64_t k = 0; k < K; k++) starts[class_of[k] + 1]++;
    for (int64_t c = 0; c < C; c++) starts[c + 1] += starts[c];
    std::vector<int64_t> next(starts.begin(), starts.end() - 1);
    for (int64_t k = 0; k < K; k++) order[next[class_of[k]]++] = k;
  }
  // The k of class c's pick in the row x (every class has a word: the binding checks it).
  template <typename T>
  int64_t pick(const T* x, int64_t c) const {
    int64_t arg = order[starts[c]];
    T best = x[arg];
    for (int64_t i = starts[c] + 1; i < starts[c + 1]; i++) {
      // Selects, not a branch: on scores the pick is unpredictable.
      const int64_t k = order[i];
      const T v = x[k];
      const bool take = pool_takes(v, best);
      arg = take ? k : arg;
      best = take ? v : best;
    }
    return arg;
  }
};

}  // namespace

template <typename T>
void verbalizer_pool_forward_cpu(const VerbalizerPoolParams<T>& p) {
  const int64_t B = p.B, Tn = p.T_, K = p.K, C = p.C;
  const ClassWords cw(p.class_of, K, C);
  // A task owns whole examples b, so each out[b, c] is summed over t in order.
  parallel_range(B, row_grain(Tn * K), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++)
      for (int64_t c = 0; c < C; c++) {
        T acc = 0;
        for (int64_t t = 0; t < Tn; t++) {
          const T* x = p.scores + (b * Tn + t) * K;
          acc += x[cw.pick(x, c)];
        }
        p.out[b * C + c] = acc / static_cast<T>(Tn);
      }
  });
}

template <typename T>
void verbalizer_pool_backward_cpu(const VerbalizerPoolParams<T>& p) {
  const int64_t B = p.B, Tn = p.T_, K = p.K, C = p.C;
  const ClassWords cw(p.class_of, K, C);
  parallel_range(B * Tn, row_grain(K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / Tn;
      T* d = p.dscores + r * K;
      std::fill(d, d + K, T(0));
      // Each word belongs to one class, so each pick is written once.
      for (int64_t c = 0; c < C; c++) d[cw.pick(p.scores + r * K, c)] = p.dout[b * C + c] / static_cast<T>(Tn);
    }
  });
}

#define CLOZE_INST(T)                                                                    \
  template void label_word_logits_forward_cpu<T>(const LabelWordParams<T>&);            \
  template void label_word_logits_backward_cpu<T>(const LabelWordParams<T>&);           \
  template void verbalizer_pool_forward_cpu<T>(const VerbalizerPoolParams<T>&);         \
  template void verbalizer_pool_backward_cpu<T>(const VerbalizerPoolParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
