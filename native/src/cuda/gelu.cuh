// The exact (erf) GELU on the device, as core/mathfn.h defines it for the CPU:
// GELU(x) = x·Φ(x), GELU'(x) = Φ(x) + x·φ(x). Shared by GELU and GeGLU.
#pragma once
#include "common.cuh"

namespace cloze {
namespace cuda {

__device__ __forceinline__ float normal_cdf_f(float x) { return 0.5f * (1.f + erff(x * 0.70710678118654752440f)); }
__device__ __forceinline__ float normal_pdf_f(float x) { return expf(-0.5f * x * x) * 0.39894228040143267794f; }

}  // namespace cuda
}  // namespace cloze
