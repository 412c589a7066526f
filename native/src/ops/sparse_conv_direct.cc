#include "sparse_conv_direct.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "../core/microkernel.h"
#include "../core/storage.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int kMR = kPanelRows;   // rows per register block, as gemm_panel
constexpr int64_t kRowUnit = 64;  // rows per pool task: fixed, so blocks never depend on the thread count

// out[r, j : j + NV·W] for MR rows: Σ_o Σ_c src[table[r, o], c] · Wm[o·C + c, j : …],
// accumulated in registers over every offset. A missing neighbour reads `zeros` (C zeros, as the
// im2col's zero rows; a branch per row in the inner loop kept it from unrolling); an offset none of
// the MR rows has is skipped.
template <typename T, int MR, int NV>
inline void gather_block(const T* src, int64_t C, const int32_t* table, int64_t K2, const T* Wm, int64_t Cout, int64_t j,
                         const T* bias, const T* zeros, T* out) {
  using V = typename VecT<T>::type;
  constexpr int W = VecT<T>::W;
  V acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int s = 0; s < NV; s++) acc[r][s] = bias ? vload(bias + j + s * W) : vsplat<T>(0);
  for (int64_t o = 0; o < K2; o++) {
    const T* a[MR];
    bool any = false;
    for (int r = 0; r < MR; r++) {
      const int32_t i = table[r * K2 + o];
      a[r] = i >= 0 ? src + static_cast<int64_t>(i) * C : zeros;
      any = any || i >= 0;
    }
    if (!any) continue;
    const T* B = Wm + o * C * Cout + j;
    for (int64_t c = 0; c < C; c++) {
      V b[NV];
      for (int s = 0; s < NV; s++) b[s] = vload(B + c * Cout + s * W);
      for (int r = 0; r < MR; r++) {
        const V av = vsplat<T>(a[r][c]);
        for (int s = 0; s < NV; s++) acc[r][s] += av * b[s];
      }
    }
  }
  for (int r = 0; r < MR; r++)
    for (int s = 0; s < NV; s++) vstore(out + r * Cout + j + s * W, acc[r][s]);
}

// The columns [j, Cout) (fewer than a vector) of rows [0, rows), scalar.
template <typename T>
void gather_tail(const T* src, int64_t C, const int32_t* table, int64_t rows, int64_t K2, const T* Wm, int64_t Cout,
                 int64_t j, const T* bias, T* out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t jj = j; jj < Cout; jj++) {
      T acc = bias ? bias[jj] : T(0);
      for (int64_t o = 0; o < K2; o++) {
        const int32_t i = table[r * K2 + o];
        if (i < 0) continue;
        const T* a = src + static_cast<int64_t>(i) * C;
        for (int64_t c = 0; c < C; c++) acc += a[c] * Wm[(o * C + c) * Cout + jj];
      }
      out[r * Cout + jj] = acc;
    }
}

// Rows [0, rows) of one unit, for the vector strip at column j: MR-row blocks, then 4, then single rows.
template <typename T, int NV>
void gather_rows(const T* src, int64_t C, const int32_t* table, int64_t rows, int64_t K2, const T* Wm, int64_t Cout,
                 int64_t j, const T* bias, const T* zeros, T* out) {
  int64_t r = 0;
  for (; r + kMR <= rows; r += kMR)
    gather_block<T, kMR, NV>(src, C, table + r * K2, K2, Wm, Cout, j, bias, zeros, out + r * Cout);
  if (kMR > 4)
    for (; r + 4 <= rows; r += 4)
      gather_block<T, 4, NV>(src, C, table + r * K2, K2, Wm, Cout, j, bias, zeros, out + r * Cout);
  for (; r < rows; r++) gather_block<T, 1, NV>(src, C, table + r * K2, K2, Wm, Cout, j, bias, zeros, out + r * Cout);
}

