#include "sparse_conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/blas.h"
#include "../core/microkernel.h"
#include "../core/storage.h"
#include "../core/threadpool.h"
#include "elementwise.h"
#include "sparse_conv_direct.h"

namespace cloze {

namespace {

// Bytes of one gathered tile. Measured on 2 Zen 5 cores (float32, 3×3, 64→64
// channels): 1 MiB tiles ran the forward at 110 GFLOP/s, 4–8 MiB at 180–190,
// 32 MiB at 137 (N = 13107: the tile no longer stays in L3 between the gather
// and the GEMM). Small tiles lose to the per-GEMM fixed costs and pool wakeups.
// At 4 MiB the gather is about 13% of the forward and the GEMM runs at about
// 85% of the FMA peak, so fusing the gather into the GEMM's blocks (and
// leaving BLAS for the built-in GEMM) would buy little.
constexpr size_t kTileBytes = size_t(4) << 20;

// Rows per tile for a tile row of `width` elements: a multiple of 64 (the
// built-in GEMM's row block), at least 64.
int64_t tile_rows(int64_t width, size_t elt) {
  const int64_t r = static_cast<int64_t>(kTileBytes / (static_cast<size_t>(std::max<int64_t>(width, 1)) * elt));
  return std::max<int64_t>(64, r / 64 * 64);
}

constexpr int64_t kGatherGrain = 1 << 14;  // tile elements per gather task

// cols[r, o·C : (o+1)·C] = src[table[r0 + r, o]] (zeros for −1), r in [0, rows).
template <typename T>
void gather_tile(const T* src, int64_t C, const int32_t* table, int64_t K2, int64_t r0, int64_t rows, T* cols) {
  const int64_t KC = K2 * C;
  parallel_range(rows, std::max<int64_t>(1, kGatherGrain / std::max<int64_t>(KC, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const int32_t* t = table + (r0 + r) * K2;
      T* dst = cols + r * KC;
      for (int64_t o = 0; o < K2; o++) {
        const int32_t i = t[o];
        if (i >= 0)
          std::memcpy(dst + o * C, src + static_cast<int64_t>(i) * C, sizeof(T) * static_cast<size_t>(C));
        else
          std::memset(dst + o * C, 0, sizeof(T) * static_cast<size_t>(C));
      }
    }
  });
}

// out [R, Cout] = bias + Σ_o src[table[r, o]] · Wm[o·C : (o+1)·C, :], Wm [K2·C, Cout],
// one gathered tile and one GEMM at a time.
template <typename T>
void gather_gemm(const T* src, int64_t C, const int32_t* table, int64_t R, int64_t K2, const T* Wm, int64_t Cout,
                 const T* bias, T* out, const char* op) {
  if (R == 0 || Cout == 0) return;
  const int64_t KC = K2 * C;
  if (bias) {
    parallel_range(R, std::max<int64_t>(1, kGatherGrain / Cout), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) std::copy(bias, bias + Cout, out + r * Cout);
    });
  }
  if (KC == 0) {
    if (!bias) std::fill(out, out + R * Cout, T(0));
    return;
  }
  const int64_t Mt = std::min(R, tile_rows(KC, sizeof(T)));
  // Written in full before each read, and from the block cache when large.
  const auto scratch = Storage::allocate(sizeof(T) * static_cast<size_t>(Mt * KC), op, false);
  T* cols = static_cast<T*>(scratch->data());
  for (int64_t r0 = 0; r0 < R; r0 += Mt) {
    const int64_t rows = std::min(Mt, R - r0);
    gather_tile(src, C, table, K2, r0, rows, cols);
    GemmParams g;
    g.M = rows;
    g.N = Cout;
    g.K = KC;
    g.A = cols;
    g.lda = KC;
    g.B = Wm;
    g.ldb = Cout;
    g.C = out + r0 * Cout;
    g.ldc = Cout;
    g.beta = bias ? 1.0 : 0.0;
    gemm<T>(g);
  }
}

}  // namespace

