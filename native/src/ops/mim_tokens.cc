#include "mim_tokens.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../core/philox.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per task for the copy kernels
constexpr int64_t kCols = 128;       // column block of the reductions: one task owns it, so sums never race
// The mask-token gradient is summed per group of batch rows, then over the
// groups in order. The group count depends on the shapes only (determinism)
// and is capped so the partials stay small next to dout.
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kMaxPartial = int64_t(1) << 22;

int64_t rows_per_task(int64_t width) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(width, 1)); }
}  // namespace

template <typename T>
void mask_from_scores_cpu(const MaskFromScoresParams<T>& p) {
  const int64_t L = p.L, K = p.K;
  // Sorting is L·log L per row; a few rows per task is plenty.
  parallel_range(p.B, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), [&](int64_t b0, int64_t b1) {
    std::vector<int32_t> order(static_cast<size_t>(L));
    for (int64_t b = b0; b < b1; b++) {
      const T* s = p.scores + b * L;
      std::iota(order.begin(), order.end(), 0);
      // (score, index) is a strict total order without NaN, so std::sort is as stable as stable_sort.
      std::sort(order.begin(), order.end(), [s](int32_t a, int32_t c) { return s[a] < s[c] || (s[a] == s[c] && a < c); });
      int32_t* restore = p.ids_restore + b * L;
      for (int64_t r = 0; r < L; r++) restore[order[r]] = static_cast<int32_t>(r);
      std::copy(order.begin(), order.begin() + K, p.ids_keep + b * K);
      uint8_t* m = p.mask + b * L;
      for (int64_t j = 0; j < L; j++) m[j] = restore[j] >= K ? 1 : 0;
    }
  });
}

void uniform_noise_cpu(const UniformNoiseParams& p) {
  const int64_t blocks = (p.n + 3) / 4;
  const float lo = static_cast<float>(p.low), hi = static_cast<float>(p.high);
  // Rounding to float can land on high itself; the largest float below it keeps the range half-open.
  const float top = std::max(lo, std::nextafter(hi, lo));
  const double span = p.high - p.low;
  parallel_range(blocks, 4096, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
      const Philox4 r = philox4x32(p.seed, p.step, static_cast<uint64_t>(k));
      const int64_t i0 = 4 * k, lanes = std::min<int64_t>(4, p.n - i0);
      for (int64_t l = 0; l < lanes; l++) {
        // An explicit fma: what -march=native contracts this to anyway, and what the CUDA kernel computes, so
        // every build and device gives the same bits.
        const float v = static_cast<float>(std::fma(span, static_cast<double>(philox_uniform(r.v[l])), p.low));
        p.out[i0 + l] = v >= hi ? top : v;
      }
    }
  });
}

template <typename T>
void assemble_tokens_forward_cpu(const AssembleTokensParams<T>& p) {
  const int64_t D = p.D, Lo = p.Lo, Ls = p.Ls;
  parallel_range(p.B * Lo, rows_per_task(D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / Lo, idx = p.index[r];
      const T* src = idx >= 0 ? p.x + (b * Ls + idx) * D : p.tokens + (-1 - idx) * D;
      std::copy(src, src + D, p.out + r * D);
    }
  });
}

template <typename T>
void assemble_tokens_backward_cpu(const AssembleTokensParams<T>& p) {
  const int64_t B = p.B, D = p.D, Lo = p.Lo, Ls = p.Ls, NT = p.num_tokens;
  const int64_t nb = (D + kCols - 1) / kCols;
  ThreadPool& pool = ThreadPool::get();
  if (p.dx) {
    // Task (b, column block) owns dx[b, :, block]: repeated indices add up in j order, race-free.
    pool.parallel_for(B * nb, [&](int64_t task, int) {
      const int64_t b = task / nb, c0 = (task % nb) * kCols, c1 = std::min(D, c0 + kCols);
      for (int64_t j = 0; j < Lo; j++) {
        const int64_t idx = p.index[b * Lo + j];
        if (idx < 0) continue;
        const T* __restrict src = p.dout + (b * Lo + j) * D;
        T* __restrict dst = p.dx + (b * Ls + idx) * D;
        for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
      }
    });
  }
  if (p.dtokens && NT > 0 && D > 0) {
    const int64_t G = std::max<int64_t>(1, std::min({B, kMaxGroups, kMaxPartial / (NT * D)}));
    std::vector<T> partial(G > 1 ? static_cast<size_t>(G * NT * D) : 0, T(0));
    pool.parallel_for(G * nb, [&](int64_t task, int) {
      const int64_t g = task / nb, c0 = (task % nb) * kCols, c1 = std::min(D, c0 + kCols);
      const int64_t b0 = B * g / G, b1 = B * (g + 1) / G;
      T* acc = G > 1 ? partial.data() + g * NT * D : p.dtokens;
      for (int64_t r = b0 * Lo; r < b1 * Lo; r++) {
        const int64_t idx = p.index[r];
        if (idx >= 0) continue;
        const T* __restrict src = p.dout + r * D;
        T* __restrict dst = acc + (-1 - idx) * D;
        for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
      }
    });
    if (G > 1) {
      parallel_range(NT * D, kGrain, [&](int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; e++) {
          T s = T(0);
          for (int64_t g = 0; g < G; g++) s += partial[static_cast<size_t>(g * NT * D + e)];
          p.dtokens[e] = s;
        }
      });
    }
  }
}

