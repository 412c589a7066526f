#include "blas.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

#include "microkernel.h"
#include "threadpool.h"

#ifdef CLOZE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace cloze {

namespace {
int g_blas_threads = 1;

// Copies op(X) into a dense row-major [rows×cols] buffer.
template <typename T>
const T* dense_operand(const T* X, int64_t ld, bool trans, int64_t rows, int64_t cols, std::vector<T>& buf) {
  if (!trans && ld == cols) return X;
  buf.resize(static_cast<size_t>(rows * cols));
  if (trans) {
    transpose_tile(cols, rows, X, ld, buf.data(), cols);
  } else {
    for (int64_t r = 0; r < rows; r++) std::copy(X + r * ld, X + r * ld + cols, buf.data() + r * cols);
  }
  return buf.data();
}
}  // namespace

template <typename T>
void gemm_builtin(const GemmParams& p) {
  const int64_t M = p.M, N = p.N, K = p.K;
  if (M == 0 || N == 0) return;
  std::vector<T> abuf, bbuf;
  const T* A = dense_operand(static_cast<const T*>(p.A), p.lda, p.trans_a, M, K, abuf);
  const T* B = dense_operand(static_cast<const T*>(p.B), p.ldb, p.trans_b, K, N, bbuf);
  T* C = static_cast<T*>(p.C);
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  // Block sizes keep an MB×KC slice of A and a KC×NB panel of B in L2.
  // Narrower column panels when there are too few blocks to keep every thread busy (short
  // GEMMs, e.g. a sparse conv's 192 rows at a coarse scale: 3 blocks on 2 threads ran at 2/3
  // speed). Each element's sum over k keeps its order, so results do not change.
  constexpr int64_t MB = 64, KC = 256;
  const int64_t mblocks = (M + MB - 1) / MB;
  const int64_t want = 4 * static_cast<int64_t>(ThreadPool::get().size());
  int64_t NB = 256;
  while (NB > 64 && mblocks * ((N + NB - 1) / NB) < want) NB /= 2;
  const int64_t nblocks = (N + NB - 1) / NB;
  std::vector<std::vector<T>> scratch(ThreadPool::get().size());
  ThreadPool::get().parallel_for(mblocks * nblocks, [&](int64_t t, int tid) {
    const int64_t i0 = (t / nblocks) * MB, j0 = (t % nblocks) * NB;
    const int64_t mb = std::min(MB, M - i0), nb = std::min(NB, N - j0);
    std::vector<T>& acc = scratch[tid];
    acc.assign(static_cast<size_t>(mb * nb), T(0));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      tile_gemm<T>(mb, nb, kc, A + i0 * K + k0, K, B + k0 * N + j0, N, acc.data(), nb, true);
    }
    for (int64_t i = 0; i < mb; i++) {
      T* c = C + (i0 + i) * p.ldc + j0;
      const T* a = acc.data() + i * nb;
      if (beta == T(0)) {
        for (int64_t j = 0; j < nb; j++) c[j] = alpha * a[j];
      } else {
        for (int64_t j = 0; j < nb; j++) c[j] = alpha * a[j] + beta * c[j];
      }
    }
  });
}

namespace {
bool use_builtin() {
  static const bool builtin = [] {
    const char* env = std::getenv("CLOZE_GEMM");
    if (env && std::string(env) == "builtin") return true;
    if (env && std::string(env) == "blas") return false;
#ifdef CLOZE_HAVE_OPENBLAS
    if (kVecBytes < 64) return false;
    std::string core = openblas_get_corename();
    for (auto& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool avx512_core = core.find("skylakex") != std::string::npos || core.find("cooperlake") != std::string::npos ||
                             core.find("sapphirerapids") != std::string::npos;
    return !avx512_core;
#else
    return true;
#endif
  }();
  return builtin;
}
}  // namespace

const char* gemm_policy() { return use_builtin() ? "builtin" : "blas"; }

template <typename T>
void gemm(const GemmParams& p) {
  if (use_builtin())
    gemm_builtin<T>(p);
  else
    gemm_blas<T>(p);
}

template <typename T>
void gemm_blas(const GemmParams& p) {
#ifdef CLOZE_HAVE_OPENBLAS
  if (p.M == 0 || p.N == 0) return;
  const auto ta = p.trans_a ? CblasTrans : CblasNoTrans, tb = p.trans_b ? CblasTrans : CblasNoTrans;
  const int M = static_cast<int>(p.M), N = static_cast<int>(p.N), K = static_cast<int>(p.K);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, static_cast<float>(p.alpha), static_cast<const float*>(p.A),
                static_cast<int>(p.lda), static_cast<const float*>(p.B), static_cast<int>(p.ldb),
                static_cast<float>(p.beta), static_cast<float*>(p.C), static_cast<int>(p.ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, p.alpha, static_cast<const double*>(p.A), static_cast<int>(p.lda),
                static_cast<const double*>(p.B), static_cast<int>(p.ldb), p.beta, static_cast<double*>(p.C),
                static_cast<int>(p.ldc));
  }
#else
  gemm_builtin<T>(p);
#endif
}

template void gemm<float>(const GemmParams&);
template void gemm<double>(const GemmParams&);
template void gemm_blas<float>(const GemmParams&);
template void gemm_blas<double>(const GemmParams&);
template void gemm_builtin<float>(const GemmParams&);
template void gemm_builtin<double>(const GemmParams&);

const char* blas_name() {
#ifdef CLOZE_HAVE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

const char* blas_core() {
#ifdef CLOZE_HAVE_OPENBLAS
  return openblas_get_corename();
#else
  return "builtin";
#endif
}

const char* blas_config() {
#ifdef CLOZE_HAVE_OPENBLAS
  const char* c = openblas_get_config();
  return c ? c : "openblas (no config string)";
#else
  return "builtin";
#endif
}

bool blas_is_openblas() {
#ifdef CLOZE_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

void blas_set_threads(int n) {
  g_blas_threads = n;
#ifdef CLOZE_HAVE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

int blas_threads() {
#ifdef CLOZE_HAVE_OPENBLAS
  return openblas_get_num_threads();
#else
  return g_blas_threads;
#endif
}

}  // namespace cloze
