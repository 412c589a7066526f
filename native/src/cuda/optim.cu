// Optimizer kernels on cuda (ops/optim.h): the fused AdamW update (fp32
// master weights and moments for bf16 params), the EMA update, and global
// gradient-norm clipping's deterministic norm and in-place scale.
#include <cmath>
#include <type_traits>
#include <vector>

#include "../ops/optim.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {
namespace cuda {
namespace {

struct AdamWConsts {
  float b1, b2, one_m_b1, one_m_b2, step_size, inv_sqrt_bc2, eps, decay, gs;
  // Clipping and the step guard, read on the device (ops/optim.h: AdamWParams).
  double gs_d, max_norm;
  const float* clip_norm;
  const float* guards[AdamWParams<float>::kMaxGuards];
  int nguards;
};

// W is where the fp32 weight lives (param itself for float32, master for
// bf16); param then receives its rounding. The arithmetic follows the CPU's
// adamw_step_cpu term by term.
template <typename P, typename G>
__global__ void adamw_kernel(P* param, float* master, const G* grad, float* m, float* v, int64_t n, AdamWConsts c) {
  double gsd;  // ops/optim.h's rule, the CPU's too; every thread reads the same few scalars
  if (!adamw_clip_scale(c.gs_d, c.clip_norm, c.max_norm, c.guards, c.nguards, &gsd)) return;  // changes nothing
  const float gs = static_cast<float>(gsd);
  CLOZE_GRID_STRIDE(i, n) {
    const float g = ld(grad, i) * gs;
    const float mi = c.b1 * m[i] + c.one_m_b1 * g;
    const float vi = c.b2 * v[i] + c.one_m_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    float w = master ? master[i] : ld(param, i);
    w -= c.decay * w + c.step_size * mi / (sqrtf(vi) * c.inv_sqrt_bc2 + c.eps);
    if (master) master[i] = w;
    st(param, i, w);
  }
}

template <typename T>
__global__ void ema_kernel(T* dst, const T* src, int64_t n, float keep, float take) {
  CLOZE_GRID_STRIDE(i, n) st(dst, i, keep * ld(dst, i) + take * ld(src, i));
}

template <typename T>
__global__ void scale_kernel(T* x, int64_t n, float s) {
  CLOZE_GRID_STRIDE(i, n) st(x, i, s * ld(x, i));
}

// Sum of squares in double. Pass 1: each block of kNormThreads covers a
// fixed grid-stride subset of one tensor and writes one partial; pass 2: one
// block adds every partial. Both use the same fixed tree, so the order of
// every addition is fixed by the shapes alone.
constexpr int kNormThreads = 256;
constexpr int64_t kMaxNormBlocks = 512;

__device__ __forceinline__ double block_sum_f64(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int w = kNormThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  return sh[0];
}

template <typename T>
__global__ void sumsq_partial_kernel(const T* x, int64_t n, double* part) {
  __shared__ double sh[kNormThreads];
  double acc = 0;
  CLOZE_GRID_STRIDE(i, n) {
    const double e = ld(x, i);
    acc += e * e;
  }
  const double s = block_sum_f64(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sqrt_to_float_kernel(const double* ss, float* out) { *out = static_cast<float>(sqrt(*ss)); }

__global__ void sum_partials_kernel(const double* part, int64_t n, double* out) {
  __shared__ double sh[kNormThreads];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kNormThreads) acc += part[i];
  const double s = block_sum_f64(acc, sh);
  if (threadIdx.x == 0) *out = s;
}

int64_t norm_blocks(int64_t n) {
  const int64_t b = (n + kNormThreads - 1) / kNormThreads;
  return b < 1 ? 1 : (b > kMaxNormBlocks ? kMaxNormBlocks : b);
}

}  // namespace
}  // namespace cuda

template <typename T>
void adamw_step_cuda(const AdamWParams<T>& p) {
  using namespace cuda;
  if (p.n == 0) return;
  // Constants as the CPU computes them: in double, then rounded to float.
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  AdamWConsts c;
  c.b1 = static_cast<float>(p.beta1);
  c.b2 = static_cast<float>(p.beta2);
  c.one_m_b1 = 1.f - c.b1;
  c.one_m_b2 = 1.f - c.b2;
  c.step_size = static_cast<float>(p.lr / bc1);
  c.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  c.eps = static_cast<float>(p.eps);
  c.decay = static_cast<float>(p.lr * p.weight_decay);
  c.gs = static_cast<float>(p.grad_scale);
  c.gs_d = p.grad_scale;
  c.max_norm = p.max_norm;
  c.clip_norm = p.clip_norm;
  c.nguards = p.nguards;
  for (int k = 0; k < AdamWParams<float>::kMaxGuards; k++) c.guards[k] = k < p.nguards ? p.guards[k] : nullptr;
  constexpr const char* op = "adamw";
  if constexpr (std::is_same_v<T, float>) {
    CLOZE_LAUNCH(op, (adamw_kernel<float, float>), blocks_for(p.n), kThreads, 0, p.param, static_cast<float*>(nullptr),
                 p.grad, p.m, p.v, p.n, c);
  } else {
    if (!p.master || !p.m32 || !p.v32) fail(ErrCode::Internal, op, "bfloat16 adamw needs float32 master, m and v");
    if (p.grad32)
      CLOZE_LAUNCH(op, (adamw_kernel<T, float>), blocks_for(p.n), kThreads, 0, p.param, p.master, p.grad32, p.m32,
                   p.v32, p.n, c);
    else
      CLOZE_LAUNCH(op, (adamw_kernel<T, T>), blocks_for(p.n), kThreads, 0, p.param, p.master, p.grad, p.m32, p.v32,
                   p.n, c);
  }
}

template <typename T>
void ema_update_cuda(int64_t n, T* dst, const T* src, double decay) {
  if (n == 0) return;
  // keep·dst + take·src, as the CPU writes it (decay 1 keeps dst, 0 copies src).
  CLOZE_LAUNCH("emaUpdate", cuda::ema_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, dst, src, n,
               static_cast<float>(decay), static_cast<float>(1.0 - decay));
}

namespace {

// Partials per tensor, then one block: pp[total_blocks] = Σ x² over every tensor, in the fixed order both norms
// below share. pp holds total_blocks + 1 doubles; with nothing to sum the last kernel writes 0.
int64_t norm_partials_total(const std::vector<int64_t>& ns) {
  int64_t total = 0;
  for (int64_t n : ns) total += n > 0 ? cuda::norm_blocks(n) : 0;
  return total;
}

void sum_squares_to_device(const std::vector<const void*>& xs, const std::vector<int64_t>& ns,
                           const std::vector<int>& dtypes, double* pp, int64_t total_blocks, const char* op) {
  using namespace cuda;
  int64_t off = 0;
  for (size_t k = 0; k < xs.size(); k++) {
    const int64_t n = ns[k];
    if (n == 0) continue;
    const unsigned b = static_cast<unsigned>(norm_blocks(n));
    if (dtypes[k] == static_cast<int>(DType::BF16))
      CLOZE_LAUNCH(op, sumsq_partial_kernel<bf16>, b, kNormThreads, 0, static_cast<const bf16*>(xs[k]), n, pp + off);
    else
      CLOZE_LAUNCH(op, sumsq_partial_kernel<float>, b, kNormThreads, 0, static_cast<const float*>(xs[k]), n, pp + off);
    off += b;
  }
  CLOZE_LAUNCH(op, sum_partials_kernel, 1, kNormThreads, 0, pp, total_blocks, pp + total_blocks);
}

}  // namespace

double l2_norm_cuda(const std::vector<const void*>& xs, const std::vector<int64_t>& ns, const std::vector<int>& dtypes,
                    const char* op) {
  using namespace cuda;
  const int64_t total_blocks = norm_partials_total(ns);
  if (total_blocks == 0) return 0.0;
  cuda::DeviceTemp part(static_cast<size_t>(total_blocks + 1) * sizeof(double), op);
  sum_squares_to_device(xs, ns, dtypes, part.as<double>(), total_blocks, op);
  double ss = 0;
  cuda::copy(&ss, false, part.as<double>() + total_blocks, true, sizeof ss, op);  // the op's one host sync
  return std::sqrt(ss);
}

void l2_norm_into_cuda(const std::vector<const void*>& xs, const std::vector<int64_t>& ns, const std::vector<int>& dtypes,
                       float* out, const char* op) {
  using namespace cuda;
  const int64_t total_blocks = norm_partials_total(ns);
  cuda::DeviceTemp part(static_cast<size_t>(total_blocks + 1) * sizeof(double), op);
  sum_squares_to_device(xs, ns, dtypes, part.as<double>(), total_blocks, op);
  CLOZE_LAUNCH(op, cuda::sqrt_to_float_kernel, 1, 1, 0, part.as<double>() + total_blocks, out);
}

void scale_cuda(void* x, int dtype, int64_t n, double s, const char* op) {
  using namespace cuda;
  if (n == 0) return;
  if (dtype == static_cast<int>(DType::BF16))
    CLOZE_LAUNCH(op, scale_kernel<bf16>, blocks_for(n), kThreads, 0, static_cast<bf16*>(x), n, static_cast<float>(s));
  else
    CLOZE_LAUNCH(op, scale_kernel<float>, blocks_for(n), kThreads, 0, static_cast<float*>(x), n, static_cast<float>(s));
}

template void adamw_step_cuda<float>(const AdamWParams<float>&);
template void adamw_step_cuda<bf16>(const AdamWParams<bf16>&);
template void ema_update_cuda<float>(int64_t, float*, const float*, double);
template void ema_update_cuda<bf16>(int64_t, bf16*, const bf16*, double);

}  // namespace cloze
