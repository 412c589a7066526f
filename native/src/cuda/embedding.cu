// Embedding gather and its scatter-add backward on the device.
//
// The backward is deterministic and atomic-free, and plans its scatter on the
// device from the device ids: no copy of the ids to the host, no wait (issue
// 21: that copy synchronized every embedding call). A stable radix sort groups
// the positions by id, each group in increasing position order; scans turn the
// groups into chunks (below); then each distinct id's row of dtable is summed
// by one thread per column over its positions in increasing order — the CPU
// kernel's order, so float32 results match it bit for bit — except for groups
// longer than kSeqMax, which are summed in chunks. The host never learns how
// many groups or chunks there are: the kernels are launched for an upper bound
// and read the counts from device memory.
//
// Ids are checked by a deferred device check (the binding queues it) and
// reported later, so these kernels must stay in bounds whatever the ids: the
// gather writes zeros for a bad id and the backward skips it.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>

#include "../ops/embedding.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {

namespace {

template <typename T>
__global__ void embedding_forward_kernel(const T* table, const int32_t* ids, T* out, int64_t N, int64_t D, int64_t V) {
  CLOZE_GRID_STRIDE(k, N * D) {
    const int64_t i = k / D, c = k - i * D;
    const int64_t id = ids[i];
    cuda::st(out, k, id >= 0 && id < V ? cuda::ld(table, id * D + c) : 0.f);
  }
}

// A group of more than kSeqMax positions (a token type, a position, [MASK]
// or padding: thousands of rows in one group) is summed in chunks: one
// thread per column over a whole group left a few blocks summing 32768 rows
// each while the GPU idled (8.4 ms of a BERT-base step on the H200). Groups
// up to kSeqMax keep the CPU kernel's sequential order.
constexpr int64_t kSeqMax = 64;

// The chunk length of a group of len > kSeqMax positions: max(kSeqMax, ⌈√len⌉),
// so that both kernels loop about √len times. ⌈√len⌉ in integers (the smallest
// c with c·c ≥ len): the same as the former host plan's ceil(sqrt(double)) for
// every len < 2^31 (an integer's square root is never within rounding of the
// next integer there), but exact by construction.
__device__ __forceinline__ int64_t chunk_len(int64_t len) {
  int64_t c = static_cast<int64_t>(sqrt(static_cast<double>(len)));
  while (c * c < len) c++;
  while (c > 0 && (c - 1) * (c - 1) >= len) c--;
  return c > kSeqMax ? c : kSeqMax;
}

// The plan, in device memory. Sort keys are the ids as uint32, a bad id (< 0
// or ≥ V) replaced by `bad` = min(V, 2^31), which sorts after every good id:
// the bad positions form the last run, which is skipped. Runs are the groups
// of equal keys in the sorted order.
//   key[N]          the keys sorted
//   order[N]        the positions in that order, stably (increasing within a run)
//   rid[N + 1]      exclusive sum of run heads: rid[k + 1] - 1 is the run of
//                   sorted slot k, rid[N] the number of runs R
//   run_start[N+1]  run r is order[run_start[r] .. run_start[r + 1])
//   big[N + 1]      exclusive sum over runs of (is big) | (its chunk count << 32):
//                   for run r, the big runs before it (its group index when it
//                   is big) and their chunks (its first slot in `part`); both
//                   halves stay below 2^32 (at most N/65 big runs, N/32 chunks)
//   cs, ce, target  chunk c sums order[cs[c] .. ce[c]) per column into dtable
//                   row target[c] when it is its group's only chunk, or into
//                   slot -(1 + target[c]) of `part` when it is one chunk of a
//                   big group. Runs before r hold r - (big runs) small chunks
//                   plus the big runs' chunks: that is run r's first chunk.
//   gid, gcs, gce   big group g writes dtable row gid[g], the sum of the
//                   partial sums part[gcs[g] .. gce[g]) in chunk order
//   count[2]        the numbers of chunks and of big groups
// Ends are explicit (ce, gce) rather than the next chunk's start, since the
// skipped run leaves no chunk. The scans run in place (rid, big); cs and ce
// take the halves of the sort's double buffers that its result left free.

__global__ void embedding_keys_kernel(const int32_t* ids, int64_t N, int64_t V, uint32_t bad, uint32_t* keys,
                                      int32_t* pos) {
  CLOZE_GRID_STRIDE(i, N) {
    const int32_t id = ids[i];
    keys[i] = id >= 0 && id < V ? static_cast<uint32_t>(id) : bad;
    pos[i] = static_cast<int32_t>(i);
  }
}

__device__ __forceinline__ bool run_head(const uint32_t* key, int64_t k) { return k == 0 || key[k] != key[k - 1]; }

// rid[k] = 1 where sorted slot k starts a run, for k < N; rid[N] = 0 (so that
// the scan's last entry is the number of runs).
__global__ void embedding_heads_kernel(const uint32_t* key, int64_t N, int32_t* rid) {
  CLOZE_GRID_STRIDE(k, N + 1) rid[k] = k < N && run_head(key, k) ? 1 : 0;
}

__global__ void embedding_run_start_kernel(const uint32_t* key, const int32_t* rid, int64_t N, int32_t* run_start) {
  CLOZE_GRID_STRIDE(k, N + 1) {
    if (k == N) run_start[rid[N]] = static_cast<int32_t>(N);
    else if (run_head(key, k)) run_start[rid[k]] = static_cast<int32_t>(k);
  }
}

// One entry per run (N + 1 of them, as the host does not know R; the rest 0).
__global__ void embedding_run_size_kernel(const uint32_t* key, const int32_t* rid, const int32_t* run_start, int64_t N,
                                          uint32_t bad, unsigned long long* big) {
  const int64_t R = rid[N];
  CLOZE_GRID_STRIDE(r, N + 1) {
    unsigned long long v = 0;
    if (r < R) {
      const int64_t s = run_start[r], len = run_start[r + 1] - s;
      if (key[s] != bad && len > kSeqMax) {
        const int64_t c = chunk_len(len);
        v = 1ull | (static_cast<unsigned long long>((len + c - 1) / c) << 32);
      }
    }
    big[r] = v;
  }
}

// One thread per sorted slot k: the slot that starts a chunk writes it, the
// first slot of a big group also writes the group.
__global__ void embedding_plan_kernel(const uint32_t* key, const int32_t* rid, const int32_t* run_start,
                                      const unsigned long long* big, int64_t N, uint32_t bad, int32_t* cs, int32_t* ce,
                                      int32_t* target, int32_t* gid, int32_t* gcs, int32_t* gce, int32_t* count) {
  CLOZE_GRID_STRIDE(k, N) {
    if (k == 0) {
      // The bad run, when there is one, is the last: the good runs are rid[N] less it.
      const int64_t good = rid[N] - (key[N - 1] == bad ? 1 : 0);
      const unsigned long long all = big[N];
      const int64_t G = static_cast<int64_t>(all & 0xffffffffull), P = static_cast<int64_t>(all >> 32);
      count[0] = static_cast<int32_t>(good - G + P);
      count[1] = static_cast<int32_t>(G);
    }
    const uint32_t id = key[k];
    if (id == bad) continue;
    const int64_t r = rid[k + 1] - 1;
    const int64_t s = run_start[r], e = run_start[r + 1], len = e - s, off = k - s;
    const unsigned long long b = big[r];
    const int64_t g = static_cast<int64_t>(b & 0xffffffffull), p = static_cast<int64_t>(b >> 32);
    const int64_t first = r - g + p;
    if (len <= kSeqMax) {
      if (off == 0) {
        cs[first] = static_cast<int32_t>(s);
        ce[first] = static_cast<int32_t>(e);
        target[first] = static_cast<int32_t>(id);
      }
      continue;
    }
    const int64_t c = chunk_len(len);
    if (off % c != 0) continue;
    const int64_t j = off / c;
    cs[first + j] = static_cast<int32_t>(k);
    ce[first + j] = static_cast<int32_t>(k + c < e ? k + c : e);
    target[first + j] = static_cast<int32_t>(-1 - (p + j));
    if (off == 0) {
      gid[g] = static_cast<int32_t>(id);
      gcs[g] = static_cast<int32_t>(p);
      gce[g] = static_cast<int32_t>(p + (len + c - 1) / c);
    }
  }
}

template <typename T>
__global__ void embedding_chunk_kernel(const int32_t* cs, const int32_t* ce, const int32_t* target,
                                       const int32_t* order, const int32_t* count, const T* dout, T* dtable,
                                       float* part, int64_t D) {
  const int64_t C = count[0];
  for (int64_t ch = blockIdx.x; ch < C; ch += gridDim.x) {
    const int32_t k0 = cs[ch], k1 = ce[ch], to = target[ch];
    for (int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; c < D;
         c += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      float acc = 0.f;
      for (int32_t k = k0; k < k1; k++) acc += cuda::ld(dout, static_cast<int64_t>(order[k]) * D + c);
      if (to >= 0) cuda::st(dtable, static_cast<int64_t>(to) * D + c, acc);
      else part[static_cast<int64_t>(-1 - to) * D + c] = acc;
    }
  }
}

template <typename T>
__global__ void embedding_finish_kernel(const int32_t* gid, const int32_t* gcs, const int32_t* gce,
                                        const int32_t* count, const float* part, T* dtable, int64_t D) {
  const int64_t G = count[1];
  for (int64_t g = blockIdx.x; g < G; g += gridDim.x) {
    const int32_t s0 = gcs[g], s1 = gce[g];
    for (int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; c < D;
         c += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      float acc = 0.f;
      for (int32_t s = s0; s < s1; s++) acc += part[static_cast<int64_t>(s) * D + c];
      cuda::st(dtable, static_cast<int64_t>(gid[g]) * D + c, acc);
    }
  }
}

// Carves 256-byte-aligned arrays (CUB's alignment) out of one block; with no
// base it only measures.
struct Carve {
  char* base;
  size_t bytes = 0;
  template <typename U>
  U* take(size_t n) {
    const size_t at = bytes;
    bytes = (bytes + n * sizeof(U) + 255) / 256 * 256;
    return base ? reinterpret_cast<U*>(base + at) : nullptr;
  }
};

// The device arrays of the plan (see above) and the plan's scratch.
struct ScatterPlan {
  int64_t N = 0, V = 0, G_max = 0;
  uint32_t bad = 0;
  int end_bit = 0;
  size_t cub_bytes = 0;
  // The sort's double buffers: the sorted keys and order end in one half of
  // each, and the other halves then hold cs and ce.
  uint32_t* kbuf[2] = {};
  int32_t* vbuf[2] = {};
  const uint32_t* key = nullptr;
  int32_t *order = nullptr, *rid = nullptr, *run_start = nullptr, *cs = nullptr, *ce = nullptr, *target = nullptr;
  int32_t *gid = nullptr, *gcs = nullptr, *gce = nullptr, *count = nullptr;
  unsigned long long* big = nullptr;
  void* cub_temp = nullptr;

