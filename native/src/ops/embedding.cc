#include "embedding.h"

#include <algorithm>

#include "../core/threadpool.h"

namespace cloze {

template <typename T>
void embedding_forward_cpu(const EmbeddingParams<T>& p) {
  parallel_range(p.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(p.D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) std::copy(p.table + p.ids[i] * p.D, p.table + (p.ids[i] + 1) * p.D, p.out + i * p.D);
  });
}

template <typename T>
void embedding_backward_cpu(const EmbeddingParams<T>& p) {
  // Column blocks own disjoint slices of dtable, so repeated ids never race
  // and the summation order is fixed.
  constexpr int64_t CB = 64;
  const int64_t blocks = (p.D + CB - 1) / CB;
  ThreadPool::get().parallel_for(blocks, [&](int64_t blk, int) {
    const int64_t c0 = blk * CB, c1 = std::min(p.D, c0 + CB);
    for (int64_t i = 0; i < p.N; i++) {
      T* dst = p.dtable + p.ids[i] * p.D;
      const T* src = p.dout + i * p.D;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
}

#define CLOZE_INST(T)                                                 \
  template void embedding_forward_cpu<T>(const EmbeddingParams<T>&);  \
  template void embedding_backward_cpu<T>(const EmbeddingParams<T>&);
CLOZE_INST(float)
CLOZE_INST(double)
#undef CLOZE_INST

}  // namespace cloze
