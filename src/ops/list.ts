/**
 * The closed list of native ops. Every op belongs to one family, and a
 * family's name is the stem of every file that implements it, in every layer:
 *
 *   native/src/ops/<family>.{h,cc}      CPU kernels and the parameter structs
 *   native/src/cuda/<family>.cu         CUDA kernels (<family>_<part>.cu when split)
 *   native/src/binding/bind_<family>.cc argument checks and dispatch, no arithmetic
 *   src/ops/<family>.ts                 the autograd-aware TypeScript wrappers
 *   test/ops/<family>.test.ts           CPU and CUDA cases in one file
 *   bench/ops/<family>.ts               the `npm run bench:ops` cases
 *
 * test/ops/list.test.ts holds the code to this table: it fails when an op
 * lacks any of the above, or when the addon exports a function that is
 * neither an op here nor in INFRASTRUCTURE.
 */

export interface OpSpec {
  /** The addon's export computing the forward (also the op's name in benchmarks). */
  forward: string;
  /** The addon's export computing the backward; null for ops without a gradient (indices, masks, optimizer steps). */
  backward: string | null;
  /** The TypeScript wrapper exported by src/ops/<family>.ts. */
  ts: string;
  /** Kernel functions defined in native/src/ops/<family>.{h,cc}. */
  cpu: readonly string[];
  /** Kernel functions defined in native/src/cuda/<family>*.cu. */
  cuda: readonly string[];
}

