/**
 * The setup the image tasks (mim, spark) share: the batcher, the model (with
 * --init-from weights when not resuming), and AdamW over its trained
 * parameters. Nothing native leaks when a step of it throws: the task does not
 * exist yet to dispose it.
 */
import { loadCheckpoint, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { ImageBatcher, type ImageSet } from '../data/images/index.js';
import { ClozeError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { AdamW } from '../optim/adamw.js';
import type { RunConfig } from './config.js';

export interface ImageTraining<M> {
  batcher: ImageBatcher;
  model: M;
  optimizer: AdamW;
}

export function setupImageTraining<M extends Module>(
  cfg: RunConfig, resumeDir: string | null, train: ImageSet, norm: { mean: number[]; std: number[] }, outSize: [number, number],
  o: { build: () => M; trained: (m: M) => Parameter[]; afterInit?: (m: M, init: LoadedCheckpoint) => void },
): ImageTraining<M> {
  if (train.n < cfg.batchSize) {
    throw new ClozeError('E_VALUE', `Expected at least batchSize (${cfg.batchSize}) training images for batchSize but received ${train.n}`);
  }
  const batcher = new ImageBatcher(train, { batchSize: cfg.batchSize, seed: cfg.seed, augment: cfg.augment, mean: norm.mean, std: norm.std, outSize });
  let model: M | null = null;
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
    const optimizer = new AdamW(o.trained(model), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
    return { batcher, model, optimizer };
  } catch (e) {
    model?.dispose();
    batcher.dispose();
    throw e;
  }
}