void restore_index_cpu(const RestoreIndexParams& p) {
  const int64_t L = p.L, K = p.K, off = p.cls ? 1 : 0, Lo = L + off;
  parallel_range(p.B, rows_per_task(L), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int32_t* r = p.ids_restore + b * L;
      int32_t* o = p.out + b * Lo;
      if (p.cls) o[0] = 0;
      for (int64_t j = 0; j < L; j++) o[off + j] = r[j] < K ? static_cast<int32_t>(r[j] + off) : -1;
    }
  });
}

namespace {
// One pass of the patch permutation; to_patches picks the direction.
template <typename T, bool to_patches>
void patch_permute(const PatchifyParams<T>& p) {
  const int64_t C = p.C, H = p.H, W = p.W, P = p.P, Hp = H / P, Wp = W / P, L = Hp * Wp, E = P * P * C;
  // Task = one row of patches (b, gh): P·W·C elements, read and written as whole image rows.
  parallel_range(p.B * Hp, rows_per_task(P * W * C), [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int64_t b = u / Hp, gh = u % Hp;
      T* tok = p.patches + (b * L + gh * Wp) * E;
      for (int64_t c = 0; c < C; c++)
        for (int64_t py = 0; py < P; py++) {
          T* img = p.images + ((b * C + c) * H + gh * P + py) * W;
          for (int64_t gw = 0; gw < Wp; gw++) {
            T* t = tok + gw * E + py * P * C + c;
            T* im = img + gw * P;
            for (int64_t px = 0; px < P; px++) {
              if (to_patches)
                t[px * C] = im[px];
              else
                im[px] = t[px * C];
            }
          }
        }
    }
  });
}
}  // namespace

template <typename T>
void patchify_cpu(const PatchifyParams<T>& p) { patch_permute<T, true>(p); }
template <typename T>
void unpatchify_cpu(const PatchifyParams<T>& p) { patch_permute<T, false>(p); }

template <typename T>
void token_mean_forward_cpu(const TokenMeanParams<T>& p) {
  const int64_t L = p.L, D = p.D, nb = (D + kCols - 1) / kCols;
  const double inv = 1.0 / static_cast<double>(L);
  ThreadPool::get().parallel_for(p.B * nb, [&](int64_t task, int) {
    const int64_t b = task / nb, c0 = (task % nb) * kCols, n = std::min(D, c0 + kCols) - c0;
    double acc[kCols] = {};
    for (int64_t l = 0; l < L; l++) {
      const T* __restrict row = p.x + (b * L + l) * D + c0;
      for (int64_t c = 0; c < n; c++) acc[c] += static_cast<double>(row[c]);
    }
    T* o = p.out + b * D + c0;
    for (int64_t c = 0; c < n; c++) o[c] = static_cast<T>(acc[c] * inv);
  });
}

template <typename T>
void token_mean_backward_cpu(const TokenMeanParams<T>& p) {
  const int64_t L = p.L, D = p.D;
  const T inv = static_cast<T>(1.0 / static_cast<double>(L));
  parallel_range(p.B * L, rows_per_task(D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* __restrict g = p.dout + (r / L) * D;
      T* __restrict d = p.dx + r * D;
      for (int64_t c = 0; c < D; c++) d[c] = g[c] * inv;
    }
  });
}

#define CLOZE_INST(T)                                                                   \
  template void mask_from_scores_cpu<T>(const MaskFromScoresParams<T>&);               \
  template void assemble_tokens_forward_cpu<T>(const AssembleTokensParams<T>&);        \
  template void assemble_tokens_backward_cpu<T>(const AssembleTokensParams<T>&);       \
  template void patchify_cpu<T>(const PatchifyParams<T>&);                             \
  template void unpatchify_cpu<T>(const PatchifyParams<T>&);                           \
  template void token_mean_forward_cpu<T>(const TokenMeanParams<T>&);                  \
  template void token_mean_backward_cpu<T>(const TokenMeanParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
