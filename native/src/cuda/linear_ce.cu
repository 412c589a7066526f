// The fused MLM head on cuda (ops/linear_ce.h): per vocabulary chunk, the
// logits chunk S [M, n] = h·W_chunkᵀ (+ b) by cuBLASLt into one scratch, then
// row kernels. The forward keeps a float32 online log-sum-exp per row; the
// backward rebuilds each chunk, turns it into (softmax − onehot)·scale in
// place and feeds it to the dh / dW GEMMs and the db column sums.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../core/blas.h"
#include "../ops/linalg.h"
#include "../ops/linear_ce.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {
namespace cuda {
namespace {

constexpr const char* kOp = "linearCrossEntropy";

unsigned row_blocks(int64_t M) { return static_cast<unsigned>(M < 65535 ? M : 65535); }

__global__ void lse_init_kernel(float* run_max, float* run_sum, float* tlogit, int64_t M) {
  CLOZE_GRID_STRIDE(m, M) {
    run_max[m] = -INFINITY;
    run_sum[m] = 0.f;
    tlogit[m] = 0.f;
  }
}

// One block per row (grid-stride over rows): folds chunk columns [c0, c0+n)
// of row m into the running max / sum of exp, and picks the target's logit.
// The ignored-row test is uniform over the block, so the block reductions
// (which synchronize) are reached by every thread or by none.
template <typename T>
__global__ void lse_chunk_kernel(const T* S, int64_t M, int64_t n, int64_t c0, const int32_t* targets, int32_t ignore,
                                 float* run_max, float* run_sum, float* tlogit) {
  __shared__ float scratch[32];
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const int32_t t = targets[m];
    if (t == ignore) continue;
    const int64_t base = m * n;
    float cm = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) cm = fmaxf(cm, ld(S, base + j));
    cm = block_max(cm, scratch);
    const float old = run_max[m];
    const float mx = fmaxf(cm, old);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(ld(S, base + j) - mx);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
      // The first chunk has no previous sum: skip exp(−∞ − mx).
      run_sum[m] = (old == -INFINITY ? 0.f : run_sum[m] * expf(old - mx)) + s;
      run_max[m] = mx;
      if (t >= c0 && t < c0 + n) tlogit[m] = ld(S, base + (t - c0));
    }
    // The next row's block_max synchronizes before reusing scratch, and
    // run_max[m] is read only by this row's block.
  }
}

// lse and each row's loss (lse − target logit), 0 for ignored rows; the loss
// overwrites tlogit.
__global__ void lse_final_kernel(const float* run_max, const float* run_sum, float* tlogit, const int32_t* targets,
                                 int32_t ignore, int64_t M, float* lse) {
  CLOZE_GRID_STRIDE(m, M) {
    if (targets[m] == ignore) {
      lse[m] = 0.f;
      tlogit[m] = 0.f;
    } else {
      const float l = run_max[m] + logf(run_sum[m]);
      lse[m] = l;
      tlogit[m] = l - tlogit[m];
    }
  }
}

// One block of kSumThreads: thread k adds rows k, k + kSumThreads, … in order
// (double, as the CPU sums), then a fixed tree; the mean goes to *loss.
constexpr int kSumThreads = 256;
template <typename T>
__global__ void loss_mean_kernel(const float* row_loss, int64_t M, int64_t count, T* loss) {
  __shared__ double sh[kSumThreads];
  double acc = 0;
  for (int64_t m = threadIdx.x; m < M; m += kSumThreads) acc += static_cast<double>(row_loss[m]);
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kSumThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) st(loss, 0, count > 0 ? static_cast<float>(sh[0] / static_cast<double>(count)) : 0.f);
}

// S ← (softmax − onehot)·gs over chunk [c0, c0+n), ignored rows 0; gs =
// *grad_loss · inv_count when the loss's gradient is on the device (read here,
// so the host never waits for it), else the host's gs.
template <typename T>
__global__ void softmax_grad_kernel(T* S, int64_t M, int64_t n, int64_t c0, const int32_t* targets, int32_t ignore,
                                    const float* lse, float gs, const T* grad_loss, int64_t count) {
  // As the host forms it: dloss / count in double, rounded once.
  if (grad_loss) gs = static_cast<float>(static_cast<double>(ld(grad_loss, 0)) / static_cast<double>(count));
  CLOZE_GRID_STRIDE(i, M * n) {
    const int64_t m = i / n, j = i - m * n;
    const int32_t t = targets[m];
    float g = 0.f;
    if (t != ignore) {
      g = gs * expf(ld(S, i) - lse[m]);
      if (static_cast<int64_t>(t) == c0 + j) g -= gs;
    }
    st(S, i, g);
  }
}

