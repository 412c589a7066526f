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
  if (p.b) {  // out starts as the word biases; the GEMM accumulates onto it (beta = 1)
    std::vector<T> bk(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; k++) bk[k] = p.b[p.words[k]];
    parallel_range(M, row_grain(K), [&](int64_t r0, int64_t r1) {
      for (int64_t m = r0; m < r1; m++) std::copy(bk.begin(), bk.end(), p.out + m * K);
    });
  }
  const std::vector<T> wk = gather_word_rows(p);
  GemmParams g;  // out [M, K] (+)= h [M, D] · wkᵀ
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
  g.beta = p.b ? 1.0 : 0.0;
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

// For one (b, t) row of K scores: the index of each class's pick into arg[C].
template <typename T>
void pick_words(const T* x, const int32_t* class_of, int64_t K, int64_t C, int64_t* arg) {
  std::fill(arg, arg + C, int64_t(-1));
  for (int64_t k = 0; k < K; k++) {
    const int64_t c = class_of[k];
    if (arg[c] < 0 || pool_takes(x[k], x[arg[c]])) arg[c] = k;
  }
}

}  // namespace

template <typename T>
void verbalizer_pool_forward_cpu(const VerbalizerPoolParams<T>& p) {
  const int64_t B = p.B, Tn = p.T_, K = p.K, C = p.C;
  // A task owns whole examples b, so each out[b, c] is summed over t in order.
  parallel_range(B, row_grain(Tn * K), [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> arg(static_cast<size_t>(C));
    for (int64_t b = b0; b < b1; b++) {
      T* o = p.out + b * C;
      std::fill(o, o + C, T(0));
      for (int64_t t = 0; t < Tn; t++) {
        const T* x = p.scores + (b * Tn + t) * K;
        pick_words(x, p.class_of, K, C, arg.data());
        for (int64_t c = 0; c < C; c++) o[c] += x[arg[c]];
      }
      for (int64_t c = 0; c < C; c++) o[c] /= static_cast<T>(Tn);
    }
  });
}

template <typename T>
void verbalizer_pool_backward_cpu(const VerbalizerPoolParams<T>& p) {
  const int64_t B = p.B, Tn = p.T_, K = p.K, C = p.C;
  const int64_t rows = B * Tn;
  parallel_range(rows, row_grain(K), [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> arg(static_cast<size_t>(C));
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / Tn;
      T* d = p.dscores + r * K;
      std::fill(d, d + K, T(0));
      pick_words(p.scores + r * K, p.class_of, K, C, arg.data());
      // Each word belongs to one class, so each pick is written once.
      for (int64_t c = 0; c < C; c++) d[arg[c]] = p.dout[b * C + c] / static_cast<T>(Tn);
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
