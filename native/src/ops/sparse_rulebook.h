// Sites of a sparse feature map, the rulebook that connects two of them, and
// the conversions between sparse rows and dense NCHW maps.
//
// A sparse map at one scale is rows x [N, C] (channels last, one row per
// active site) with
//   coords int32 [N, 3]: the sites (b, y, x), in row-major order of (b, y, x);
//   grid   int32 [B, H, W]: the row of each active site, −1 elsewhere.
// The grid is a direct-address hash of the active coordinates: one slot per
// possible site, so a lookup is one load, O(1) and collision-free, for
// B·H·W·4 bytes, a fraction of one C-channel activation of the same map.
//
// The neighbour table nbr int32 [M, k²] is the rulebook in transposed form:
//   nbr[m, o] = row of the input site (b, yo·s + dy − p, xo·s + dx − p), or −1,
// for output site m = (b, yo, xo) and offset o = dy·k + dx. The classic
// rulebook's pair list of offset o, {(in, out)}, is exactly
//   {(nbr[m, o], m) : nbr[m, o] ≥ 0},
// so the two carry the same information. Stored per output row, a conv can
// gather all of one output's inputs into one contiguous tile row and write
// every output row once: no scatter, no atomics, and a fixed summation order.
//
// The inverse table inv int32 [N, k²] (inv[i, o] = m where nbr[m, o] = i, else
// −1) drives every backward: the gradient of input row i gathers the output
// rows that read it, again with no scatter. An input site and an offset fix
// the output site, so each (i, o) has at most one m. For a submanifold conv
// (stride 1, odd k, p = (k−1)/2, outputs = inputs), offset o's pairs are
// offset k²−1−o's reversed, so inv[i, o] = nbr[i, k²−1−o]; the general build
// below costs O(M·k²) integer moves, negligible next to the GEMMs.
#pragma once
#include <cstdint>

namespace cloze {

// mask uint8 [B, H, W], 1 = active (0 or 1 only: checked by the binding).
int64_t count_active_cpu(const uint8_t* mask, int64_t n);

struct ActiveSitesParams {
  int64_t B = 0, H = 0, W = 0;
  const uint8_t* mask = nullptr;  // [B, H, W]
  int32_t* grid = nullptr;        // [B, H, W], written in full
  int32_t* coords = nullptr;      // [N, 3], N = count_active_cpu(mask)
  const int64_t* line_start = nullptr;  // cuda only: [B·H + 1] from active_sites_count_cuda
};
void active_sites_cpu(const ActiveSitesParams& p);

struct NeighbourParams {
  int64_t B = 0, H = 0, W = 0;    // the input grid
  int64_t M = 0;                  // output sites
  int64_t kernel = 1, stride = 1, padding = 0;
  const int32_t* grid = nullptr;        // [B, H, W]
  const int32_t* out_coords = nullptr;  // [M, 3], inside the output grid
  int32_t* nbr = nullptr;               // [M, k²], written in full
};
void neighbour_table_cpu(const NeighbourParams& p);

// Fills inv [N, K2] from nbr [M, K2] (entries in [−1, N)). Returns −1, or the
// flat index m·K2 + o of an entry that repeats an (input row, offset) pair
// already taken by an earlier output row: such a table came from no grid.
int64_t inverse_table_cpu(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, int32_t* inv);

// Sites must be inside [B, H, W] and distinct (checked by the binding).
template <typename T>
struct SiteMapParams {
  int64_t N = 0, C = 0, B = 0, H = 0, W = 0;
  const int32_t* coords = nullptr;  // [N, 3]
  const T* rows = nullptr;          // [N, C]        (toDense input)
  const T* fill = nullptr;          // [C] or null   (toDense: the value of inactive sites; null → 0)
  const T* dense = nullptr;         // [B, C, H, W]  (toSparse input, fill-gradient input)
  T* out = nullptr;                 // toDense: [B, C, H, W]; toSparse: [N, C]; fill grad: [C]
};
template <typename T> void to_dense_cpu(const SiteMapParams<T>& p);
template <typename T> void to_sparse_cpu(const SiteMapParams<T>& p);
// out[c] = Σ over inactive sites of dense[b, c, y, x] (the gradient of toDense's fill).
template <typename T> void fill_grad_cpu(const SiteMapParams<T>& p);

// CUDA (native/src/cuda/sparse_rulebook.cu); every pointer is device memory.
// The functions that return a count or a flat index end with one small
// device→host copy, so they wait for the stream: the bindings need the answer
// on the host to size an output or to throw the CPU's error message.
//
// Counts the active sites of each image line (b, y) and prefix-sums the
// counts: line_start [B·H + 2] (scratch) gets line_start[l] = the first row of
// line l, line_start[B·H] = N. Returns N; *first_bad = the first flat index
// of a mask value above 1, or −1.
int64_t active_sites_count_cuda(const uint8_t* mask, int64_t B, int64_t H, int64_t W, int64_t* line_start,
                                int64_t* first_bad, const char* op);
// Writes grid and coords (p.line_start from active_sites_count_cuda): the
// CPU's rows in the CPU's order.
void active_sites_cuda(const ActiveSitesParams& p, const char* op);
void neighbour_table_cuda(const NeighbourParams& p, const char* op);
// The first flat index j with v[j] < lo or v[j] >= hi, or −1.
int64_t first_outside_cuda(const int32_t* v, int64_t n, int64_t lo, int64_t hi, const char* op);
// The first row of coords [n, 3] that lies outside [B, H, W] or repeats the
// site of an earlier row, or −1 (the row want_sites reports on the CPU).
int64_t first_bad_site_cuda(const int32_t* coords, int64_t n, int64_t B, int64_t H, int64_t W, const char* op);
// As inverse_table_cpu (entries of nbr outside [0, N) are skipped; the
// binding has checked them). The lowest output row wins a repeated pair, and
// the returned index is the CPU's.
int64_t inverse_table_cuda(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, int32_t* inv, const char* op);
template <typename T> void to_dense_cuda(const SiteMapParams<T>& p);
template <typename T> void to_sparse_cuda(const SiteMapParams<T>& p);
// Sums in fp32 over a fixed order (one block per channel).
template <typename T> void fill_grad_cuda(const SiteMapParams<T>& p);

}  // namespace cloze
