// matmul and linear on the device: their GEMMs through cuBLASLt (gemm_cuda),
// plus the bias broadcast and the deterministic column sums that linear and
// the fused MLM head (linear_ce.cu) use (see ops/linalg.h).
#include "../ops/linalg.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {
namespace cuda {
namespace {

template <typename T>
__global__ void bias_rows_kernel(T* y, int64_t ldy, const T* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  CLOZE_GRID_STRIDE(i, n) {
    const int64_t r = i / cols, c = i - r * cols;
    reinterpret_cast<dev_t<T>*>(y)[r * ldy + c] = reinterpret_cast<const dev_t<T>*>(bias)[c];
  }
}

// Column sums in two passes. Pass 1: block (32, 8) covers 32 columns and one
// segment of `seg` rows (blockIdx.y); thread row ty sums rows ty, ty+8, …
// of the segment, then the 8 partials are added in ty order. Pass 2 adds the
// segments' partials in segment order. Every sum has a fixed order, so the
// result does not depend on scheduling.
constexpr int kColTile = 32, kRowLanes = 8;

template <typename T>
__global__ void colsum_partial_kernel(const T* a, int64_t rows, int64_t cols, int64_t seg, float* part) {
  __shared__ float sh[kRowLanes][kColTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t r1 = r0 + seg < rows ? r0 + seg : rows;
  float acc = 0.f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) acc += ld(a, r * cols + c);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kRowLanes; k++) s += sh[k][threadIdx.x];
    part[static_cast<int64_t>(blockIdx.y) * cols + c] = s;
  }
}

template <typename T>
__global__ void colsum_finish_kernel(const float* part, int64_t segs, int64_t cols, T* out) {
  CLOZE_GRID_STRIDE(c, cols) {
    float s = 0.f;
    for (int64_t k = 0; k < segs; k++) s += part[k * cols + c];
    st(out, c, s);
  }
}

}  // namespace
}  // namespace cuda

template <typename T>
void bias_rows_cuda(T* y, int64_t ldy, const T* bias, int64_t rows, int64_t cols, const char* op) {
  if (rows == 0 || cols == 0) return;
  CLOZE_LAUNCH(op, cuda::bias_rows_kernel<T>, cuda::blocks_for(rows * cols), cuda::kThreads, 0, y, ldy, bias, rows,
               cols);
}

template <typename T>
void colsum_cuda(const T* a, int64_t rows, int64_t cols, T* out, const char* op) {
  using namespace cuda;
  if (cols == 0) return;
  if (rows == 0) {
    memset_zero(out, static_cast<size_t>(cols) * sizeof(T), op);
    return;
  }
  // 256 rows per segment, more when rows would need over 65535 segments (gridDim.y's limit).
  int64_t seg = 256;
  if ((rows + seg - 1) / seg > 65535) seg = (rows + 65534) / 65535;
  const int64_t segs = (rows + seg - 1) / seg;
  const int64_t tiles = (cols + kColTile - 1) / kColTile;
  if (tiles > 2147483647) fail(ErrCode::Shape, op, "too many columns for the column-sum kernel");
  DeviceTemp part(static_cast<size_t>(segs * cols) * sizeof(float), op);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(segs));
  const dim3 block(kColTile, kRowLanes);
  CLOZE_LAUNCH(op, colsum_partial_kernel<T>, grid, block, 0, a, rows, cols, seg, part.as<float>());
  CLOZE_LAUNCH(op, colsum_finish_kernel<T>, blocks_for(cols), kThreads, 0, part.as<float>(), segs, cols, out);
}

template void bias_rows_cuda<float>(float*, int64_t, const float*, int64_t, int64_t, const char*);
template void bias_rows_cuda<bf16>(bf16*, int64_t, const bf16*, int64_t, int64_t, const char*);
template void colsum_cuda<float>(const float*, int64_t, int64_t, float*, const char*);
template void colsum_cuda<bf16>(const bf16*, int64_t, int64_t, bf16*, const char*);

template <typename T>
void matmul_forward_cuda(const MatmulParams<T>& p) {
  linalg::matmul_forward(p, gemm_cuda<T>);
}

template <typename T>
void matmul_backward_cuda(const MatmulParams<T>& p) {
  // A 2-D b shared by a non-transposed batched a: the batch flattens into
  // the rows, so dA is one GEMM and dB one GEMM summing over batch·M in
  // fp32 (the CPU loop accumulates per batch entry instead; on cuda
  // that would round a bf16 dB once per entry).
  linalg::matmul_backward(p, gemm_cuda<T>, true);
}

template <typename T>
void linear_forward_cuda(const LinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  // The bias in the GEMM's epilogue (gemm_cublaslt.cu says why).
  gemm_bias_cuda<T>(linalg::gemm_params(false, true, R, N, K, p.x, K, p.w, K, p.y, N, 0.0), p.bias);
}

template <typename T>
void linear_backward_cuda(const LinearParams<T>& p) {
  const int64_t R = p.R, K = p.K, N = p.N;
  if (p.dx) gemm_cuda<T>(linalg::gemm_params(false, false, R, K, N, p.dy, N, p.w, K, p.dx, K, 0.0));
  if (p.dw) gemm_cuda<T>(linalg::gemm_params(true, false, N, K, R, p.dy, N, p.x, K, p.dw, K, 0.0));
  if (p.dbias) colsum_cuda<T>(p.dy, R, N, p.dbias, "linearBackward");
}

#define CLOZE_INST(T)                                                  \
  template void matmul_forward_cuda<T>(const MatmulParams<T>&);       \
  template void matmul_backward_cuda<T>(const MatmulParams<T>&);      \
  template void linear_forward_cuda<T>(const LinearParams<T>&);       \
  template void linear_backward_cuda<T>(const LinearParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