export const OP_FAMILIES = {
  elementwise: [
    { forward: 'add', backward: null, ts: 'add', cpu: ['binary_forward_cpu'], cuda: ['binary_forward_cuda'] },
    { forward: 'mul', backward: 'mulBackward', ts: 'mul', cpu: ['binary_forward_cpu', 'mul_backward_cpu'], cuda: ['binary_forward_cuda', 'mul_backward_cuda'] },
    { forward: 'scale', backward: null, ts: 'scale', cpu: ['scale_cpu'], cuda: ['scale_cuda'] },
    { forward: 'axpyInPlace', backward: null, ts: 'axpyInPlace', cpu: ['axpy_cpu'], cuda: ['axpy_cuda'] },
    { forward: 'biasAdd', backward: null, ts: 'biasAdd', cpu: ['bias_add_forward_cpu'], cuda: ['bias_add_forward_cuda'] },
    { forward: 'sumRows', backward: null, ts: 'sumRows', cpu: ['sum_rows_cpu'], cuda: ['sum_rows_cuda'] },
    { forward: 'sum', backward: 'reduceBackward', ts: 'sum', cpu: ['sum_all_cpu', 'fill_cpu'], cuda: ['sum_all_cuda', 'fill_scaled_cuda'] },
    { forward: 'mean', backward: 'reduceBackward', ts: 'mean', cpu: ['sum_all_cpu', 'fill_cpu'], cuda: ['sum_all_cuda', 'fill_scaled_cuda'] },
    { forward: 'gelu', backward: 'geluBackward', ts: 'gelu', cpu: ['act_forward_cpu', 'act_backward_cpu'], cuda: ['act_forward_cuda', 'act_backward_cuda'] },
    { forward: 'relu', backward: 'reluBackward', ts: 'relu', cpu: ['act_forward_cpu', 'act_backward_cpu'], cuda: ['act_forward_cuda', 'act_backward_cuda'] },
    { forward: 'relu6', backward: 'relu6Backward', ts: 'relu6', cpu: ['act_forward_cpu', 'act_backward_cpu'], cuda: ['act_forward_cuda', 'act_backward_cuda'] },
    { forward: 'tanh', backward: 'tanhBackward', ts: 'tanh', cpu: ['act_forward_cpu', 'act_backward_cpu'], cuda: ['act_forward_cuda', 'act_backward_cuda'] },
  ],
  dropout: [
    // The backward is the same mask applied to the gradient: `dropout` called again with the step's seed.
    { forward: 'dropout', backward: null, ts: 'dropout', cpu: ['dropout_apply_cpu'], cuda: ['dropout_apply_cuda'] },
    // residual + dropout(x) in one pass (a sublayer's residual connection); its backward is dropout on the gradient.
    { forward: 'dropoutAdd', backward: null, ts: 'dropoutAdd', cpu: ['dropout_apply_cpu'], cuda: ['dropout_apply_cuda'] },
  ],
  geglu: [
    { forward: 'geglu', backward: 'gegluBackward', ts: 'geglu', cpu: ['geglu_forward_cpu', 'geglu_backward_cpu'], cuda: ['geglu_forward_cuda', 'geglu_backward_cuda'] },
  ],
  layernorm: [
    { forward: 'layerNorm', backward: 'layerNormBackward', ts: 'layerNorm', cpu: ['layernorm_forward_cpu', 'layernorm_backward_cpu'], cuda: ['layernorm_forward_cuda', 'layernorm_backward_cuda'] },
  ],
  softmax: [
    { forward: 'softmax', backward: 'softmaxBackward', ts: 'softmax', cpu: ['softmax_forward_cpu', 'softmax_backward_cpu'], cuda: ['softmax_forward_cuda', 'softmax_backward_cuda'] },
  ],
  cross_entropy: [
    { forward: 'crossEntropy', backward: 'crossEntropyBackward', ts: 'crossEntropy', cpu: ['cross_entropy_forward_cpu', 'cross_entropy_backward_cpu'], cuda: ['cross_entropy_forward_cuda', 'cross_entropy_backward_cuda'] },
    { forward: 'argmaxRows', backward: null, ts: 'argmax', cpu: ['argmax_rows_cpu'], cuda: ['argmax_rows_cuda'] },
  ],
  embedding: [
    { forward: 'embedding', backward: 'embeddingBackward', ts: 'embedding', cpu: ['embedding_forward_cpu', 'embedding_backward_cpu'], cuda: ['embedding_forward_cuda', 'embedding_backward_cuda'] },
  ],
  linalg: [
    // The op-level kernels around the GEMM (core/blas.h on the CPU, gemm_cuda in cuda/gemm_cublaslt.cu on CUDA).
    { forward: 'matmul', backward: 'matmulBackward', ts: 'matmul', cpu: ['matmul_forward_cpu', 'matmul_backward_cpu'], cuda: ['matmul_forward_cuda', 'matmul_backward_cuda'] },
    { forward: 'linear', backward: 'linearBackward', ts: 'linear', cpu: ['linear_forward_cpu', 'linear_backward_cpu'], cuda: ['linear_forward_cuda', 'linear_backward_cuda'] },
  ],
  linear_ce: [
    { forward: 'linearCrossEntropy', backward: 'linearCrossEntropyBackward', ts: 'linearCrossEntropy', cpu: ['linear_ce_forward_cpu', 'linear_ce_backward_cpu'], cuda: ['linear_ce_forward_cuda', 'linear_ce_backward_cuda'] },
    // ELECTRA's generator: one sampled id per row from the same chunked logits (Gumbel-max, Philox); no gradient.
    { forward: 'linearSample', backward: null, ts: 'linearSample', cpu: ['linear_sample_cpu'], cuda: ['linear_sample_cuda'] },
  ],
  label_words: [
    // MVP's scoring: the K label words' MLM logits at the [MASK] rows (never [M, V]), and their pooling into classes.
    { forward: 'labelWordLogits', backward: 'labelWordLogitsBackward', ts: 'labelWordLogits', cpu: ['label_word_logits_forward_cpu', 'label_word_logits_backward_cpu'], cuda: ['label_word_logits_forward_cuda', 'label_word_logits_backward_cuda'] },
    { forward: 'verbalizerPool', backward: 'verbalizerPoolBackward', ts: 'verbalizerPool', cpu: ['verbalizer_pool_forward_cpu', 'verbalizer_pool_backward_cpu'], cuda: ['verbalizer_pool_forward_cuda', 'verbalizer_pool_backward_cuda'] },
  ],
  attention: [
    { forward: 'attention', backward: 'attentionBackward', ts: 'attention', cpu: ['attention_forward_cpu', 'attention_backward_cpu'], cuda: ['attention_forward_cuda', 'attention_backward_cuda'] },
    // The same kernels over one qkv tensor (a fused QKV projection's output), read in place with a 3·H·Dh row stride.
    { forward: 'attentionQkv', backward: 'attentionQkvBackward', ts: 'attentionQkv', cpu: ['attention_forward_cpu', 'attention_backward_cpu'], cuda: ['attention_forward_cuda', 'attention_backward_cuda'] },
  ],
  optim: [
    { forward: 'adamw', backward: null, ts: 'adamwStep', cpu: ['adamw_step_cpu'], cuda: ['adamw_step_cuda'] },
    { forward: 'emaUpdate', backward: null, ts: 'emaUpdate', cpu: ['ema_update_cpu'], cuda: ['ema_update_cuda'] },
    { forward: 'clipGradNorm', backward: null, ts: 'clipGradNorm', cpu: ['sum_squares_cpu'], cuda: ['l2_norm_cuda'] },
    { forward: 'gradNorm', backward: null, ts: 'gradNorm', cpu: ['sum_squares_cpu'], cuda: ['l2_norm_into_cuda'] },
  ],
  mlm_mask: [
    { forward: 'mlmMask', backward: null, ts: 'mlmMask', cpu: ['mlm_mask_cpu'], cuda: ['mlm_mask_cuda'] },
  ],
  mim_tokens: [
    { forward: 'uniformNoise', backward: null, ts: 'uniformNoise', cpu: ['uniform_noise_cpu'], cuda: ['uniform_noise_cuda'] },
    { forward: 'maskFromScores', backward: null, ts: 'maskFromScores', cpu: ['mask_from_scores_cpu'], cuda: ['mask_from_scores_cuda'] },
    { forward: 'restoreIndex', backward: null, ts: 'restoreIndex', cpu: ['restore_index_cpu'], cuda: ['restore_index_cuda'] },
    { forward: 'assembleTokens', backward: 'assembleTokensBackward', ts: 'assembleTokens', cpu: ['assemble_tokens_forward_cpu', 'assemble_tokens_backward_cpu'], cuda: ['assemble_tokens_forward_cuda', 'assemble_tokens_backward_cuda'] },
    // patchify and unpatchify are each other's backward.
    { forward: 'patchify', backward: 'unpatchify', ts: 'patchify', cpu: ['patchify_cpu', 'unpatchify_cpu'], cuda: ['patchify_cuda', 'unpatchify_cuda'] },
    { forward: 'unpatchify', backward: 'patchify', ts: 'unpatchify', cpu: ['unpatchify_cpu', 'patchify_cpu'], cuda: ['unpatchify_cuda', 'patchify_cuda'] },
    { forward: 'tokenMean', backward: 'tokenMeanBackward', ts: 'tokenMean', cpu: ['token_mean_forward_cpu', 'token_mean_backward_cpu'], cuda: ['token_mean_forward_cuda', 'token_mean_backward_cuda'] },
  ],
  mim_loss: [
    { forward: 'maskedPatchLoss', backward: 'maskedPatchLossBackward', ts: 'maskedPatchLoss', cpu: ['masked_patch_loss_forward_cpu', 'masked_patch_loss_backward_cpu'], cuda: ['masked_patch_loss_forward_cuda', 'masked_patch_loss_backward_cuda'] },
    { forward: 'maskedCosine', backward: 'maskedCosineBackward', ts: 'maskedCosine', cpu: ['masked_cosine_forward_cpu', 'masked_cosine_backward_cpu'], cuda: ['masked_cosine_forward_cuda', 'masked_cosine_backward_cuda'] },
    { forward: 'rankingLoss', backward: 'rankingLossBackward', ts: 'rankingLoss', cpu: ['ranking_loss_forward_cpu', 'ranking_loss_backward_cpu'], cuda: ['ranking_loss_forward_cuda', 'ranking_loss_backward_cuda'] },
  ],
  image_aug: [
    { forward: 'imageBatch', backward: null, ts: 'imageBatch', cpu: ['image_batch_cpu'], cuda: ['image_batch_cuda'] },
  ],
  conv: [
    { forward: 'conv2d', backward: 'conv2dBackward', ts: 'conv2d', cpu: ['conv2d_forward_cpu', 'conv2d_backward_cpu'], cuda: ['conv2d_forward_cuda', 'conv2d_backward_cuda'] },
    { forward: 'convTranspose2d', backward: 'convTranspose2dBackward', ts: 'convTranspose2d', cpu: ['conv_transpose2d_forward_cpu', 'conv_transpose2d_backward_cpu'], cuda: ['conv_transpose2d_forward_cuda', 'conv_transpose2d_backward_cuda'] },
  ],
  batchnorm: [
    { forward: 'batchNorm2d', backward: 'batchNorm2dBackward', ts: 'batchNorm2d', cpu: ['batchnorm_forward_cpu', 'batchnorm_backward_cpu'], cuda: ['batchnorm_forward_cuda', 'batchnorm_backward_cuda'] },
    // Synchronized BatchNorm across MPI ranks (data-parallel SparK): the local sums on the op's device, summed
    // over MPI on the host (a cuda run copies 2C + 1 numbers back and forth per layer and pass).
    { forward: 'batchNorm2dSums', backward: null, ts: 'syncBatchNorm2d', cpu: ['batchnorm_sums_cpu', 'batchnorm_backward_cpu'], cuda: ['batchnorm_sums_cuda', 'batchnorm_backward_cuda'] },
  ],
  pool: [
    { forward: 'maxPool2d', backward: 'maxPool2dBackward', ts: 'maxPool2d', cpu: ['maxpool_forward_cpu', 'maxpool_backward_cpu'], cuda: ['maxpool_forward_cuda', 'maxpool_backward_cuda'] },
    { forward: 'avgPool2d', backward: 'avgPool2dBackward', ts: 'avgPool2d', cpu: ['avgpool_forward_cpu', 'avgpool_backward_cpu'], cuda: ['avgpool_forward_cuda', 'avgpool_backward_cuda'] },
    { forward: 'globalAvgPool', backward: 'globalAvgPoolBackward', ts: 'globalAvgPool', cpu: ['global_avgpool_forward_cpu', 'global_avgpool_backward_cpu'], cuda: ['global_avgpool_forward_cuda', 'global_avgpool_backward_cuda'] },
    { forward: 'applyMask', backward: null, ts: 'applyMask', cpu: ['apply_mask_cpu'], cuda: ['apply_mask_cuda'] },
    { forward: 'upsampleMask', backward: null, ts: 'upsampleMask', cpu: ['upsample_mask_cpu'], cuda: ['upsample_mask_cuda'] },
  ],
  sparse_rulebook: [
    { forward: 'activeSites', backward: null, ts: 'activeSites', cpu: ['active_sites_cpu'], cuda: ['active_sites_cuda'] },
    { forward: 'neighbourTable', backward: null, ts: 'neighbourTable', cpu: ['neighbour_table_cpu'], cuda: ['neighbour_table_cuda'] },
    // toDense and toSparse are each other's backward for the rows; the fill token's gradient is toDenseFillGrad.
    { forward: 'toDense', backward: 'toSparse', ts: 'toDense', cpu: ['to_dense_cpu', 'to_sparse_cpu'], cuda: ['to_dense_cuda', 'to_sparse_cuda'] },
    { forward: 'toSparse', backward: 'toDense', ts: 'toSparse', cpu: ['to_sparse_cpu', 'to_dense_cpu'], cuda: ['to_sparse_cuda', 'to_dense_cuda'] },
    { forward: 'toDenseFillGrad', backward: null, ts: 'toDense', cpu: ['fill_grad_cpu'], cuda: ['fill_grad_cuda'] },
  ],
  sparse_conv: [
    { forward: 'sparseConv', backward: 'sparseConvBackward', ts: 'sparseConv', cpu: ['sparse_conv_forward_cpu', 'sparse_conv_backward_cpu'], cuda: ['sparse_conv_forward_cuda', 'sparse_conv_backward_cuda'] },
    { forward: 'sparseDepthwiseConv', backward: 'sparseDepthwiseConvBackward', ts: 'sparseDepthwiseConv', cpu: ['sparse_depthwise_forward_cpu', 'sparse_depthwise_backward_cpu'], cuda: ['sparse_depthwise_forward_cuda', 'sparse_depthwise_backward_cuda'] },
  ],
  sparse_norm_pool: [
    { forward: 'sparseBatchNorm', backward: 'sparseBatchNormBackward', ts: 'sparseBatchNorm', cpu: ['sparse_batchnorm_forward_cpu', 'sparse_batchnorm_backward_cpu'], cuda: ['sparse_batchnorm_forward_cuda', 'sparse_batchnorm_backward_cuda'] },
    { forward: 'sparseMaxPool', backward: 'sparseMaxPoolBackward', ts: 'sparseMaxPool', cpu: ['sparse_maxpool_forward_cpu', 'sparse_maxpool_backward_cpu'], cuda: ['sparse_maxpool_forward_cuda', 'sparse_maxpool_backward_cuda'] },
  ],
  layout: [
    // Each is the other's backward.
    { forward: 'toChannelsLast', backward: 'toChannelsFirst', ts: 'toChannelsLast', cpu: ['to_channels_last_cpu', 'to_channels_first_cpu'], cuda: ['to_channels_last_cuda', 'to_channels_first_cuda'] },
    { forward: 'toChannelsFirst', backward: 'toChannelsLast', ts: 'toChannelsFirst', cpu: ['to_channels_first_cpu', 'to_channels_last_cpu'], cuda: ['to_channels_first_cuda', 'to_channels_last_cuda'] },
  ],
  pgd: [
    // L2 PGD on embeddings: updates of the perturbation between passes, like optimizer steps, so no gradient.
    { forward: 'pgdRandomStart', backward: null, ts: 'pgdRandomStart', cpu: ['pgd_random_start_cpu'], cuda: ['pgd_random_start_cuda'] },
    { forward: 'pgdStep', backward: null, ts: 'pgdStep', cpu: ['pgd_step_cpu'], cuda: ['pgd_step_cuda'] },
  ],
  masked_linear: [
    // Weight-mask tuning: W and bias frozen, the straight-through gradient goes to x and the scores.
    { forward: 'maskedLinear', backward: 'maskedLinearBackward', ts: 'maskedLinear', cpu: ['masked_linear_forward_cpu', 'masked_linear_backward_cpu'], cuda: ['masked_linear_forward_cuda', 'masked_linear_backward_cuda'] },
    // Serving a task over a shared frozen weight with its mask as packed bits: inference only.
    { forward: 'maskedLinearPacked', backward: null, ts: 'maskedLinearPacked', cpu: ['masked_linear_forward_cpu'], cuda: ['masked_linear_forward_cuda'] },
  ],
  asa: [
    // ASA fine-tuning: the adversary's binary mask (straight-through sigmoid gradient) as the attention bias, and the symmetric KL.
    { forward: 'asaMask', backward: 'asaMaskBackward', ts: 'asaMask', cpu: ['asa_mask_forward_cpu', 'asa_mask_backward_cpu'], cuda: ['asa_mask_forward_cuda', 'asa_mask_backward_cuda'] },
    { forward: 'symKl', backward: 'symKlBackward', ts: 'symKl', cpu: ['sym_kl_forward_cpu', 'sym_kl_backward_cpu'], cuda: ['sym_kl_forward_cuda', 'sym_kl_backward_cuda'] },
  ],
} as const satisfies Record<string, readonly OpSpec[]>;

