// The built-in GEMM, C = alpha·op(A)·op(B) + beta·C (row-major), on the pool:
// what gemm() runs where OpenBLAS has no AVX-512 kernels for the CPU (blas.cc),
// and the reference the BLAS path is tested against.
//
// C is cut into blocks of up to 256 × 256; each pool task owns one block and
// walks K in slices of 256. Per slice it packs op(B)'s [256 × 256] panel into
// column strips as wide as the microkernel (2 vectors), each strip contiguous,
// and runs the microkernel (microkernel.h) down the block's rows strip by
// strip. Every element of C is summed over k in the same order whatever the
// blocking and the thread count, so results are bit-identical across thread
// counts.
#include <algorithm>
#include <vector>

#include "blas.h"
#include "microkernel.h"
#include "threadpool.h"

namespace cloze {

namespace {

constexpr int64_t KC = 256;  // k slice: a packed panel of 256 × 256 floats is 256 KiB, in L2

// The width of the packed strip that starts at column j of an nb-wide panel:
// two vectors, then one, then the last columns (fewer than a vector).
template <typename T>
inline int64_t strip_width(int64_t j, int64_t nb) {
  constexpr int64_t W = VecT<T>::W;
  return j + 2 * W <= nb ? 2 * W : (j + W <= nb ? W : nb - j);
}

// Packs op(B)[k0 : k0+kc, j0 : j0+nb] into consecutive strips (strip_width),
// each [kc × width] row-major. Read in place, B's rows lie ldb apart; at a
// power-of-two stride of 4–16 KiB every k row of a strip maps to the same L1
// sets, and the product ran at half speed (a head chunk, [614 × 4096] =
// [614 × 256]·[256 × 4096]ᵀ: 150 GFLOP/s, against 300 at a 3 KiB stride). A
// packed strip (256 × 32 floats, 32 KiB) is one contiguous block in L1.
template <typename T>
void pack_b(const T* B, int64_t ldb, bool trans, int64_t k0, int64_t kc, int64_t j0, int64_t nb, T* out) {
  for (int64_t j = 0; j < nb;) {
    const int64_t w = strip_width<T>(j, nb);
    if (!trans) {
      for (int64_t k = 0; k < kc; k++) std::copy_n(B + (k0 + k) * ldb + j0 + j, w, out + k * w);
    } else {  // op(B)(k, j) = B[j·ldb + k]: the strip is the transpose of B's rows j0+j … j0+j+w−1
      // In 16 × 16 register blocks where the ISA has them (microkernel.h); element by element this was about a
      // tenth of a linear layer's forward ([4096 × 256]·[1024 × 256]ᵀ).
      transpose_tile<T>(w, kc, B + (j0 + j) * ldb + k0, ldb, out, w);
    }
    out += kc * w;
    j += w;
  }
}

// C[mb × w] (+)= A[mb × kc]·S for one packed strip S [kc × w].
template <typename T>
void strip_product(int64_t mb, int64_t kc, const T* A, int64_t ars, int64_t acs, const T* S, int64_t w, T* C,
                   int64_t ldc, bool accumulate) {
  constexpr int64_t W = VecT<T>::W;
  if (w == 2 * W)
    gemm_panel<T, 2>(mb, kc, A, ars, acs, S, w, C, ldc, accumulate);
  else if (w == W)
    gemm_panel<T, 1>(mb, kc, A, ars, acs, S, w, C, ldc, accumulate);
  else
    tile_gemm_strided<T>(mb, w, kc, A, ars, acs, S, w, C, ldc, accumulate);  // its scalar loop
}

}  // namespace

template <typename T>
void gemm_builtin(const GemmParams& p) {
  const int64_t M = p.M, N = p.N, K = p.K;
  if (M == 0 || N == 0) return;
  // A is only ever read one scalar at a time (a broadcast), so a transposed or
  // strided A is read in place through its strides: op(A)(r, k) = A[r·ars + k·acs].
  const T* A = static_cast<const T*>(p.A);
  const int64_t ars = p.trans_a ? 1 : p.lda, acs = p.trans_a ? p.lda : 1;
  const T* B = static_cast<const T*>(p.B);
  T* C = static_cast<T*>(p.C);
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  // C = op(A)·op(B) (alpha 1, beta 0, the common case) is summed in place in C.
  // Otherwise in a scratch block, combined once as alpha·acc + beta·C: the
  // same sums either way, since the first slice starts from zero.
  const bool direct = alpha == T(1) && beta == T(0);
  // Blocks of 256 × 256, halved (rows first) until every thread has about 4 of
  // them: a block packs its B panel once per k slice and reuses it for all its
  // rows, so tall blocks amortise the packing; narrow products (a sparse conv's
  // 192 rows at a coarse scale) still spread over the threads.
  const int64_t want = 4 * static_cast<int64_t>(ThreadPool::get().size());
  int64_t MB = 256, NB = 256;
  const auto blocks = [&] { return ((M + MB - 1) / MB) * ((N + NB - 1) / NB); };
  while (blocks() < want && (MB > 64 || NB > 64)) {
    if (MB > 64)
      MB /= 2;
    else
      NB /= 2;
  }
  const int64_t mblocks = (M + MB - 1) / MB, nblocks = (N + NB - 1) / NB;
  ThreadPool::get().parallel_for(mblocks * nblocks, [&](int64_t t, int) {
    const int64_t i0 = (t / nblocks) * MB, j0 = (t % nblocks) * NB;
    const int64_t mb = std::min(MB, M - i0), nb = std::min(NB, N - j0);
    // Per-thread buffers that outlive the call (pool threads are long-lived): 256 KiB
    // vectors made per call were each mapped, zeroed and page-faulted by glibc.
    thread_local std::vector<T> pk, acc;
    if (pk.size() < static_cast<size_t>(KC * nb)) pk.resize(static_cast<size_t>(KC * NB));
    T* c = C + i0 * p.ldc + j0;
    int64_t ldc = p.ldc;
    if (!direct) {
      if (acc.size() < static_cast<size_t>(mb * nb)) acc.resize(static_cast<size_t>(MB * NB));
      c = acc.data();
      ldc = nb;
    }
    if (K == 0)
      for (int64_t i = 0; i < mb; i++) std::fill(c + i * ldc, c + i * ldc + nb, T(0));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      pack_b(B, p.ldb, p.trans_b, k0, kc, j0, nb, pk.data());
      const T* s = pk.data();
      const T* a = A + i0 * ars + k0 * acs;
      for (int64_t j = 0; j < nb;) {
        const int64_t w = strip_width<T>(j, nb);
        strip_product<T>(mb, kc, a, ars, acs, s, w, c + j, ldc, k0 > 0);
        s += kc * w;
        j += w;
      }
    }
    const T* bias = p.bias ? static_cast<const T*>(p.bias) + j0 : nullptr;
    if (direct) {
      if (bias) add_row_bias(C + i0 * p.ldc + j0, p.ldc, mb, nb, bias);
      return;
    }
    for (int64_t i = 0; i < mb; i++) {
      T* out = C + (i0 + i) * p.ldc + j0;
      const T* a = c + i * nb;
      if (beta == T(0)) {
        for (int64_t j = 0; j < nb; j++) out[j] = alpha * a[j];
      } else {
        for (int64_t j = 0; j < nb; j++) out[j] = alpha * a[j] + beta * out[j];
      }
      if (bias) add_row_bias(out, 0, 1, nb, bias);
    }
  });
}

template void gemm_builtin<float>(const GemmParams&);
template void gemm_builtin<double>(const GemmParams&);

}  // namespace cloze
