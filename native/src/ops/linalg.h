// matmul and linear, forward and backward: the products around the GEMM
// (core/blas.h on the CPU, gemm_cuda through cuBLASLt on CUDA), the batch and
// shared-b cases, the bias broadcast and the bias gradient. The loops that
// issue matmul's GEMMs are templates below, shared by the CPU kernels
// (ops/linalg.cc) and the CUDA ones (cuda/linalg.cu), so the two backends run
// the same products.
#pragma once
#include <cstdint>

#include "../core/blas.h"

namespace cloze {

// Which CPU GEMM matmul's forward runs: gemm()'s policy, or the BLAS or the
// built-in one by name (tests compare them). CUDA always runs cuBLASLt.
enum class GemmImpl { Auto, Builtin, Blas };

// c [batch…, M, N] = op(a)·op(b), with op(a) [M, K] and op(b) [K, N] per batch
// entry; a 2-D b is shared across a's batch (b_broadcast).
template <typename T>
struct MatmulParams {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  int64_t a_rows = 0, a_cols = 0, b_rows = 0, b_cols = 0;  // the last two dims of a and b
  bool trans_a = false, trans_b = false;
  bool b_broadcast = false;
  GemmImpl impl = GemmImpl::Auto;  // the forward on the CPU only
  const T* a = nullptr;
  const T* b = nullptr;
  T* c = nullptr;         // forward
  const T* dc = nullptr;  // backward: the gradient of c
  T* da = nullptr;        // backward, null when not needed
  T* db = nullptr;        // backward, null when not needed
};
template <typename T> void matmul_forward_cpu(const MatmulParams<T>& p);
template <typename T> void matmul_backward_cpu(const MatmulParams<T>& p);
template <typename T> void matmul_forward_cuda(const MatmulParams<T>& p);
// A shared b under a non-transposed a: one GEMM per gradient over the flattened batch.
template <typename T> void matmul_backward_cuda(const MatmulParams<T>& p);

// y [R, N] = x [R, K]·wᵀ + bias, w [N, K] (x's leading dims flattened into R).
template <typename T>
struct LinearParams {
  int64_t R = 0, K = 0, N = 0;
  const T* x = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;  // [N] or null
  T* y = nullptr;           // forward
  const T* dy = nullptr;    // backward
  T* dx = nullptr;          // backward, each null when not needed
  T* dw = nullptr;
  T* dbias = nullptr;
};
template <typename T> void linear_forward_cpu(const LinearParams<T>& p);
template <typename T> void linear_backward_cpu(const LinearParams<T>& p);
template <typename T> void linear_forward_cuda(const LinearParams<T>& p);
template <typename T> void linear_backward_cuda(const LinearParams<T>& p);  // dbias in a fixed order

// Device helpers around the GEMMs of linear and the fused linear +
// cross-entropy (cuda/linear_ce.cu), defined in cuda/linalg.cu; pointers are
// device memory, T = float or bf16.
// y[r, c] = bias[c] for r < rows, c < cols; y has row stride ldy.
template <typename T>
void bias_rows_cuda(T* y, int64_t ldy, const T* bias, int64_t rows, int64_t cols, const char* op);
// out[c] = Σ_r a[r·cols + c] in fp32, in a fixed order (no atomics), stored as T.
template <typename T>
void colsum_cuda(const T* a, int64_t rows, int64_t cols, T* out, const char* op);

namespace linalg {

inline GemmParams gemm_params(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                              const void* B, int64_t ldb, void* C, int64_t ldc, double beta) {
  GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.M = M;
  p.N = N;
  p.K = K;
  p.A = A;
  p.lda = lda;
  p.B = B;
  p.ldb = ldb;
  p.C = C;
  p.ldc = ldc;
  p.beta = beta;
  return p;
}

// matmul's forward through gemm(const GemmParams&).
template <typename T, typename Gemm>
void matmul_forward(const MatmulParams<T>& p, const Gemm& gemm) {
  const bool ta = p.trans_a, tb = p.trans_b;
  if (p.b_broadcast && !ta) {  // one big GEMM over the flattened batch
    gemm(gemm_params(false, tb, p.batch * p.M, p.N, p.K, p.a, p.a_cols, p.b, p.b_cols, p.c, p.N, 0.0));
    return;
  }
  for (int64_t i = 0; i < p.batch; i++) {
    const T* bp = p.b + (p.b_broadcast ? 0 : i * p.b_rows * p.b_cols);
    gemm(gemm_params(ta, tb, p.M, p.N, p.K, p.a + i * p.a_rows * p.a_cols, p.a_cols, bp, p.b_cols, p.c + i * p.M * p.N,
                     p.N, 0.0));
  }
}

// matmul's backward through mm(const GemmParams&). A shared b's gradient sums
// over the batch: per batch entry with beta = 1 (the CPU), or, with
// flatten_shared_b and a non-transposed a, in one GEMM over batch·M rows.
template <typename T, typename Gemm>
void matmul_backward(const MatmulParams<T>& p, const Gemm& mm, bool flatten_shared_b) {
  const bool ta = p.trans_a, tb = p.trans_b;
  bool flat_a = false, flat_b = false;
  if (flatten_shared_b && p.b_broadcast && !ta) {
    const int64_t R = p.batch * p.M;
    if (p.da) mm(gemm_params(false, !tb, R, p.K, p.N, p.dc, p.N, p.b, p.b_cols, p.da, p.K, 0.0));
    if (p.db) {
      if (!tb)
        mm(gemm_params(true, false, p.K, p.N, R, p.a, p.a_cols, p.dc, p.N, p.db, p.N, 0.0));
      else
        mm(gemm_params(true, false, p.N, p.K, R, p.dc, p.N, p.a, p.a_cols, p.db, p.K, 0.0));
    }
    flat_a = flat_b = true;
  }
  for (int64_t i = 0; i < p.batch && !(flat_a && flat_b); i++) {
    const T* ap = p.a + i * p.a_rows * p.a_cols;
    const int64_t boff = p.b_broadcast ? 0 : i * p.b_rows * p.b_cols;
    const T* bp = p.b + boff;
    const T* g = p.dc + i * p.M * p.N;
    if (p.da) {
      T* out = p.da + i * p.a_rows * p.a_cols;
      if (!ta)  // dA[M,K] = dC·op(B)ᵀ
        mm(gemm_params(false, !tb, p.M, p.K, p.N, g, p.N, bp, p.b_cols, out, p.K, 0.0));
      else  // dA[K,M] = op(B)·dCᵀ
        mm(gemm_params(tb, true, p.K, p.M, p.N, bp, p.b_cols, g, p.N, out, p.M, 0.0));
    }
    if (p.db) {
      T* out = p.db + boff;
      const double beta = p.b_broadcast && i > 0 ? 1.0 : 0.0;  // a shared b sums over the batch
      if (!tb)  // dB[K,N] = op(A)ᵀ·dC
        mm(gemm_params(!ta, false, p.K, p.N, p.M, ap, p.a_cols, g, p.N, out, p.N, beta));
      else  // dB[N,K] = dCᵀ·op(A)
        mm(gemm_params(true, ta, p.N, p.K, p.M, g, p.N, ap, p.a_cols, out, p.K, beta));
    }
  }
}

}  // namespace linalg

}  // namespace cloze
