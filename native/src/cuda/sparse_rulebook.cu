// Sites, rulebook and conversions on the device (see ops/sparse_rulebook.h).
//
// Row order is the CPU's by construction: a site's row is the number of
// active sites before it in row-major (b, y, x) order, computed as a prefix
// sum of per-line counts plus the site's rank within its line (a warp ballot).
// No atomics decide a row, so the result never depends on scheduling.
//
// Validation kernels record the first offending index with atomicMin on a
// 64-bit slot preset to all ones: the minimum is the same whatever order the
// threads run in, so the binding reports the element the CPU loop would.
#include <climits>

#include "../ops/sparse_rulebook.h"
#include "sparse_util.cuh"

namespace cloze {
namespace cuda {

namespace {

using ull = unsigned long long;
constexpr ull kNone = ~0ull;

// Presets a first-index slot to "none" (all bits set).
void preset_none(void* p, size_t bytes, const char* op) {
  check(cudaMemsetAsync(p, 0xff, bytes, stream()), op, "cudaMemsetAsync");
}

// Reads a first-index slot back (waits for the stream): −1 for none.
int64_t read_first(const ull* slot, const char* op) {
  ull v = kNone;
  copy(&v, false, slot, true, sizeof v, op);
  return v == kNone ? -1 : static_cast<int64_t>(v);
}

__device__ __forceinline__ int64_t warp_sum_i64(int64_t v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per image line: count[l + 1] = active sites of line l (the scan
// turns these into starts in place); values above 1 flag their flat index.
__global__ void count_lines_kernel(const uint8_t* mask, int64_t lines, int64_t W, int64_t* count, ull* bad) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t l = warp; l < lines; l += warps) {  // warp-uniform: the shuffle below sees all 32 lanes
    const uint8_t* m = mask + l * W;
    int64_t k = 0;
    for (int64_t x = lane; x < W; x += 32) {
      const uint8_t v = m[x];
      k += v != 0;
      if (v > 1) atomicMin(bad, static_cast<ull>(l * W + x));
    }
    k = warp_sum_i64(k);
    if (lane == 0) count[l + 1] = k;
  }
}

constexpr int kScanThreads = 1024;

// One block: start[1..lines] holds the line counts on entry and the inclusive
// prefix sums on exit; start[0] = 0. Thread t owns lines [b, e), a contiguous
// range, so no two threads touch the same entry.
__global__ void scan_lines_kernel(int64_t* start, int64_t lines) {
  __shared__ int64_t part[kScanThreads];
  const int t = threadIdx.x;
  const int64_t per = (lines + kScanThreads - 1) / kScanThreads;
  const int64_t b = t * per < lines ? t * per : lines;
  const int64_t e = b + per < lines ? b + per : lines;
  int64_t s = 0;
  for (int64_t l = b; l < e; l++) s += start[l + 1];
  part[t] = s;
  __syncthreads();
  if (t == 0) {
    // 1024 serial adds: negligible next to the passes over the mask.
    int64_t run = 0;
    for (int k = 0; k < kScanThreads; k++) {
      const int64_t v = part[k];
      part[k] = run;
      run += v;
    }
    start[0] = 0;
  }
  __syncthreads();
  int64_t run = part[t];
  for (int64_t l = b; l < e; l++) {
    run += start[l + 1];
    start[l + 1] = run;
  }
}

// One warp per line, 32 columns per step: an active site's row is the line's
// start plus the active lanes below it in this step plus the earlier steps.
__global__ void number_sites_kernel(const uint8_t* mask, int64_t lines, int64_t H, int64_t W, const int64_t* start,
                                    int32_t* grid, int32_t* coords) {
  const int lane = threadIdx.x & 31;
  const unsigned below = (1u << lane) - 1u;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t l = warp; l < lines; l += warps) {
    int64_t row = start[l];
    const int32_t b = static_cast<int32_t>(l / H), y = static_cast<int32_t>(l % H);
    for (int64_t x0 = 0; x0 < W; x0 += 32) {  // warp-uniform bounds: every lane reaches the ballot
      const int64_t x = x0 + lane;
      const bool on = x < W && mask[l * W + x] != 0;
      const unsigned ballot = __ballot_sync(0xffffffffu, on);
      if (x < W) {
        if (on) {
          const int64_t r = row + __popc(ballot & below);
          grid[l * W + x] = static_cast<int32_t>(r);
          coords[r * 3] = b;
          coords[r * 3 + 1] = y;
          coords[r * 3 + 2] = static_cast<int32_t>(x);
        } else {
          grid[l * W + x] = -1;
        }
      }
      row += __popc(ballot);
    }
  }
}

__global__ void neighbour_kernel(NeighbourParams p) {
  const int64_t k = p.kernel, K2 = k * k;
  CLOZE_GRID_STRIDE(j, p.M * K2) {
    const int64_t m = j / K2, o = j - m * K2;
    const int32_t* c = p.out_coords + m * 3;
    const int64_t b = c[0];
    const int64_t y = c[1] * p.stride - p.padding + o / k;
    const int64_t x = c[2] * p.stride - p.padding + o % k;
    p.nbr[j] = (y >= 0 && y < p.H && x >= 0 && x < p.W) ? p.grid[(b * p.H + y) * p.W + x] : -1;
  }
}

__global__ void first_outside_kernel(const int32_t* v, int64_t n, int64_t lo, int64_t hi, ull* bad) {
  CLOZE_GRID_STRIDE(j, n) {
    const int64_t x = v[j];
    if (x < lo || x >= hi) atomicMin(bad, static_cast<ull>(j));
  }
}

// seen[site] = the lowest row naming the site; rows outside the map are bad.
__global__ void first_rows_kernel(const int32_t* coords, int64_t n, int64_t B, int64_t H, int64_t W, ull* seen, ull* bad) {
  CLOZE_GRID_STRIDE(i, n) {
    const int64_t b = coords[3 * i], y = coords[3 * i + 1], x = coords[3 * i + 2];
    if (b < 0 || b >= B || y < 0 || y >= H || x < 0 || x >= W)
      atomicMin(bad, static_cast<ull>(i));
    else
      atomicMin(seen + (b * H + y) * W + x, static_cast<ull>(i));
  }
}

// A row that is not the lowest for its site repeats an earlier one.
__global__ void repeat_rows_kernel(const int32_t* coords, int64_t n, int64_t B, int64_t H, int64_t W, const ull* seen,
                                   ull* bad) {
  CLOZE_GRID_STRIDE(i, n) {
    const int64_t b = coords[3 * i], y = coords[3 * i + 1], x = coords[3 * i + 2];
    if (b < 0 || b >= B || y < 0 || y >= H || x < 0 || x >= W) continue;
    if (seen[(b * H + y) * W + x] != static_cast<ull>(i)) atomicMin(bad, static_cast<ull>(i));
  }
}

// inv preset to all ones (−1 as int32, UINT_MAX unsigned): the lowest m wins.
__global__ void inverse_min_kernel(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, int32_t* inv) {
  CLOZE_GRID_STRIDE(j, M * K2) {
    const int64_t i = nbr[j];
    if (i < 0 || i >= N) continue;
    const int64_t m = j / K2, o = j - m * K2;
    atomicMin(reinterpret_cast<unsigned*>(inv + i * K2 + o), static_cast<unsigned>(m));
  }
}

// An entry whose slot went to a lower row repeats an (input row, offset)
// pair. The CPU scans each offset's column in row order and stops at its
// first repeat, then reports the lowest flat index over the columns: that is
// the lowest flat index over all repeats, which atomicMin finds.
__global__ void inverse_repeat_kernel(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, const int32_t* inv, ull* bad) {
  CLOZE_GRID_STRIDE(j, M * K2) {
    const int64_t i = nbr[j];
    if (i < 0 || i >= N) continue;
    const int64_t m = j / K2, o = j - m * K2;
    if (static_cast<int64_t>(inv[i * K2 + o]) != m) atomicMin(bad, static_cast<ull>(j));
  }
}

template <typename T>
__global__ void dense_fill_kernel(T* out, int64_t n, int64_t C, int64_t HW, const T* fill) {
  CLOZE_GRID_STRIDE(j, n) st<T>(out, j, fill ? ld<T>(fill, (j / HW) % C) : 0.f);
}

// One thread per (row, channel): reads of rows are coalesced.
template <typename T>
__global__ void dense_scatter_kernel(SiteMapParams<T> p) {
  const int64_t HW = p.H * p.W;
  CLOZE_GRID_STRIDE(j, p.N * p.C) {
    const int64_t n = j / p.C, c = j - n * p.C;
    const int32_t* s = p.coords + n * 3;
    st<T>(p.out, (s[0] * p.C + c) * HW + s[1] * p.W + s[2], ld<T>(p.rows, j));
  }
}

template <typename T>
__global__ void sparse_gather_kernel(SiteMapParams<T> p) {
  const int64_t HW = p.H * p.W;
  CLOZE_GRID_STRIDE(j, p.N * p.C) {
    const int64_t n = j / p.C, c = j - n * p.C;
    const int32_t* s = p.coords + n * 3;
    st<T>(p.out, j, ld<T>(p.dense, (s[0] * p.C + c) * HW + s[1] * p.W + s[2]));
  }
}

__global__ void mark_active_kernel(const int32_t* coords, int64_t n, int64_t H, int64_t W, uint8_t* active) {
  CLOZE_GRID_STRIDE(i, n) active[(coords[3 * i] * H + coords[3 * i + 1]) * W + coords[3 * i + 2]] = 1;
}

// One block per channel (grid-stride over channels); each thread sums a fixed
// stride of sites, then a fixed tree across the block.
template <typename T>
__global__ void fill_grad_kernel(const T* dense, const uint8_t* active, int64_t B, int64_t C, int64_t HW, T* out) {
  __shared__ float scratch[32];
  const int64_t S = B * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {  // block-uniform: block_sum's barriers are safe
    float acc = 0.f;
    for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
      if (active[s]) continue;
      const int64_t b = s / HW, q = s - b * HW;
      acc += ld<T>(dense, (b * C + c) * HW + q);
    }
    const float total = block_sum(acc, scratch);
    if (threadIdx.x == 0) st<T>(out, c, total);
  }
}

}  // namespace

}  // namespace cuda

