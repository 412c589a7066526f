// Masked-image-modeling token ops on the device (ops/mim_tokens.h): masking
// by stable argsort, Philox noise, token gather/scatter, patch permutation and
// the token mean. Every reduction runs in an order fixed by the shapes, so the
// results do not depend on the launch geometry.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../core/philox.h"
#include "../ops/mim_tokens.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {

using namespace cuda;

namespace {

// Scores of one row staged in shared memory up to this many tokens; longer rows read global memory.
constexpr int64_t kSortSmemTokens = 8192;

// Rank by counting: rank(i) = #{j : s_j < s_i or (s_j = s_i and j < i)}. Over
// (score, index) this is a strict total order (no NaN: the binding checks), so
// the ranks are the positions of a stable ascending sort, a permutation of [0, L).
template <typename T>
__global__ void mask_from_scores_kernel(const T* __restrict scores, int64_t L, int64_t K, int32_t* __restrict ids_keep,
                                        int32_t* __restrict ids_restore, uint8_t* __restrict mask, bool staged) {
  extern __shared__ float srow[];
  const int64_t b = blockIdx.x;
  const T* s = scores + b * L;
  if (staged) {
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) srow[j] = ld(s, j);
    __syncthreads();
  }
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
    const float si = staged ? srow[i] : ld(s, i);
    int64_t rank = 0;
    for (int64_t j = 0; j < L; j++) {
      const float sj = staged ? srow[j] : ld(s, j);
      rank += (sj < si || (sj == si && j < i)) ? 1 : 0;
    }
    ids_restore[b * L + i] = static_cast<int32_t>(rank);
    mask[b * L + i] = rank >= K ? 1 : 0;
    if (rank < K) ids_keep[b * K + rank] = static_cast<int32_t>(i);
  }
}

// fma(span, u, low) in double, then rounded to float: the CPU computes the same
// explicit fma, so each value is the CPU's bit for bit.
__global__ void uniform_noise_kernel(float* __restrict out, int64_t n, uint64_t seed, uint64_t step, double low, double span,
                                     float hi, float top) {
  const int64_t blocks = (n + 3) / 4;
  CLOZE_GRID_STRIDE(k, blocks) {
    const Philox4 r = philox4x32(seed, step, static_cast<uint64_t>(k));
    const int64_t i0 = 4 * k;
    const int64_t lanes = n - i0 < 4 ? n - i0 : 4;
    for (int64_t l = 0; l < lanes; l++) {
      const double u = static_cast<double>(philox_uniform(r.v[l]));
      const float v = __double2float_rn(__fma_rn(span, u, low));
      out[i0 + l] = v >= hi ? top : v;
    }
  }
}

template <typename T>
__global__ void assemble_forward_kernel(const T* __restrict x, const T* __restrict tokens, const int32_t* __restrict index,
                                        T* __restrict out, int64_t Ls, int64_t Lo, int64_t D, int64_t n) {
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t r = e / D, c = e % D, b = r / Lo;
    const int64_t idx = index[r];
    const T* src = idx >= 0 ? x + (b * Ls + idx) * D : tokens + (-1 - idx) * D;
    reinterpret_cast<dev_t<T>*>(out)[e] = reinterpret_cast<const dev_t<T>*>(src)[c];
  }
}

// The backward's plan for dx, per output row r = b·Lo + j with a non-negative index: first[r] = 1 when no earlier
// row of image b has the same index, and next[r] = the next row of image b that has it (j' > j), −1 for none. So
// every row of dx that some index hits is summed by one thread per column over its chain, in j order.
// O(Lo) per row: Lo is a few hundred tokens, and the scan breaks at the first match.
__global__ void assemble_dx_plan_kernel(const int32_t* __restrict index, int32_t* __restrict next,
                                        uint8_t* __restrict first, int64_t Lo, int64_t R) {
  CLOZE_GRID_STRIDE(r, R) {
    const int64_t b = r / Lo, j = r % Lo;
    const int32_t* ib = index + b * Lo;
    const int32_t v = ib[j];
    int32_t nx = -1;
    bool f = v >= 0;
    if (v >= 0) {
      for (int64_t k = 0; k < j; k++)
        if (ib[k] == v) {
          f = false;
          break;
        }
      for (int64_t k = j + 1; k < Lo; k++)
        if (ib[k] == v) {
          nx = static_cast<int32_t>(k);
          break;
        }
    }
    next[r] = nx;
    first[r] = f ? 1 : 0;
  }
}

