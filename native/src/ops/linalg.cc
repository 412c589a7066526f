#include "linalg.h"

#include <algorithm>

#include "elementwise.h"

namespace cloze {

template <typename T>
void matmul_forward_cpu(const MatmulParams<T>& p) {
  linalg::matmul_forward(p, [&](const GemmParams& g) {
    if (p.impl == GemmImpl::Builtin)
      gemm_builtin<T>(g);
    else if (p.impl == GemmImpl::Blas)
      gemm_blas<T>(g);
    else
      gemm<T>(g);
  });
}

template <typename T>
void matmul_backward_cpu(const MatmulParams<T>& p) {
  linalg::matmul_backward(p, [](const GemmParams& g) { gemm<T>(g); }, false);
}

template <typename T>
void linear_forward_cpu(const LinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  GemmParams g = linalg::gemm_params(false, true, R, N, K, p.x, K, p.w, K, p.y, N, 0.0);
  g.bias = p.bias;  // added by each block of the product (blas.h)
  gemm<T>(g);
}

template <typename T>
void linear_backward_cpu(const LinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  if (p.dx) gemm<T>(linalg::gemm_params(false, false, R, K, N, p.dy, N, p.w, K, p.dx, K, 0.0));
  if (p.dw) gemm<T>(linalg::gemm_params(true, false, N, K, R, p.dy, N, p.x, K, p.dw, K, 0.0));
  if (p.dbias) {
    EltParams<T> e;
    e.n = R * N;
    e.cols = N;
    e.a = p.dy;
    e.out = p.dbias;
    sum_rows_cpu<T>(e);
  }
}

#define CLOZE_INST(T)                                                 \
  template void matmul_forward_cpu<T>(const MatmulParams<T>&);       \
  template void matmul_backward_cpu<T>(const MatmulParams<T>&);      \
  template void linear_forward_cpu<T>(const LinearParams<T>&);       \
  template void linear_backward_cpu<T>(const LinearParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
