/**
 * ELECTRA presets: the discriminator's size, the generator's share of its
 * width, and the training recipe. electra-small follows the paper's small
 * model (12 layers, 256 wide, 4 heads, FFN 1024; generator 1/4 wide: 64, 1
 * head, FFN 256) and its recipe (lr 5e-4, weight decay 0.01, batch 128, 15%
 * masking, 10k warmup steps of 1M: 1%, linear decay). electra-mini is ours, a
 * CPU-sized one (4 layers, 128 wide, 2 heads, FFN 512; generator 32 wide).
 */
import { expected } from '../../errors.js';
import type { BertConfigInput } from '../bert/config.js';
import type { BertTrainingRecipe } from '../bert/presets.js';

export interface ElectraPreset {
  discriminator: BertConfigInput;
  /** Generator width / discriminator width. */
  generatorFraction: number;
  recipe: BertTrainingRecipe & { batchSize?: number };
}

export type ElectraPresetName = 'electra-mini' | 'electra-small';

const BERT_VOCAB = 30522;

export const ELECTRA_RECIPE: BertTrainingRecipe = {
  maskRatio: 0.15,
  evalMaskRatio: 0.15,
  optimizer: { lr: 5e-4, betas: [0.9, 0.999], eps: 1e-6, weightDecay: 0.01 },
  warmupFraction: 0.01,
  finalLrFactor: 0,
};

export const ELECTRA_PRESETS: Readonly<Record<ElectraPresetName, ElectraPreset>> = {
  'electra-mini': {
    discriminator: { vocabSize: BERT_VOCAB, hidden: 128, layers: 4, heads: 2, intermediate: 512 },
    generatorFraction: 1 / 4,
    // The CPU-sized preset keeps the shared defaults' batch (32) and step count, as bert-tiny does.
    recipe: ELECTRA_RECIPE,
  },
  'electra-small': {
    discriminator: { vocabSize: BERT_VOCAB, hidden: 256, layers: 12, heads: 4, intermediate: 1024 },
    generatorFraction: 1 / 4,
    recipe: { ...ELECTRA_RECIPE, batchSize: 128 },
  },
};

export function isElectraPreset(name: unknown): name is ElectraPresetName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(ELECTRA_PRESETS, name);
}

export function electraPreset(name: ElectraPresetName, overrides: Partial<BertConfigInput> = {}): ElectraPreset {
  const p = ELECTRA_PRESETS[name];
  if (!p) throw expected(`one of ${Object.keys(ELECTRA_PRESETS).join(', ')}`, 'preset', name);
  return { ...p, discriminator: { ...p.discriminator, ...overrides } };
}