  // Lays the arrays out from `base` (nullptr: only measures); returns the bytes.
  size_t layout(char* base) {
    Carve m{base};
    const size_t n = static_cast<size_t>(N), n1 = n + 1, g = static_cast<size_t>(G_max);
    for (int h = 0; h < 2; h++) {
      kbuf[h] = m.take<uint32_t>(n);
      vbuf[h] = m.take<int32_t>(n);
    }
    rid = m.take<int32_t>(n1);
    run_start = m.take<int32_t>(n1);
    big = m.take<unsigned long long>(n1);
    target = m.take<int32_t>(n);  // at most one chunk per position
    gid = m.take<int32_t>(g);
    gcs = m.take<int32_t>(g);
    gce = m.take<int32_t>(g);
    count = m.take<int32_t>(2);
    cub_temp = m.take<char>(cub_bytes);
    return m.bytes;
  }
};

// Sizes the plan for ids[N] (1 ≤ N < 2^31, V ≥ 1): CUB's scratch is the
// largest of its three calls', asked with null pointers.
ScatterPlan size_plan(int64_t N, int64_t V, int64_t G_max, const char* op) {
  ScatterPlan P;
  P.N = N;
  P.V = V;
  P.G_max = G_max;
  // Keys lie in [0, bad]: sorting their low end_bit bits only keeps the radix
  // passes to what the vocabulary needs (2 instead of 4 for BERT's 30522).
  P.bad = static_cast<uint32_t>(std::min<int64_t>(V, int64_t{1} << 31));
  while (P.end_bit < 32 && (P.bad >> P.end_bit) != 0) P.end_bit++;
  const uint32_t n = static_cast<uint32_t>(N);  // N < 2^31: 32-bit item counts (N + 1 too)
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> vals(nullptr, nullptr);
  size_t sort_bytes = 0, rid_bytes = 0, big_bytes = 0;
  cuda::check(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, vals, n, 0, P.end_bit, cuda::stream()), op,
              "cub::DeviceRadixSort::SortPairs (scratch size)");
  cuda::check(cub::DeviceScan::ExclusiveSum(nullptr, rid_bytes, P.rid, P.rid, n + 1, cuda::stream()),
              op, "cub::DeviceScan::ExclusiveSum (scratch size)");
  cuda::check(cub::DeviceScan::ExclusiveSum(nullptr, big_bytes, P.big, P.big, n + 1, cuda::stream()),
              op, "cub::DeviceScan::ExclusiveSum (scratch size)");
  P.cub_bytes = std::max({sort_bytes, rid_bytes, big_bytes});
  return P;
}

