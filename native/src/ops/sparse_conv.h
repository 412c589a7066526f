// Sparse convolution over a neighbour table (see sparse_rulebook.h).
//   x [N, Cin] input rows; nbr int32 [M, K2] (K2 = k·k); y [M, Cout]
//   y[m] = b + Σ_o Σ_cin x[nbr[m, o], cin] · W[cout, cin, o]
// A missing neighbour (−1) reads zeros: SparK's masked-dense conv (zero
// padding, masked input) restricted to the active output sites, and
// submanifold sparse convolution when the outputs are the inputs.
//
// Dense form ("sparse im2col"): per tile of output rows, gather the k² input
// rows of each output into cols [Mt, K2·Cin] (zeros for −1) and run one GEMM
// against the weight reordered to [K2·Cin, Cout]. The backward uses the same
// machinery: dX gathers dY through the inverse table against the weight
// reordered to [K2·Cout, Cin]; dW = Σ_tiles dYᵀ·cols in a fixed tile order.
// Per-offset gather-GEMM-scatter (one [P_o, Cin]·[Cin, Cout] GEMM per offset)
// was measured against it on x [1638, 64], 3×3, float32, 2 cores: 0.88 ms vs
// 0.69 ms forward, although per-offset skipped the 60% missing neighbours of a
// random-pixel mask; SparK's block masks leave it fewer pairs to skip. Its
// K = Cin GEMMs and the scatter cost more than the zeros im2col multiplies.
//
// Depthwise (w [C, 1, k, k]): y[m, c] = b[c] + Σ_o x[nbr[m, o], c] · w[c, o],
// a direct loop over the table, vectorised over channels.
//
// Every gradient pointer may be null (not needed); non-null ones are overwritten.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct SparseConvParams {
  int64_t N = 0, M = 0, K2 = 0;
  int64_t Cin = 0, Cout = 0;       // depthwise: both C
  const T* x = nullptr;            // [N, Cin]
  const T* w = nullptr;            // [Cout, Cin, K2]; depthwise [C, K2]
  const T* b = nullptr;            // [Cout] or null
  const int32_t* nbr = nullptr;    // [M, K2], entries in [−1, N)
  const int32_t* inv = nullptr;    // [N, K2], inverse of nbr (backward only)
  T* y = nullptr;                  // [M, Cout] (forward)
  const T* dy = nullptr;           // [M, Cout] (backward)
  T* dx = nullptr;                 // [N, Cin]
  T* dw = nullptr;                 // like w
  T* db = nullptr;                 // [Cout]
};

template <typename T> void sparse_conv_forward_cpu(const SparseConvParams<T>& p);
template <typename T> void sparse_conv_backward_cpu(const SparseConvParams<T>& p);
template <typename T> void sparse_depthwise_forward_cpu(const SparseConvParams<T>& p);
template <typename T> void sparse_depthwise_backward_cpu(const SparseConvParams<T>& p);

// CUDA (native/src/cuda/sparse_conv.cu; T = float or bf16, device pointers).
// The same sparse im2col: gathered tiles times the reordered weight through
// gemm_cuda<T>; dX through the inverse table (no atomics), dW as dYᵀ·cols
// summed over tiles in order into fp32, db and the depthwise dW as fixed-order
// fp32 column sums. Bit-for-bit repeatable on one device.
template <typename T> void sparse_conv_forward_cuda(const SparseConvParams<T>& p);
template <typename T> void sparse_conv_backward_cuda(const SparseConvParams<T>& p);
template <typename T> void sparse_depthwise_forward_cuda(const SparseConvParams<T>& p);
template <typename T> void sparse_depthwise_backward_cuda(const SparseConvParams<T>& p);

}  // namespace cloze
