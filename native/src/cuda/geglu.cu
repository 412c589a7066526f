// GeGLU on the device: one thread per output element (r, i), reading the gate
// half x[r, i] and the value half x[r, I + i]; exact erf GELU in fp32.
#include "../ops/geglu.h"
#include "common.cuh"
#include "gelu.cuh"

namespace cloze {

namespace {

template <typename T>
__global__ void geglu_forward_kernel(const T* x, T* out, int64_t rows, int64_t I) {
  CLOZE_GRID_STRIDE(k, rows * I) {
    const int64_t r = k / I, i = k - r * I;
    const float a = cuda::ld(x, r * 2 * I + i), b = cuda::ld(x, r * 2 * I + I + i);
    cuda::st(out, k, a * cuda::normal_cdf_f(a) * b);
  }
}

template <typename T>
__global__ void geglu_backward_kernel(const T* x, const T* g, T* dx, int64_t rows, int64_t I) {
  CLOZE_GRID_STRIDE(k, rows * I) {
    const int64_t r = k / I, i = k - r * I;
    const float a = cuda::ld(x, r * 2 * I + i), b = cuda::ld(x, r * 2 * I + I + i), gk = cuda::ld(g, k);
    const float c = cuda::normal_cdf_f(a);
    cuda::st(dx, r * 2 * I + i, gk * b * (c + a * cuda::normal_pdf_f(a)));
    cuda::st(dx, r * 2 * I + I + i, gk * a * c);
  }
}

}  // namespace

template <typename T>
void geglu_forward_cuda(const GegluParams<T>& p) {
  if (p.rows == 0 || p.inner == 0) return;
  CLOZE_LAUNCH("geglu", geglu_forward_kernel<T>, cuda::blocks_for(p.rows * p.inner), cuda::kThreads, 0, p.x, p.out,
               p.rows, p.inner);
}

template <typename T>
void geglu_backward_cuda(const GegluParams<T>& p) {
  if (p.rows == 0 || p.inner == 0) return;
  CLOZE_LAUNCH("gegluBackward", geglu_backward_kernel<T>, cuda::blocks_for(p.rows * p.inner), cuda::kThreads, 0, p.x,
               p.dout, p.dx, p.rows, p.inner);
}

template void geglu_forward_cuda<float>(const GegluParams<float>&);
template void geglu_backward_cuda<float>(const GegluParams<float>&);
template void geglu_forward_cuda<bf16>(const GegluParams<bf16>&);
template void geglu_backward_cuda<bf16>(const GegluParams<bf16>&);

}  // namespace cloze
