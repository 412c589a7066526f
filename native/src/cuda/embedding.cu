// Embedding gather and its scatter-add backward on the device.
//
// The backward is deterministic and atomic-free: the binding already holds the
// ids on the host (it validates them there), so the host groups the positions
// by id (a counting sort when the vocabulary is small next to the batch, a
// stable sort otherwise) and uploads that plan; then each distinct id's row of
// dtable is summed by one thread per column over its positions in increasing
// order — the CPU kernel's order, so float32 results match it bit for bit —
// except for groups longer than kSeqMax, which are summed in chunks (below).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../ops/embedding.h"
#include "common.cuh"
#include "device_temp.h"

namespace cloze {

namespace {

template <typename T>
__global__ void embedding_forward_kernel(const T* table, const int32_t* ids, T* out, int64_t N, int64_t D) {
  CLOZE_GRID_STRIDE(k, N * D) {
    const int64_t i = k / D, c = k - i * D;
    cuda::st(out, k, cuda::ld(table, static_cast<int64_t>(ids[i]) * D + c));
  }
}

// A group of more than kSeqMax positions (a token type, a position, [MASK]
// or padding: thousands of rows in one group) is summed in chunks: one
// thread per column over a whole group left a few blocks summing 32768 rows
// each while the GPU idled (8.4 ms of a BERT-base step on the H200). Groups
// up to kSeqMax keep the CPU kernel's sequential order.
constexpr int64_t kSeqMax = 64;

// plan = [chunk starts (C + 1) | chunk target (C) | positions grouped by id (N)
//         | big-group ids (G) | big-group chunk starts (G + 1)].
// Chunk c sums positions order[cs[c] .. cs[c+1]) per column. Its target is the
// id whose dtable row it writes when it is its group's only chunk, or
// -(1 + its slot in `part`) when it is one chunk of a big group, whose
// partial sums the finish kernel adds in chunk order.
template <typename T>
__global__ void embedding_chunk_kernel(const int32_t* cs, const int32_t* target, const int32_t* order, int64_t C,
                                       const T* dout, T* dtable, float* part, int64_t D) {
  for (int64_t ch = blockIdx.x; ch < C; ch += gridDim.x) {
    const int32_t k0 = cs[ch], k1 = cs[ch + 1], to = target[ch];
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
__global__ void embedding_finish_kernel(const int32_t* gid, const int32_t* gcs, int64_t G, const float* part, T* dtable,
                                        int64_t D) {
  for (int64_t g = blockIdx.x; g < G; g += gridDim.x) {
    const int32_t s0 = gcs[g], s1 = gcs[g + 1];
    for (int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; c < D;
         c += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      float acc = 0.f;
      for (int32_t s = s0; s < s1; s++) acc += part[static_cast<int64_t>(s) * D + c];
      cuda::st(dtable, static_cast<int64_t>(gid[g]) * D + c, acc);
    }
  }
}

struct ScatterPlan {
  std::vector<int32_t> data;  // the layout above
  int64_t C = 0, G = 0, parts = 0;
};

// Groups positions 0..N-1 by id, each group in increasing position order, and
// cuts the groups longer than kSeqMax into about √length chunks of at least
// kSeqMax positions (both kernels then loop about √length times).
ScatterPlan scatter_plan(const int32_t* ids, int64_t N, int64_t V) {
  std::vector<int32_t> order(static_cast<size_t>(N));
  std::vector<int32_t> starts, uid;
  if (V <= 8 * N + 65536) {
    std::vector<int32_t> cnt(static_cast<size_t>(V) + 1, 0);
    for (int64_t i = 0; i < N; i++) cnt[ids[i] + 1]++;
    for (int64_t v = 0; v < V; v++) {
      if (cnt[v + 1] > 0) uid.push_back(static_cast<int32_t>(v));
      cnt[v + 1] += cnt[v];  // now cnt[v] = first slot of id v
    }
    for (int32_t u : uid) starts.push_back(cnt[u]);
    std::vector<int32_t> next(cnt.begin(), cnt.end() - 1);
    for (int64_t i = 0; i < N; i++) order[next[ids[i]]++] = static_cast<int32_t>(i);
  } else {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
    for (int64_t k = 0; k < N; k++)
      if (k == 0 || ids[order[k]] != ids[order[k - 1]]) {
        uid.push_back(ids[order[k]]);
        starts.push_back(static_cast<int32_t>(k));
      }
  }
  starts.push_back(static_cast<int32_t>(N));
  std::vector<int32_t> cs, target, gid, gcs;
  int32_t parts = 0;
  for (size_t u = 0; u < uid.size(); u++) {
    const int64_t k0 = starts[u], len = starts[u + 1] - k0;
    if (len <= kSeqMax) {
      cs.push_back(static_cast<int32_t>(k0));
      target.push_back(uid[u]);
      continue;
    }
    const int64_t chunk = std::max<int64_t>(kSeqMax, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(len)))));
    gid.push_back(uid[u]);
    gcs.push_back(parts);
    for (int64_t k = k0; k < k0 + len; k += chunk) {
      cs.push_back(static_cast<int32_t>(k));
      target.push_back(-1 - parts++);
    }
  }
  cs.push_back(static_cast<int32_t>(N));
  gcs.push_back(parts);
  ScatterPlan plan;
  plan.C = static_cast<int64_t>(target.size());
  plan.G = static_cast<int64_t>(gid.size());
  plan.parts = parts;
  plan.data.reserve(cs.size() + target.size() + order.size() + gid.size() + gcs.size());
  for (const auto* v : {&cs, &target, &order, &gid, &gcs}) plan.data.insert(plan.data.end(), v->begin(), v->end());
  return plan;
}

}  // namespace