namespace {
// A weight-sized buffer written in full before it is read: from the storage block cache
// (128 KiB and up are reused across calls), not zero-filled.
template <typename T>
std::shared_ptr<Storage> weight_scratch(int64_t n) {
  return Storage::allocate(sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1)), "sparseConv", false);
}

// dst [cols × rows] (row stride ldd) = transpose of src [rows × cols] (row stride lds), in column blocks of
// 64 over the pool; transpose_tile's 16 × 16 register blocks where the ISA has them.
template <typename T>
void transpose_par(int64_t rows, int64_t cols, const T* src, int64_t lds, T* dst, int64_t ldd) {
  constexpr int64_t kCB = 64;
  const int64_t blocks = (cols + kCB - 1) / kCB;
  ThreadPool::get().parallel_for(blocks, [&](int64_t t, int) {
    const int64_t c0 = t * kCB, cb = std::min(kCB, cols - c0);
    transpose_tile(rows, cb, src + c0, lds, dst + c0 * ldd, ldd);
  });
}

// Wr [K2·Cin, Cout] with Wr[o·Cin + ci, co] = W[co, ci, o]: a transpose of W viewed as [Cout, Cin·K2]
// (wt[ci·K2 + o, co]), then contiguous row moves. The element-wise permutation read W with a stride of
// Cin·K2 and took 2 ms of a 3.2 ms forward at Cin = Cout = 256.
template <typename T>
void reorder_weight(const T* w, int64_t Cout, int64_t Cin, int64_t K2, T* wr) {
  const int64_t KC = Cin * K2;
  // Written in full, so from the block cache without a zero-fill (a zeroed std::vector of a
  // 256 × 256 × 3 × 3 weight was mapped and page-faulted on every call).
  const auto wt_store = weight_scratch<T>(KC * Cout);
  T* wt = static_cast<T*>(wt_store->data());
  transpose_par(Cout, KC, w, KC, wt, Cout);
  parallel_range(KC, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(Cout, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const int64_t o = r / Cin, ci = r % Cin;
      copy_short(wt + (ci * K2 + o) * Cout, wr + r * Cout, Cout);
    }
  });
}

// Wt [K2·Cout, Cin] with Wt[o·Cout + co, ci] = W[co, ci, o] (dX's weight): the transpose above, then one
// transpose per offset of its rows ci·K2 + o. Was an element-wise loop on one thread: about 1 ms at 256 → 256.
template <typename T>
void reorder_weight_dx(const T* w, int64_t Cout, int64_t Cin, int64_t K2, T* wt_out) {
  const int64_t KC = Cin * K2;
  const auto t_store = weight_scratch<T>(KC * Cout);
  T* t = static_cast<T*>(t_store->data());
  transpose_par(Cout, KC, w, KC, t, Cout);  // t[ci·K2 + o, co]
  ThreadPool::get().parallel_for(K2, [&](int64_t o, int) {
    transpose_tile(Cin, Cout, t + o * Cout, K2 * Cout, wt_out + o * Cout * Cin, Cin);
  });
}

// dW [Cout, Cin, K2] from dWr [K2·Cin, Cout] (dWr[o·Cin + ci, co]): rows moved into ci·K2 + o order, then
// one transpose. Was a column-wise read of dWr, one element at a time.
template <typename T>
void unreorder_weight_grad(const T* dwr, int64_t Cout, int64_t Cin, int64_t K2, T* dw) {
  const int64_t KC = Cin * K2;
  const auto p_store = weight_scratch<T>(KC * Cout);
  T* pr = static_cast<T*>(p_store->data());
  parallel_range(KC, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(Cout, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const int64_t o = r / Cin, ci = r % Cin;
      copy_short(dwr + r * Cout, pr + (ci * K2 + o) * Cout, Cout);
    }
  });
  transpose_par(KC, Cout, pr, Cout, dw, KC);
}
}  // namespace

