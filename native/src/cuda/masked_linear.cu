// The masked linear on the device: the masked weight (forward, ∂x) is built
// in a DeviceTemp the size of W and freed when the call returns; ∂scores is
// the GEMM's dW_eff written straight into the output and scaled by W in place.
// The mask is decided in double, as on the CPU, so both keep the same weights.
#include "../ops/linalg.h"
#include "../ops/masked_linear.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {

namespace {

template <typename T>
__global__ void mask_kernel(const T* w, const T* s, double tau, int64_t n, T* out) {
  const auto* wd = reinterpret_cast<const cuda::dev_t<T>*>(w);
  auto* od = reinterpret_cast<cuda::dev_t<T>*>(out);
  CLOZE_GRID_STRIDE(i, n) {
    // Copied as stored, never through float: a bf16 weight stays bit-exact.
    od[i] = static_cast<double>(cuda::ld(s, i)) > tau ? wd[i] : cuda::from_f<cuda::dev_t<T>>(0.f);
  }
}

template <typename T>
__global__ void bits_kernel(const T* w, const uint8_t* bits, int64_t n, T* out) {
  const auto* wd = reinterpret_cast<const cuda::dev_t<T>*>(w);
  auto* od = reinterpret_cast<cuda::dev_t<T>*>(out);
  CLOZE_GRID_STRIDE(i, n) od[i] = (bits[i >> 3] >> (i & 7)) & 1 ? wd[i] : cuda::from_f<cuda::dev_t<T>>(0.f);
}

template <typename T>
__global__ void scale_by_kernel(T* d, const T* w, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) cuda::st(d, i, cuda::ld(d, i) * cuda::ld(w, i));
}

template <typename T>
void mask_into(const MaskedLinearParams<T>& p, T* out, const char* op) {
  const int64_t n = p.N * p.K;
  if (n == 0) return;
  if (p.bits) {
    CLOZE_LAUNCH(op, bits_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.w, p.bits, n, out);
    return;
  }
  CLOZE_LAUNCH(op, mask_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.w, p.scores, p.threshold, n, out);
}

}  // namespace

template <typename T>
void masked_linear_forward_cuda(const MaskedLinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  cuda::DeviceTemp weff(static_cast<size_t>(N * K) * sizeof(T), "maskedLinear");
  mask_into(p, weff.as<T>(), "maskedLinear");
  gemm_bias_cuda<T>(linalg::gemm_params(false, true, R, N, K, p.x, K, weff.as<T>(), K, p.y, N, 0.0), p.bias);
}

template <typename T>
void masked_linear_backward_cuda(const MaskedLinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  if (p.dx) {
    cuda::DeviceTemp weff(static_cast<size_t>(N * K) * sizeof(T), "maskedLinearBackward");
    mask_into(p, weff.as<T>(), "maskedLinearBackward");
    gemm_cuda<T>(linalg::gemm_params(false, false, R, K, N, p.dy, N, weff.as<T>(), K, p.dx, K, 0.0));
  }
  if (p.dscores) {
    // bf16: dW_eff is rounded once by the GEMM and once more after ⊙W, as
    // the unfused linearBackward + mul would round it.
    gemm_cuda<T>(linalg::gemm_params(true, false, N, K, R, p.dy, N, p.x, K, p.dscores, K, 0.0));
    const int64_t n = N * K;
    if (n > 0)
      CLOZE_LAUNCH("maskedLinearBackward", scale_by_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.dscores, p.w,
                   n);
  }
}

#define CLOZE_INST(T)                                                           \
  template void masked_linear_forward_cuda<T>(const MaskedLinearParams<T>&);   \
  template void masked_linear_backward_cuda<T>(const MaskedLinearParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
