// GEMM entry point. Row-major C = alpha·op(A)·op(B) + beta·C (+ bias), through
// OpenBLAS (CBLAS) when the addon was built with it, else through the built-in
// blocked GEMM. Both are callable so tests can check that they agree.
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
  // Optional [N] of the GEMM's type, added to every row of C last: C = (alpha·op(A)·op(B) + beta·C) + bias.
  // On cuda (gemm_cuda) beta must then be 0, and gemm_bias_cuda takes its bias as an argument instead.
  // Each block adds it while the block is still in cache, instead of a pass over C before the product (a
  // linear layer's [4096 × 1024] output took one thread 2–3 ms to pre-fill, and beta = 1 then cost a scratch
  // block and a second pass).
  const void* bias = nullptr;
};

// C[i, j] += bias[j] over an [m × n] block of C (row stride ldc): GemmParams::bias, as each CPU path adds it.
template <typename T>
inline void add_row_bias(T* C, int64_t ldc, int64_t m, int64_t n, const T* bias) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) C[i * ldc + j] += bias[j];
}

template <typename T>
void gemm(const GemmParams& p);          // by the policy below
template <typename T>
void gemm_blas(const GemmParams& p);     // the linked BLAS (the built-in GEMM when none)
template <typename T>
void gemm_builtin(const GemmParams& p);  // always ours
// The same product on the current CUDA stream through cuBLASLt (cuda addon
// only; pointers are device memory). T = float: fp32 compute, no TF32, so it
// can be checked tightly against the CPU. T = bf16: bf16 operands and output,
// fp32 accumulation and fp32 alpha/beta.
template <typename T>
void gemm_cuda(const GemmParams& p);
// The same with C = op(A)·op(B) + bias broadcast over C's rows (bias [N], of
// T, beta 0), the bias added in cuBLASLt's epilogue; bias null: gemm_cuda.
template <typename T>
void gemm_bias_cuda(const GemmParams& p, const T* bias);

const char* blas_name();
// Which GEMM gemm() uses: "blas" or "builtin". With OpenBLAS linked, the
// built-in GEMM is chosen when the addon is compiled for AVX-512 but OpenBLAS
// picked a kernel family without it (Debian's 0.3.21 runs Haswell kernels on
// Zen 4/5): there the built-in GEMM measured 1.3–1.9× faster. CLOZE_GEMM=blas
// or CLOZE_GEMM=builtin overrides the choice.
const char* gemm_policy();
// The kernel family the BLAS library chose for this CPU ("Haswell", "SkylakeX", …), or "builtin".
const char* blas_core();
// OpenBLAS's build configuration (version, target, threading, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
// Cooperlake MAX_THREADS=64"), so bench figures name the BLAS build they came from; "builtin" without OpenBLAS.
const char* blas_config();
bool blas_is_openblas();
void blas_set_threads(int n);
int blas_threads();

}  // namespace cloze
