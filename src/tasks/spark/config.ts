/**
 * The spark section of the run settings, and the recipe a SparK preset brings
 * for the shared and image fields a caller left unset.
 */
import { SPARK_PRESETS } from '../../models/spark/config.js';
import type { ConfigOf, ConfigSection, Fields } from '../../train/config.js';
import type { ImageRunConfig } from '../../train/image-setup.js';

export const SPARK_FIELDS = {
  sparkMode: { kind: 'string', default: 'sparse', choices: ['sparse', 'masked-dense'], describe: 'Real sparse convolution on visible sites, or dense convs re-masked after every op (the official way)' },
  syncBn: { kind: 'boolean', default: true, describe: "Data-parallel runs: BatchNorm statistics over the global batch (SyncBatchNorm, the official SparK's default), so N ranks train as one process; false: each rank's own batch (PyTorch DDP's plain BatchNorm)" },
} as const satisfies Fields;

export const SPARK_SECTION: ConfigSection<typeof SPARK_FIELDS> = { title: 'SparK (task spark)', tasks: ['spark'], fields: SPARK_FIELDS };

export type SparkRunConfig = ImageRunConfig & ConfigOf<typeof SPARK_FIELDS>;

/** Recipe values of a SparK preset for the fields a caller left unset. */
export function withSparkRecipe(input: Record<string, unknown>, ranks = 1): Record<string, unknown> {
  const name = (input.preset as string | undefined) ?? 'spark-resnet-mini';
  const preset = (SPARK_PRESETS as Record<string, { recipe: { batchSize: number; trainImages: number; blr: number; weightDecay: number; epochs: number; warmupEpochs: number } }>)[name];
  const fromRecipe: Record<string, unknown> = { preset: name, maskRatio: 0.6, decay: 'cosine', minLrRatio: 0, eps: 1e-8, gradClip: 5, betas: [0.9, 0.95] };
  if (preset) {
    const r = preset.recipe;
    const batch = (input.batchSize as number | undefined) ?? r.batchSize;
    const epochs = (input.epochs as number | undefined) ?? r.epochs;
    Object.assign(fromRecipe, {
      batchSize: r.batchSize,
      trainImages: r.trainImages,
      // The effective batch: ranks × micro-batch × accumulation.
      lr: (r.blr * ranks * batch * ((input.gradAccum as number | undefined) ?? 1)) / 256,
      weightDecay: r.weightDecay,
      epochs: r.epochs,
      warmupRatio: Math.min(1, r.warmupEpochs / (epochs > 0 ? epochs : r.epochs)),
    });
  }
  return { ...fromRecipe, ...input };
}