// Queues the plan's construction on the current stream, into the block laid out by P.layout.
void build_plan(ScatterPlan& P, const int32_t* ids, const char* op) {
  const int64_t N = P.N;
  const uint32_t n = static_cast<uint32_t>(N);
  cudaStream_t s = cuda::stream();
  CLOZE_LAUNCH(op, embedding_keys_kernel, cuda::blocks_for(N), cuda::kThreads, 0, ids, N, P.V, P.bad, P.kbuf[0],
               P.vbuf[0]);
  // LSD radix sort is stable: within a run the positions stay increasing.
  cub::DoubleBuffer<uint32_t> keys(P.kbuf[0], P.kbuf[1]);
  cub::DoubleBuffer<int32_t> vals(P.vbuf[0], P.vbuf[1]);
  size_t bytes = P.cub_bytes;
  cuda::check(cub::DeviceRadixSort::SortPairs(P.cub_temp, bytes, keys, vals, n, 0, P.end_bit, s), op,
              "cub::DeviceRadixSort::SortPairs");
  P.key = keys.Current();  // which half is known on the host: no wait
  P.order = vals.Current();
  P.cs = reinterpret_cast<int32_t*>(keys.Alternate());
  P.ce = vals.Alternate();
  CLOZE_LAUNCH(op, embedding_heads_kernel, cuda::blocks_for(N + 1), cuda::kThreads, 0, P.key, N, P.rid);
  bytes = P.cub_bytes;
  cuda::check(cub::DeviceScan::ExclusiveSum(P.cub_temp, bytes, P.rid, P.rid, n + 1, s), op,
              "cub::DeviceScan::ExclusiveSum (runs)");
  CLOZE_LAUNCH(op, embedding_run_start_kernel, cuda::blocks_for(N + 1), cuda::kThreads, 0, P.key, P.rid, N,
               P.run_start);
  CLOZE_LAUNCH(op, embedding_run_size_kernel, cuda::blocks_for(N + 1), cuda::kThreads, 0, P.key, P.rid, P.run_start,
               N, P.bad, P.big);
  bytes = P.cub_bytes;
  cuda::check(cub::DeviceScan::ExclusiveSum(P.cub_temp, bytes, P.big, P.big, n + 1, s), op,
              "cub::DeviceScan::ExclusiveSum (big groups)");
  CLOZE_LAUNCH(op, embedding_plan_kernel, cuda::blocks_for(N), cuda::kThreads, 0, P.key, P.rid, P.run_start, P.big, N,
               P.bad, P.cs, P.ce, P.target, P.gid, P.gcs, P.gce, P.count);
}