// acc ← (first ? init (or 0 when null) : acc) + x: the float32 dh sum, which
// starts from the buffer's old value when the gradient is added into it.
template <typename T>
__global__ void add_f32_kernel(float* acc, const T* x, int64_t n, bool first, const T* init) {
  CLOZE_GRID_STRIDE(i, n) acc[i] = (first ? (init ? ld(init, i) : 0.f) : acc[i]) + ld(x, i);
}

// dst += src (the db chunk's column sums into the gradient buffer), one rounding.
template <typename T>
__global__ void add_into_kernel(T* dst, const T* src, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) st(dst, i, ld(dst, i) + ld(src, i));
}

template <typename T>
__global__ void store_kernel(T* dst, const float* src, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) st(dst, i, src[i]);
}

// S [M, n] = h·W[c0 : c0+n]ᵀ + b[c0 : c0+n], row stride n (as the CPU's chunk_logits).
template <typename P, typename T>
void chunk_logits(const P& p, int64_t c0, int64_t n, T* S) {
  GemmParams g = chunk_logits_gemm(p, c0, n, S);
  g.bias = nullptr;  // passed to gemm_bias_cuda, which adds it in cuBLASLt's epilogue
  gemm_bias_cuda<T>(g, p.b ? p.b + c0 : nullptr);
}

__global__ void sample_init_kernel(float* best, int32_t* arg, int64_t M) {
  CLOZE_GRID_STRIDE(m, M) {
    best[m] = -INFINITY;
    arg[m] = 0;
  }
}

// One block per row (grid-stride over rows): the Gumbel-perturbed maximum of
// chunk columns [c0, c0+n) of row m, folded into the row's running best.
// Ties keep the lower id, as on the CPU.
template <typename T>
__global__ void sample_chunk_kernel(const T* S, int64_t M, int64_t n, int64_t c0, float inv_t, uint64_t seed,
                                    uint64_t step, int64_t row_offset, float* best, int32_t* arg) {
  __shared__ float sv[kThreads];
  __shared__ int32_t si[kThreads];
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float u = linear_sample_uniform(seed, step, m + row_offset, c0 + j);
      const float v = ld(S, m * n + j) * inv_t - logf(-logf(u));
      if (v > bv) {  // each thread's columns rise, so strict keeps the lower id
        bv = v;
        bi = static_cast<int32_t>(c0 + j);
      }
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) {
        const float ov = sv[threadIdx.x + w];
        const int32_t oi = si[threadIdx.x + w];
        if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
          sv[threadIdx.x] = ov;
          si[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0 && sv[0] > best[m]) {
      best[m] = sv[0];
      arg[m] = si[0];
    }
    __syncthreads();  // the next row reuses sv / si
  }
}

}  // namespace
}  // namespace cuda

template <typename T>
void linear_sample_cuda(const LinearSampleParams<T>& p) {
  using namespace cuda;
  constexpr const char* op = "linearSample";
  const int64_t M = p.M, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  if (M == 0) return;
  DeviceTemp scratch(sizeof(T) * static_cast<size_t>(M * C), op);
  DeviceTemp rows(sizeof(float) * static_cast<size_t>(M), op);
  T* S = scratch.as<T>();
  float* best = rows.as<float>();
  CLOZE_LAUNCH(op, sample_init_kernel, blocks_for(M), kThreads, 0, best, p.out, M);
  const float inv_t = static_cast<float>(1.0 / p.temperature);
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits(p, c0, n, S);
    CLOZE_LAUNCH(op, sample_chunk_kernel<T>, row_blocks(M), kThreads, 0, S, M, n, c0, inv_t, p.seed, p.step,
                 p.row_offset, best, p.out);
  }
}

template void linear_sample_cuda<float>(const LinearSampleParams<float>&);
template void linear_sample_cuda<bf16>(const LinearSampleParams<bf16>&);

template <typename T>
void linear_ce_forward_cuda(LinearCEParams<T>& p) {
  using namespace cuda;
  const int64_t M = p.M, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  if (M == 0) {
    CLOZE_LAUNCH(kOp, loss_mean_kernel<T>, 1, kSumThreads, 0, static_cast<const float*>(nullptr), int64_t(0),
                 int64_t(0), p.loss);
    return;
  }
  DeviceTemp scratch(sizeof(T) * static_cast<size_t>(M * C), kOp);
  DeviceTemp rows(sizeof(float) * static_cast<size_t>(3 * M), kOp);
  float* run_max = rows.as<float>();
  float* run_sum = run_max + M;
  float* tlogit = run_sum + M;
  T* S = scratch.as<T>();
  CLOZE_LAUNCH(kOp, lse_init_kernel, blocks_for(M), kThreads, 0, run_max, run_sum, tlogit, M);
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits(p, c0, n, S);
    CLOZE_LAUNCH(kOp, lse_chunk_kernel<T>, row_blocks(M), kThreads, 0, S, M, n, c0, p.targets, p.ignore_index,
                 run_max, run_sum, tlogit);
  }
  CLOZE_LAUNCH(kOp, lse_final_kernel, blocks_for(M), kThreads, 0, run_max, run_sum, tlogit, p.targets, p.ignore_index,
               M, p.lse_f32);
  CLOZE_LAUNCH(kOp, loss_mean_kernel<T>, 1, kSumThreads, 0, tlogit, M, p.count, p.loss);
}