// dx[b, idx, c] = Σ dout[b, j, c] over the rows j of image b with index idx, in j order from 0 in float32, written
// once (dx is zeroed by the binding; rows no index hits stay 0). The same sums in the same order as accumulating
// row by row into a zeroed float32 buffer, which the kernel did before: it then zeroed, read and converted a
// float32 copy of all of dx ([B, Ls, D], 4× the gathered rows at MAE's 75% masking), and one thread per column
// walked every row of its image, so that bench:cuda's token gather measured 0.33× torch.gather
// (bench/RESULTS.md). Threads of consecutive columns read and write consecutive addresses.
template <typename T>
__global__ void assemble_dx_sum_kernel(const T* __restrict dout, const int32_t* __restrict index,
                                       const int32_t* __restrict next, const uint8_t* __restrict first, T* __restrict dx,
                                       int64_t Ls, int64_t Lo, int64_t D, int64_t n) {
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t r = e / D, c = e % D;
    if (!first[r]) continue;
    const int64_t b = r / Lo;
    float s = 0.f;
    for (int64_t k = r;;) {
      s += ld(dout, k * D + c);
      const int32_t nx = next[k];
      if (nx < 0) break;
      k = b * Lo + nx;
    }
    st(dx, (b * Ls + index[r]) * D + c, s);
  }
}

// Partial mask-token gradients: group g sums rows [g·rows, (g+1)·rows) of the
// flattened [B·Lo] index into partial[g, t, c], each slot owned by one thread.
template <typename T>
__global__ void assemble_dtokens_partial_kernel(const T* __restrict dout, const int32_t* __restrict index,
                                                float* __restrict partial, int64_t R, int64_t rows, int64_t NT,
                                                int64_t D) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t g = blockIdx.y;
  if (c >= D) return;
  float* acc = partial + g * NT * D;
  const int64_t r0 = g * rows, r1 = r0 + rows < R ? r0 + rows : R;
  for (int64_t r = r0; r < r1; r++) {
    const int64_t idx = index[r];
    if (idx >= 0) continue;
    acc[(-1 - idx) * D + c] += ld(dout, r * D + c);
  }
}

template <typename T>
__global__ void assemble_dtokens_finish_kernel(const float* __restrict partial, T* __restrict dtokens, int64_t G, int64_t n) {
  CLOZE_GRID_STRIDE(e, n) {
    float s = 0.f;
    for (int64_t g = 0; g < G; g++) s += partial[g * n + e];
    st(dtokens, e, s);
  }
}

__global__ void restore_index_kernel(const int32_t* __restrict r, int32_t* __restrict out, int64_t L, int64_t K, int64_t off,
                                     int64_t n) {
  const int64_t Lo = L + off;
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t b = e / Lo, j = e % Lo;
    if (off && j == 0) {
      out[e] = 0;
    } else {
      const int64_t v = r[b * L + (j - off)];
      out[e] = v < K ? static_cast<int32_t>(v + off) : -1;
    }
  }
}