using cuda::blocks_for;
using cuda::kThreads;

int64_t active_sites_count_cuda(const uint8_t* mask, int64_t B, int64_t H, int64_t W, int64_t* line_start,
                                int64_t* first_bad, const char* op) {
  const int64_t lines = B * H;
  // line_start[lines + 1] is the bad-value slot, next to the total: one copy reads both.
  auto* bad = reinterpret_cast<cuda::ull*>(line_start + lines + 1);
  cuda::preset_none(bad, sizeof(cuda::ull), op);
  CLOZE_LAUNCH(op, cuda::count_lines_kernel, blocks_for(lines * 32), kThreads, 0, mask, lines, W, line_start, bad);
  CLOZE_LAUNCH(op, cuda::scan_lines_kernel, 1, cuda::kScanThreads, 0, line_start, lines);
  int64_t host[2] = {0, 0};
  cuda::copy(host, false, line_start + lines, true, sizeof host, op);
  *first_bad = static_cast<cuda::ull>(host[1]) == cuda::kNone ? -1 : host[1];
  return host[0];
}

void active_sites_cuda(const ActiveSitesParams& p, const char* op) {
  const int64_t lines = p.B * p.H;
  if (lines == 0 || p.W == 0) return;
  CLOZE_LAUNCH(op, cuda::number_sites_kernel, blocks_for(lines * 32), kThreads, 0, p.mask, lines, p.H, p.W,
               p.line_start, p.grid, p.coords);
}

