/**
 * The run configuration of `cloze pretrain`: one table of fields, each with
 * its type, default and help text. The same table validates run.json files
 * (unknown or wrongly typed fields are errors naming the field) and builds
 * the CLI flags, so the two cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { ClozeError } from '../errors.js';

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'string?' | 'number[2]';

export interface FieldSpec {
  kind: Kind;
  default: unknown;
  describe: string;
  /** Allowed values for a string field. */
  choices?: readonly string[];
  /** Inclusive bounds for numbers. */
  min?: number;
  max?: number;
}

export const RUN_FIELDS = {
  task: { kind: 'string', default: 'mlm', choices: ['mlm', 'mim', 'spark'], describe: 'Pre-training objective: masked language modeling (text), masked image modeling (ViT) or SparK (convnets)' },
  preset: { kind: 'string', default: 'bert-tiny', describe: 'Model preset name (BERT presets for mlm, ViT presets for mim; see the README)' },
  data: { kind: 'string?', default: null, describe: 'mlm: corpus file or directory (default: the bundled WordNet corpus); mim: a directory of IDX files or of class subfolders of images (default: Fashion-MNIST under /usr/share/datasets/fashion-mnist)' },
  textMode: { kind: 'string', default: 'line', choices: ['line', 'paragraph'], describe: 'Text files: one document per line, or blank-line-separated paragraphs' },
  jsonlField: { kind: 'string', default: 'text', describe: 'JSONL field holding the text' },
  tokenizer: { kind: 'string?', default: null, describe: 'tokenizer.json or vocab.txt to load (default: train WordPiece on the corpus)' },
  vocabSize: { kind: 'integer', default: 8000, min: 6, max: 30000, describe: 'WordPiece vocabulary size when training one' },
  lowercase: { kind: 'boolean', default: true, describe: 'Lowercase text when training a tokenizer' },
  maxLength: { kind: 'integer', default: 128, min: 8, max: 65536, describe: 'Sequence length, [CLS] and [SEP] included' },
  evalFraction: { kind: 'number', default: 0.05, min: 0, max: 0.5, describe: 'Share of sequences held out for evaluation' },
  out: { kind: 'string?', default: null, describe: 'Run directory (default: runs/<preset>)' },
  maxSteps: { kind: 'integer', default: 1000, min: 1, describe: 'Optimizer steps (ignored when epochs > 0)' },
  epochs: { kind: 'integer', default: 0, min: 0, describe: 'Epochs over the training data; 0: run maxSteps steps' },
  batchSize: { kind: 'integer', default: 32, min: 1, describe: 'Sequences per micro-batch' },
  gradAccum: { kind: 'integer', default: 1, min: 1, describe: 'Micro-batches per optimizer step' },
  lr: { kind: 'number', default: 1e-3, min: 0, describe: 'Peak learning rate' },
  warmupRatio: { kind: 'number', default: 0.06, min: 0, max: 1, describe: 'Warmup as a share of all steps' },
  decay: { kind: 'string', default: 'linear', choices: ['linear', 'cosine', 'constant'], describe: 'Decay after warmup' },
  minLrRatio: { kind: 'number', default: 0, min: 0, max: 1, describe: 'Final lr as a share of the peak' },
  weightDecay: { kind: 'number', default: 0.01, min: 0, describe: 'AdamW weight decay (never on norms and biases)' },
  betas: { kind: 'number[2]', default: [0.9, 0.999], min: 0, max: 0.999999, describe: 'AdamW betas' },
  eps: { kind: 'number', default: 1e-6, min: 0, describe: 'AdamW epsilon' },
  gradClip: { kind: 'number', default: 1, min: 0, describe: 'Global gradient-norm clip (0: off)' },
  maskRatio: { kind: 'number', default: 0.15, min: 0, max: 1, describe: 'Share of tokens selected for prediction' },
  masking: { kind: 'string', default: 'token', choices: ['token', 'whole-word', 'span', 'ngram'], describe: 'Selection strategy' },
  evalEvery: { kind: 'integer', default: 200, min: 1, describe: 'Evaluate every N steps' },
  evalBatches: { kind: 'integer', default: 20, min: 1, describe: 'Batches per evaluation' },
  saveEvery: { kind: 'integer', default: 500, min: 1, describe: 'Checkpoint every N steps (and at the end)' },
  keepLast: { kind: 'integer', default: 3, min: 1, describe: 'Checkpoints to keep' },
  logEvery: { kind: 'integer', default: 10, min: 1, describe: 'Metrics line every N steps' },
  seed: { kind: 'integer', default: 0, min: 0, describe: 'Seed of every random choice' },
  threads: { kind: 'integer', default: 0, min: 0, max: 1024, describe: 'Native threads (0: all cores)' },
  device: { kind: 'string', default: 'auto', choices: ['auto', 'cpu', 'cuda'], describe: 'Where to train: cuda when the CUDA addon is built and a GPU is present (auto), or as named' },
  precision: { kind: 'string', default: 'auto', choices: ['auto', 'fp32', 'bf16'], describe: 'bf16: bfloat16 compute with fp32 master weights (cuda only); auto: bf16 on cuda, fp32 on the CPU' },
  resume: { kind: 'boolean', default: false, describe: 'Continue from the latest checkpoint in the run directory' },
  // Masked image modeling (task mim); see ../shared/specs/mim.md and the README.
  method: { kind: 'string', default: 'mae', choices: ['mae', 'simmim'], describe: 'mim: MAE (encoder on visible patches, decoder) or SimMIM (mask token in the encoder, linear head)' },
  imageMasking: { kind: 'string', default: 'random', choices: ['random', 'block', 'sbam', 'hpm'], describe: 'mim: patch selection: random, SimMIM blocks of maskPatch×maskPatch patches, SBAM salience with the adaptive ratio (mae), HPM hard patch mining (mae)' },
  maskPatch: { kind: 'integer', default: 1, min: 1, describe: 'mim, block masking: side of a mask block in patches' },
  normPixLoss: { kind: 'boolean', default: true, describe: 'mim, mae: per-patch normalised pixel targets' },
  augment: { kind: 'boolean', default: true, describe: 'mim: random-resized-crop (scale 0.2–1) and horizontal flip' },
  trainImages: { kind: 'integer', default: 0, min: 0, describe: 'mim: use a seeded subset of this many training images (0: all)' },
  mto: { kind: 'boolean', default: false, describe: 'mim: masked-token optimization (exclusion, data singularity, entropy) in the blocks that see mask tokens' },
  mtoExclusion: { kind: 'boolean', default: true, describe: 'mim, mto: visible queries ignore masked keys in the enabled blocks' },
  mtoBlocks: { kind: 'integer', default: -1, min: -1, describe: 'mim, mto: blocks (from the first) with exclusion and the entropy loss; -1: the first half' },
  mtoSingularityWeight: { kind: 'number', default: 0.1, min: 0, describe: 'mim, mto: weight of the data-singularity loss at the input (0: off)' },
  mtoSingularityBlocks: { kind: 'integer', default: 0, min: 0, describe: 'mim, mto: also penalise hidden states after this many blocks, the weight falling linearly with depth' },
  mtoEntropyWeight: { kind: 'number', default: 0.01, min: 0, describe: 'mim, mto: weight of the attention-entropy loss of masked queries (0: off)' },
  sbamDelta: { kind: 'number', default: 0.1, min: 0, max: 0.5, describe: 'mim, sbam: the adaptive ratio moves within maskRatio ± sbamDelta' },
  sbamThreshold: { kind: 'number', default: 0.5, min: 0, max: 1, describe: 'mim, sbam: salience threshold δ of the adaptive ratio' },
  hpmWeight: { kind: 'number', default: 1, min: 0, describe: 'mim, hpm: weight of the loss-prediction (ranking) loss' },
  hpmEmaStart: { kind: 'number', default: 0.999, min: 0, max: 1, describe: 'mim, hpm: EMA teacher decay at the start' },
  hpmEmaEnd: { kind: 'number', default: 0.9999, min: 0, max: 1, describe: 'mim, hpm: EMA teacher decay after the ramp' },
  hpmEmaEpochs: { kind: 'integer', default: 100, min: 0, describe: 'mim, hpm: epochs over which the decay ramps' },
  sparkMode: { kind: 'string', default: 'sparse', choices: ['sparse', 'masked-dense'], describe: 'spark: real sparse convolution on visible sites, or dense convs re-masked after every op (the official way)' },
  probeEvery: { kind: 'integer', default: 0, min: 0, describe: 'mim, spark: linear-probe every N epochs (0: at the end only)' },
  probeImages: { kind: 'integer', default: 10000, min: 10, describe: 'mim: training images of the linear probe (a seeded subset)' },
  probeEpochs: { kind: 'integer', default: 100, min: 1, describe: 'mim: epochs of the probe classifier' },
  initFrom: { kind: 'string?', default: null, describe: 'Start from the weights and tokenizer of a checkpoint or Hugging Face BERT directory (model.safetensors, config.json, tokenizer.json or vocab.txt); the model shape comes from its config.json' },
} as const satisfies Record<string, FieldSpec>;

