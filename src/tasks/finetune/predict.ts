/**
 * A fine-tuned checkpoint as a classifier for other programs:
 * `loadClassifier(dir).predict(texts)` gives each text's label and class
 * probabilities, with the method, labels, prompts and max length the run
 * saved in config.json (`cloze_finetune`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint } from '../../checkpoint/checkpoint.js';
import { ClozeError } from '../../errors.js';
import { classProbabilities } from './evaluate.js';
import { TextClassifier } from './classifier.js';
import { classifierMethod } from './config.js';
import { maskedTaskModels } from './mask-serving.js';
import { MASK_TUNE_DEFAULTS } from './mask-tune.js';
import { checkpointTokenizer, openClassifier } from './model.js';
import { encodeInputs, type TextInput } from './mvp-inputs.js';

export interface Prediction {
  label: string;
  /** Class probabilities by label. */
  probabilities: Record<string, number>;
}

/** What a fine-tuned checkpoint's config.json records of its run. */
export interface FinetuneRecord {
  /** The training method; asa serves as mlp-ft (the adversary is dropped). */
  method: 'mlp-ft' | 'mvp' | 'asa' | 'mask-tune';
  /** Trained with ASA (method asa, or mvp with --asa). */
  asa?: boolean;
  /** mask-tune: the threshold, and the frozen base the mask is over (sha256 of its model.safetensors, and where it was). */
  mask?: { threshold: number; base_sha256: string; base: string; applied?: string };
  labels: string[];
  pair: boolean;
  max_length: number;
  templates?: string[];
  verbalizer?: Record<string, string[]>;
  task?: string | null;
}

/** A checkpoint directory as given, or a run directory's latest checkpoint. */
export function finetunedCheckpoint(path: string): string {
  const dir = existsSync(join(path, 'model.safetensors')) ? path : latestCheckpoint(path);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${path}`);
  return dir;
}

/** config.json's fine-tuning record, or null when the checkpoint is not a fine-tuned one. */
export function finetuneRecord(dir: string): FinetuneRecord | null {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { cloze_finetune?: FinetuneRecord };
    return c.cloze_finetune ?? null;
  } catch {
    return null;
  }
}

export class FinetunedClassifier {
  private constructor(
    readonly dir: string,
    readonly record: FinetuneRecord,
    readonly classifier: TextClassifier,
    readonly tokenizer: Awaited<ReturnType<typeof checkpointTokenizer>>,
  ) {}

  static async load(path: string, seed = 0): Promise<FinetunedClassifier> {
    const dir = finetunedCheckpoint(path);
    const record = finetuneRecord(dir);
    if (!record) throw new ClozeError('E_VALUE', `Expected a fine-tuned checkpoint (config.json with cloze_finetune) in ${dir} but received a checkpoint without one`);
    const tok = await checkpointTokenizer(dir);
    const classifier = await openClassifier(dir, {
      method: record.method === 'mask-tune' ? 'mask-tune' : classifierMethod(record.method), labels: record.labels, maxLength: record.max_length, seed, templates: record.templates ?? [], verbalizer: record.verbalizer ?? {},
      ...(record.mask ? { mask: { ...MASK_TUNE_DEFAULTS, threshold: record.mask.threshold } } : {}),
    }, tok, () => {});
    return new FinetunedClassifier(dir, record, classifier, tok);
  }

  /**
   * A task served from a base and its weight-mask file (`cloze export
   * --mask-only`): the base's weights ⊙ the mask, and the head the file
   * carries. The file must name this base's model.safetensors sha256.
   */
  static async loadMasked(basePath: string, maskFile: string): Promise<FinetunedClassifier> {
    return (await FinetunedClassifier.loadMaskedTasks(basePath, [maskFile]))[0]!;
  }

  /**
   * Several tasks over one base, loaded once: every task's model views the
   * same base weights and keeps only its bits and head (see mask-serving.ts).
   */
  static async loadMaskedTasks(basePath: string, maskFiles: readonly string[]): Promise<FinetunedClassifier[]> {
    const dir = finetunedCheckpoint(basePath);
    const tasks = maskedTaskModels(dir, maskFiles);
    try {
      const tok = await checkpointTokenizer(dir);
      return tasks.map(({ mask, model }) => {
        const h = mask.header;
        const record: FinetuneRecord = { method: 'mlp-ft', labels: h.labels, pair: h.pair, max_length: h.max_length };
        return new FinetunedClassifier(dir, record, new TextClassifier({ method: 'mlp-ft', model }, h.labels, tok, h.max_length), tok);
      });
    } catch (e) {
      for (const t of tasks) t.model.dispose();
      throw e;
    }
  }

  get labels(): string[] {
    return this.record.labels;
  }

  /** Class probabilities [N, C] and predicted class ids of the inputs (texts, or {text, textPair} for a pair task). */
  async scores(inputs: ReadonlyArray<string | TextInput>, batchSize = 32): Promise<{ probs: Float32Array; predicted: Int32Array }> {
    const examples = inputs.map((x, i) => {
      const e = typeof x === 'string' ? { text: x } : x;
      if (this.record.pair && typeof e.textPair !== 'string') throw new ClozeError('E_VALUE', `Expected a {text, textPair} pair for inputs[${i}] (the model was fine-tuned on sentence pairs) but received ${JSON.stringify(x).slice(0, 80)}`);
      return e;
    });
    return classProbabilities(this.classifier, await encodeInputs(this.tokenizer, examples), batchSize);
  }

  async predict(inputs: ReadonlyArray<string | TextInput>, batchSize = 32): Promise<Prediction[]> {
    const { probs, predicted } = await this.scores(inputs, batchSize);
    const C = this.labels.length;
    return Array.from(predicted, (p, i) => ({
      label: this.labels[p]!,
      probabilities: Object.fromEntries(this.labels.map((l, k) => [l, probs[i * C + k]!])),
    }));
  }

  dispose(): void {
    this.classifier.dispose();
  }
}

/**
 * Loads a fine-tuned run (its latest checkpoint) or checkpoint directory for
 * prediction; with `mask`, `path` is the base and the task is the mask file's.
 */
export function loadClassifier(path: string, opts: { mask?: string } = {}): Promise<FinetunedClassifier> {
  return opts.mask ? FinetunedClassifier.loadMasked(path, opts.mask) : FinetunedClassifier.load(path);
}

/** Serves several weight-mask tasks over the base `path`, which is loaded once and shared. */
export function loadMaskedClassifiers(path: string, maskFiles: readonly string[]): Promise<FinetunedClassifier[]> {
  return FinetunedClassifier.loadMaskedTasks(path, maskFiles);
}
