/**
 * Scoring an image checkpoint (a MIM ViT or a SparK convnet): the task that
 * wrote it, found by config.json's model_type, opens its encoder; then a
 * linear probe (default) or full fine-tuning with a linear head, top-1 on the
 * test set. Settings not given come from the run that wrote the checkpoint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint, loadCheckpoint } from '../checkpoint/checkpoint.js';
import { checkpointDataPath } from '../checkpoint/named-paths.js';
import { ClozeError } from '../errors.js';
import { scoreEncoder, type EncoderScore } from '../eval/encoder-score.js';
import type { FinetuneRecipe } from '../eval/probe.js';
import { resolveConfig } from './config.js';
import { TASKS, taskOfModelType } from './registry.js';

export interface ImageEvalOptions {
  checkpoint: string;
  data?: string;
  probeEpochs?: number;
  probeImages?: number;
  /** > 0: fine-tune for this many epochs instead of probing. */
  finetuneEpochs?: number;
  finetuneImages?: number;
  /** Fine-tuning recipe fields over FINETUNE_RECIPE. */
  finetune?: Partial<FinetuneRecipe>;
  lr?: number;
  seed?: number;
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface ImageEvalResult extends EncoderScore {
  checkpoint: string;
  step: number;
}

/** config.json's model_type in a checkpoint directory, or null. */
export function checkpointModelType(dir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: string }).model_type ?? null;
  } catch {
    return null;
  }
}

/** A checkpoint directory as given, or a run directory's latest checkpoint. */
export function checkpointDir(path: string): string {
  const dir = existsSync(join(path, 'model.safetensors')) ? path : latestCheckpoint(path);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${path}`);
  return dir;
}

/** A checkpoint of an image encoder: a task with an encoder to score wrote it. */
export function isImageCheckpoint(dir: string): boolean {
  const task = taskOfModelType(checkpointModelType(dir));
  return task !== null && TASKS[task].openEncoder !== undefined;
}

export async function evaluateImageCheckpoint(o: ImageEvalOptions): Promise<ImageEvalResult> {
  const dir = checkpointDir(o.checkpoint);
  const modelType = checkpointModelType(dir);
  const task = taskOfModelType(modelType);
  const open = task ? TASKS[task].openEncoder : undefined;
  if (!task || !open) {
    throw new ClozeError('E_VALUE', `Expected an image checkpoint (model_type ${Object.values(TASKS).filter((t) => t.openEncoder).map((t) => t.modelType).join(' or ')}) in ${dir}/config.json but received model_type ${JSON.stringify(modelType)}`);
  }
  const ck = loadCheckpoint(dir);
  try {
    const run = (ck.extra.run ?? {}) as Record<string, unknown>;
    // The checkpoint's data path is followed only inside its run directory; otherwise --data is required.
    const named = checkpointDataPath(dir, run.data, o.data, '--data');
    const cfg = resolveConfig({
      ...Object.fromEntries(Object.entries(run).filter(([k]) => ['preset', 'seed', 'probeEpochs', 'probeImages'].includes(k))),
      task,
      data: named.path,
      ...(o.probeEpochs !== undefined ? { probeEpochs: o.probeEpochs } : {}),
      ...(o.probeImages !== undefined ? { probeImages: o.probeImages } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
    }, `${dir} (trainer_state.json)`);
    const e = await open(cfg, ck);
    try {
      const r = scoreEncoder(e, { probeEpochs: cfg.probeEpochs, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, ...(o.finetune ? { finetune: o.finetune } : {}), lr: o.lr, seed: cfg.seed, onEpoch: o.onEpoch });
      return { ...r, checkpoint: dir, step: ck.step ?? 0 };
    } finally {
      e.dispose();
    }
  } finally {
    ck.dispose();
  }
}
