/**
 * SparK convnets for small images: four stages at strides 1, 2, 4 and 8 of a
 * 32×32 input (total downsample 8, so the mask grid is 4×4 cells of 8×8 px),
 * and the light hierarchical decoder's widths. Widths are small so that the
 * CPU can pre-train them; `--scale`-style growth is a matter of presets.
 */
import { ClozeError } from '../../errors.js';

export interface SparkConfig {
  arch: 'resnet' | 'convnext';
  imageSize: number;
  channels: number;
  /** Channels of each stage; the stage count sets the downsample (2^(stages−1)). */
  widths: number[];
  /** Blocks per stage. */
  depths: number[];
  /** Decoder width at the coarsest scale; it halves with every upsampling block. */
  decoderWidth: number;
}

export interface SparkRecipe {
  batchSize: number;
  /** Pre-training images (a seeded subset), so that the default run fits a CPU session; 0: all. */
  trainImages: number;
  blr: number;
  weightDecay: number;
  epochs: number;
  warmupEpochs: number;
}

export const SPARK_PRESETS = {
  'spark-resnet-mini': {
    config: { arch: 'resnet', imageSize: 32, channels: 1, widths: [32, 64, 128, 256], depths: [1, 1, 1, 1], decoderWidth: 128 },
    recipe: { batchSize: 64, trainImages: 10000, blr: 2e-3, weightDecay: 0.04, epochs: 5, warmupEpochs: 1 },
    describe: 'ResNet with basic blocks, widths 32–256, one block per stage, on 32×32 (Fashion-MNIST padded); downsample 8',
  },
  'spark-convnext-mini': {
    config: { arch: 'convnext', imageSize: 32, channels: 1, widths: [32, 64, 128, 256], depths: [1, 1, 2, 1], decoderWidth: 128 },
    recipe: { batchSize: 64, trainImages: 10000, blr: 2e-3, weightDecay: 0.04, epochs: 5, warmupEpochs: 1 },
    describe: 'ConvNeXt-style (depthwise 7×7, LayerNorm, pointwise MLP ×4), widths 32–256, on 32×32; downsample 8',
  },
} as const satisfies Record<string, { config: SparkConfig; recipe: SparkRecipe; describe: string }>;

export type SparkPresetName = keyof typeof SPARK_PRESETS;

export function isSparkPreset(name: string): name is SparkPresetName {
  return Object.prototype.hasOwnProperty.call(SPARK_PRESETS, name);
}

export function sparkPreset(name: string): { config: SparkConfig; recipe: SparkRecipe } {
  if (!isSparkPreset(name)) {
    throw new ClozeError('E_VALUE', `Expected a SparK preset (${Object.keys(SPARK_PRESETS).join(', ')}) for preset but received ${JSON.stringify(name)}`);
  }
  const p = SPARK_PRESETS[name];
  return { config: { ...p.config, widths: [...p.config.widths], depths: [...p.config.depths] }, recipe: { ...p.recipe } };
}

/** Total downsample = the mask cell size in pixels. */
export function downsample(c: SparkConfig): number {
  return 2 ** (c.widths.length - 1);
}

export function checkSparkConfig(c: SparkConfig, where: string): void {
  const bad = (field: string, what: string, got: unknown): never => {
    throw new ClozeError('E_VALUE', `${where}: Expected ${what} for ${field} but received ${JSON.stringify(got)}`);
  };
  if (c.arch !== 'resnet' && c.arch !== 'convnext') bad('arch', 'resnet or convnext', c.arch);
  if (!Array.isArray(c.widths) || c.widths.length < 2 || c.widths.some((w) => !Number.isInteger(w) || w < 1)) bad('widths', 'two or more positive integers', c.widths);
  if (!Array.isArray(c.depths) || c.depths.length !== c.widths.length || c.depths.some((d) => !Number.isInteger(d) || d < 1)) bad('depths', `${c.widths.length} positive integers`, c.depths);
  if (!Number.isInteger(c.imageSize) || c.imageSize % downsample(c) !== 0) bad('imageSize', `a multiple of the downsample ${downsample(c)}`, c.imageSize);
  if (!Number.isInteger(c.decoderWidth) || c.decoderWidth < 2 ** (c.widths.length - 1)) bad('decoderWidth', `an integer ≥ ${2 ** (c.widths.length - 1)} (it halves per block)`, c.decoderWidth);
}
