/**
 * What the image tasks (mim, spark) share: their section of the run settings
 * (training images, augmentation, linear probes), and the setup of a run: the
 * batcher, the model (with --init-from weights when not resuming) on the run's
 * device, and AdamW over its trained parameters. Nothing native leaks when a step of the setup
 * throws: the task does not exist yet to dispose it.
 */
import { loadCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ImageBatcher, type ImageSet } from '../data/images/index.js';
import { ClozeError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { AdamW } from '../optim/adamw.js';
import { placeModel, type Placement } from './place-model.js';
import { type ConfigOf, type Fields, type ConfigSection, type SharedConfig } from './config.js';

export const IMAGE_FIELDS = {
  augment: { kind: 'boolean', default: true, describe: 'Random-resized-crop (scale 0.2–1) and horizontal flip' },
  trainImages: { kind: 'integer', default: 0, min: 0, describe: 'Use a seeded subset of this many training images (0: all)' },
  probeEvery: { kind: 'integer', default: 0, min: 0, describe: 'Linear-probe every N epochs (0: at the end only)' },
  probeImages: { kind: 'integer', default: 10000, min: 10, describe: 'Training images of the linear probe (a seeded subset)' },
  probeEpochs: { kind: 'integer', default: 100, min: 1, max: 10_000, describe: 'Epochs of the probe classifier (at most 10^4)' },
} as const satisfies Fields;

export const IMAGE_SECTION: ConfigSection<typeof IMAGE_FIELDS> = { title: 'Images (task mim and spark)', tasks: ['mim', 'spark'], fields: IMAGE_FIELDS };

/** The settings of an image task's run: the shared section and the image one. */
export type ImageRunConfig = SharedConfig & ConfigOf<typeof IMAGE_FIELDS>;

export interface ImageTraining<M> {
  batcher: ImageBatcher;
  model: M;
  optimizer: AdamW;
  /** The run's device and dtype; every step's images go through placement.input. */
  placement: Placement;
}

export function setupImageTraining<M extends Module>(
  cfg: ImageRunConfig, resumeDir: string | null, train: ImageSet, norm: { mean: number[]; std: number[] }, outSize: [number, number],
  o: { build: () => M; trained: (m: M) => Parameter[]; afterInit?: (m: M, init: LoadedCheckpoint) => void; ranks?: number },
): ImageTraining<M> {
  // Data parallel, the batcher makes the global batch (ranks × batchSize) as one process would; each rank takes its rows.
  const global = cfg.batchSize * (o.ranks ?? 1);
  if (train.n < global) {
    const what = (o.ranks ?? 1) > 1 ? `the global batch (${o.ranks} ranks × batchSize ${cfg.batchSize} = ${global})` : `batchSize (${cfg.batchSize})`;
    throw new ClozeError('E_VALUE', `Expected at least ${what} training images for batchSize but received ${train.n}`);
  }
  const batcher = new ImageBatcher(train, { batchSize: global, seed: cfg.seed, augment: cfg.augment, mean: norm.mean, std: norm.std, outSize });
  let model: M | null = null;
  let placement: Placement | null = null;
  try {
    model = o.build();
    if (cfg.initFrom && !resumeDir) {
      const init = loadCheckpoint(cfg.initFrom);
      try {
        model.loadStateDict(init.model, { strict: false });
        o.afterInit?.(model, init);
      } finally {
        init.dispose();
      }
    }
    // On cuda the model moves before the optimizer flattens its parameters there.
    placement = placeModel([model], cfg);
    const optimizer = new AdamW(o.trained(model), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
    return { batcher, model, optimizer, placement };
  } catch (e) {
    model?.dispose();
    placement?.release();
    batcher.dispose();
    throw e;
  }
}
