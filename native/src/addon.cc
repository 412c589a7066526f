// Entry point of the cloze CPU addon: registers exports only.
#include <napi.h>

#include "binding/bindings.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new cloze::AddonData();
  data->tensor_ctor = Napi::Persistent(cloze::NTensor::Define(env));
  env.SetInstanceData(data);
  // The block cache (core/storage.h) is process-wide: blocks a worker's
  // tensors freed would otherwise stay cached after the worker is gone, and
  // each new worker run adds its own (265 → 1,185 MiB over six runs). Free
  // them when this environment is torn down; the instance data's destructor
  // does it once more for tensors finalized after this hook ran.
  napi_add_env_cleanup_hook(env, [](void*) { cloze::Storage::release_cache(); }, nullptr);
  exports.Set("NativeTensor", data->tensor_ctor.Value());
  cloze::register_tensor(env, exports);
  cloze::register_linalg(env, exports);
  cloze::register_elementwise(env, exports);
  cloze::register_dropout(env, exports);
  cloze::register_layernorm(env, exports);
  cloze::register_softmax(env, exports);
  cloze::register_cross_entropy(env, exports);
  cloze::register_embedding(env, exports);
  cloze::register_linear_ce(env, exports);
  cloze::register_label_words(env, exports);
  cloze::register_attention(env, exports);
  cloze::register_optim(env, exports);
  cloze::register_mlm_mask(env, exports);
  cloze::register_geglu(env, exports);
  cloze::register_mim_tokens(env, exports);
  cloze::register_mim_loss(env, exports);
  cloze::register_image_aug(env, exports);
  cloze::register_conv(env, exports);
  cloze::register_batchnorm(env, exports);
  cloze::register_pool(env, exports);
  cloze::register_sparse_rulebook(env, exports);
  cloze::register_sparse_conv(env, exports);
  cloze::register_sparse_norm_pool(env, exports);
  cloze::register_layout(env, exports);
  cloze::register_pgd(env, exports);
  cloze::register_masked_linear(env, exports);
  cloze::register_asa(env, exports);
  cloze::register_bench(env, exports);
  cloze::register_mpi(env, exports);
  cloze::register_nccl(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(cloze, Init)
