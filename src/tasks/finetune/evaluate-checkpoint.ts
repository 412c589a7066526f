/**
 * `cloze eval` on a fine-tuned checkpoint: accuracy, macro-F1 and loss on the
 * run's own test split (rebuilt from its saved settings; a built-in task
 * reads the split cached in the run directory) or on all of a labelled file.
 * A run on a labelled file saved its test split as test-split.jsonl in its run
 * directory, and that copy is what is scored: the file paths in a
 * checkpoint's settings are not followed outside its run directory
 * (src/checkpoint/named-paths.ts), so an older run without the copy needs
 * --task-data.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { checkpointDataPath } from '../../checkpoint/named-paths.js';
import { readLabelledFile, type LabelledExample } from '../../data/labelled.js';
import { labelIds, TEST_SPLIT_FILE } from './data.js';
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
  if (typeof run.taskData === 'string') {
    const saved = join(dirname(dir), TEST_SPLIT_FILE);
    if (existsSync(saved)) return readLabelledFile(saved, { minPerClass: 1 }).examples;
    // A run without the copy: its files are read only when they lie inside its run directory.
    checkpointDataPath(dir, run.taskData, undefined, '--task-data');
    if (typeof run.testData === 'string') checkpointDataPath(dir, run.testData, undefined, '--task-data');
  }
  return loadTaskData({
    task: (run.task as string | null) ?? undefined, taskData: (run.taskData as string | null) ?? undefined,
    testData: (run.testData as string | null) ?? undefined, cacheDir: dirname(dir), seed: (run.seed as number | undefined) ?? 0,
  }).test;
}

export async function evaluateFinetunedCheckpoint(o: FinetunedEvalOptions): Promise<FinetunedEvalResult> {
  const c = await FinetunedClassifier.load(o.checkpoint);
  try {
    const { run, step } = savedRun(c.dir);
    const examples = o.taskData !== undefined ? readLabelledFile(o.taskData, { minPerClass: 1 }).examples : runTestSplit(c.dir, run);
    const labels = labelIds(examples, c.labels, o.taskData ?? 'test');
    const { probs, predicted } = await c.scores(examples, o.batchSize ?? (run.batchSize as number | undefined) ?? 32);
    return {
      step, ...scoresOf(probs, predicted, labels, c.labels.length),
      checkpoint: c.dir, method: c.record.method, split: o.taskData !== undefined ? 'file' : 'test',
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
