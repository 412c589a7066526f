/**
 * The mim section of the run settings (the method, its masking and its
 * objectives; see the README's image pre-training section), and the recipe a ViT preset and
 * the method bring for the shared fields a caller left unset.
 */
import { isVitPreset, VIT_PRESETS, type VitPresetName } from '../../models/vit/config.js';
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

/** What SimMIM's recipe sets per preset; the rest (AdamW, wd 0.05, clip 5, cosine) is shared by every preset. */
export interface SimmimRecipe {
  batchSize: number;
  /** Base lr: lr = blr · batch / 512, as in SimMIM's main_simmim.py. */
  blr: number;
  epochs: number;
  warmupEpochs: number;
}

/**
 * SimMIM's own recipe (microsoft/SimMIM: config.py defaults and the pre-training configs), not MAE's:
 * AdamW β (0.9, 0.999), eps 1e-8, weight decay 0.05, grad clip 5.0, lr = BASE_LR · batch / 512, warmup, then
 * cosine to MIN_LR. The ViT-B config (simmim_pretrain__vit_base__img224__800ep) gives vit-base-p16 its numbers:
 * BASE_LR 1e-4, 800 epochs, 10 warmup, batch 2048 (16 GPUs × 128, the README's command). Its step schedule
 * (×0.1 at epoch 700) is not one of the trainer's, so the cosine of config.py and of the short
 * (100-epoch) config applies, to MIN_LR/BASE_LR = 1e-5/2e-4 = 0.05 of the peak, that short config's floor.
 * The small presets keep their epochs, batch and 10% warmup (the 100-epoch config warms up 10 of 100) and take
 * 10× that short config's BASE_LR 2e-4, as their MAE recipe takes 10× MAE's blr (1.5e-3 for 1.5e-4).
 */
export const SIMMIM_RECIPE = { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05, gradClip: 5, decay: 'cosine', minLrRatio: 0.05 } as const;

const smallSimmim = (name: Exclude<VitPresetName, 'vit-base-p16'>): SimmimRecipe => {
  const r = VIT_PRESETS[name].recipe;
  return { batchSize: r.batchSize, blr: 2e-3, epochs: r.epochs, warmupEpochs: r.warmupEpochs };
};

export const SIMMIM_PRESET_RECIPES: Record<VitPresetName, SimmimRecipe> = {
  'vit-micro-fmnist': smallSimmim('vit-micro-fmnist'),
  'vit-mini-fmnist': smallSimmim('vit-mini-fmnist'),
  'vit-tiny-fmnist': smallSimmim('vit-tiny-fmnist'),
  'vit-base-p16': { batchSize: 2048, blr: 1e-4, epochs: 800, warmupEpochs: 10 },
};

/**
 * Recipe values of a ViT preset and the method for the fields a caller left unset: MAE's recipe
 * (the preset's, lr = blr·batch/256) for method mae, SimMIM's (above, lr = blr·batch/512) for method simmim,
 * with or without MTO. The method's mask ratio and masking come with it. `ranks`: the data-parallel world size,
 * whose ranks each take `batchSize` images, so the global batch the lr scales by is ranks × batchSize × gradAccum.
 */
export function withMimRecipe(input: Record<string, unknown>, ranks = 1): Record<string, unknown> {
  const name = (input.preset as string | undefined) ?? 'vit-micro-fmnist';
  const method = (input.method as string | undefined) ?? 'mae';
  const simmim = method === 'simmim';
  const fromRecipe: Record<string, unknown> = {
    preset: name,
    maskRatio: simmim ? 0.6 : 0.75,
    imageMasking: simmim ? 'block' : 'random',
    maskPatch: simmim ? 2 : 1,
    decay: 'cosine',
    minLrRatio: simmim ? SIMMIM_RECIPE.minLrRatio : 0,
    eps: 1e-8,
    gradClip: simmim ? SIMMIM_RECIPE.gradClip : 0,
  };
  if (isVitPreset(name)) {
    const mae = VIT_PRESETS[name].recipe;
    const r = simmim ? { ...SIMMIM_PRESET_RECIPES[name], betas: SIMMIM_RECIPE.betas, weightDecay: SIMMIM_RECIPE.weightDecay } : mae;
    // SimMIM scales by 512 images, MAE by 256; both by the effective batch (ranks × micro-batch × accumulation).
    const per = simmim ? 512 : 256;
    const batch = (input.batchSize as number | undefined) ?? r.batchSize;
    const epochs = (input.epochs as number | undefined) ?? r.epochs;
    Object.assign(fromRecipe, {
      batchSize: r.batchSize,
      lr: (r.blr * ranks * batch * ((input.gradAccum as number | undefined) ?? 1)) / per,
      betas: [...r.betas],
      weightDecay: r.weightDecay,
      epochs: r.epochs,
      // In step mode (epochs 0) the recipe's own warmup share applies.
      warmupRatio: Math.min(1, r.warmupEpochs / (epochs > 0 ? epochs : r.epochs)),
    });
  }
  return { ...fromRecipe, ...input };
}