template <typename T>
void sparse_conv_forward_cpu(const SparseConvParams<T>& p) {
  const int64_t K2 = p.K2, Cin = p.Cin, Cout = p.Cout;
  // A tile row times Wr is one output row.
  const auto wr = weight_scratch<T>(K2 * Cin * Cout);
  reorder_weight(p.w, Cout, Cin, K2, static_cast<T*>(wr->data()));
  if (direct_sparse_conv_pays(Cin, p.M, p.N)) {
    direct_gather_product(p.x, Cin, p.nbr, p.M, K2, static_cast<const T*>(wr->data()), Cout, p.b, p.y);
    return;
  }
  gather_gemm(p.x, Cin, p.nbr, p.M, K2, static_cast<const T*>(wr->data()), Cout, p.b, p.y, "sparseConv");
}

template <typename T>
void sparse_conv_backward_cpu(const SparseConvParams<T>& p) {
  const int64_t K2 = p.K2, Cin = p.Cin, Cout = p.Cout, KC = K2 * Cin, M = p.M;
  if (p.dx) {
    // dX[i] = Σ_o dY[inv[i, o]] · W_oᵀ: the forward machinery with Wt [K2·Cout, Cin].
    const auto wt_store = weight_scratch<T>(K2 * Cout * Cin);
    T* wt = static_cast<T*>(wt_store->data());
    reorder_weight_dx(p.w, Cout, Cin, K2, wt);
    if (direct_sparse_conv_pays(Cout, p.N, p.M))
      direct_gather_product(p.dy, Cout, p.inv, p.N, K2, static_cast<const T*>(wt), Cin, static_cast<const T*>(nullptr), p.dx);
    else
      gather_gemm(p.dy, Cout, p.inv, p.N, K2, static_cast<const T*>(wt), Cin, static_cast<const T*>(nullptr), p.dx, "sparseConvBackward");
  }
  if (p.dw) {
    // dWr [K2·Cin, Cout] = Σ_tiles cols_tileᵀ · dY_tile, tiles in order, so the
    // sum does not depend on the thread count. cols is the GEMM's A, read through
    // its strides (transposed for free); with Cout as the GEMM's N the product
    // stays vectorised when K2·Cin is narrow (the stem: 9 columns), where the
    // other orientation ([Cout, K2·Cin]) ran the built-in GEMM's scalar tail.
    const auto dwr_store = weight_scratch<T>(KC * Cout);
    T* dwr = static_cast<T*>(dwr_store->data());
    if (M == 0) std::fill(dwr, dwr + KC * Cout, T(0));  // otherwise the first tile's GEMM (beta 0) writes it all
    if (M > 0 && direct_sparse_conv_pays(Cin, p.M, p.N)) {
      direct_weight_grad(p.x, Cin, p.nbr, M, K2, p.dy, Cout, dwr);
    } else if (M > 0 && KC > 0 && Cout > 0) {
      const int64_t Mt = std::min(M, tile_rows(KC, sizeof(T)));
      const auto scratch = Storage::allocate(sizeof(T) * static_cast<size_t>(Mt * KC), "sparseConvBackward", false);
      T* cols = static_cast<T*>(scratch->data());
      for (int64_t r0 = 0; r0 < M; r0 += Mt) {
        const int64_t rows = std::min(Mt, M - r0);
        gather_tile(p.x, Cin, p.nbr, K2, r0, rows, cols);
        GemmParams g;
        g.trans_a = true;
        g.M = KC;
        g.N = Cout;
        g.K = rows;
        g.A = cols;
        g.lda = KC;
        g.B = p.dy + r0 * Cout;
        g.ldb = Cout;
        g.C = dwr;
        g.ldc = Cout;
        g.beta = r0 > 0 ? 1.0 : 0.0;
        gemm<T>(g);
      }
    }
    unreorder_weight_grad(static_cast<const T*>(dwr), Cout, Cin, K2, p.dw);
  }
  if (p.db) {
    if (M == 0 || Cout == 0) {
      std::fill(p.db, p.db + Cout, T(0));
    } else {
      EltParams<T> e;
      e.n = M * Cout;
      e.cols = Cout;
      e.a = p.dy;
      e.out = p.db;
      sum_rows_cpu<T>(e);
    }
  }
}

