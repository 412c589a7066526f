/**
 * `cloze eval` on an image checkpoint (MIM ViT or SparK convnet): the encoder's linear-probe top-1 on the
 * test set (default), or full fine-tuning with a linear head (`finetuneEpochs`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint, loadCheckpoint } from '../checkpoint/checkpoint.js';
import { ClozeError } from '../errors.js';
import { VitEncoder } from '../models/vit/encoder.js';
import { resolveConfig } from '../train/config.js';
import { loadMimData, modelConfigFor } from '../mim/task.js';
import { finetune, linearProbe, type ClassifierResult, type FeatureEncoder, type Normalisation } from '../mim/probe.js';
import { loadSparkData, SparkFeatures, sparkConfigFor } from '../spark/task.js';
import { SparkModel } from '../spark/model.js';
import type { ImageSet } from '../data/images/index.js';
import type { Tensor } from '../tensor.js';

export interface MimEvalOptions {
  checkpoint: string;
  data?: string;
  probeEpochs?: number;
  probeImages?: number;
  /** > 0: fine-tune for this many epochs instead of probing. */
  finetuneEpochs?: number;
  finetuneImages?: number;
  lr?: number;
  seed?: number;
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface MimEvalResult extends ClassifierResult {
  checkpoint: string;
  step: number;
  mode: 'linear-probe' | 'finetune';
  trainImages: number;
  testImages: number;
}

function modelType(dir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: string }).model_type ?? null;
  } catch {
    return null;
  }
}

/** A checkpoint of an image encoder: a MIM ViT or a SparK convnet. */
export function isMimCheckpoint(dir: string): boolean {
  const t = modelType(dir);
  return t === 'cloze-mim' || t === 'cloze-spark';
}

function encoderWeights(model: Record<string, Tensor>, dir: string): Record<string, Tensor> {
  const weights = Object.fromEntries(Object.entries(model).filter(([k]) => k.startsWith('encoder.')).map(([k, t]) => [k.slice('encoder.'.length), t]));
  if (Object.keys(weights).length === 0) throw new ClozeError('E_VALUE', `Expected encoder.* weights in ${dir}/model.safetensors but received none`);
  return weights;
}

export async function evaluateMimCheckpoint(o: MimEvalOptions): Promise<MimEvalResult> {
  const dir = existsSync(join(o.checkpoint, 'model.safetensors')) ? o.checkpoint : latestCheckpoint(o.checkpoint);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${o.checkpoint}`);
  const ck = loadCheckpoint(dir);
  try {
    const run = (ck.extra.run ?? {}) as Record<string, unknown>;
    const cfg = resolveConfig({
      ...Object.fromEntries(Object.entries(run).filter(([k]) => ['task', 'preset', 'data', 'seed', 'probeEpochs', 'probeImages'].includes(k))),
      task: modelType(dir) === 'cloze-spark' ? 'spark' : 'mim',
      ...(o.data !== undefined ? { data: o.data } : {}),
      ...(o.probeEpochs !== undefined ? { probeEpochs: o.probeEpochs } : {}),
      ...(o.probeImages !== undefined ? { probeImages: o.probeImages } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
    }, `${dir} (trainer_state.json)`);
    const ft = (o.finetuneEpochs ?? 0) > 0;
    const { limit } = await import('../mim/data.js');
    const score = (encoder: FeatureEncoder, train: ImageSet, test: ImageSet, norm: Normalisation): MimEvalResult => {
      const t = ft ? limit(train, o.finetuneImages ?? 0, cfg.seed + 2) : train;
      const r = ft
        ? finetune(encoder, t, test, { epochs: o.finetuneEpochs!, lr: o.lr, seed: cfg.seed, norm, onEpoch: o.onEpoch })
        : linearProbe(encoder, t, test, { epochs: cfg.probeEpochs, lr: o.lr, seed: cfg.seed, norm });
      return { ...r, checkpoint: dir, step: ck.step ?? 0, mode: ft ? 'finetune' : 'linear-probe', trainImages: t.n, testImages: test.n };
    };
    if (modelType(dir) === 'cloze-spark') {
      const config = sparkConfigFor({ ...cfg, initFrom: dir }, null);
      const data = await loadSparkData({ ...cfg, trainImages: 0 }, config);
      const model = new SparkModel(config, { mode: 'masked-dense', maskRatio: 0.6, seed: cfg.seed });
      try {
        model.encoder.loadStateDict(encoderWeights(ck.model, dir));
        return score(new SparkFeatures(model), ft ? data.train : data.probeTrain, data.test, data.norm);
      } finally {
        model.dispose();
      }
    }
    const config = modelConfigFor({ ...cfg, initFrom: dir }, null);
    const parts = await loadMimData({ ...cfg, trainImages: 0 }, config);
    const encoder = new VitEncoder(config, { seed: cfg.seed });
    try {
      encoder.loadStateDict(encoderWeights(ck.model, dir));
      return score(encoder, ft ? parts.data.train : parts.probeTrain, parts.data.test, parts.norm);
    } finally {
      encoder.dispose();
    }
  } finally {
    ck.dispose();
  }
}

export function formatMimEval(r: MimEvalResult, json: boolean): string {
  if (json) return JSON.stringify(r);
  return `${r.checkpoint} (step ${r.step}), ${r.mode} on ${r.trainImages} images: test top-1 ${(100 * r.accuracy).toFixed(2)}% ` +
    `(loss ${r.loss.toFixed(4)}, train top-1 ${(100 * r.trainAccuracy).toFixed(2)}%) over ${r.testImages} test images`;
}