template <typename T>
void embedding_forward_cuda(const EmbeddingParams<T>& p) {
  if (p.N == 0 || p.D == 0) return;
  CLOZE_LAUNCH("embedding", embedding_forward_kernel<T>, cuda::blocks_for(p.N * p.D), cuda::kThreads, 0, p.table,
               p.ids, p.out, p.N, p.D);
}

template <typename T>
void embedding_backward_cuda(const EmbeddingParams<T>& p) {
  const char* op = "embeddingBackward";
  if (p.N == 0 || p.D == 0) return;  // dtable stays zero
  if (p.N > 0x7fffffff) fail(ErrCode::Shape, op, "more than 2^31 - 1 ids");
  const ScatterPlan plan = scatter_plan(p.ids_host, p.N, p.V);
  const size_t bytes = plan.data.size() * sizeof(int32_t);
  const int threads = p.D >= 256 ? 256 : static_cast<int>((p.D + 31) / 32 * 32);
  const int64_t col_blocks = (p.D + threads - 1) / threads;
  const unsigned gy = static_cast<unsigned>(col_blocks < 65535 ? col_blocks : 65535);
  cuda::DeviceTemp dplan(bytes, op);
  cuda::DeviceTemp part(static_cast<size_t>(plan.parts * p.D) * sizeof(float), op);
  cuda::copy(dplan.as<void>(), true, plan.data.data(), false, bytes, op);  // waits: plan is pageable host memory
  const int32_t* cs = dplan.as<int32_t>();
  const int32_t* target = cs + plan.C + 1;
  const int32_t* order = target + plan.C;
  const int32_t* gid = order + p.N;
  const int32_t* gcs = gid + plan.G;
  CLOZE_LAUNCH(op, embedding_chunk_kernel<T>, dim3(static_cast<unsigned>(plan.C < 1048576 ? plan.C : 1048576), gy),
               threads, 0, cs, target, order, plan.C, p.dout, p.dtable, part.as<float>(), p.D);
  if (plan.G > 0)
    CLOZE_LAUNCH(op, embedding_finish_kernel<T>, dim3(static_cast<unsigned>(plan.G < 1048576 ? plan.G : 1048576), gy),
                 threads, 0, gid, gcs, plan.G, part.as<float>(), p.dtable, p.D);
}

template void embedding_forward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_backward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_forward_cuda<bf16>(const EmbeddingParams<bf16>&);
template void embedding_backward_cuda<bf16>(const EmbeddingParams<bf16>&);

}  // namespace cloze