// dWr[o·Cin + c0 + m, j : j + NV·W] = Σ_r x[nbr[r, o], c0 + m] · dy[r, j : …] for MR channels.
template <typename T, int MR, int NV>
inline void wgrad_block(const T* x, int64_t Cin, const int32_t* nbr, int64_t r0, int64_t r1, int64_t K2, int64_t o,
                        int64_t c0, const T* dy, int64_t Cout, int64_t j, T* dwr) {
  using V = typename VecT<T>::type;
  constexpr int W = VecT<T>::W;
  V acc[MR][NV];
  for (int m = 0; m < MR; m++)
    for (int s = 0; s < NV; s++) acc[m][s] = vsplat<T>(0);
  for (int64_t r = r0; r < r1; r++) {
    const int32_t i = nbr[r * K2 + o];
    if (i < 0) continue;
    const T* a = x + static_cast<int64_t>(i) * Cin + c0;
    const T* b = dy + r * Cout + j;
    V bv[NV];
    for (int s = 0; s < NV; s++) bv[s] = vload(b + s * W);
    for (int m = 0; m < MR; m++) {
      const V av = vsplat<T>(a[m]);
      for (int s = 0; s < NV; s++) acc[m][s] += av * bv[s];
    }
  }
  for (int m = 0; m < MR; m++)
    for (int s = 0; s < NV; s++) vstore(dwr + (o * Cin + c0 + m) * Cout + j + s * W, acc[m][s]);
}

// The channels [c0, c0 + mc) of offset o, every output column: vector strips, then a scalar tail.
template <typename T, int MR>
void wgrad_channels(const T* x, int64_t Cin, const int32_t* nbr, int64_t r0, int64_t r1, int64_t K2, int64_t o,
                    int64_t c0, const T* dy, int64_t Cout, T* dwr) {
  constexpr int64_t W = VecT<T>::W;
  int64_t j = 0;
  for (; j + 2 * W <= Cout; j += 2 * W) wgrad_block<T, MR, 2>(x, Cin, nbr, r0, r1, K2, o, c0, dy, Cout, j, dwr);
  for (; j + W <= Cout; j += W) wgrad_block<T, MR, 1>(x, Cin, nbr, r0, r1, K2, o, c0, dy, Cout, j, dwr);
  if (j < Cout) {
    for (int m = 0; m < MR; m++)
      for (int64_t jj = j; jj < Cout; jj++) {
        T acc = T(0);
        for (int64_t r = r0; r < r1; r++) {
          const int32_t i = nbr[r * K2 + o];
          if (i >= 0) acc += x[static_cast<int64_t>(i) * Cin + c0 + m] * dy[r * Cout + jj];
        }
        dwr[(o * Cin + c0 + m) * Cout + jj] = acc;
      }
  }
}

// Rows per chunk of the direct weight gradient: a dY chunk of about 128 KiB (half a Zen 4 L2), at least 256 rows;
// one chunk when dY is at most 512 KiB, which stays in L2 anyway. Measured at SparK's 32 × 32 ResNet shapes
// (ms per dW, one chunk → chunks): 12288 × 32 rows 1.35–1.39 → 1.17; 3072 → 12288 rows (64 → 32) 0.78 → 0.64–0.66;
// 3072 × 64 0.99–1.08 → 0.96; but 768 × 128 (384 KiB of dY, 3 chunks) 0.69–0.72 → 0.83–0.87.
int64_t wgrad_chunk_rows(int64_t M, int64_t Cout, size_t elt) {
  const int64_t row_bytes = std::max<int64_t>(1, Cout * static_cast<int64_t>(elt));
  if (M * row_bytes <= (int64_t(512) << 10)) return std::max<int64_t>(M, 1);
  return std::max<int64_t>(256, (int64_t(128) << 10) / row_bytes);
}

}  // namespace

template <typename T>
void direct_gather_product(const T* src, int64_t C, const int32_t* table, int64_t R, int64_t K2, const T* Wm,
                           int64_t Cout, const T* bias, T* out) {
  if (R == 0 || Cout == 0) return;
  constexpr int64_t W = VecT<T>::W;
  const int64_t units = (R + kRowUnit - 1) / kRowUnit;
  const std::vector<T> zeros(static_cast<size_t>(C), T(0));
  ThreadPool::get().parallel_for(units, [&](int64_t u, int) {
    const int64_t r0 = u * kRowUnit, rows = std::min(kRowUnit, R - r0);
    const int32_t* t = table + r0 * K2;
    T* o = out + r0 * Cout;
    int64_t j = 0;
    for (; j + 2 * W <= Cout; j += 2 * W) gather_rows<T, 2>(src, C, t, rows, K2, Wm, Cout, j, bias, zeros.data(), o);
    for (; j + W <= Cout; j += W) gather_rows<T, 1>(src, C, t, rows, K2, Wm, Cout, j, bias, zeros.data(), o);
    if (j < Cout) gather_tail(src, C, t, rows, K2, Wm, Cout, j, bias, o);
  });
}