export type RunFieldName = keyof typeof RUN_FIELDS;

type ValueOf<K extends Kind> = K extends 'string'
  ? string
  : K extends 'string?'
    ? string | null
    : K extends 'number' | 'integer'
      ? number
      : K extends 'boolean'
        ? boolean
        : [number, number];

export type RunConfig = { -readonly [K in RunFieldName]: ValueOf<(typeof RUN_FIELDS)[K]['kind']> };

function fail(where: string, field: string, what: string, got: unknown): never {
  throw new ClozeError('E_VALUE', `${where}: Expected ${what} for ${field} but received ${JSON.stringify(got)}`);
}

function checkField(name: RunFieldName, v: unknown, where: string): unknown {
  const spec: FieldSpec = RUN_FIELDS[name];
  const inRange = (x: number): boolean => (spec.min === undefined || x >= spec.min) && (spec.max === undefined || x <= spec.max);
  const range = spec.min !== undefined || spec.max !== undefined ? ` in [${spec.min ?? '-∞'}, ${spec.max ?? '∞'}]` : '';
  switch (spec.kind) {
    case 'string':
    case 'string?':
      if (v === null && spec.kind === 'string?') return v;
      if (typeof v !== 'string' || v.length === 0) fail(where, name, 'a non-empty string', v);
      if (spec.choices && !spec.choices.includes(v)) fail(where, name, `one of ${spec.choices.join(', ')}`, v);
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v)) fail(where, name, `a number${range}`, v);
      return v;
    case 'integer':
      if (typeof v !== 'number' || !Number.isInteger(v) || !inRange(v)) fail(where, name, `an integer${range}`, v);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') fail(where, name, 'true or false', v);
      return v;
    case 'number[2]':
      if (!Array.isArray(v) || v.length !== 2 || v.some((x) => typeof x !== 'number' || !inRange(x)))
        fail(where, name, `two numbers${range}`, v);
      return v;
  }
}

