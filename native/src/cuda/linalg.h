// Small device helpers around the GEMMs of matmul, linear and the fused
// linear + cross-entropy: broadcasting a bias into the rows of an output
// before a beta = 1 GEMM, and deterministic column sums (bias gradients).
// Host-only declarations (pointers are device memory; T = float or bf16),
// defined in linear.cu, so host-compiled bindings can include this header.
#pragma once
#include <cstdint>

namespace cloze {

// y[r, c] = bias[c] for r < rows, c < cols; y has row stride ldy.
template <typename T>
void bias_rows_cuda(T* y, int64_t ldy, const T* bias, int64_t rows, int64_t cols, const char* op);

// out[c] = Σ_r a[r·cols + c] in fp32, in a fixed order (no atomics), stored as T.
template <typename T>
void colsum_cuda(const T* a, int64_t rows, int64_t cols, T* out, const char* op);

}  // namespace cloze
