/**
 * Named model presets. The BERT sizes follow Google's released checkpoints
 * (Turc et al. for tiny/mini/small); the MosaicBERT ones add ALiBi, GeGLU,
 * unpadded batches and the recipe's training settings from the README's text pre-training section,
 * recorded as data for the trainer.
 */
import { expected } from '../../errors.js';
import type { BertConfigInput } from './config.js';

/** Training settings a preset recommends; the trainer reads them, the model ignores them. */
export interface BertTrainingRecipe {
  maskRatio: number;
  /** Masking ratio at evaluation. */
  evalMaskRatio: number;
  optimizer: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  /** Warmup as a fraction of the total steps, then linear decay to finalLrFactor × lr. */
  warmupFraction: number;
  finalLrFactor: number;
}

export interface BertPreset {
  config: BertConfigInput;
  /** Pack real tokens ([nnz] + cuSeqlens) instead of padding: every linear and norm runs on nnz rows. */
  unpadded: boolean;
  /** Pad the tokenizer's vocabulary up to a multiple of this (1: none). */
  vocabMultiple: number;
  recipe?: BertTrainingRecipe;
}

export type BertPresetName = 'bert-tiny' | 'bert-mini' | 'bert-small' | 'bert-base' | 'mosaic-bert-mini' | 'mosaic-bert-base';

const BERT_VOCAB = 30522;

const mosaicRecipe: BertTrainingRecipe = {
  maskRatio: 0.3,
  evalMaskRatio: 0.15,
  optimizer: { lr: 5e-4, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 1e-5 },
  warmupFraction: 0.06,
  finalLrFactor: 0.02,
};

const bert = (layers: number, hidden: number, heads: number, intermediate: number): BertPreset => ({
  config: { vocabSize: BERT_VOCAB, hidden, layers, heads, intermediate },
  unpadded: false,
  vocabMultiple: 1,
});

const mosaic = (layers: number, hidden: number, heads: number, intermediate: number): BertPreset => ({
  config: {
    vocabSize: roundUp(BERT_VOCAB, 64), hidden, layers, heads, intermediate,
    positionEmbedding: 'alibi', ffn: 'geglu', hiddenDropout: 0.1, attentionDropout: 0,
  },
  unpadded: true,
  vocabMultiple: 64,
  recipe: mosaicRecipe,
});

export const BERT_PRESETS: Readonly<Record<BertPresetName, BertPreset>> = {
  'bert-tiny': bert(2, 128, 2, 512),
  'bert-mini': bert(4, 256, 4, 1024),
  'bert-small': bert(4, 512, 8, 2048),
  'bert-base': bert(12, 768, 12, 3072),
  'mosaic-bert-mini': mosaic(4, 256, 4, 1024),
  'mosaic-bert-base': mosaic(12, 768, 12, 3072),
};

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** A preset's config, with the vocabulary set from a tokenizer (rounded up to the preset's multiple). */
export function bertPreset(name: BertPresetName, overrides: Partial<BertConfigInput> = {}): BertPreset {
  const p = BERT_PRESETS[name];
  if (!p) throw expected(`one of ${Object.keys(BERT_PRESETS).join(', ')}`, 'preset', name);
  const config = { ...p.config, ...overrides };
  config.vocabSize = roundUp(config.vocabSize, p.vocabMultiple);
  return { ...p, config };
}
