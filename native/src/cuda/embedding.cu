// Embedding gather and its scatter-add backward on the device.
//
// The backward is deterministic and atomic-free: the binding already holds the
// ids on the host (it validates them there), so the host groups the positions
// by id (a counting sort when the vocabulary is small next to the batch, a
// stable sort otherwise) and uploads that plan; then each distinct id's row of
// dtable is summed by one thread per column over its positions in increasing
// order — the CPU kernel's order, so float32 results match it bit for bit.
#include <algorithm>
#include <numeric>
#include <vector>

#include "../ops/embedding.h"
#include "common.cuh"

namespace cloze {

namespace {

template <typename T>
__global__ void embedding_forward_kernel(const T* table, const int32_t* ids, T* out, int64_t N, int64_t D) {
  CLOZE_GRID_STRIDE(k, N * D) {
    const int64_t i = k / D, c = k - i * D;
    cuda::st(out, k, cuda::ld(table, static_cast<int64_t>(ids[i]) * D + c));
  }
}

// plan = [starts (U + 1) | id of each group (U) | positions grouped by id (N)].
template <typename T>
__global__ void embedding_backward_kernel(const int32_t* plan, int64_t U, const T* dout, T* dtable, int64_t D) {
  const int32_t* starts = plan;
  const int32_t* uid = plan + U + 1;
  const int32_t* order = plan + 2 * U + 1;
  for (int64_t u = blockIdx.x; u < U; u += gridDim.x) {
    const int32_t k0 = starts[u], k1 = starts[u + 1];
    T* dst = dtable + static_cast<int64_t>(uid[u]) * D;
    for (int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; c < D;
         c += static_cast<int64_t>(gridDim.y) * blockDim.x) {
      float acc = 0.f;
      for (int32_t k = k0; k < k1; k++) acc += cuda::ld(dout, static_cast<int64_t>(order[k]) * D + c);
      cuda::st(dst, c, acc);
    }
  }
}

// Groups positions 0..N-1 by id, each group in increasing position order.
std::vector<int32_t> scatter_plan(const int32_t* ids, int64_t N, int64_t V, int64_t* U_out) {
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
  const int64_t U = static_cast<int64_t>(uid.size());
  std::vector<int32_t> plan;
  plan.reserve(static_cast<size_t>(2 * U + 1 + N));
  plan.insert(plan.end(), starts.begin(), starts.end());
  plan.insert(plan.end(), uid.begin(), uid.end());
  plan.insert(plan.end(), order.begin(), order.end());
  *U_out = U;
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
  int64_t U = 0;
  const std::vector<int32_t> plan = scatter_plan(p.ids_host, p.N, p.V, &U);
  const size_t bytes = plan.size() * sizeof(int32_t);
  int32_t* dplan = static_cast<int32_t*>(cuda::alloc(bytes, op));
  try {
    cuda::copy(dplan, true, plan.data(), false, bytes, op);  // waits: plan is pageable host memory
    const int threads = p.D >= 256 ? 256 : static_cast<int>((p.D + 31) / 32 * 32);
    const int64_t col_blocks = (p.D + threads - 1) / threads;
    const dim3 grid(static_cast<unsigned>(U < 1048576 ? U : 1048576),
                    static_cast<unsigned>(col_blocks < 65535 ? col_blocks : 65535));
    CLOZE_LAUNCH(op, embedding_backward_kernel<T>, grid, threads, 0, dplan, U, p.dout, p.dtable, p.D);
  } catch (...) {
    cuda::free(dplan);
    throw;
  }
  cuda::free(dplan);  // stream-ordered allocator: reuse comes after the kernel
}

template void embedding_forward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_backward_cuda<float>(const EmbeddingParams<float>&);
template void embedding_forward_cuda<bf16>(const EmbeddingParams<bf16>&);
template void embedding_backward_cuda<bf16>(const EmbeddingParams<bf16>&);

}  // namespace cloze
