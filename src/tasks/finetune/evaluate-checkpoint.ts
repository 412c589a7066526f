/**
 * `cloze eval` on a fine-tuned checkpoint: accuracy, macro-F1 and loss on the
 * run's own test split (rebuilt from its saved settings; a built-in task
 * reads the split cached in the run directory) or on all of a labelled file.
 * A run fine-tuned on a labelled file outside its run directory needs that
 * file passed with --task-data (a checkpoint's paths are not followed); the
 * same file then scores the run's own test split.
 */
import { dirname } from 'node:path';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { checkpointDataPath } from '../../checkpoint/named-paths.js';
import { readLabelledFile, type LabelledExample } from '../../data/labelled.js';
import { labelIds } from './data.js';
import { loadTaskData } from './datasets.js';
import { scoresOf, type FinetuneEval } from './evaluate.js';
import { FinetunedClassifier } from './predict.js';

export interface FinetunedEvalOptions {
  checkpoint: string;
  /** A labelled file to score instead of the run's test split. */
  taskData?: string;
  batchSize?: number;
}

export interface FinetunedEvalResult extends Omit<FinetuneEval, 'epoch'> {
  checkpoint: string;
  method: string;
  split: 'test' | 'file';
}

/** The run settings a fine-tuned checkpoint was saved with, and its step. */
export function savedRun(dir: string): { run: Record<string, unknown>; step: number } {
  const ck = loadCheckpoint(dir);
  try {
    return { run: (ck.extra.run ?? {}) as Record<string, unknown>, step: ck.step ?? 0 };
  } finally {
    ck.dispose();
  }
}

/** The test split of the run that wrote checkpoint `dir` (a built-in task's from the cache in its run directory). */
export function runTestSplit(dir: string, run: Record<string, unknown>): LabelledExample[] {
  return loadTaskData({
    task: (run.task as string | null) ?? undefined, taskData: (run.taskData as string | null) ?? undefined,
    testData: (run.testData as string | null) ?? undefined, cacheDir: dirname(dir), seed: (run.seed as number | undefined) ?? 0,
  }).test;
}

export async function evaluateFinetunedCheckpoint(o: FinetunedEvalOptions): Promise<FinetunedEvalResult> {
  const c = await FinetunedClassifier.load(o.checkpoint);
  try {
    const { run, step } = savedRun(c.dir);
    // The checkpoint's data paths are followed only inside its run directory (src/checkpoint/named-paths.ts): a run
    // on a labelled file needs that file passed again, and then scores the run's own test split of it.
    const named = checkpointDataPath(c.dir, run.taskData, o.taskData, '--task-data');
    if (typeof run.testData === 'string' && o.taskData === undefined) checkpointDataPath(c.dir, run.testData, undefined, '--task-data');
    const ownSplit = o.taskData === undefined || (named.same && run.testData == null);
    const examples = ownSplit ? runTestSplit(c.dir, { ...run, ...(named.path !== null ? { taskData: named.path } : {}) })
      : readLabelledFile(o.taskData!, { minPerClass: 1 }).examples;
    const split = ownSplit ? 'test' : 'file';
    const labels = labelIds(examples, c.labels, split === 'file' ? o.taskData! : 'test');
    const { probs, predicted } = await c.scores(examples, o.batchSize ?? (run.batchSize as number | undefined) ?? 32);
    return {
      step, ...scoresOf(probs, predicted, labels, c.labels.length),
      checkpoint: c.dir, method: c.record.method, split,
    };
  } finally {
    c.dispose();
  }
}

export function formatFinetunedEval(r: FinetunedEvalResult, json: boolean): string {
  if (json) return JSON.stringify({ accuracy: r.accuracy, macroF1: r.macroF1, examples: r.examples, method: r.method, loss: r.loss, step: r.step, split: r.split, checkpoint: r.checkpoint });
  return `${r.checkpoint} (step ${r.step}, ${r.method}), ${r.split === 'test' ? "the run's test split" : 'the given file'}: ` +
    `accuracy ${(100 * r.accuracy).toFixed(2)}%, macro-F1 ${(100 * r.macroF1).toFixed(2)}%, loss ${r.loss.toFixed(4)}, ${r.examples} examples`;
}
