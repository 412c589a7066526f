/** cloze: masked-modeling pre-training for Node.js. Library entry point. */
export { Tensor, tensor, zeros, ones, full, fromTypedArray, type DType, type Device } from './tensor.js';
export { backward } from './autograd/backward.js';
export { noGrad, scope, keep, isGradEnabled } from './autograd/mode.js';
export { ClozeError, type ErrorCode } from './errors.js';
export { Rng } from './rng.js';
export {
  runtimeInfo, setNumThreads, liveBytes, cachedBytes, releaseCache, setCacheLimit, type BackendInfo,
} from './runtime.js';
export { matmul, linear, type MatmulOptions } from './ops/linalg.js';
export { add, mul, scale, biasAdd, sum, mean, gelu, relu, relu6, tanh, reshape } from './ops/elementwise.js';
export { dropout, type DropoutOptions } from './ops/dropout.js';
export { geglu } from './ops/geglu.js';
export { layerNorm } from './ops/layernorm.js';
export { softmax } from './ops/softmax.js';
export { crossEntropy, argmax, type CrossEntropyOptions } from './ops/cross_entropy.js';
export { embedding } from './ops/embedding.js';
export { linearCrossEntropy, linearSample, type LinearCrossEntropyOptions, type LinearSampleOptions } from './ops/linear_ce.js';
export { labelWordLogits, verbalizerPool } from './ops/label_words.js';
export { attention, attentionQkv, alibiSlopes, type AttentionOptions, type AttentionResult } from './ops/attention.js';
export { concatRows } from './ops/concat.js';
export { setFusions, type Fusions } from './nn/fusions.js';
export { Module } from './nn/module.js';
export { Parameter } from './nn/parameter.js';
export { Linear, LayerNorm, Embedding, Dropout, type InitOptions } from './nn/layers.js';
export { MultiHeadAttention } from './nn/attention.js';
export { truncNormal, constant } from './nn/init.js';
export { Profiler, withProfile, profileLabel, JS_OVERHEAD, PROFILER_OWN, type FamilyStats, type ProfileReport, type ProfilerOptions } from './profile/index.js';
export { AdamW, readNorm, type AdamWOptions, type ClippedStep, type ParamGroup } from './optim/adamw.js';
export * from './masking/index.js';
export {
  readDocuments, readFileDocuments, type CorpusOptions, type CorpusFormat, type TextMode, type Document,
} from './data/documents.js';
export { readLines, type Line } from './data/lines.js';
export { listCorpusFiles } from './data/sources.js';
export {
  TextTokenizer, trainWordPiece, loadTokenizer, SPECIAL_TOKENS, type TrainWordPieceOptions, type LoadTokenizerOptions,
} from './data/tokenizer.js';
export { Shard, ShardWriter, SHARD_MAGIC, SHARD_VERSION, type ShardHeader } from './data/shard.js';
export { prepareShard, corpusHash, openShard, type PrepareOptions, type PreparedShard } from './data/prepare.js';
export { PackedCorpus, type PackOptions, type SpecialIds, type Batch, type BatchOptions } from './data/packing.js';
export * from './models/bert/index.js';
export * from './models/electra/index.js';
export {
  saveSafetensors, loadSafetensors, readSafetensorsHeader, SAFETENSORS_DTYPE, MAX_HEADER_BYTES,
  type SafetensorsHeader, type SafetensorsEntry, type SaveSafetensorsOptions,
} from './checkpoint/safetensors.js';
export {
  saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints, pruneCheckpoints, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
  type CheckpointContents, type SaveCheckpointOptions, type LoadedCheckpoint, type OptimizerState, type JsonValue,
} from './checkpoint/checkpoint.js';
export { pretrain, resolveRun, type PretrainHooks, type PretrainResult, type StepInfo, type EvalResult } from './tasks/pretrain.js';
export { defaultCorpus } from './tasks/mlm/data.js';
export { pretrainInWorker, type WorkerHooks } from './tasks/pretrain-worker.js';
export { resolveConfig, loadRunConfig, RUN_FIELDS, RUN_SECTIONS, type RunConfig, type TaskName } from './tasks/config.js';
export { SHARED_FIELDS, type FieldSpec, type ConfigSection } from './train/config.js';
export { TASKS, type TaskEntry } from './tasks/registry.js';
export {
  maskFromScores, uniformNoise, assembleTokens, restoreIndex, patchify, unpatchify, tokenMean, type TokenMask,
} from './ops/mim_tokens.js';
export {
  maskedPatchLoss, maskedCosine, rankingLoss, type PatchLossKind, type MaskedPatchLossOptions, type MaskedPatchLossResult,
} from './ops/mim_loss.js';
export { emaUpdate, EmaTeacher } from './optim/ema.js';
export * from './data/images/index.js';
export { imageBatch, MAX_OUT_SIDE } from './ops/image_aug.js';
export { VitEncoder } from './models/vit/encoder.js';
export { MaeDecoder } from './models/vit/decoder.js';
export { VitBlock } from './models/vit/block.js';
export { VIT_PRESETS, vitPreset, type VitConfig, type VitPreset, type VitPresetName } from './models/vit/config.js';
export { MimModel, type MimLoss, type MimStepContext } from './tasks/mim/model.js';
export { mimSettings, type MimSettings, type MtoSettings } from './tasks/mim/settings.js';
export { linearProbe, finetuneEncoder, extractFeatures, type ClassifierResult, type ProbeResult, type FeatureEncoder } from './eval/probe.js';
export { scoreEncoder, type EncoderUnderTest, type EncoderScore } from './eval/encoder-score.js';
export { evaluateImageCheckpoint, type ImageEvalOptions, type ImageEvalResult } from './tasks/evaluate.js';
export { evaluateMlmCheckpoint, type MlmEvalOptions } from './tasks/mlm/evaluate-checkpoint.js';
export { runMimSuite, SUITE_METHODS, type SuiteOptions, type SuiteResult } from './commands/bench-mim.js';
export * from './report/index.js';
export { conv2d, convTranspose2d, type Conv2dOptions } from './ops/conv.js';
export { batchNorm2d, type BatchNorm2dOptions } from './ops/batchnorm.js';
export {
  maxPool2d, avgPool2d, globalAvgPool, applyMask, upsampleMask, type Pool2dOptions, type AvgPool2dOptions,
} from './ops/pool.js';
export {
  activeSites, neighbourTable, toDense, toSparse, type SparseSites, type NeighbourOptions,
} from './ops/sparse_rulebook.js';
export { sparseConv, sparseDepthwiseConv } from './ops/sparse_conv.js';
export { sparseBatchNorm, sparseMaxPool, type SparseBatchNormOptions } from './ops/sparse_norm_pool.js';
export { toChannelsLast, toChannelsFirst } from './ops/layout.js';
export { pgdRandomStart, pgdStep, type PgdSegments, type PgdStartOptions, type PgdStepOptions } from './ops/pgd.js';
export { maskedLinear, maskedLinearPacked, weightMask, maskedFraction } from './ops/masked_linear.js';
export { asaMask, gradReverse, symKl, ASA_MASK_VALUE, type AsaMaskResult } from './ops/asa.js';
export { SPARK_PRESETS, sparkPreset, type SparkConfig, type SparkPresetName } from './models/spark/config.js';
export { SparkModel, type SparkSettings, type SparkLoss } from './tasks/spark/model.js';
export { MaskContext, sparkCoarseMask, type SparkMode } from './models/spark/mask-context.js';
export { finetune, DEFAULT_INIT_RUN, type FinetuneHooks, type FinetuneResult, type FinetuneEval } from './tasks/run-finetune.js';
export { resolveFinetuneConfig, FINETUNE_FIELDS, FINETUNE_RUN_FIELDS, type FinetuneConfig } from './tasks/finetune/config.js';
export { loadClassifier, loadMaskedClassifiers, FinetunedClassifier, type Prediction } from './tasks/finetune/predict.js';
export { evaluateFinetunedCheckpoint, type FinetunedEvalOptions, type FinetunedEvalResult } from './tasks/finetune/evaluate-checkpoint.js';
export { BUILTIN_TASKS, loadTaskData, type TaskData, type BuiltinTaskName } from './tasks/finetune/datasets.js';
export { readLabelledFile, stratifiedSplit, labelNames, type LabelledExample } from './data/labelled.js';
export { classificationScores, type ClassificationScores } from './eval/classification.js';
