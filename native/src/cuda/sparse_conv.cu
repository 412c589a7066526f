// Sparse convolution on the device (see ops/sparse_conv.h): the CPU's sparse
// im2col. A tile of output rows gathers its k² input rows per output into
// cols [rows, K2·C] (zeros for −1), and one gemm_cuda<T> multiplies the tile
// by the weight reordered to [K2·C, Cout]. dX runs the same machinery over
// the inverse table, so each input row gathers the outputs that read it: no
// scatter, no atomics. dW = Σ_tiles dY_tileᵀ·cols_tile, tiles in order,
// accumulated in fp32.
#include <type_traits>

#include "../core/blas.h"
#include "../ops/sparse_conv.h"
#include "sparse_util.cuh"

namespace cloze {
namespace cuda {

namespace {

// Bytes of one gathered tile. One tile covers SparK's maps up to about
// 100k rows at 576 columns (bf16): usually the whole map is one GEMM.
constexpr size_t kTileBytes = size_t(128) << 20;

// Rows per tile: a multiple of 128, so that every tile's first row of y (or
// dY) sits at a multiple of 128·Cout elements, 256-byte aligned for bf16 as
// for float: cuBLASLt's heuristic assumes aligned pointers.
int64_t tile_rows(int64_t width, size_t elt) {
  const int64_t w = width > 1 ? width : 1;
  const int64_t r = static_cast<int64_t>(kTileBytes / (static_cast<size_t>(w) * elt)) / 128 * 128;
  return r > 128 ? r : 128;
}

// cols[r, o·C + c] = src[table[r0 + r, o], c], or 0 where the entry is −1.
template <typename T>
__global__ void gather_tile_kernel(const T* src, int64_t C, const int32_t* table, int64_t K2, int64_t r0, int64_t rows,
                                   T* cols) {
  const int64_t KC = K2 * C;
  CLOZE_GRID_STRIDE(j, rows * KC) {
    const int64_t r = j / KC, q = j - r * KC, o = q / C, c = q - o * C;
    const int64_t i = table[(r0 + r) * K2 + o];
    st<T>(cols, j, i >= 0 ? ld<T>(src, i * C + c) : 0.f);
  }
}

template <typename T>
__global__ void bias_rows_kernel(T* out, int64_t R, int64_t C, const T* bias) {
  CLOZE_GRID_STRIDE(j, R * C) st<T>(out, j, ld<T>(bias, j % C));
}

// wr[(o·Cin + ci)·Cout + co] = w[(co·Cin + ci)·K2 + o], one thread per wr element.
template <typename T>
__global__ void weight_for_forward_kernel(const T* w, int64_t Cout, int64_t Cin, int64_t K2, T* wr) {
  CLOZE_GRID_STRIDE(j, K2 * Cin * Cout) {
    const int64_t co = j % Cout, t = j / Cout, ci = t % Cin, o = t / Cin;
    st<T>(wr, j, ld<T>(w, (co * Cin + ci) * K2 + o));
  }
}

// wt[(o·Cout + co)·Cin + ci] = w[(co·Cin + ci)·K2 + o], one thread per wt element.
template <typename T>
__global__ void weight_for_dx_kernel(const T* w, int64_t Cout, int64_t Cin, int64_t K2, T* wt) {
  CLOZE_GRID_STRIDE(j, K2 * Cout * Cin) {
    const int64_t ci = j % Cin, t = j / Cin, co = t % Cout, o = t / Cout;
    st<T>(wt, j, ld<T>(w, (co * Cin + ci) * K2 + o));
  }
}

// dw[(co·Cin + ci)·K2 + o] = acc[co·K2·Cin + o·Cin + ci], one thread per dw element.
template <typename T>
__global__ void weight_grad_kernel(const float* acc, int64_t Cout, int64_t Cin, int64_t K2, T* dw) {
  CLOZE_GRID_STRIDE(j, Cout * Cin * K2) {
    const int64_t o = j % K2, t = j / K2, ci = t % Cin, co = t / Cin;
    st<T>(dw, j, acc[co * K2 * Cin + o * Cin + ci]);
  }
}

// acc (fp32) = part on the first tile, += part after.
template <typename T>
__global__ void accumulate_kernel(float* acc, const T* part, int64_t n, bool first) {
  CLOZE_GRID_STRIDE(j, n) acc[j] = (first ? 0.f : acc[j]) + ld<T>(part, j);
}

// out [R, Cout] = bias + Σ_o src[table[r, o]]·Wm[o·C : (o+1)·C, :], Wm [K2·C, Cout].
template <typename T>
void gather_gemm(const T* src, int64_t C, const int32_t* table, int64_t R, int64_t K2, const T* Wm, int64_t Cout,
                 const T* bias, T* out, const char* op) {
  if (R == 0 || Cout == 0) return;
  const int64_t KC = K2 * C;
  if (bias) CLOZE_LAUNCH(op, bias_rows_kernel<T>, blocks_for(R * Cout), kThreads, 0, out, R, Cout, bias);
  if (KC == 0) {
    if (!bias) memset_zero(out, sizeof(T) * static_cast<size_t>(R * Cout), op);
    return;
  }
  const int64_t Mt = R < tile_rows(KC, sizeof(T)) ? R : tile_rows(KC, sizeof(T));
  // Reused by every tile: the stream runs tile t's GEMM before tile t+1's gather.
  Scratch cols(sizeof(T) * static_cast<size_t>(Mt * KC), op);
  for (int64_t r0 = 0; r0 < R; r0 += Mt) {
    const int64_t rows = R - r0 < Mt ? R - r0 : Mt;
    CLOZE_LAUNCH(op, gather_tile_kernel<T>, blocks_for(rows * KC), kThreads, 0, src, C, table, K2, r0, rows,
                 cols.as<T>());
    GemmParams g;
    g.M = rows;
    g.N = Cout;
    g.K = KC;
    g.A = cols.p;
    g.lda = KC;
    g.B = Wm;
    g.ldb = Cout;
    g.C = out + r0 * Cout;
    g.ldc = Cout;
    g.beta = bias ? 1.0 : 0.0;
    gemm_cuda<T>(g);
  }
}

// The depthwise rows: out[r, c] = bias[c] + Σ_o src[table[r, o], c]·w[c, o],
// offsets in order as on the CPU; one thread per (row, channel).
template <typename T>
__global__ void depthwise_rows_kernel(const T* src, const int32_t* table, int64_t R, int64_t K2, int64_t C, const T* w,
                                      const T* bias, T* out) {
  CLOZE_GRID_STRIDE(j, R * C) {
    const int64_t r = j / C, c = j - r * C;
    float acc = bias ? ld<T>(bias, c) : 0.f;
    const int32_t* t = table + r * K2;
    for (int64_t o = 0; o < K2; o++) {
      const int64_t i = t[o];
      if (i >= 0) acc += ld<T>(src, i * C + c) * ld<T>(w, c * K2 + o);
    }
    st<T>(out, j, acc);
  }
}

// Column j = o·C + c of the depthwise dW over output rows m: x[nbr[m, o], c]·dy[m, c].
template <typename T>
struct DepthwiseWeightTerm {
  const T* x;
  const T* dy;
  const int32_t* nbr;
  int64_t K2, C;
  __device__ float operator()(int64_t m, int64_t j) const {
    const int64_t o = j / C, c = j - o * C;
    const int64_t i = nbr[m * K2 + o];
    return i >= 0 ? ld<T>(x, i * C + c) * ld<T>(dy, m * C + c) : 0.f;
  }
};

template <typename T>
struct DepthwiseWeightStore {
  T* dw;
  int64_t K2, C;
  __device__ void operator()(int64_t j, float v) const {
    const int64_t o = j / C, c = j - o * C;
    st<T>(dw, c * K2 + o, v);
  }
};

template <typename T>
struct RowValue {
  const T* a;
  int64_t C;
  __device__ float operator()(int64_t r, int64_t c) const { return ld<T>(a, r * C + c); }
};

// db[c] = Σ_m dy[m, c]; zeros when M = 0.
template <typename T>
void bias_grad(const T* dy, int64_t M, int64_t C, T* db, const char* op) {
  column_sums(RowValue<T>{dy, C}, M, C, StoreTo<T>{db}, op);
}

}  // namespace

}  // namespace cuda

template <typename T>
void sparse_conv_forward_cuda(const SparseConvParams<T>& p) {
  const char* op = "sparseConv";
  const int64_t K2 = p.K2, Cin = p.Cin, Cout = p.Cout, n = K2 * Cin * Cout;
  if (p.M == 0 || Cout == 0) return;
  cuda::Scratch wr(sizeof(T) * static_cast<size_t>(n), op);
  if (n > 0)
    CLOZE_LAUNCH(op, cuda::weight_for_forward_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.w, Cout, Cin, K2,
                 wr.as<T>());
  cuda::gather_gemm<T>(p.x, Cin, p.nbr, p.M, K2, wr.as<T>(), Cout, p.b, p.y, op);
}

template <typename T>
void sparse_conv_backward_cuda(const SparseConvParams<T>& p) {
  const char* op = "sparseConvBackward";
  const int64_t K2 = p.K2, Cin = p.Cin, Cout = p.Cout, KC = K2 * Cin, M = p.M, n = K2 * Cin * Cout;
  if (p.dx && p.N * Cin > 0) {
    // dX[i] = Σ_o dY[inv[i, o]]·W_oᵀ: the forward machinery with wt [K2·Cout, Cin].
    cuda::Scratch wt(sizeof(T) * static_cast<size_t>(n), op);
    if (n > 0)
      CLOZE_LAUNCH(op, cuda::weight_for_dx_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, p.w, Cout, Cin, K2,
                   wt.as<T>());
    cuda::gather_gemm<T>(p.dy, Cout, p.inv, p.N, K2, wt.as<T>(), Cin, static_cast<const T*>(nullptr), p.dx, op);
  }
  if (p.dw && n > 0) {
    if (M == 0) {
      cuda::memset_zero(p.dw, sizeof(T) * static_cast<size_t>(n), op);
    } else {
      // acc = dWrᵀ [Cout, K2·Cin] in fp32. float GEMMs accumulate into it
      // through beta; bf16 GEMMs write a bf16 tile product that is added in
      // fp32, so several tiles round once per tile, not once per sum.
      constexpr bool kF32 = std::is_same_v<T, float>;
      cuda::Scratch acc(sizeof(float) * static_cast<size_t>(n), op);
      cuda::Scratch part(kF32 ? 1 : sizeof(T) * static_cast<size_t>(n), op);
      const int64_t Mt = M < cuda::tile_rows(KC, sizeof(T)) ? M : cuda::tile_rows(KC, sizeof(T));
      cuda::Scratch cols(sizeof(T) * static_cast<size_t>(Mt * KC), op);
      for (int64_t r0 = 0; r0 < M; r0 += Mt) {
        const int64_t rows = M - r0 < Mt ? M - r0 : Mt;
        CLOZE_LAUNCH(op, cuda::gather_tile_kernel<T>, cuda::blocks_for(rows * KC), cuda::kThreads, 0, p.x, Cin, p.nbr,
                     K2, r0, rows, cols.as<T>());
        GemmParams g;
        g.trans_a = true;
        g.M = Cout;
        g.N = KC;
        g.K = rows;
        g.A = p.dy + r0 * Cout;
        g.lda = Cout;
        g.B = cols.p;
        g.ldb = KC;
        g.C = kF32 ? acc.p : part.p;
        g.ldc = KC;
        g.beta = kF32 && r0 > 0 ? 1.0 : 0.0;
        gemm_cuda<T>(g);
        if (!kF32)
          CLOZE_LAUNCH(op, cuda::accumulate_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, acc.as<float>(),
                       part.as<T>(), n, r0 == 0);
      }
      CLOZE_LAUNCH(op, cuda::weight_grad_kernel<T>, cuda::blocks_for(n), cuda::kThreads, 0, acc.as<float>(), Cout, Cin,
                   K2, p.dw);
    }
  }
  if (p.db) cuda::bias_grad<T>(p.dy, M, Cout, p.db, op);
}

template <typename T>
void sparse_depthwise_forward_cuda(const SparseConvParams<T>& p) {
  const int64_t C = p.Cout;
  if (p.M * C == 0) return;
  CLOZE_LAUNCH("sparseDepthwiseConv", cuda::depthwise_rows_kernel<T>, cuda::blocks_for(p.M * C), cuda::kThreads, 0,
               p.x, p.nbr, p.M, p.K2, C, p.w, p.b, p.y);
}

template <typename T>
void sparse_depthwise_backward_cuda(const SparseConvParams<T>& p) {
  const char* op = "sparseDepthwiseConvBackward";
  const int64_t K2 = p.K2, C = p.Cout, M = p.M;
  if (p.dx && p.N * C > 0)
    CLOZE_LAUNCH(op, cuda::depthwise_rows_kernel<T>, cuda::blocks_for(p.N * C), cuda::kThreads, 0, p.dy, p.inv, p.N,
                 K2, C, p.w, static_cast<const T*>(nullptr), p.dx);
  if (p.dw)
    cuda::column_sums(cuda::DepthwiseWeightTerm<T>{p.x, p.dy, p.nbr, K2, C}, M, K2 * C,
                      cuda::DepthwiseWeightStore<T>{p.dw, K2, C}, op);
  if (p.db) cuda::bias_grad<T>(p.dy, M, C, p.db, op);
}

#define CLOZE_INST(T)                                                              \
  template void sparse_conv_forward_cuda<T>(const SparseConvParams<T>&);         \
  template void sparse_conv_backward_cuda<T>(const SparseConvParams<T>&);        \
  template void sparse_depthwise_forward_cuda<T>(const SparseConvParams<T>&);    \
  template void sparse_depthwise_backward_cuda<T>(const SparseConvParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
