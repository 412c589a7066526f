/**
 * The mim section of the run settings (the method, its masking and its
 * objectives; see the README's image pre-training section), and the recipe a ViT preset and
 * the method bring for the shared fields a caller left unset.
 */
import { VIT_PRESETS } from '../../models/vit/config.js';
import type { ConfigOf, ConfigSection, Fields } from '../../train/config.js';
import type { ImageRunConfig } from '../../train/image-setup.js';

export const MIM_FIELDS = {
  method: { kind: 'string', default: 'mae', choices: ['mae', 'simmim'], describe: 'MAE (encoder on visible patches, decoder) or SimMIM (mask token in the encoder, linear head)' },
  imageMasking: { kind: 'string', default: 'random', choices: ['random', 'block', 'sbam', 'hpm'], describe: 'Patch selection: random, SimMIM blocks of maskPatch×maskPatch patches, SBAM salience with the adaptive ratio (mae), HPM hard patch mining (mae)' },
  maskPatch: { kind: 'integer', default: 1, min: 1, describe: 'Block masking: side of a mask block in patches' },
  normPixLoss: { kind: 'boolean', default: true, describe: 'mae: per-patch normalised pixel targets' },
  mto: { kind: 'boolean', default: false, describe: 'Masked-token optimization (exclusion, data singularity, entropy) in the blocks that see mask tokens' },
  mtoExclusion: { kind: 'boolean', default: true, describe: 'mto: visible queries ignore masked keys in the enabled blocks' },
  mtoBlocks: { kind: 'integer', default: -1, min: -1, describe: 'mto: blocks (from the first) with exclusion and the entropy loss; -1: the first half' },
  mtoSingularityWeight: { kind: 'number', default: 0.1, min: 0, describe: 'mto: weight of the data-singularity loss at the input (0: off)' },
  mtoSingularityBlocks: { kind: 'integer', default: 0, min: 0, describe: 'mto: also penalise hidden states after this many blocks, the weight falling linearly with depth' },
  mtoEntropyWeight: { kind: 'number', default: 0.01, min: 0, describe: 'mto: weight of the attention-entropy loss of masked queries (0: off)' },
  sbamDelta: { kind: 'number', default: 0.1, min: 0, max: 0.5, describe: 'sbam: the adaptive ratio moves within maskRatio ± sbamDelta' },
  sbamThreshold: { kind: 'number', default: 0.5, min: 0, max: 1, describe: 'sbam: salience threshold δ of the adaptive ratio' },
  hpmWeight: { kind: 'number', default: 1, min: 0, describe: 'hpm: weight of the loss-prediction (ranking) loss' },
  hpmEmaStart: { kind: 'number', default: 0.999, min: 0, max: 1, describe: 'hpm: EMA teacher decay at the start' },
  hpmEmaEnd: { kind: 'number', default: 0.9999, min: 0, max: 1, describe: 'hpm: EMA teacher decay after the ramp' },
  hpmEmaEpochs: { kind: 'integer', default: 100, min: 0, describe: 'hpm: epochs over which the decay ramps' },
} as const satisfies Fields;

export const MIM_SECTION: ConfigSection<typeof MIM_FIELDS> = { title: 'Masked image modeling (task mim)', tasks: ['mim'], fields: MIM_FIELDS };

export type MimRunConfig = ImageRunConfig & ConfigOf<typeof MIM_FIELDS>;

/** Recipe values of a ViT preset (and the method's mask ratio) for the fields a caller left unset. */
export function withMimRecipe(input: Record<string, unknown>): Record<string, unknown> {
  const name = (input.preset as string | undefined) ?? 'vit-micro-fmnist';
  const preset = (VIT_PRESETS as Record<string, { recipe: { batchSize: number; blr: number; betas: readonly [number, number]; weightDecay: number; epochs: number; warmupEpochs: number } }>)[name];
  const method = (input.method as string | undefined) ?? 'mae';
  const fromRecipe: Record<string, unknown> = {
    preset: name,
    maskRatio: method === 'simmim' ? 0.6 : 0.75,
    imageMasking: method === 'simmim' ? 'block' : 'random',
    maskPatch: method === 'simmim' ? 2 : 1,
    decay: 'cosine',
    minLrRatio: 0,
    eps: 1e-8,
    gradClip: 0,
  };
  if (preset) {
    const r = preset.recipe;
    const batch = (input.batchSize as number | undefined) ?? r.batchSize;
    const epochs = (input.epochs as number | undefined) ?? r.epochs;
    Object.assign(fromRecipe, {
      batchSize: r.batchSize,
      // MAE scales by the effective batch: micro-batch × accumulation.
      lr: (r.blr * batch * ((input.gradAccum as number | undefined) ?? 1)) / 256,
      betas: [...r.betas],
      weightDecay: r.weightDecay,
      epochs: r.epochs,
      // In step mode (epochs 0) the recipe's own warmup share applies.
      warmupRatio: Math.min(1, r.warmupEpochs / (epochs > 0 ? epochs : r.epochs)),
    });
  }
  return { ...fromRecipe, ...input };
}