unsigned bounded_grid(int64_t n, int64_t cap) { return static_cast<unsigned>(std::max<int64_t>(1, std::min(n, cap))); }

}  // namespace

template <typename T>
void embedding_forward_cuda(const EmbeddingParams<T>& p) {
  if (p.N == 0 || p.D == 0) return;
  CLOZE_LAUNCH("embedding", embedding_forward_kernel<T>, cuda::blocks_for(p.N * p.D), cuda::kThreads, 0, p.table,
               p.ids, p.out, p.N, p.D, p.V);
}

template <typename T>
void embedding_backward_cuda(const EmbeddingParams<T>& p) {
  const char* op = "embeddingBackward";
  if (p.N == 0 || p.D == 0 || p.V <= 0) return;  // dtable stays zero (with V = 0 every id is bad)
  if (p.N > 0x7fffffff) fail(ErrCode::Shape, op, "more than 2^31 - 1 ids");
  // A big group has more than kSeqMax positions and at most len/kSeqMax + 1 ≤ len/32 chunks.
  const int64_t G_max = p.N / (kSeqMax + 1), parts_max = p.N / 32 + 1;
  ScatterPlan plan = size_plan(p.N, p.V, G_max, op);
  cuda::DeviceTemp temp(plan.layout(nullptr), op);
  plan.layout(temp.as<char>());
  build_plan(plan, p.ids, op);
  const int threads = p.D >= 256 ? 256 : static_cast<int>((p.D + 31) / 32 * 32);
  const int64_t col_blocks = (p.D + threads - 1) / threads;
  const unsigned gy = static_cast<unsigned>(col_blocks < 65535 ? col_blocks : 65535);
  // The chunk and group counts stay on the device: the grids cover their upper
  // bounds, capped near 8192 blocks (several waves on any GPU; blocks stride
  // over the rest), so that a bound far above the count launches few idle blocks.
  const int64_t cap = std::max<int64_t>(1, 8192 / gy);
  cuda::DeviceTemp part(G_max > 0 ? static_cast<size_t>(parts_max * p.D) * sizeof(float) : 0, op);
  CLOZE_LAUNCH(op, embedding_chunk_kernel<T>, dim3(bounded_grid(p.N, cap), gy), threads, 0, plan.cs, plan.ce,
               plan.target, plan.order, plan.count, p.dout, p.dtable, part.as<float>(), p.D);
  if (G_max > 0)
    CLOZE_LAUNCH(op, embedding_finish_kernel<T>, dim3(bounded_grid(G_max, cap), gy), threads, 0, plan.gid, plan.gcs,
                 plan.gce, plan.count, part.as<float>(), p.dtable, p.D);
}

template void embedding_forward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_backward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_forward_cuda<bf16>(const EmbeddingParams<bf16>&);
template void embedding_backward_cuda<bf16>(const EmbeddingParams<bf16>&);

}  // namespace cloze