// Thread e owns patch element e = ((b·L + l)·P·P + py·P + px)·C + c; its image
// pixel is (b, c, gh·P + py, gw·P + px) with l = gh·(W/P) + gw.
template <typename T, bool to_patches>
__global__ void patch_permute_kernel(T* images, T* patches, int64_t C, int64_t H, int64_t W, int64_t P, int64_t n) {
  const int64_t Wp = W / P, L = (H / P) * Wp, E = P * P * C;
  auto* img = reinterpret_cast<dev_t<T>*>(images);
  auto* pat = reinterpret_cast<dev_t<T>*>(patches);
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t k = e % E, bl = e / E, l = bl % L, b = bl / L;
    const int64_t c = k % C, pxy = k / C, px = pxy % P, py = pxy / P;
    const int64_t gh = l / Wp, gw = l % Wp;
    const int64_t at = ((b * C + c) * H + gh * P + py) * W + gw * P + px;
    if (to_patches)
      pat[e] = img[at];
    else
      img[at] = pat[e];
  }
}

template <typename T>
__global__ void token_mean_kernel(const T* __restrict x, T* __restrict out, int64_t L, int64_t D, int64_t n) {
  const float invL = 1.f / static_cast<float>(L);
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t b = e / D, c = e % D;
    const T* xb = x + b * L * D + c;
    float acc = 0.f;
    for (int64_t l = 0; l < L; l++) acc += ld(xb, l * D);
    st(out, e, acc * invL);
  }
}

template <typename T>
__global__ void token_mean_backward_kernel(const T* __restrict g, T* __restrict dx, int64_t L, int64_t D, float inv,
                                           int64_t n) {
  CLOZE_GRID_STRIDE(e, n) {
    const int64_t c = e % D, b = e / (L * D);
    st(dx, e, ld(g, b * D + c) * inv);
  }
}

}  // namespace

template <typename T>
void mask_from_scores_cuda(const MaskFromScoresParams<T>& p) {
  if (p.B == 0 || p.L == 0) return;
  const bool staged = p.L <= kSortSmemTokens;
  const size_t smem = staged ? static_cast<size_t>(p.L) * sizeof(float) : 0;
  CLOZE_LAUNCH("maskFromScores", mask_from_scores_kernel<T>, static_cast<unsigned>(p.B), kThreads, smem, p.scores, p.L, p.K,
               p.ids_keep, p.ids_restore, p.mask, staged);
}

void uniform_noise_cuda(const UniformNoiseParams& p) {
  if (p.n == 0) return;
  const float lo = static_cast<float>(p.low), hi = static_cast<float>(p.high);
  // As the CPU: the largest float below high keeps the range half-open.
  const float top = std::max(lo, std::nextafter(hi, lo));
  CLOZE_LAUNCH("uniformNoise", uniform_noise_kernel, blocks_for((p.n + 3) / 4), kThreads, 0, p.out, p.n, p.seed, p.step,
               p.low, p.high - p.low, hi, top);
}

template <typename T>
void assemble_tokens_forward_cuda(const AssembleTokensParams<T>& p) {
  const int64_t n = p.B * p.Lo * p.D;
  if (n == 0) return;
  CLOZE_LAUNCH("assembleTokens", assemble_forward_kernel<T>, blocks_for(n), kThreads, 0, p.x, p.tokens, p.index, p.out,
               p.Ls, p.Lo, p.D, n);
}