template <typename T>
void direct_weight_grad(const T* x, int64_t Cin, const int32_t* nbr, int64_t M, int64_t K2, const T* dy, int64_t Cout,
                        T* dwr) {
  if (Cin == 0 || Cout == 0 || K2 == 0) return;
  // Tasks: one row chunk × one offset × one block of kMR channels (the last block takes the rest in 4s and 1s),
  // chunk-major, so that the two threads work on the same chunk of dY, which stays in L2 across its K2 × Cin/kMR
  // tasks. Over all rows at once, every task streamed the whole dY (1.5 MiB at SparK's 32 × 32 stem) from L3.
  // Each chunk writes its own partial dWr, added in chunk order below: the chunks are a function of M alone, so
  // the result does not depend on the thread count.
  const int64_t chunk_rows = wgrad_chunk_rows(M, Cout, sizeof(T));
  const int64_t chunks = (M + chunk_rows - 1) / chunk_rows;
  const int64_t KC = K2 * Cin;
  std::shared_ptr<Storage> part_store;
  T* part = dwr;
  if (chunks > 1) {
    part_store = Storage::allocate(sizeof(T) * static_cast<size_t>(chunks * KC * Cout), "sparseConvBackward", false);
    part = static_cast<T*>(part_store->data());
  }
  const int64_t cblocks = (Cin + kMR - 1) / kMR;
  ThreadPool::get().parallel_for(chunks * K2 * cblocks, [&](int64_t t, int) {
    const int64_t k = t / (K2 * cblocks), rest = t % (K2 * cblocks);
    const int64_t o = rest / cblocks, c0 = (rest % cblocks) * kMR, end = std::min(Cin, c0 + kMR);
    const int64_t r0 = k * chunk_rows, r1 = std::min(M, r0 + chunk_rows);
    T* out = part + k * KC * Cout;
    int64_t c = c0;
    if (end - c == kMR) {
      wgrad_channels<T, kMR>(x, Cin, nbr, r0, r1, K2, o, c, dy, Cout, out);
      return;
    }
    for (; c + 4 <= end; c += 4) wgrad_channels<T, 4>(x, Cin, nbr, r0, r1, K2, o, c, dy, Cout, out);
    for (; c < end; c++) wgrad_channels<T, 1>(x, Cin, nbr, r0, r1, K2, o, c, dy, Cout, out);
  });
  if (chunks == 1) return;
  parallel_range(KC * Cout, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T s = part[i];
      for (int64_t k = 1; k < chunks; k++) s += part[k * KC * Cout + i];
      dwr[i] = s;
    }
  });
}


// Measured on SparK's ResNet encoder (32×32, ratio 0.6, 2 Zen 5 cores; ms per call, im2col → direct):
// C = 32: forward 2.61 → 1.14, backward 5.43 → 2.69; C = 64: 1.55 → 0.91, 3.39 → 2.02; C = 128:
// 1.54 → 1.14, 2.88 → 2.27; C = 256 at 192 rows: forward 1.85 → 2.13 (3 row units for 2 threads, and the
// im2col GEMM reuses each packed weight panel over every row). A table with at least twice the rows
// of the other side (dX of a stride-2 conv through its inverse table: mostly −1) pays at any C, since
// the direct product skips an offset no row of a block has and the im2col writes and multiplies the
// zeros: 128→256 backward 3.81 → 2.61.
bool direct_sparse_conv_pays(int64_t C, int64_t table_rows, int64_t other_rows) {
  return C <= 128 || table_rows >= 2 * other_rows;
}

#define CLOZE_INST(T)                                                                                                  \
  template void direct_gather_product<T>(const T*, int64_t, const int32_t*, int64_t, int64_t, const T*, int64_t,     \
                                         const T*, T*);                                                               \
  template void direct_weight_grad<T>(const T*, int64_t, const int32_t*, int64_t, int64_t, const T*, int64_t, T*);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
