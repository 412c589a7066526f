/** The BERT-style MLM model: config, presets, batches and BertForMaskedLM. */
export { bertConfig, BERT_DEFAULTS, type BertConfig, type BertConfigInput, type PositionEmbedding, type FfnKind, type NormPlacement } from './config.js';
export {
  BERT_PRESETS, bertPreset, roundUp, type BertPreset, type BertPresetName, type BertTrainingRecipe,
} from './presets.js';
export { unpadBatch, keyPaddingFromAttentionMask, type MlmBatch, type EncoderBatch, type PaddedMlmBatch, type PackedMlmBatch } from './batch.js';
export { BertForMaskedLM, BertModel, BertEmbeddings, BertEncoder, encodeBatch, type BertModelOptions } from './model.js';
export {
  BertForSequenceClassification, BertPooler, BertPooledModel, type SequenceClassificationOptions, type PretrainedLoad,
} from './classification.js';
export { BertLayer, BertSelfAttention, ModuleList, type AttentionLayout } from './layers.js';