/** Fills defaults and validates; `where` names the source in errors (a file path or "options"). */
export function resolveConfig(partial: Record<string, unknown>, where = 'options'): RunConfig {
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
    throw new ClozeError('E_VALUE', `${where}: Expected an object of run settings but received ${JSON.stringify(partial)}`);
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(partial)) {
    if (!(key in RUN_FIELDS)) {
      throw new ClozeError('E_VALUE', `${where}: Expected a known setting for ${key} but received an unknown field (known: ${Object.keys(RUN_FIELDS).join(', ')})`);
    }
  }
  for (const name of Object.keys(RUN_FIELDS) as RunFieldName[]) {
    const v = partial[name];
    out[name] = v === undefined ? RUN_FIELDS[name].default : checkField(name, v, where);
  }
  return out as RunConfig;
}

/** Reads a run.json file: its raw settings (validated), so that presets' recipes can still fill the unset ones. */
export function readRunFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ClozeError('E_IO', `${path}: could not read the run config (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ClozeError('E_VALUE', `${path}: Expected a JSON object but received text that is not JSON (${(e as Error).message})`);
  }
  resolveConfig(parsed as Record<string, unknown>, path);
  return parsed as Record<string, unknown>;
}

/** Reads and validates a run.json file, defaults filled. */
export function loadRunConfig(path: string, overrides: Record<string, unknown> = {}): RunConfig {
  return resolveConfig({ ...readRunFile(path), ...overrides }, path);
}