template <typename T>
void linear_ce_backward_cuda(const LinearCEParams<T>& p) {
  using namespace cuda;
  constexpr const char* op = "linearCrossEntropyBackward";
  const int64_t M = p.M, D = p.D, V = p.V, C = std::min(std::max<int64_t>(p.chunk, 1), V);
  if (p.count == 0 || M == 0) {  // every row ignored: all gradients are zero (nothing to add)
    if (p.dh && !p.acc_dh) memset_zero(p.dh, sizeof(T) * static_cast<size_t>(M * D), op);
    if (p.dw && !p.acc_dw) memset_zero(p.dw, sizeof(T) * static_cast<size_t>(V * D), op);
    if (p.db && !p.acc_db) memset_zero(p.db, sizeof(T) * static_cast<size_t>(V), op);
    return;
  }
  const float gs = static_cast<float>(p.grad_scale);
  DeviceTemp scratch(sizeof(T) * static_cast<size_t>(M * C), op);
  T* S = scratch.as<T>();
  // bf16: dh sums one GEMM per chunk. Accumulating that in the bf16 output
  // (beta = 1) would round the running sum once per chunk, so each chunk's
  // product goes to a bf16 temporary and is added into a float32 sum instead.
  constexpr bool acc32 = std::is_same_v<T, bf16>;
  const bool use_acc = acc32 && p.dh && V > C;
  const size_t md = static_cast<size_t>(M * D);
  DeviceTemp acc(use_acc ? md * sizeof(float) : 0, op);
  DeviceTemp part(use_acc ? md * sizeof(T) : 0, op);
  DeviceTemp db_part(p.db && p.acc_db ? sizeof(T) * static_cast<size_t>(C) : 0, op);
  for (int64_t c0 = 0; c0 < V; c0 += C) {
    const int64_t n = std::min(C, V - c0);
    chunk_logits(p, c0, n, S);
    CLOZE_LAUNCH(op, softmax_grad_kernel<T>, blocks_for(M * n), kThreads, 0, S, M, n, c0, p.targets, p.ignore_index,
                 p.lse_f32, gs, p.grad_loss, p.count);
    if (p.dh) {  // dh [M, D] (+)= G·W_chunk
      GemmParams g;
      g.M = M;
      g.N = D;
      g.K = n;
      g.A = S;
      g.lda = n;
      g.B = p.w + c0 * D;
      g.ldb = D;
      g.C = use_acc ? part.as<T>() : p.dh;
      g.ldc = D;
      g.beta = use_acc || (c0 == 0 && !p.acc_dh) ? 0.0 : 1.0;
      gemm_cuda<T>(g);
      if (use_acc)
        CLOZE_LAUNCH(op, add_f32_kernel<T>, blocks_for(M * D), kThreads, 0, acc.as<float>(), part.as<T>(), M * D,
                     c0 == 0, p.acc_dh ? static_cast<const T*>(p.dh) : static_cast<const T*>(nullptr));
    }
    if (p.dw) {  // dW_chunk [n, D] (+)= Gᵀ·h, straight into the gradient buffer when accumulating (beta = 1)
      GemmParams g;
      g.trans_a = true;
      g.M = n;
      g.N = D;
      g.K = M;
      g.A = S;
      g.lda = n;
      g.B = p.h;
      g.ldb = D;
      g.C = p.dw + c0 * D;
      g.ldc = D;
      g.beta = p.acc_dw ? 1.0 : 0.0;
      gemm_cuda<T>(g);
    }
    if (p.db) {  // db_chunk (+)= column sums of G, fixed order
      colsum_cuda<T>(S, M, n, p.acc_db ? db_part.as<T>() : p.db + c0, op);
      if (p.acc_db) CLOZE_LAUNCH(op, add_into_kernel<T>, blocks_for(n), kThreads, 0, p.db + c0, db_part.as<T>(), n);
    }
  }
  if (use_acc) CLOZE_LAUNCH(op, store_kernel<T>, blocks_for(M * D), kThreads, 0, p.dh, acc.as<float>(), M * D);
}

template void linear_ce_forward_cuda<float>(LinearCEParams<float>&);
template void linear_ce_forward_cuda<bf16>(LinearCEParams<bf16>&);
template void linear_ce_backward_cuda<float>(const LinearCEParams<float>&);
template void linear_ce_backward_cuda<bf16>(const LinearCEParams<bf16>&);

}  // namespace cloze
