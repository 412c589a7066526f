/**
 * The data of a fine-tuning run: the train and test examples (a built-in
 * task, prepared once into the run directory, or the user's files), their
 * label ids, and MVP's prompts (the settings' templates and verbalizer, else
 * the built-in task's).
 */
import { readFileSync } from 'node:fs';
import type { LabelledExample } from '../../data/labelled.js';
import { ClozeError } from '../../errors.js';
import type { FinetuneConfig } from './config.js';
import { BUILTIN_TASKS, isBuiltinTask, loadTaskData, type TaskData, type TaskSources } from './datasets.js';

/** A fine-tuning run on a labelled file keeps its test split here, in its run directory, for `cloze eval`. */
export const TEST_SPLIT_FILE = 'test-split.jsonl';

export interface FinetuneData extends TaskData {
  trainLabels: Int32Array;
  testLabels: Int32Array;
  /** MVP's templates and verbalizer (label → words); empty for mlp-ft. */
  templates: string[];
  verbalizer: Record<string, string[]>;
}

/** label → its id (the index in `labels`). */
export function labelIds(examples: readonly LabelledExample[], labels: readonly string[], where: string): Int32Array {
  const id = new Map(labels.map((l, i) => [l, i]));
  return Int32Array.from(examples, (e, i) => {
    const v = id.get(e.label);
    if (v === undefined) throw new ClozeError('E_VALUE', `Expected one of the labels ${JSON.stringify(labels)} for ${where}[${i}].label but received ${JSON.stringify(e.label)}`);
    return v;
  });
}

/** A verbalizer file: {"label": ["word", …]}. */
export function readVerbalizer(path: string): Record<string, string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ClozeError('E_IO', `${path}: Expected a JSON verbalizer {"label": ["word", …]} but could not read it (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ClozeError('E_VALUE', `${path}: Expected a JSON object {"label": ["word", …]} but received ${JSON.stringify(parsed)?.slice(0, 80)}`);
  }
  for (const [label, words] of Object.entries(parsed)) {
    if (!Array.isArray(words) || words.length === 0 || words.some((w) => typeof w !== 'string' || w.length === 0)) {
      throw new ClozeError('E_VALUE', `${path}: Expected a non-empty list of words for label ${JSON.stringify(label)} but received ${JSON.stringify(words)}`);
    }
  }
  return parsed as Record<string, string[]>;
}

export function loadFinetuneData(cfg: FinetuneConfig, cacheDir: string, sources?: TaskSources): FinetuneData {
  const data = loadTaskData({
    task: cfg.task ?? undefined, taskData: cfg.taskData ?? undefined, testData: cfg.testData ?? undefined, cacheDir, seed: cfg.seed, sources,
  });
  const builtin = cfg.task !== null && isBuiltinTask(cfg.task) ? BUILTIN_TASKS[cfg.task] : null;
  let templates: string[] = [];
  let verbalizer: Record<string, string[]> = {};
  if (cfg.method === 'mvp') {
    templates = cfg.template.length > 0 ? [...cfg.template] : [...(builtin?.templates ?? [])];
    verbalizer = cfg.verbalizer !== null
      ? readVerbalizer(cfg.verbalizer)
      : Object.fromEntries(Object.entries(builtin?.verbalizer ?? {}).map(([k, v]) => [k, [...v]]));
    if (templates.length === 0) throw new ClozeError('E_VALUE', `Expected --template (one or more, each with [MASK]) for method mvp on ${cfg.taskData} but received none`);
    if (Object.keys(verbalizer).length === 0) throw new ClozeError('E_VALUE', `Expected --verbalizer labels.json for method mvp on ${cfg.taskData} but received none`);
  }
  return {
    ...data,
    trainLabels: labelIds(data.train, data.labels, 'train'),
    testLabels: labelIds(data.test, data.labels, 'test'),
    templates,
    verbalizer,
  };
}
