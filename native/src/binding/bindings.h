// Registration functions, one per op family; addon.cc calls them all.
#pragma once
#include <napi.h>

#include "args.h"

namespace cloze {
void register_tensor(Napi::Env env, Napi::Object exports);
void register_linalg(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_dropout(Napi::Env env, Napi::Object exports);
void register_layernorm(Napi::Env env, Napi::Object exports);
void register_softmax(Napi::Env env, Napi::Object exports);
void register_cross_entropy(Napi::Env env, Napi::Object exports);
void register_embedding(Napi::Env env, Napi::Object exports);
void register_linear_ce(Napi::Env env, Napi::Object exports);
void register_label_words(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_optim(Napi::Env env, Napi::Object exports);
void register_mlm_mask(Napi::Env env, Napi::Object exports);
void register_geglu(Napi::Env env, Napi::Object exports);
void register_mim_tokens(Napi::Env env, Napi::Object exports);
void register_mim_loss(Napi::Env env, Napi::Object exports);
void register_image_aug(Napi::Env env, Napi::Object exports);
void register_conv(Napi::Env env, Napi::Object exports);
void register_batchnorm(Napi::Env env, Napi::Object exports);
void register_pool(Napi::Env env, Napi::Object exports);
void register_sparse_rulebook(Napi::Env env, Napi::Object exports);
void register_sparse_conv(Napi::Env env, Napi::Object exports);
void register_sparse_norm_pool(Napi::Env env, Napi::Object exports);
void register_layout(Napi::Env env, Napi::Object exports);
void register_pgd(Napi::Env env, Napi::Object exports);
void register_masked_linear(Napi::Env env, Napi::Object exports);
void register_asa(Napi::Env env, Napi::Object exports);
void register_bench(Napi::Env env, Napi::Object exports);
void register_mpi(Napi::Env env, Napi::Object exports);
void register_nccl(Napi::Env env, Napi::Object exports);
}  // namespace cloze
