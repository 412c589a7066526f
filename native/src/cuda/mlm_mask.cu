// MLM token corruption on cuda (ops/mlm_mask.h), bit for bit the CPU's
// result: the same Philox draws per token (core/philox.h is host+device),
// the same float thresholds, and the CPU's in-order compaction of selected
// tokens (row_offset[b] + the rank among the row's selected tokens) done by a
// block-wide exclusive scan per row.
#include <climits>

#include "../ops/mlm_mask.h"
#include "common.cuh"

namespace cloze {
namespace cuda {
namespace {

constexpr const char* kOp = "mlmMask";
constexpr int kScanThreads = 256;  // 8 warps
constexpr int kWarps = kScanThreads / 32;

unsigned row_blocks(int64_t B) { return static_cast<unsigned>(B < 65535 ? B : 65535); }

__global__ void init_failure_kernel(unsigned long long* failure) { *failure = static_cast<unsigned long long>(LLONG_MAX); }

// One block per row: counts[b] = selected tokens of row b (into scratch[b + 1]),
// and the smallest failure key over the row into *failure.
__global__ void check_count_kernel(int64_t B, int64_t L, int64_t V, const int32_t* ids, const uint8_t* select,
                                   const int32_t* group, int64_t* counts, unsigned long long* failure) {
  __shared__ int cnt;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    if (threadIdx.x == 0) cnt = 0;
    __syncthreads();
    int local = 0;
    long long first = LLONG_MAX;
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
      const int64_t i = b * L + l;
      const int32_t id = ids[i];
      const uint8_t s = select[i];
      local += s != 0;
      long long key = LLONG_MAX;
      if (id < 0 || id >= V)
        key = 3 * i;
      else if (s > 1)
        key = 3 * i + 1;
      else if (group && s && (group[i] < 0 || group[i] >= L))
        key = 3 * i + 2;
      if (key < first) first = key;
    }
    if (first != LLONG_MAX) atomicMin(failure, static_cast<unsigned long long>(first));
    atomicAdd(&cnt, local);  // integer sums: the order does not matter
    __syncthreads();
    if (threadIdx.x == 0) counts[b] = cnt;
    __syncthreads();  // cnt is reset for the next row only after it was read
  }
}

// scratch[0..B] from per-row counts in scratch[1..B] to prefix offsets. One
// thread: B is a batch size, and this keeps the order obvious.
__global__ void prefix_kernel(int64_t* scratch, int64_t B) {
  scratch[0] = 0;
  for (int64_t b = 0; b < B; b++) scratch[b + 1] += scratch[b];
}

__global__ void mask_kernel(MlmMaskParams p, float t_mask, float t_rand, uint64_t range) {
  __shared__ int warp_tot[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t L = p.L;
  for (int64_t b = blockIdx.x; b < p.B; b += gridDim.x) {
    const int64_t base = b * L;
    int64_t m0 = p.row_offset[b];  // output slot of the tile's first selected token
    for (int64_t l0 = 0; l0 < L; l0 += kScanThreads) {
      const int64_t l = l0 + threadIdx.x;
      const bool in = l < L;
      const bool sel = in && p.select[base + l] != 0;
      const unsigned ballot = __ballot_sync(0xffffffffu, sel);
      if (lane == 0) warp_tot[warp] = __popc(ballot);
      __syncthreads();
      int before = 0, tile = 0;
#pragma unroll
      for (int w = 0; w < kWarps; w++) {
        before += w < warp ? warp_tot[w] : 0;
        tile += warp_tot[w];
      }
      __syncthreads();  // warp_tot is rewritten by the next tile
      if (in) {
        const int32_t id = p.ids[base + l];
        if (!sel) {
          p.out_ids[base + l] = id;
        } else {
          const int64_t m = m0 + before + __popc(ballot & ((1u << lane) - 1u));
          const int32_t v = mlm_replacement(p, base, l, id, t_mask, t_rand, range);
          p.out_ids[base + l] = v;
          p.rows[m] = static_cast<int32_t>(base + l);
          p.targets[m] = id;
        }
      }
      m0 += tile;
    }
  }
}

}  // namespace
}  // namespace cuda

MlmCheck mlm_check_count_cuda(int64_t B, int64_t L, int64_t V, const int32_t* ids, const uint8_t* select,
                              const int32_t* group, int64_t* scratch) {
  using namespace cuda;
  // scratch: [0] 0, [1..B] counts → offsets, [B + 1] failure key.
  unsigned long long* failure = reinterpret_cast<unsigned long long*>(scratch + B + 1);
  memset_zero(scratch, sizeof(int64_t) * static_cast<size_t>(B + 1), kOp);
  CLOZE_LAUNCH(kOp, init_failure_kernel, 1, 1, 0, failure);
  if (B > 0)
    CLOZE_LAUNCH(kOp, check_count_kernel, row_blocks(B), kScanThreads, 0, B, L, V, ids, select, group, scratch + 1,
                 failure);
  CLOZE_LAUNCH(kOp, prefix_kernel, 1, 1, 0, scratch, B);
  int64_t back[2];
  copy(back, false, scratch + B, true, sizeof back, kOp);  // the op's host sync: M sizes the outputs
  MlmCheck c;
  c.selected = back[0];
  c.failure = back[1];
  return c;
}

void mlm_mask_cuda(const MlmMaskParams& p) {
  using namespace cuda;
  if (p.B == 0 || p.L == 0) return;
  const float t_mask = static_cast<float>(p.mask_prob);
  const float t_rand = static_cast<float>(p.mask_prob + p.random_prob);
  const uint64_t range = static_cast<uint64_t>(static_cast<int64_t>(p.random_hi) - p.random_lo);
  CLOZE_LAUNCH(kOp, mask_kernel, row_blocks(p.B), kScanThreads, 0, p, t_mask, t_rand, range);
}

}  // namespace cloze
