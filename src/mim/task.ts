/**
 * The MIM task of the shared training loop: images → augmentation → the
 * method's masking and loss → AdamW, with linear probes at fixed epoch
 * intervals as the evaluation. Checkpoints carry the ViT config and the
 * method settings in config.json, so `cloze eval` and resume rebuild the model
 * from the directory alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError } from '../errors.js';
import { channelStats } from '../data/images/index.js';
import type { JsonValue } from '../checkpoint/checkpoint.js';
import { checkVitConfig, vitPreset, VIT_PRESETS, type VitConfig } from '../models/vit/config.js';
import type { RunConfig } from '../train/config.js';
import type { TrainTask } from '../train/loop.js';
import { epochPlan } from '../train/epochs.js';
import { setupImageTraining } from '../train/image-setup.js';
import type { Progress } from '../train/progress.js';
import { limit, openImageData, type ImageData } from './data.js';
import { MimModel } from './model.js';
import { linearProbe, type Normalisation } from './probe.js';
import { mimSettings } from './settings.js';

/** Settings that define the method: a resumed run must keep them. */
const METHOD_FIELDS = [
  'method', 'imageMasking', 'maskRatio', 'maskPatch', 'normPixLoss', 'mto', 'mtoExclusion', 'mtoBlocks', 'mtoSingularityWeight',
  'mtoSingularityBlocks', 'mtoEntropyWeight', 'sbamDelta', 'sbamThreshold', 'hpmWeight', 'hpmEmaStart', 'hpmEmaEnd', 'hpmEmaEpochs', 'seed',
] as const satisfies ReadonlyArray<keyof RunConfig>;

export interface ProbeResult {
  step: number;
  /** Pre-training epochs completed when probed. */
  epoch: number;
  /** Linear-probe top-1 on the test set. */
  accuracy: number;
  loss: number;
  trainAccuracy: number;
}

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

function readModelConfig(dir: string): { vit: VitConfig } {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ClozeError('E_VALUE', `Expected JSON in ${path} but received text that does not parse (${(e as Error).message})`);
  }
  const p = parsed as { model_type?: unknown; vit?: VitConfig };
  if (p.model_type !== 'cloze-mim' || typeof p.vit !== 'object' || p.vit === null) {
    throw new ClozeError('E_VALUE', `Expected a cloze MIM checkpoint config (model_type "cloze-mim" with a vit object) in ${path} but received model_type ${JSON.stringify(p.model_type)}`);
  }
  checkVitConfig(p.vit, path);
  return { vit: p.vit };
}

/** The model config of a run: the checkpoint's own when resuming or starting from one, else the preset's. */
export function modelConfigFor(cfg: RunConfig, resumeDir: string | null): VitConfig {
  const from = resumeDir ?? cfg.initFrom;
  return from ? readModelConfig(from).vit : vitPreset(cfg.preset).config;
}

export interface MimRunParts {
  config: VitConfig;
  data: ImageData;
  norm: Normalisation;
  probeTrain: ImageData['train'];
}

export async function loadMimData(cfg: RunConfig, config: VitConfig): Promise<MimRunParts> {
  const data = await openImageData(cfg.data, { size: config.imageSize, channels: config.channels });
  if (data.train.channels !== config.channels) {
    throw new ClozeError('E_SHAPE', `Expected images with ${config.channels} channel(s) for preset ${cfg.preset} but received ${data.train.channels} in ${data.source}`);
  }
  const stats = channelStats(data.train);
  const train = limit(data.train, cfg.trainImages, cfg.seed);
  return {
    config,
    data: { ...data, train },
    norm: { mean: stats.mean, std: stats.std },
    probeTrain: limit(data.train, cfg.probeImages, cfg.seed + 1),
  };
}

export async function buildMimTask(
  cfg: RunConfig, outDir: string, resumeDir: string | null, progress: Progress | null,
): Promise<TrainTask<ProbeResult> & { totalSteps: number; perEpoch: number; mim: MimModel; parts: MimRunParts }> {
  const config = modelConfigFor(cfg, resumeDir);
  const parts = await loadMimData(cfg, config);
  const settings = mimSettings(cfg, cfg.method === 'mae' ? config.decoderDepth : config.depth);
  const { batcher, model, optimizer } = setupImageTraining(cfg, resumeDir, parts.data.train, parts.norm, config.imageSize, {
    build: () => new MimModel(config, settings, cfg.seed),
    trained: (m) => m.trainableParameters(),
    // A checkpoint without HPM's teacher: start the teacher from the loaded student, not from random weights.
    afterInit: (m, init) => {
      if (!Object.keys(init.model).some((k) => k.startsWith('teacher.'))) m.syncTeacher();
    },
  });
  const perEpoch = batcher.perEpoch;
  const { totalSteps, totalEpochs, epochAt, shouldProbe } = epochPlan(cfg, perEpoch);
  progress?.note(
    `mim: ${cfg.method}${cfg.mto ? '+mto' : ''}, masking ${settings.masking} ${settings.maskRatio}, preset ${cfg.preset}, ` +
      `${parts.data.train.n} training images (${perEpoch} steps/epoch), ${model.trainableParameters().reduce((a, p) => a + p.size, 0)} trained parameters`,
  );
  const configJson: { [key: string]: JsonValue } = {
    model_type: 'cloze-mim',
    vit: JSON.parse(JSON.stringify(config)),
    method: cfg.method,
    mto: cfg.mto,
    image_masking: settings.masking,
    norm: { mean: parts.norm.mean, std: parts.norm.std },
  };

  return {
    model,
    mim: model,
    parts,
    optimizer,
    unit: 'img',
    name: 'MIM',
    totalSteps,
    perEpoch,
    microBatch(k) {
      const b = batcher.batch(k);
      const r = model.loss(b.images, { k, epoch: k / perEpoch, epochs: totalEpochs });
      return { loss: r.loss, units: b.images.shape[0]!, parts: { ...r.parts, maskRatio: r.maskRatio } };
    },
    afterStep: (step) => model.updateTeacher(epochAt(step)),
    shouldEvaluate: shouldProbe,
    evaluate(step) {
      const r = linearProbe(model.encoder, parts.probeTrain, parts.data.test, { epochs: cfg.probeEpochs, seed: cfg.seed, norm: parts.norm });
      return { step, epoch: Math.round(epochAt(step) * 1000) / 1000, accuracy: r.accuracy, loss: r.loss, trainAccuracy: r.trainAccuracy };
    },
    describe: (e) => `probe at epoch ${e.epoch} (step ${e.step}): top-1 ${(100 * e.accuracy).toFixed(2)}%  loss ${e.loss.toFixed(4)}  train top-1 ${(100 * e.trainAccuracy).toFixed(2)}%`,
    checkpoint: () => ({ config: configJson }),
    restore(ck) {
      // Exact resume needs the same method: refuse settings that differ from the run being resumed.
      const saved = (ck.extra.run ?? {}) as Record<string, unknown>;
      for (const f of METHOD_FIELDS) {
        if (f in saved && JSON.stringify(saved[f]) !== JSON.stringify(cfg[f])) {
          throw new ClozeError('E_VALUE', `Expected ${f} ${JSON.stringify(saved[f])} (the setting of the run in ${ck.dir}) for resume but received ${JSON.stringify(cfg[f])}`);
        }
      }
    },
    dispose() {
      batcher.dispose();
      optimizer.dispose();
      model.dispose();
    },
  };
}
