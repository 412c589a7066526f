// Gather-free ("direct") sparse convolution products for narrow channels.
//
// The sparse im2col (sparse_conv.cc) writes a gathered tile of K2·C values per
// output row and reads it back in a GEMM. At C = 32 (SparK's finest scale) the
// tile is 14 MiB per call against 0.2 GFLOP of products, and the gather cost
// as much as the GEMM. Here the microkernel reads each neighbour row where it
// lies: for a block of output rows and each offset o, the rows' neighbours
// src[table[r, o]] are the A rows of a [rows × C]·[C × Cout] product, summed
// over o in registers. A missing neighbour adds nothing: in a vector block it
// reads a row of zeros, and an offset no row of the block has (and any missing
// one in the scalar tails) is skipped. With finite values that is the im2col's
// sum; a non-finite weight reaches fewer outputs than the im2col's 0·w would
// spread it to (the loss still turns NaN, which stops a run).
#pragma once
#include <cstddef>
#include <cstdint>

namespace cloze {

// out[r, :] = (bias ? bias : 0) + Σ_o Σ_c src[table[r, o], c] · Wm[o·C + c, :]
// for r in [0, R); src [*, C], table [R, K2] (entries −1 or row indices),
// Wm [K2·C, Cout] row-major, out [R, Cout]. Rows are independent, so the
// result does not depend on the thread count.
template <typename T>
void direct_gather_product(const T* src, int64_t C, const int32_t* table, int64_t R, int64_t K2, const T* Wm,
                           int64_t Cout, const T* bias, T* out);

// dWr[o·Cin + c, co] = Σ_r x[nbr[r, o], c] · dy[r, co] over the rows whose neighbour at o exists,
// summed in row chunks (sparse_conv_direct.cc: r ascending within a chunk, the chunks' partials added
// in order); dWr [K2·Cin, Cout] is overwritten.
template <typename T>
void direct_weight_grad(const T* x, int64_t Cin, const int32_t* nbr, int64_t M, int64_t K2, const T* dy,
                        int64_t Cout, T* dwr);

// Whether the direct products beat the sparse im2col for C channels read
// through a table of table_rows rows whose entries index other_rows rows
// (measured: see sparse_conv_direct.cc).
bool direct_sparse_conv_pays(int64_t C, int64_t table_rows, int64_t other_rows);

}  // namespace cloze