void neighbour_table_cuda(const NeighbourParams& p, const char* op) {
  const int64_t n = p.M * p.kernel * p.kernel;
  if (n == 0) return;
  CLOZE_LAUNCH(op, cuda::neighbour_kernel, blocks_for(n), kThreads, 0, p);
}

int64_t first_outside_cuda(const int32_t* v, int64_t n, int64_t lo, int64_t hi, const char* op) {
  if (n == 0) return -1;
  cuda::Scratch slot(sizeof(cuda::ull), op);
  cuda::preset_none(slot.p, sizeof(cuda::ull), op);
  CLOZE_LAUNCH(op, cuda::first_outside_kernel, blocks_for(n), kThreads, 0, v, n, lo, hi, slot.as<cuda::ull>());
  return cuda::read_first(slot.as<cuda::ull>(), op);
}

int64_t first_bad_site_cuda(const int32_t* coords, int64_t n, int64_t B, int64_t H, int64_t W, const char* op) {
  if (n == 0) return -1;
  const int64_t sites = B * H * W;
  // [0]: the bad slot; [1, 1 + sites): the lowest row per site.
  cuda::Scratch buf(sizeof(cuda::ull) * static_cast<size_t>(1 + sites), op);
  cuda::ull* bad = buf.as<cuda::ull>();
  cuda::preset_none(bad, sizeof(cuda::ull) * static_cast<size_t>(1 + sites), op);
  CLOZE_LAUNCH(op, cuda::first_rows_kernel, blocks_for(n), kThreads, 0, coords, n, B, H, W, bad + 1, bad);
  CLOZE_LAUNCH(op, cuda::repeat_rows_kernel, blocks_for(n), kThreads, 0, coords, n, B, H, W, bad + 1, bad);
  return cuda::read_first(bad, op);
}

