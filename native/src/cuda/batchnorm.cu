// BatchNorm2d on CUDA (ops/batchnorm.h), with the optional active mask.
// Statistics: one block per channel, each thread summing a fixed strided
// subset in fp32, then a fixed tree (block_sum): the same bits on every run,
// no atomics. The mean and variance take two passes, as on the CPU. One thread
// per channel then derives mean/rstd (float32) and moves the running buffers;
// an elementwise kernel normalises. The backward mirrors it: per-channel sums,
// then per-channel coefficients, then an elementwise dx. Synchronized
// BatchNorm's local sums (bn_sums_kernel) are in double, as on the CPU, and
// its backward takes the ranks' summed Σdy, Σdy·x̂ and count (p.global).
#include <cmath>

#include "../ops/batchnorm.h"
#include "common.cuh"

namespace cloze {

namespace {

using cuda::blocks_for;
using cuda::kThreads;
using cuda::ld;
using cuda::st;

constexpr int kStatThreads = 256;

// Sum over the block of a count (long long) or of synchronized BatchNorm's double sums; every thread gets the
// total. A fixed tree, so the same bits on every run. `scratch` holds 32 values.
template <typename V>
__device__ __forceinline__ V block_total(V v, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : V(0);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
using BN = BatchNormParams<T, float>;

// Synchronized BatchNorm's local sums (batchnorm_sums_cpu's semantics): block c < C writes out[c] = Σx, or
// Σ(x − center[c])² with a center, over the active elements in double; block 0 also writes out[C], the active
// count. The grid has max(C, 1) blocks, so that the count is written when C = 0.
template <typename T>
__global__ void bn_sums_kernel(BN<T> p, const double* center, double* out) {
  __shared__ double scratch[32];
  __shared__ long long iscratch[32];
  const int64_t c = blockIdx.x, BS = p.B * p.S;
  const bool values = c < p.C;  // uniform across the block
  const double m = values && center ? center[c] : 0.0;
  double sum = 0.0;
  long long cnt = 0;
  for (int64_t e = threadIdx.x; e < BS; e += blockDim.x) {  // e = b·S + s, the mask's index
    if (p.mask && !p.mask[e]) continue;
    cnt++;
    if (!values) continue;
    const int64_t b = e / p.S, s = e - b * p.S;
    const double v = static_cast<double>(ld(p.x, (b * p.C + c) * p.S + s));
    if (center) {
      const double d = v - m;
      sum += d * d;
    } else {
      sum += v;
    }
  }
  sum = block_total(sum, scratch);
  const long long n = block_total(cnt, iscratch);
  if (threadIdx.x != 0) return;
  if (values) out[c] = sum;
  if (c == 0) out[p.C] = static_cast<double>(n);
}

template <typename T>
__global__ void bn_forward_stats_kernel(BN<T> p) {
  __shared__ float scratch[32];
  __shared__ long long iscratch[32];
  const int64_t c = blockIdx.x, BS = p.B * p.S;
  if (!p.training) {
    if (threadIdx.x == 0) {
      p.mean[c] = ld(p.running_mean, c);
      p.rstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(ld(p.running_var, c)) + p.eps));
    }
    return;  // uniform across the block: no barrier is skipped by some threads only
  }
  float sum = 0.f;
  long long cnt = 0;
  for (int64_t e = threadIdx.x; e < BS; e += blockDim.x) {  // e = b·S + s, the mask's index
    if (p.mask && !p.mask[e]) continue;
    const int64_t b = e / p.S, s = e - b * p.S;
    sum += ld(p.x, (b * p.C + c) * p.S + s);
    cnt++;
  }
  sum = cuda::block_sum(sum, scratch);
  const long long n = block_total(cnt, iscratch);
  const float mean = n > 0 ? sum / static_cast<float>(n) : 0.f;
  // Σ(x − mean)² keeps precision that E[x²] − mean² loses.
  float sq = 0.f;
  for (int64_t e = threadIdx.x; e < BS; e += blockDim.x) {
    if (p.mask && !p.mask[e]) continue;
    const int64_t b = e / p.S, s = e - b * p.S;
    const float d = ld(p.x, (b * p.C + c) * p.S + s) - mean;
    sq += d * d;
  }
  sq = cuda::block_sum(sq, scratch);
  if (threadIdx.x != 0) return;
  double rstd = 1.0 / sqrt(p.eps);
  if (n > 0) {
    const double var = static_cast<double>(sq) / static_cast<double>(n);
    rstd = 1.0 / sqrt(var + p.eps);
    if (p.running_mean) {
      const double m = p.momentum;
      st(p.running_mean, c, static_cast<float>((1 - m) * ld(p.running_mean, c) + m * mean));
      if (n > 1)
        st(p.running_var, c, static_cast<float>((1 - m) * ld(p.running_var, c) + m * var * n / (n - 1)));
    }
  }
  p.mean[c] = mean;
  p.rstd[c] = static_cast<float>(rstd);
}

template <typename T>
__global__ void bn_forward_apply_kernel(BN<T> p, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) {  // i = (b·C + c)·S + s
    const int64_t s = i % p.S, bc = i / p.S, c = bc % p.C, b = bc / p.C;
    if (p.mask && !p.mask[b * p.S + s]) {
      st(p.y, i, 0.f);  // exactly 0, whatever x holds there
      continue;
    }
    // (x − mean)·scale rather than x·scale − mean·scale, which cancels when |mean| is large.
    const float scale = (p.w ? ld(p.w, c) : 1.f) * p.rstd[c];
    const float shift = p.b ? ld(p.b, c) : 0.f;
    st(p.y, i, (ld(p.x, i) - p.mean[c]) * scale + shift);
  }
}

