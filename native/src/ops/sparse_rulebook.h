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

}  // namespace cloze
