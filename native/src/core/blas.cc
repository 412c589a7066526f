#include "blas.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "microkernel.h"  // kVecBytes
#include "threadpool.h"

#ifdef CLOZE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace cloze {

namespace {
int g_blas_threads = 1;

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

#ifdef CLOZE_HAVE_OPENBLAS
namespace {
// One cblas call on the rows [i0, i1) and columns [j0, j1) of C.
template <typename T>
void cblas_block(const GemmParams& p, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const auto ta = p.trans_a ? CblasTrans : CblasNoTrans, tb = p.trans_b ? CblasTrans : CblasNoTrans;
  const int M = static_cast<int>(i1 - i0), N = static_cast<int>(j1 - j0), K = static_cast<int>(p.K);
  // op(A)'s rows i0.. and op(B)'s columns j0.. inside the caller's strided storage.
  const T* A = static_cast<const T*>(p.A) + (p.trans_a ? i0 : i0 * p.lda);
  const T* B = static_cast<const T*>(p.B) + (p.trans_b ? j0 * p.ldb : j0);
  T* C = static_cast<T*>(p.C) + i0 * p.ldc + j0;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, static_cast<float>(p.alpha), A, static_cast<int>(p.lda), B,
                static_cast<int>(p.ldb), static_cast<float>(p.beta), C, static_cast<int>(p.ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, p.alpha, A, static_cast<int>(p.lda), B, static_cast<int>(p.ldb), p.beta,
                C, static_cast<int>(p.ldc));
  }
  if (p.bias) add_row_bias(C, p.ldc, M, N, static_cast<const T*>(p.bias) + j0);  // while the block is in cache
}
}  // namespace
#endif

template <typename T>
void gemm_blas(const GemmParams& p) {
#ifdef CLOZE_HAVE_OPENBLAS
  if (p.M == 0 || p.N == 0) return;
  // A product over an empty inner dimension goes to the built-in GEMM, which writes beta·C and the bias: the BLAS
  // standard asks for lda ≥ max(1, K), so a BLAS may refuse lda = 0 and leave C as it was (OpenBLAS 0.3.21 happens to
  // write the zeros), and the callers' outputs are not zero-filled (bind_linalg.cc out_tensor).
  if (p.K == 0) return gemm_builtin<T>(p);
  // OpenBLAS runs single-threaded (blas_set_threads) and our pool splits the product: with
  // OpenBLAS's own threads next to the pool's, 2 cores carried 3+ runnable threads and its
  // idle workers spun in sched_yield (170,000 calls in 8 s of a bert-mini step, about a fifth
  // of the step's CPU time in the kernel). The split depends only on the shape, never on the
  // thread count, so results stay bit-identical across thread counts: C's larger dimension
  // is cut into at most kMaxBlocks blocks of at least kMinBlock rows or columns (multiples of
  // 16, the microkernels' widths); products under kSerialMacs run as one call.
  constexpr int64_t kMaxBlocks = 16, kMinBlock = 64, kSerialMacs = int64_t(1) << 21;
  // The pool sets OpenBLAS to one thread when it starts: make sure it has, before the first call (a small GEMM
  // run before any kernel touched the pool would otherwise use OpenBLAS's own threads).
  static const bool pool_started = (ThreadPool::get(), true);
  (void)pool_started;
  const int64_t M = p.M, N = p.N;
  const bool split_rows = M >= N;
  const int64_t dim = split_rows ? M : N;
  int64_t block = (dim + kMaxBlocks - 1) / kMaxBlocks;
  block = std::max(kMinBlock, (block + 15) / 16 * 16);
  const int64_t blocks = (dim + block - 1) / block;
  if (blocks == 1 || M * N * p.K < kSerialMacs) {
    cblas_block<T>(p, 0, M, 0, N);
    return;
  }
  ThreadPool::get().parallel_for(blocks, [&](int64_t b, int) {
    const int64_t lo = b * block, hi = std::min(dim, lo + block);
    if (split_rows)
      cblas_block<T>(p, lo, hi, 0, N);
    else
      cblas_block<T>(p, 0, M, lo, hi);
  });
#else
  gemm_builtin<T>(p);
#endif
}

template void gemm<float>(const GemmParams&);
template void gemm<double>(const GemmParams&);
template void gemm_blas<float>(const GemmParams&);
template void gemm_blas<double>(const GemmParams&);

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

// GEMMs run on the pool (gemm_blas), so OpenBLAS itself keeps one thread; n is the pool's size.
void blas_set_threads(int n) {
  g_blas_threads = n;
#ifdef CLOZE_HAVE_OPENBLAS
  openblas_set_num_threads(1);
#endif
}

// The threads a GEMM runs on: the pool's.
int blas_threads() { return g_blas_threads; }

}  // namespace cloze
