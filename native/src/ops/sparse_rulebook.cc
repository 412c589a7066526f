#include "sparse_rulebook.h"

#include <algorithm>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

namespace {
constexpr int64_t kSiteGrain = 1 << 14;  // sites (or table entries) per task
}  // namespace

int64_t count_active_cpu(const uint8_t* mask, int64_t n) {
  const int64_t chunks = std::max<int64_t>(1, (n + kSiteGrain - 1) / kSiteGrain);
  std::vector<int64_t> part(static_cast<size_t>(chunks), 0);
  ThreadPool::get().parallel_for(chunks, [&](int64_t c, int) {
    const int64_t b = c * kSiteGrain, e = std::min(n, b + kSiteGrain);
    int64_t k = 0;
    for (int64_t i = b; i < e; i++) k += mask[i] != 0;
    part[static_cast<size_t>(c)] = k;
  });
  int64_t total = 0;
  for (int64_t k : part) total += k;
  return total;
}

void active_sites_cpu(const ActiveSitesParams& p) {
  // One image line (b, y) per unit: count, prefix-sum, then number the sites,
  // so rows come out in row-major (b, y, x) order whatever the thread count.
  const int64_t lines = p.B * p.H, W = p.W;
  std::vector<int64_t> start(static_cast<size_t>(lines) + 1, 0);
  const int64_t grain = std::max<int64_t>(1, kSiteGrain / std::max<int64_t>(W, 1));
  parallel_range(lines, grain, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; l++) {
      const uint8_t* m = p.mask + l * W;
      int64_t k = 0;
      for (int64_t x = 0; x < W; x++) k += m[x] != 0;
      start[static_cast<size_t>(l) + 1] = k;
    }
  });
  for (int64_t l = 0; l < lines; l++) start[static_cast<size_t>(l) + 1] += start[static_cast<size_t>(l)];
  parallel_range(lines, grain, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; l++) {
      const uint8_t* m = p.mask + l * W;
      int32_t* g = p.grid + l * W;
      int64_t row = start[static_cast<size_t>(l)];
      const int32_t b = static_cast<int32_t>(l / p.H), y = static_cast<int32_t>(l % p.H);
      for (int64_t x = 0; x < W; x++) {
        if (!m[x]) {
          g[x] = -1;
          continue;
        }
        g[x] = static_cast<int32_t>(row);
        int32_t* c = p.coords + row * 3;
        c[0] = b;
        c[1] = y;
        c[2] = static_cast<int32_t>(x);
        row++;
      }
    }
  });
}

void neighbour_table_cpu(const NeighbourParams& p) {
  const int64_t k = p.kernel, K2 = k * k, H = p.H, W = p.W;
  parallel_range(p.M, std::max<int64_t>(1, kSiteGrain / K2), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const int32_t* c = p.out_coords + m * 3;
      const int64_t b = c[0], y0 = c[1] * p.stride - p.padding, x0 = c[2] * p.stride - p.padding;
      const int32_t* g = p.grid + b * H * W;
      int32_t* t = p.nbr + m * K2;
      for (int64_t dy = 0; dy < k; dy++) {
        const int64_t y = y0 + dy;
        for (int64_t dx = 0; dx < k; dx++) {
          const int64_t x = x0 + dx;
          t[dy * k + dx] = (y >= 0 && y < H && x >= 0 && x < W) ? g[y * W + x] : -1;
        }
      }
    }
  });
}

int64_t inverse_table_cpu(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, int32_t* inv) {
  parallel_range(N * K2, kSiteGrain, [&](int64_t b, int64_t e) { std::fill(inv + b, inv + e, -1); });
  // One task per offset: each owns column o of inv, so no two tasks write the
  // same entry, and a repeated pair is found at the same place every time.
  std::vector<int64_t> bad(static_cast<size_t>(K2), -1);
  ThreadPool::get().parallel_for(K2, [&](int64_t o, int) {
    for (int64_t m = 0; m < M; m++) {
      const int32_t i = nbr[m * K2 + o];
      if (i < 0) continue;
      int32_t& slot = inv[static_cast<int64_t>(i) * K2 + o];
      if (slot >= 0) {
        bad[static_cast<size_t>(o)] = m * K2 + o;
        return;
      }
      slot = static_cast<int32_t>(m);
    }
  });
  int64_t first = -1;
  for (int64_t v : bad)
    if (v >= 0 && (first < 0 || v < first)) first = v;
  return first;
}

template <typename T>
void to_dense_cpu(const SiteMapParams<T>& p) {
  const int64_t C = p.C, HW = p.H * p.W;
  parallel_range(p.B * C, std::max<int64_t>(1, kSiteGrain / std::max<int64_t>(HW, 1)), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; q++) {
      const T v = p.fill ? p.fill[q % C] : T(0);
      std::fill(p.out + q * HW, p.out + (q + 1) * HW, v);
    }
  });
  parallel_range(p.N, std::max<int64_t>(1, kSiteGrain / std::max<int64_t>(C, 1)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int32_t* s = p.coords + n * 3;
      T* o = p.out + s[0] * C * HW + s[1] * p.W + s[2];
      const T* r = p.rows + n * C;
      for (int64_t c = 0; c < C; c++) o[c * HW] = r[c];
    }
  });
}

template <typename T>
void to_sparse_cpu(const SiteMapParams<T>& p) {
  const int64_t C = p.C, HW = p.H * p.W;
  parallel_range(p.N, std::max<int64_t>(1, kSiteGrain / std::max<int64_t>(C, 1)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int32_t* s = p.coords + n * 3;
      const T* d = p.dense + s[0] * C * HW + s[1] * p.W + s[2];
      T* r = p.out + n * C;
      for (int64_t c = 0; c < C; c++) r[c] = d[c * HW];
    }
  });
}

template <typename T>
void fill_grad_cpu(const SiteMapParams<T>& p) {
  const int64_t C = p.C, HW = p.H * p.W;
  std::vector<uint8_t> active(static_cast<size_t>(p.B * HW), 0);
  for (int64_t n = 0; n < p.N; n++) {
    const int32_t* s = p.coords + n * 3;
    active[static_cast<size_t>(s[0] * HW + s[1] * p.W + s[2])] = 1;
  }
  // One task per channel, sites in a fixed order: independent of the thread count.
  ThreadPool::get().parallel_for(C, [&](int64_t c, int) {
    double acc = 0;
    for (int64_t b = 0; b < p.B; b++) {
      const T* d = p.dense + (b * C + c) * HW;
      const uint8_t* a = active.data() + b * HW;
      for (int64_t s = 0; s < HW; s++)
        if (!a[s]) acc += static_cast<double>(d[s]);
    }
    p.out[c] = static_cast<T>(acc);
  });
}

#define CLOZE_INST(T)                                         \
  template void to_dense_cpu<T>(const SiteMapParams<T>&);     \
  template void to_sparse_cpu<T>(const SiteMapParams<T>&);    \
  template void fill_grad_cpu<T>(const SiteMapParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