// Per channel: Σdy and Σdy·x̂ over the active elements, the weight and bias
// gradients, and coef[c] = {a, c1, c2} of dx = a·dy + c1 + c2·(x − mean).
template <typename T>
__global__ void bn_backward_stats_kernel(BN<T> p, float* coef) {
  __shared__ float scratch[32];
  __shared__ long long iscratch[32];
  const int64_t c = blockIdx.x, BS = p.B * p.S;
  const float mean = p.mean[c], rstd = p.rstd[c];
  float sdy = 0.f, sdyx = 0.f;
  long long cnt = 0;
  for (int64_t e = threadIdx.x; e < BS; e += blockDim.x) {
    if (p.mask && !p.mask[e]) continue;
    const int64_t b = e / p.S, s = e - b * p.S, k = (b * p.C + c) * p.S + s;
    const float dy = ld(p.dy, k);
    sdy += dy;
    sdyx += dy * (ld(p.x, k) - mean);
    cnt++;
  }
  sdy = cuda::block_sum(sdy, scratch);
  sdyx = cuda::block_sum(sdyx, scratch);
  const long long n_local = block_total(cnt, iscratch);
  if (threadIdx.x != 0) return;
  double sum_dy = n_local > 0 ? sdy : 0.0, sum_dy_xhat = n_local > 0 ? static_cast<double>(sdyx) * rstd : 0.0;
  if (p.dw) st(p.dw, c, static_cast<float>(sum_dy_xhat));
  if (p.db) st(p.db, c, static_cast<float>(sum_dy));
  // Synchronized: dx's means are over every rank's active elements (dw and db above stay this rank's).
  double n = static_cast<double>(n_local);
  if (p.global) {
    sum_dy = p.global[c];
    sum_dy_xhat = p.global[p.C + c];
    n = p.global[2 * p.C];
  }
  // training: dx = w·rstd·(dy − Σdy/n − x̂·Σ(dy·x̂)/n); eval: dx = w·rstd·dy.
  const double k = (p.w ? static_cast<double>(ld(p.w, c)) : 1.0) * rstd;
  const bool batch = p.training && n > 0;
  coef[3 * c] = static_cast<float>(k);
  coef[3 * c + 1] = static_cast<float>(batch ? -k * sum_dy / n : 0.0);
  coef[3 * c + 2] = static_cast<float>(batch ? -k * sum_dy_xhat * rstd / n : 0.0);
}

template <typename T>
__global__ void bn_backward_dx_kernel(BN<T> p, const float* coef, int64_t total) {
  CLOZE_GRID_STRIDE(i, total) {
    const int64_t s = i % p.S, bc = i / p.S, c = bc % p.C, b = bc / p.C;
    if (p.mask && !p.mask[b * p.S + s]) {
      st(p.dx, i, 0.f);
      continue;
    }
    st(p.dx, i, coef[3 * c] * ld(p.dy, i) + coef[3 * c + 1] + coef[3 * c + 2] * (ld(p.x, i) - p.mean[c]));
  }
}

void check_channels(int64_t C, const char* op) {
  if (C > INT32_MAX) fail(ErrCode::Shape, op, "more than 2^31 channels");
}

}  // namespace

template <typename T>
void batchnorm_forward_cuda(const BatchNormParams<T, float>& p) {
  const char* op = "batchNorm2d";
  if (p.C == 0) return;
  check_channels(p.C, op);
  CLOZE_LAUNCH(op, bn_forward_stats_kernel<T>, static_cast<unsigned>(p.C), kStatThreads, 0, p);
  const int64_t total = p.B * p.C * p.S;
  if (total > 0) CLOZE_LAUNCH(op, bn_forward_apply_kernel<T>, blocks_for(total), kThreads, 0, p, total);
}

template <typename T>
void batchnorm_backward_cuda(const BatchNormParams<T, float>& p) {
  const char* op = "batchNorm2dBackward";
  if (p.C == 0) return;
  check_channels(p.C, op);
  float* coef = static_cast<float*>(cuda::alloc(static_cast<size_t>(3 * p.C) * sizeof(float), op));
  try {
    CLOZE_LAUNCH(op, bn_backward_stats_kernel<T>, static_cast<unsigned>(p.C), kStatThreads, 0, p, coef);
    const int64_t total = p.B * p.C * p.S;
    if (p.dx && total > 0) CLOZE_LAUNCH(op, bn_backward_dx_kernel<T>, blocks_for(total), kThreads, 0, p, coef, total);
  } catch (...) {
    cuda::free(coef);
    throw;
  }
  cuda::free(coef);  // stream-ordered: the block is reused only by later work on this stream
}

template <typename T>
void batchnorm_sums_cuda(const BatchNormParams<T, float>& p, const double* center, double* out) {
  const char* op = "batchNorm2dSums";
  check_channels(p.C, op);
  CLOZE_LAUNCH(op, bn_sums_kernel<T>, static_cast<unsigned>(p.C > 0 ? p.C : 1), kStatThreads, 0, p, center, out);
}

template void batchnorm_sums_cuda<float>(const BatchNormParams<float, float>&, const double*, double*);
template void batchnorm_sums_cuda<bf16>(const BatchNormParams<bf16, float>&, const double*, double*);
template void batchnorm_forward_cuda<float>(const BatchNormParams<float, float>&);
template void batchnorm_forward_cuda<bf16>(const BatchNormParams<bf16, float>&);
template void batchnorm_backward_cuda<float>(const BatchNormParams<float, float>&);
template void batchnorm_backward_cuda<bf16>(const BatchNormParams<bf16, float>&);

}  // namespace cloze