template <typename T>
void assemble_tokens_backward_cuda(const AssembleTokensParams<T>& p) {
  const char* op = "assembleTokensBackward";
  const int64_t B = p.B, D = p.D, Lo = p.Lo, Ls = p.Ls, NT = p.num_tokens;
  if (D == 0) return;
  const unsigned gx = static_cast<unsigned>((D + kThreads - 1) / kThreads);
  if (p.dx && B > 0 && Ls > 0 && Lo > 0) {
    // Repeated indices add in float32 whatever T is, each hit row summed by one thread per column (the plan).
    if (Lo > INT32_MAX) fail(ErrCode::Shape, op, "more than 2^31 − 1 output tokens per image");
    const int64_t R = B * Lo, n = R * D;
    // Freed on every path (a failed launch throws), stream-ordered after the kernels.
    cuda::DeviceTemp plan(static_cast<size_t>(R) * (sizeof(int32_t) + 1), op);
    int32_t* next = plan.as<int32_t>();
    uint8_t* first = reinterpret_cast<uint8_t*>(next + R);
    CLOZE_LAUNCH(op, assemble_dx_plan_kernel, blocks_for(R), kThreads, 0, p.index, next, first, Lo, R);
    CLOZE_LAUNCH(op, assemble_dx_sum_kernel<T>, blocks_for(n), kThreads, 0, p.dout, p.index, next, first, p.dx, Ls, Lo,
                 D, n);
  }
  if (p.dtokens && NT > 0 && B * Lo > 0) {
    // Groups of at least 64 rows and at most 256 groups: the partials stay
    // small and the group split depends on the shapes only (determinism).
    const int64_t R = B * Lo;
    int64_t rows = (R + 255) / 256;
    if (rows < 64) rows = 64;
    const int64_t G = (R + rows - 1) / rows, n = NT * D;
    const size_t bytes = static_cast<size_t>(G * n) * sizeof(float);
    cuda::DeviceTemp part(bytes, op);
    float* partial = part.as<float>();
    cuda::memset_zero(partial, bytes, op);
    CLOZE_LAUNCH(op, assemble_dtokens_partial_kernel<T>, dim3(gx, static_cast<unsigned>(G)), kThreads, 0, p.dout, p.index,
                 partial, R, rows, NT, D);
    CLOZE_LAUNCH(op, assemble_dtokens_finish_kernel<T>, blocks_for(n), kThreads, 0, partial, p.dtokens, G, n);
  }
}

void restore_index_cuda(const RestoreIndexParams& p) {
  const int64_t off = p.cls ? 1 : 0, n = p.B * (p.L + off);
  if (n == 0) return;
  CLOZE_LAUNCH("restoreIndex", restore_index_kernel, blocks_for(n), kThreads, 0, p.ids_restore, p.out, p.L, p.K, off, n);
}

template <typename T>
void patchify_cuda(const PatchifyParams<T>& p) {
  const int64_t n = p.B * p.C * p.H * p.W;
  if (n == 0) return;
  CLOZE_LAUNCH("patchify", (patch_permute_kernel<T, true>), blocks_for(n), kThreads, 0, p.images, p.patches, p.C, p.H, p.W,
               p.P, n);
}

template <typename T>
void unpatchify_cuda(const PatchifyParams<T>& p) {
  const int64_t n = p.B * p.C * p.H * p.W;
  if (n == 0) return;
  CLOZE_LAUNCH("unpatchify", (patch_permute_kernel<T, false>), blocks_for(n), kThreads, 0, p.images, p.patches, p.C, p.H,
               p.W, p.P, n);
}

template <typename T>
void token_mean_forward_cuda(const TokenMeanParams<T>& p) {
  const int64_t n = p.B * p.D;
  if (n == 0) return;
  CLOZE_LAUNCH("tokenMean", token_mean_kernel<T>, blocks_for(n), kThreads, 0, p.x, p.out, p.L, p.D, n);
}

template <typename T>
void token_mean_backward_cuda(const TokenMeanParams<T>& p) {
  const int64_t n = p.B * p.L * p.D;
  if (n == 0) return;
  const float inv = static_cast<float>(1.0 / static_cast<double>(p.L));
  CLOZE_LAUNCH("tokenMeanBackward", token_mean_backward_kernel<T>, blocks_for(n), kThreads, 0, p.dout, p.dx, p.L, p.D, inv, n);
}

#define CLOZE_INST(T)                                                                     \
  template void mask_from_scores_cuda<T>(const MaskFromScoresParams<T>&);                \
  template void assemble_tokens_forward_cuda<T>(const AssembleTokensParams<T>&);         \
  template void assemble_tokens_backward_cuda<T>(const AssembleTokensParams<T>&);        \
  template void patchify_cuda<T>(const PatchifyParams<T>&);                              \
  template void unpatchify_cuda<T>(const PatchifyParams<T>&);                            \
  template void token_mean_forward_cuda<T>(const TokenMeanParams<T>&);                   \
  template void token_mean_backward_cuda<T>(const TokenMeanParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
