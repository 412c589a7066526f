// Batch norm over active rows and max pooling over a neighbour table, on the
// device (see ops/sparse_norm_pool.h).
//
// Statistics are fp32 column sums in a fixed order (sparse_util.cuh), two
// passes as on the CPU (Σx, then Σ(x − mean)²). The fp32 mean and rstd
// normalise; the outputs mean and rstd are the same values stored as T.
#include "../ops/sparse_norm_pool.h"
#include "sparse_util.cuh"

namespace cloze {
namespace cuda {

namespace {

template <typename T>
struct RowX {
  const T* x;
  int64_t C;
  __device__ float operator()(int64_t r, int64_t c) const { return ld<T>(x, r * C + c); }
};

struct StoreMean {
  float* mean;
  float inv_n;
  __device__ void operator()(int64_t c, float s) const { mean[c] = s * inv_n; }
};

template <typename T>
struct SquaredDeviation {
  const T* x;
  const float* mean;
  int64_t C;
  __device__ float operator()(int64_t r, int64_t c) const {
    const float d = ld<T>(x, r * C + c) - mean[c];
    return d * d;
  }
};

// From Σ(x − mean)²: rstd, the T outputs, and the running statistics.
template <typename T>
struct FinishBatchStats {
  const float* mean;
  float* rstd;
  T* mean_out;
  T* rstd_out;
  T* running_mean;  // null: no update
  T* running_var;
  float n, eps, momentum;
  __device__ void operator()(int64_t c, float q) const {
    const float r = 1.f / sqrtf(q / n + eps);
    rstd[c] = r;
    st<T>(mean_out, c, mean[c]);
    st<T>(rstd_out, c, r);
    if (running_mean) {
      const float unbiased = q / (n - 1.f);
      st<T>(running_mean, c, (1.f - momentum) * ld<T>(running_mean, c) + momentum * mean[c]);
      st<T>(running_var, c, (1.f - momentum) * ld<T>(running_var, c) + momentum * unbiased);
    }
  }
};

template <typename T>
__global__ void running_stats_kernel(const T* running_mean, const T* running_var, int64_t C, float eps, float* mean,
                                     float* rstd, T* mean_out, T* rstd_out) {
  CLOZE_GRID_STRIDE(c, C) {
    const float m = ld<T>(running_mean, c), r = 1.f / sqrtf(ld<T>(running_var, c) + eps);
    mean[c] = m;
    rstd[c] = r;
    st<T>(mean_out, c, m);
    st<T>(rstd_out, c, r);
  }
}

template <typename T>
__global__ void normalize_kernel(const T* x, int64_t N, int64_t C, const float* mean, const float* rstd, const T* w,
                                 const T* b, T* y) {
  CLOZE_GRID_STRIDE(j, N * C) {
    const int64_t c = j % C;
    const float scale = rstd[c] * (w ? ld<T>(w, c) : 1.f);
    st<T>(y, j, (ld<T>(x, j) - mean[c]) * scale + (b ? ld<T>(b, c) : 0.f));
  }
}

// Columns [0, C): dy; [C, 2C): dy·x̂ with x̂ = (x − mean)·rstd from the saved statistics.
template <typename T>
struct BatchNormGradTerms {
  const T* x;
  const T* dy;
  const T* mean;
  const T* rstd;
  int64_t C;
  __device__ float operator()(int64_t r, int64_t j) const {
    const int64_t c = j < C ? j : j - C;
    const float g = ld<T>(dy, r * C + c);
    if (j < C) return g;
    return g * (ld<T>(x, r * C + c) - ld<T>(mean, c)) * ld<T>(rstd, c);
  }
};

struct StoreF32 {
  float* out;
  __device__ void operator()(int64_t j, float v) const { out[j] = v; }
};

template <typename T>
__global__ void affine_grads_kernel(const float* sums, int64_t C, T* dw, T* db) {
  CLOZE_GRID_STRIDE(c, C) {
    if (db) st<T>(db, c, sums[c]);
    if (dw) st<T>(dw, c, sums[C + c]);
  }
}

// dx = ws·(dy − mg − mgx·x̂), ws = w·rstd; mg, mgx = Σdy/N, Σdy·x̂/N when the
// batch gave the statistics, else 0.
template <typename T>
__global__ void batchnorm_dx_kernel(const T* x, const T* dy, int64_t N, int64_t C, const T* mean, const T* rstd,
                                    const T* w, const float* sums, bool batch_stats, T* dx) {
  const float inv_n = 1.f / static_cast<float>(N);
  CLOZE_GRID_STRIDE(j, N * C) {
    const int64_t c = j % C;
    const float r = ld<T>(rstd, c);
    const float ws = r * (w ? ld<T>(w, c) : 1.f);
    const float mg = batch_stats ? sums[c] * inv_n : 0.f;
    const float mgx = batch_stats ? sums[C + c] * inv_n : 0.f;
    const float xh = (ld<T>(x, j) - ld<T>(mean, c)) * r;
    st<T>(dx, j, ws * (ld<T>(dy, j) - mg - mgx * xh));
  }
}

// One thread per (output row, channel); strictly greater keeps the first
// maximum, and a NaN wins over a number (as on the CPU and in PyTorch).
template <typename T>
__global__ void maxpool_forward_kernel(SparseMaxPoolParams<T> p) {
  CLOZE_GRID_STRIDE(j, p.M * p.C) {
    const int64_t m = j / p.C, c = j - m * p.C;
    float best = 0.f;
    int32_t arg = -1;
    const int32_t* t = p.nbr + m * p.K2;
    for (int64_t o = 0; o < p.K2; o++) {
      const int64_t i = t[o];
      if (i < 0) continue;
      const float v = ld<T>(p.x, i * p.C + c);
      if (arg < 0 || v > best || (isnan(v) && !isnan(best))) {
        best = v;
        arg = static_cast<int32_t>(o);
      }
    }
    st<T>(p.y, j, best);
    p.arg[j] = arg;
  }
}

// Each input row gathers, through the inverse table, the outputs whose
// maximum it was: no scatter, offsets in order.
template <typename T>
__global__ void maxpool_backward_kernel(SparseMaxPoolParams<T> p) {
  CLOZE_GRID_STRIDE(j, p.N * p.C) {
    const int64_t i = j / p.C, c = j - i * p.C;
    float acc = 0.f;
    const int32_t* t = p.inv + i * p.K2;
    for (int64_t o = 0; o < p.K2; o++) {
      const int64_t m = t[o];
      if (m >= 0 && p.arg_in[m * p.C + c] == o) acc += ld<T>(p.dy, m * p.C + c);
    }
    st<T>(p.dx, j, acc);
  }
}

}  // namespace

}  // namespace cuda

template <typename T>
void sparse_batchnorm_forward_cuda(const SparseBatchNormParams<T>& p) {
  const char* op = "sparseBatchNorm";
  const int64_t N = p.N, C = p.C;
  if (N == 0 || C == 0) return;
  cuda::Scratch stats(sizeof(float) * static_cast<size_t>(2 * C), op);
  float* mean = stats.as<float>();
  float* rstd = mean + C;
  if (p.training || !p.running_mean) {
    cuda::column_sums(cuda::RowX<T>{p.x, C}, N, C, cuda::StoreMean{mean, 1.f / static_cast<float>(N)}, op);
    const bool update = p.training && p.running_mean;
    cuda::FinishBatchStats<T> fin{mean,
                                  rstd,
                                  p.mean,
                                  p.rstd,
                                  update ? p.running_mean : nullptr,
                                  update ? p.running_var : nullptr,
                                  static_cast<float>(N),
                                  static_cast<float>(p.eps),
                                  static_cast<float>(p.momentum)};
    cuda::column_sums(cuda::SquaredDeviation<T>{p.x, mean, C}, N, C, fin, op);
  } else {
    CLOZE_LAUNCH(op, cuda::running_stats_kernel<T>, cuda::blocks_for(C), cuda::kThreads, 0, p.running_mean,
                 p.running_var, C, static_cast<float>(p.eps), mean, rstd, p.mean, p.rstd);
  }
  CLOZE_LAUNCH(op, cuda::normalize_kernel<T>, cuda::blocks_for(N * C), cuda::kThreads, 0, p.x, N, C, mean, rstd, p.w,
               p.b, p.y);
}

template <typename T>
void sparse_batchnorm_backward_cuda(const SparseBatchNormParams<T>& p) {
  const char* op = "sparseBatchNormBackward";
  const int64_t N = p.N, C = p.C;
  if (C == 0) return;
  cuda::Scratch sums(sizeof(float) * static_cast<size_t>(2 * C), op);
  // N = 0 gives zero sums: db and dw are zeros, as on the CPU.
  cuda::column_sums(cuda::BatchNormGradTerms<T>{p.x, p.dy, p.mean, p.rstd, C}, N, 2 * C, cuda::StoreF32{sums.as<float>()},
                    op);
  if (p.dw || p.db)
    CLOZE_LAUNCH(op, cuda::affine_grads_kernel<T>, cuda::blocks_for(C), cuda::kThreads, 0, sums.as<float>(), C, p.dw,
                 p.db);
  if (p.dx && N > 0)
    CLOZE_LAUNCH(op, cuda::batchnorm_dx_kernel<T>, cuda::blocks_for(N * C), cuda::kThreads, 0, p.x, p.dy, N, C, p.mean,
                 p.rstd, p.w, sums.as<float>(), p.training, p.dx);
}

template <typename T>
void sparse_maxpool_forward_cuda(const SparseMaxPoolParams<T>& p) {
  if (p.M * p.C == 0) return;
  CLOZE_LAUNCH("sparseMaxPool", cuda::maxpool_forward_kernel<T>, cuda::blocks_for(p.M * p.C), cuda::kThreads, 0, p);
}

template <typename T>
void sparse_maxpool_backward_cuda(const SparseMaxPoolParams<T>& p) {
  if (p.N * p.C == 0) return;
  CLOZE_LAUNCH("sparseMaxPoolBackward", cuda::maxpool_backward_kernel<T>, cuda::blocks_for(p.N * p.C), cuda::kThreads,
               0, p);
}

#define CLOZE_INST(T)                                                                   \
  template void sparse_batchnorm_forward_cuda<T>(const SparseBatchNormParams<T>&);    \
  template void sparse_batchnorm_backward_cuda<T>(const SparseBatchNormParams<T>&);   \
  template void sparse_maxpool_forward_cuda<T>(const SparseMaxPoolParams<T>&);        \
  template void sparse_maxpool_backward_cuda<T>(const SparseMaxPoolParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
