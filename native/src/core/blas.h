// GEMM entry point. Row-major C = alpha·op(A)·op(B) + beta·C, through OpenBLAS
// (CBLAS) when the addon was built with it, else through the built-in blocked
// GEMM. Both are callable so tests can check that they agree.
#pragma once
#include <cstdint>

namespace cloze {

struct GemmParams {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  double alpha = 1.0, beta = 0.0;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  void* C = nullptr;
  int64_t ldc = 0;
};

template <typename T>
void gemm(const GemmParams& p);          // best available
template <typename T>
void gemm_builtin(const GemmParams& p);  // always ours

const char* blas_name();
// The kernel family the BLAS library chose for this CPU ("Haswell", "SkylakeX", …), or "builtin".
const char* blas_core();
bool blas_is_openblas();
void blas_set_threads(int n);
int blas_threads();

}  // namespace cloze
