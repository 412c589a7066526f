/**
 * ViT shapes for masked image modeling, and the presets: small ones for
 * 28×28 Fashion-MNIST on a CPU (patch 4 → 49 tokens) and the standard
 * ImageNet shapes (patch 16 on 224) for a GPU. The MAE decoder's shape is part
 * of the config because MAE and HPM need it; SimMIM ignores it.
 */
import { ClozeError } from '../../errors.js';

export interface VitConfig {
  imageSize: [number, number];
  channels: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** A CLS token in front of the patches (MAE has one; the small presets pool instead). */
  cls: boolean;
  /** LayerNorm epsilon (timm/MAE: 1e-6). */
  lnEps: number;
  decoderDim: number;
  decoderDepth: number;
  decoderHeads: number;
}

/** Training settings a preset brings; a caller's own values win. */
export interface VitRecipe {
  batchSize: number;
  /** Base lr: lr = blr · batch / 256, as in MAE. */
  blr: number;
  betas: [number, number];
  weightDecay: number;
  epochs: number;
  warmupEpochs: number;
}

export interface VitPreset {
  config: VitConfig;
  recipe: VitRecipe;
  describe: string;
}

const small = (dim: number, depth: number, heads: number, dec: [number, number, number]): VitConfig => ({
  imageSize: [28, 28], channels: 1, patch: 4, dim, depth, heads, mlpRatio: 4, cls: false, lnEps: 1e-6,
  decoderDim: dec[0], decoderDepth: dec[1], decoderHeads: dec[2],
});

const cpuRecipe = (epochs: number): VitRecipe => ({ batchSize: 128, blr: 1.5e-3, betas: [0.9, 0.95], weightDecay: 0.05, epochs, warmupEpochs: Math.max(1, Math.round(epochs / 10)) });

export const VIT_PRESETS = {
  'vit-micro-fmnist': {
    config: small(64, 4, 4, [64, 2, 4]),
    recipe: cpuRecipe(10),
    describe: 'Fashion-MNIST 28×28, patch 4 (49 tokens), width 64, 4 blocks; the comparison suite\'s CPU model',
  },
  'vit-mini-fmnist': {
    config: small(128, 6, 4, [96, 2, 4]),
    recipe: cpuRecipe(20),
    describe: 'Fashion-MNIST 28×28, patch 4, width 128, 6 blocks',
  },
  'vit-tiny-fmnist': {
    config: small(192, 12, 3, [128, 4, 4]),
    recipe: cpuRecipe(50),
    describe: 'Fashion-MNIST 28×28, patch 4, ViT-Tiny width (192, 12 blocks); for a GPU or a long CPU run',
  },
  'vit-base-p16': {
    config: {
      imageSize: [224, 224], channels: 3, patch: 16, dim: 768, depth: 12, heads: 12, mlpRatio: 4, cls: true, lnEps: 1e-6,
      decoderDim: 512, decoderDepth: 8, decoderHeads: 16,
    },
    // MAE's ViT-B recipe (the README's image pre-training section): blr 1.5e-4, batch 4096, 40 warmup epochs, cosine.
    recipe: { batchSize: 4096, blr: 1.5e-4, betas: [0.9, 0.95], weightDecay: 0.05, epochs: 800, warmupEpochs: 40 },
    describe: 'ViT-B/16 on 224×224 RGB with MAE\'s decoder (512 wide, 8 blocks); a GPU model',
  },
} as const satisfies Record<string, VitPreset>;

export type VitPresetName = keyof typeof VIT_PRESETS;

export function isVitPreset(name: string): name is VitPresetName {
  return Object.prototype.hasOwnProperty.call(VIT_PRESETS, name);
}

export function vitPreset(name: string): VitPreset {
  if (!isVitPreset(name)) {
    throw new ClozeError('E_VALUE', `Expected a ViT preset (${Object.keys(VIT_PRESETS).join(', ')}) for preset but received ${JSON.stringify(name)}`);
  }
  const p = VIT_PRESETS[name];
  return { config: { ...p.config, imageSize: [...p.config.imageSize] as [number, number] }, recipe: { ...p.recipe, betas: [...p.recipe.betas] as [number, number] }, describe: p.describe };
}

/** Checks a config's internal consistency; `where` names its source in errors. */
export function checkVitConfig(c: VitConfig, where: string): void {
  const bad = (field: string, what: string, got: unknown): never => {
    throw new ClozeError('E_VALUE', `${where}: Expected ${what} for ${field} but received ${JSON.stringify(got)}`);
  };
  const posInt = (f: keyof VitConfig): void => {
    const v = c[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(f, 'a positive integer', v);
  };
  (['channels', 'patch', 'dim', 'depth', 'heads', 'decoderDim', 'decoderDepth', 'decoderHeads'] as const).forEach(posInt);
  if (!Array.isArray(c.imageSize) || c.imageSize.length !== 2) bad('imageSize', '[height, width]', c.imageSize);
  const [h, w] = c.imageSize;
  if (h % c.patch !== 0 || w % c.patch !== 0) bad('imageSize', `sides divisible by the patch size ${c.patch}`, c.imageSize);
  if (c.dim % c.heads !== 0) bad('dim', `a multiple of heads (${c.heads})`, c.dim);
  if (c.decoderDim % c.decoderHeads !== 0) bad('decoderDim', `a multiple of decoderHeads (${c.decoderHeads})`, c.decoderDim);
  if (typeof c.mlpRatio !== 'number' || !(c.mlpRatio > 0)) bad('mlpRatio', 'a positive number', c.mlpRatio);
  if (typeof c.cls !== 'boolean') bad('cls', 'true or false', c.cls);
  if (typeof c.lnEps !== 'number' || !(c.lnEps > 0)) bad('lnEps', 'a positive number', c.lnEps);
}

export function gridOf(c: VitConfig): [number, number] {
  return [c.imageSize[0] / c.patch, c.imageSize[1] / c.patch];
}