int64_t inverse_table_cuda(const int32_t* nbr, int64_t M, int64_t K2, int64_t N, int32_t* inv, const char* op) {
  if (N * K2 > 0) cuda::preset_none(inv, sizeof(int32_t) * static_cast<size_t>(N * K2), op);
  if (M * K2 == 0) return -1;
  CLOZE_LAUNCH(op, cuda::inverse_min_kernel, blocks_for(M * K2), kThreads, 0, nbr, M, K2, N, inv);
  cuda::Scratch slot(sizeof(cuda::ull), op);
  cuda::preset_none(slot.p, sizeof(cuda::ull), op);
  CLOZE_LAUNCH(op, cuda::inverse_repeat_kernel, blocks_for(M * K2), kThreads, 0, nbr, M, K2, N, inv,
               slot.as<cuda::ull>());
  return cuda::read_first(slot.as<cuda::ull>(), op);
}

template <typename T>
void to_dense_cuda(const SiteMapParams<T>& p) {
  const int64_t HW = p.H * p.W, n = p.B * p.C * HW;
  if (n == 0) return;
  CLOZE_LAUNCH("toDense", cuda::dense_fill_kernel<T>, blocks_for(n), kThreads, 0, p.out, n, p.C, HW, p.fill);
  if (p.N * p.C > 0) CLOZE_LAUNCH("toDense", cuda::dense_scatter_kernel<T>, blocks_for(p.N * p.C), kThreads, 0, p);
}

template <typename T>
void to_sparse_cuda(const SiteMapParams<T>& p) {
  if (p.N * p.C == 0) return;
  CLOZE_LAUNCH("toSparse", cuda::sparse_gather_kernel<T>, blocks_for(p.N * p.C), kThreads, 0, p);
}

template <typename T>
void fill_grad_cuda(const SiteMapParams<T>& p) {
  const char* op = "toDenseFillGrad";
  if (p.C == 0) return;
  const int64_t HW = p.H * p.W, S = p.B * HW;
  cuda::Scratch active(static_cast<size_t>(S), op);
  cuda::memset_zero(active.p, static_cast<size_t>(S), op);
  if (p.N > 0)
    CLOZE_LAUNCH(op, cuda::mark_active_kernel, blocks_for(p.N), kThreads, 0, p.coords, p.N, p.H, p.W,
                 active.as<uint8_t>());
  const unsigned grid = static_cast<unsigned>(p.C < 65535 ? p.C : 65535);
  CLOZE_LAUNCH(op, cuda::fill_grad_kernel<T>, grid, kThreads, 0, p.dense, active.as<uint8_t>(), p.B, p.C, HW, p.out);
}

#define CLOZE_INST(T)                                          \
  template void to_dense_cuda<T>(const SiteMapParams<T>&);     \
  template void to_sparse_cuda<T>(const SiteMapParams<T>&);    \
  template void fill_grad_cuda<T>(const SiteMapParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