export type OpFamily = keyof typeof OP_FAMILIES;

/**
 * Addon exports that are not ops: tensor storage, the runtime and device
 * calls (native/src/binding/bind_tensor.cc) and the benchmark probes
 * (bind_bench.cc).
 */
export const INFRASTRUCTURE = [
  'NativeTensor', 'empty', 'fromTypedArray', 'liveBytes', 'cachedBytes', 'releaseCache', 'setCacheLimit', 'setNumThreads', 'info',
  'cudaAvailable', 'cudaInfo', 'cudaSelectDevice', 'cudaSynchronize', 'cudaMemStats', 'cudaReleaseCache', 'cudaResetPeak', 'cudaCreateStream',
  'cudaSetStream', 'cudaDestroyStream', 'measurePeakGflops', 'measurePeakBandwidth', 'releaseFreeMemory',
  // The thread pool's schedulers, traced for their tests, and Storage's alignment (bind_bench.cc).
  'poolScheduleTrace', 'storageAlignment',
  // Data-parallel communication (native/src/binding/bind_mpi.cc, src/distributed/).
  'mpiAvailable', 'mpiInit', 'mpiFinalize', 'mpiAllreduce', 'mpiIallreduce', 'mpiIbarrier', 'mpiTest', 'mpiWait', 'mpiBroadcast', 'mpiAbort',
  // NCCL (data-parallel gradients on cuda), loaded at run time by the cuda addon; the CPU addon's entries throw.
  'ncclAvailable', 'ncclGetUniqueId', 'ncclCommInitRank', 'ncclAllReduce', 'ncclWait', 'ncclCommDestroy', 'ncclCommAbort',
] as const;

/** Every op of every family, with its family. */
export function allOps(): Array<OpSpec & { family: OpFamily }> {
  return (Object.entries(OP_FAMILIES) as Array<[OpFamily, readonly OpSpec[]]>).flatMap(([family, ops]) => ops.map((o) => ({ ...o, family })));
}
