// Embedding bindings.
#include "../ops/embedding.h"
#include "bindings.h"

namespace cloze {

void register_embedding(Napi::Env env, Napi::Object exports) {
  (void)env;
  // embedding(table [V, D], ids int32 [...]) -> [..., D]
  CLOZE_EXPORT(exports, "embedding", [](const ArgReader& a) -> Napi::Value {
    NTensor* table = a.tensor(0, "table");
    NTensor* ids = a.tensor(1, "ids");
    a.want_float(table, "table");
    a.want_ndim(table, 2, 2, "table");
    const int64_t V = table->dim(0), D = table->dim(1);
    // On cuda, checked by a kernel and reported at the next read (no wait here); the gather skips bad ids.
    checked_indices_deferred(a, ids, "ids", V);
    std::vector<int64_t> os = ids->shape();
    os.push_back(D);
    Napi::Object out = a.alloc(table->dtype(), os, false);
    dispatch(a, table, [&](auto t, auto dev) {
      using T = decltype(t);
      EmbeddingParams<T> p;
      p.V = V;
      p.D = D;
      p.N = ids->numel();
      p.table = table->ptr<T>();
      p.ids = ids->ptr<int32_t>();
      p.out = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, embedding_forward, p);
      return 0;
    });
    return out;
  });

  // embeddingBackward(dout [..., D], ids [...], V) -> dtable [V, D]
  CLOZE_EXPORT(exports, "embeddingBackward", [](const ArgReader& a) -> Napi::Value {
    NTensor* g = a.tensor(0, "grad");
    NTensor* ids = a.tensor(1, "ids");
    const int64_t V = a.integer(2, "vocabSize", 0, INT32_MAX);
    a.want_float(g, "grad");
    a.want_ndim(g, 1, 8, "grad");
    const int64_t D = g->dim(-1);
    std::vector<int64_t> gs = ids->shape();
    gs.push_back(D);
    a.want_shape(g, gs, "grad");
    // As in the forward: the cuda backward plans its scatter on the device and skips bad ids.
    checked_indices_deferred(a, ids, "ids", V);
    Napi::Object out = a.alloc(g->dtype(), {V, D});
    dispatch(a, g, [&](auto t, auto dev) {
      using T = decltype(t);
      EmbeddingParams<T> p;
      p.V = V;
      p.D = D;
      p.N = ids->numel();
      p.ids = ids->ptr<int32_t>();
      p.dout = g->ptr<T>();
      p.dtable = NTensor::Unwrap(out)->ptr<T>();
      CLOZE_KERNEL(dev, embedding_backward, p);
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
