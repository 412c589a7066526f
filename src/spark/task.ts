/**
 * The SparK task of the shared training loop: images zero-padded to the
 * preset's size, SparK's masking, the sparse (or masked-dense) encoder,
 * densify, the light decoder and the masked per-patch MSE; linear probes of
 * the encoder (global-average-pooled last stage) as the evaluation.
 * Where we differ from the paper's recipe: AdamW instead of LAMB, a fixed
 * weight decay instead of the 0.04 → 0.2 cosine ramp, and a base lr of 2e-3
 * (not 2e-4) with one warmup epoch, for runs of a few epochs on small images.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError } from '../errors.js';
import { channelStats, padImages } from '../data/images/index.js';
import type { JsonValue } from '../checkpoint/checkpoint.js';
import type { Tensor } from '../tensor.js';
import type { RunConfig } from '../train/config.js';
import type { TrainTask } from '../train/loop.js';
import { epochPlan } from '../train/epochs.js';
import { setupImageTraining } from '../train/image-setup.js';
import type { Progress } from '../train/progress.js';
import { limit, openImageData } from '../mim/data.js';
import { linearProbe, type FeatureEncoder } from '../mim/probe.js';
import type { ProbeResult } from '../mim/task.js';
import { checkSparkConfig, sparkPreset, SPARK_PRESETS, type SparkConfig } from './config.js';
import { SparkModel } from './model.js';

export function withSparkRecipe(input: Record<string, unknown>): Record<string, unknown> {
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
      lr: (r.blr * batch * ((input.gradAccum as number | undefined) ?? 1)) / 256,
      weightDecay: r.weightDecay,
      epochs: r.epochs,
      warmupRatio: Math.min(1, r.warmupEpochs / (epochs > 0 ? epochs : r.epochs)),
    });
  }
  return { ...fromRecipe, ...input };
}

export function sparkConfigFor(cfg: RunConfig, resumeDir: string | null): SparkConfig {
  const from = resumeDir ?? cfg.initFrom;
  if (!from) return sparkPreset(cfg.preset).config;
  const path = join(from, 'config.json');
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  const p = JSON.parse(readFileSync(path, 'utf8')) as { model_type?: unknown; spark?: SparkConfig };
  if (p.model_type !== 'cloze-spark' || !p.spark) {
    throw new ClozeError('E_VALUE', `Expected a cloze SparK checkpoint config (model_type "cloze-spark") in ${path} but received model_type ${JSON.stringify(p.model_type)}`);
  }
  checkSparkConfig(p.spark, path);
  return p.spark;
}

/** The SparK encoder as probes and fine-tuning see it. */
export class SparkFeatures implements FeatureEncoder {
  constructor(readonly model: SparkModel) {}
  get featureDim(): number {
    return this.model.encoder.outDim;
  }
  get inputSize(): [number, number] {
    return [this.model.config.imageSize, this.model.config.imageSize];
  }
  get training(): boolean {
    return this.model.encoder.training;
  }
  features(images: Tensor): Tensor {
    return this.model.features(images);
  }
  parameters() {
    return this.model.encoder.parameters();
  }
  train(on = true): void {
    this.model.encoder.train(on);
  }
  eval(): void {
    this.model.encoder.eval();
  }
}

export async function loadSparkData(cfg: RunConfig, config: SparkConfig) {
  const raw = await openImageData(cfg.data, { size: [config.imageSize, config.imageSize], channels: config.channels });
  if (raw.train.channels !== config.channels) {
    throw new ClozeError('E_SHAPE', `Expected images with ${config.channels} channel(s) for preset ${cfg.preset} but received ${raw.train.channels} in ${raw.source}`);
  }
  const full = padImages(raw.train, config.imageSize);
  const test = padImages(raw.test, config.imageSize);
  const stats = channelStats(full);
  return { train: limit(full, cfg.trainImages, cfg.seed), test, probeTrain: limit(full, cfg.probeImages, cfg.seed + 1), norm: { mean: stats.mean, std: stats.std }, source: raw.source };
}

export async function buildSparkTask(
  cfg: RunConfig, outDir: string, resumeDir: string | null, progress: Progress | null,
): Promise<TrainTask<ProbeResult> & { totalSteps: number; perEpoch: number; spark: SparkModel }> {
  void outDir;
  const config = sparkConfigFor(cfg, resumeDir);
  const data = await loadSparkData(cfg, config);
  const { batcher, model, optimizer } = setupImageTraining(cfg, resumeDir, data.train, data.norm, [config.imageSize, config.imageSize], {
    build: () => new SparkModel(config, { mode: cfg.sparkMode as 'sparse' | 'masked-dense', maskRatio: cfg.maskRatio, seed: cfg.seed }),
    trained: (m) => m.parameters(),
  });
  const feats = new SparkFeatures(model);
  const perEpoch = batcher.perEpoch;
  const { totalSteps, epochAt, shouldProbe } = epochPlan(cfg, perEpoch);
  progress?.note(`spark: ${config.arch} (${cfg.preset}), ${cfg.sparkMode}, ratio ${cfg.maskRatio}, ${data.train.n} training images (${perEpoch} steps/epoch), ${model.numParameters()} parameters`);
  const configJson: { [key: string]: JsonValue } = {
    model_type: 'cloze-spark', spark: JSON.parse(JSON.stringify(config)), mode: cfg.sparkMode, norm: { mean: data.norm.mean, std: data.norm.std },
  };
  return {
    model,
    spark: model,
    optimizer,
    unit: 'img',
    name: 'SparK',
    totalSteps,
    perEpoch,
    microBatch(k) {
      const b = batcher.batch(k);
      const r = model.loss(b.images, k);
      return { loss: r.loss, units: b.images.shape[0]!, parts: r.parts };
    },
    shouldEvaluate: shouldProbe,
    evaluate(step) {
      const r = linearProbe(feats, data.probeTrain, data.test, { epochs: cfg.probeEpochs, seed: cfg.seed, norm: data.norm });
      return { step, epoch: Math.round(epochAt(step) * 1000) / 1000, accuracy: r.accuracy, loss: r.loss, trainAccuracy: r.trainAccuracy };
    },
    describe: (e) => `probe at epoch ${e.epoch} (step ${e.step}): top-1 ${(100 * e.accuracy).toFixed(2)}%  loss ${e.loss.toFixed(4)}`,
    checkpoint: () => ({ config: configJson }),
    restore(ck) {
      const saved = (ck.extra.run ?? {}) as Record<string, unknown>;
      for (const f of ['maskRatio', 'seed'] as const) {
        if (f in saved && saved[f] !== cfg[f]) throw new ClozeError('E_VALUE', `Expected ${f} ${JSON.stringify(saved[f])} (the setting of the run in ${ck.dir}) for resume but received ${JSON.stringify(cfg[f])}`);
      }
    },
    dispose() {
      batcher.dispose();
      optimizer.dispose();
      model.dispose();
    },
  };
}