namespace {

// out[r, c] = bias[c] + Σ_o src[table[r, o], c] · wd[o, c], wd [K2, C].
template <typename T>
void depthwise_rows(const T* src, const int32_t* table, int64_t R, int64_t K2, int64_t C, const T* wd, const T* bias,
                    T* out) {
  parallel_range(R, std::max<int64_t>(1, kGatherGrain / std::max<int64_t>(K2 * C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      T* __restrict y = out + r * C;
      if (bias) std::copy(bias, bias + C, y);
      else std::fill(y, y + C, T(0));
      const int32_t* t = table + r * K2;
      for (int64_t o = 0; o < K2; o++) {
        if (t[o] < 0) continue;
        const T* __restrict xi = src + static_cast<int64_t>(t[o]) * C;
        const T* __restrict wo = wd + o * C;
        for (int64_t c = 0; c < C; c++) y[c] += xi[c] * wo[c];
      }
    }
  });
}

}  // namespace

template <typename T>
void sparse_depthwise_forward_cpu(const SparseConvParams<T>& p) {
  const int64_t K2 = p.K2, C = p.Cout;
  std::vector<T> wd(static_cast<size_t>(K2 * C));
  for (int64_t c = 0; c < C; c++)
    for (int64_t o = 0; o < K2; o++) wd[static_cast<size_t>(o * C + c)] = p.w[c * K2 + o];
  depthwise_rows(p.x, p.nbr, p.M, K2, C, wd.data(), p.b, p.y);
}

template <typename T>
void sparse_depthwise_backward_cpu(const SparseConvParams<T>& p) {
  const int64_t K2 = p.K2, C = p.Cout, M = p.M, KC = K2 * C;
  if (p.dx) {
    std::vector<T> wd(static_cast<size_t>(KC));
    for (int64_t c = 0; c < C; c++)
      for (int64_t o = 0; o < K2; o++) wd[static_cast<size_t>(o * C + c)] = p.w[c * K2 + o];
    depthwise_rows(p.dy, p.inv, p.N, K2, C, wd.data(), static_cast<const T*>(nullptr), p.dx);
  }
  if (p.dw) {
    // Partial sums over fixed row chunks (at most 64, a function of M only),
    // then added in chunk order: independent of the thread count.
    const int64_t chunk = std::max<int64_t>(256, (M + 63) / 64);
    const int64_t chunks = (M + chunk - 1) / chunk;
    std::vector<T> part(static_cast<size_t>(chunks * KC), T(0));
    ThreadPool::get().parallel_for(chunks, [&](int64_t k, int) {
      T* __restrict acc = part.data() + k * KC;
      for (int64_t m = k * chunk; m < std::min(M, (k + 1) * chunk); m++) {
        const T* __restrict g = p.dy + m * C;
        const int32_t* t = p.nbr + m * K2;
        for (int64_t o = 0; o < K2; o++) {
          if (t[o] < 0) continue;
          const T* __restrict xi = p.x + static_cast<int64_t>(t[o]) * C;
          T* __restrict a = acc + o * C;
          for (int64_t c = 0; c < C; c++) a[c] += xi[c] * g[c];
        }
      }
    });
    parallel_range(KC, 1024, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; j++) {
        double s = 0;
        for (int64_t k = 0; k < chunks; k++) s += static_cast<double>(part[static_cast<size_t>(k * KC + j)]);
        const int64_t o = j / C, c = j % C;
        p.dw[c * K2 + o] = static_cast<T>(s);
      }
    });
  }
  if (p.db) {
    if (M == 0 || C == 0) {
      std::fill(p.db, p.db + C, T(0));
    } else {
      EltParams<T> e;
      e.n = M * C;
      e.cols = C;
      e.a = p.dy;
      e.out = p.db;
      sum_rows_cpu<T>(e);
    }
  }
}

#define CLOZE_INST(T)                                                             \
  template void sparse_conv_forward_cpu<T>(const SparseConvParams<T>&);         \
  template void sparse_conv_backward_cpu<T>(const SparseConvParams<T>&);        \
  template void sparse_depthwise_forward_cpu<T>(const SparseConvParams<T>&);    \
  template void sparse_depthwise_backward_cpu<T>(const SparseConvParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
