/**
 * Run settings by section. The shared section (this file) holds what every
 * task's run has: the preset, data, schedule, optimizer, checkpoints, device.
 * Each task adds its own section (src/tasks/<task>/config.ts; the image tasks
 * share src/train/image-setup.ts's), and validates it. One table per section
 * gives each field its type, default and help text; the same tables validate
 * run.json files (an unknown or wrongly typed field is an error naming it)
 * and build the CLI flags, so the two cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { ClozeError } from '../errors.js';

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'string?' | 'number?' | 'number[2]' | 'string[]';

export interface FieldSpec {
  kind: Kind;
  default: unknown;
  describe: string;
  /** Allowed values for a string field. */
  choices?: readonly string[];
  /** Inclusive bounds for numbers (integers are also always within ±(2^53 − 1), where every integer is exact). */
  min?: number;
  max?: number;
  /** The lower bound itself is refused (eps: any positive number, never 0). */
  exclusiveMin?: boolean;
  /** The upper bound itself is refused (a masking ratio that leaves something visible: below 1). */
  exclusiveMax?: boolean;
  /** What runs saved before the field existed did, when not its default: a resume of one is checked against it. */
  before?: unknown;
}

export type Fields = Record<string, FieldSpec>;

/** A section of the run settings: its title in --help, the tasks that read it, and its fields. */
export interface ConfigSection<F extends Fields = Fields> {
  title: string;
  /** Tasks that read this section; empty for the shared one. */
  tasks: readonly string[];
  fields: F;
}

/** Documented upper bounds of the run's sizes: beyond them a run would not finish in any useful time. */
export const MAX_STEPS = 1_000_000_000;
export const MAX_EPOCHS = 100_000;
/** The longest text sequence a run accepts (BERT's is 512; long-context encoders reach 8192). */
export const MAX_SEQUENCE_LENGTH = 8192;

export const SHARED_FIELDS = {
  task: { kind: 'string', default: 'mlm', choices: ['mlm', 'mim', 'spark'], describe: 'Pre-training objective: masked language modeling (text), masked image modeling (ViT) or SparK (convnets)' },
  preset: { kind: 'string', default: 'bert-tiny', describe: 'Model preset name (BERT presets for mlm, ViT presets for mim, SparK presets for spark; see the README)' },
  data: { kind: 'string?', default: null, describe: 'mlm: corpus file or directory (default: the bundled WordNet corpus); mim, spark: a directory of IDX files or of class subfolders of images (default: Fashion-MNIST under /usr/share/datasets/fashion-mnist)' },
  out: { kind: 'string?', default: null, describe: 'Run directory (default: runs/<preset>)' },
  maxSteps: { kind: 'integer', default: 1000, min: 1, max: MAX_STEPS, describe: 'Optimizer steps (ignored when epochs > 0; at most 10^9)' },
  epochs: { kind: 'integer', default: 0, min: 0, max: MAX_EPOCHS, describe: 'Epochs over the training data; 0: run maxSteps steps (at most 10^5)' },
  batchSize: { kind: 'integer', default: 32, min: 1, describe: 'Sequences (mlm) or images (mim, spark) per micro-batch' },
  gradAccum: { kind: 'integer', default: 1, min: 1, describe: 'Micro-batches per optimizer step' },
  lr: { kind: 'number', default: 1e-3, min: 0, describe: 'Peak learning rate' },
  warmupRatio: { kind: 'number', default: 0.06, min: 0, max: 1, describe: 'Warmup as a share of all steps' },
  decay: { kind: 'string', default: 'linear', choices: ['linear', 'cosine', 'constant'], describe: 'Decay after warmup' },
  minLrRatio: { kind: 'number', default: 0, min: 0, max: 1, describe: 'Final lr as a share of the peak' },
  weightDecay: { kind: 'number', default: 0.01, min: 0, describe: 'AdamW weight decay (never on norms and biases)' },
  betas: { kind: 'number[2]', default: [0.9, 0.999], min: 0, max: 0.999999, describe: 'AdamW betas' },
  eps: { kind: 'number', default: 1e-6, min: 0, exclusiveMin: true, describe: 'AdamW epsilon (> 0)' },
  gradClip: { kind: 'number', default: 1, min: 0, describe: 'Global gradient-norm clip (0: off)' },
  maskRatio: { kind: 'number', default: 0.15, min: 0, max: 1, describe: 'Share of tokens (mlm) or patches (mim, spark) masked' },
  saveEvery: { kind: 'integer', default: 500, min: 1, describe: 'Checkpoint every N steps (and at the end)' },
  keepLast: { kind: 'integer', default: 3, min: 1, describe: 'Checkpoints to keep' },
  logEvery: { kind: 'integer', default: 10, min: 1, describe: 'Metrics line every N steps' },
  seed: { kind: 'integer', default: 0, min: 0, describe: 'Seed of every random choice' },
  threads: { kind: 'integer', default: 0, min: 0, max: 1024, describe: 'Native threads (0: all cores)' },
  device: { kind: 'string', default: 'auto', choices: ['auto', 'cpu', 'cuda'], describe: 'Where to train: cuda when the CUDA addon is built and a GPU is present (auto), or as named' },
  distributed: { kind: 'string', default: 'auto', choices: ['auto', 'on', 'off'], describe: 'Data parallelism over MPI ranks: auto is on when started by mpirun (each rank takes batchSize of a global batch of ranks × batchSize); on also runs the collectives at one rank (mpirun -np 1: the NCCL all-reduce on a single GPU); off trains each process alone' },
  distributedTimeout: { kind: 'number', default: 600, min: 0, exclusiveMin: true, describe: 'Seconds a rank waits in one collective (gradient all-reduce, barrier) before it fails naming the collective and ends the job: a dead or stalled rank never hangs the others' },
  distributedBackend: { kind: 'string', default: 'nccl', choices: ['nccl', 'mpi'], describe: "Data parallel on cuda: how the gradients are summed. nccl: in device memory through NCCL (loaded at run time; --device auto falls back to the CPU without it). mpi: through host copies and MPI, as PyTorch's gloo backend does for cuda tensors: slower (each bucket waits for the stream), but needs no NCCL, and several ranks may share one GPU, which NCCL refuses. CPU runs always use MPI" },
  bucketMb: { kind: 'number', default: 25, min: 0, describe: "Data parallel: the gradient all-reduce goes in buckets of at most this many MB, each started as soon as the backward has finished with its parameters, so that communication overlaps the rest of the backward (PyTorch DDP's bucket_cap_mb); 0: one all-reduce after the whole backward" },
  precision: { kind: 'string', default: 'auto', choices: ['auto', 'fp32', 'bf16'], describe: 'bf16: bfloat16 compute with fp32 master weights (cuda only); auto: bf16 on cuda, fp32 on the CPU' },
  resume: { kind: 'boolean', default: false, describe: 'Continue from the latest checkpoint in the run directory (the settings must be the saved ones, except output and intervals: see the README)' },
  overwrite: { kind: 'boolean', default: false, describe: 'Delete the run already in the run directory (checkpoints, metrics.jsonl, its tokenizer.json) and start again; without it (or --resume) such a directory is refused' },
  initFrom: { kind: 'string?', default: null, describe: 'Start from the weights (and, for mlm, the tokenizer) of a checkpoint or Hugging Face BERT directory (model.safetensors, config.json, tokenizer.json or vocab.txt); the model shape comes from its config.json' },
} as const satisfies Fields;

export const SHARED_SECTION: ConfigSection<typeof SHARED_FIELDS> = { title: 'Run (every task)', tasks: [], fields: SHARED_FIELDS };

type ValueOf<K extends Kind> = K extends 'string'
  ? string
  : K extends 'string?'
    ? string | null
    : K extends 'number' | 'integer'
      ? number
      : K extends 'number?'
        ? number | null
      : K extends 'boolean'
        ? boolean
        : K extends 'string[]'
          ? string[]
          : [number, number];

/** The resolved values of a field table. */
export type ConfigOf<F extends Fields> = { -readonly [K in keyof F]: ValueOf<F[K]['kind']> };

export type SharedConfig = ConfigOf<typeof SHARED_FIELDS>;

/** A received value as JSON, except what JSON cannot show (NaN, ±Infinity, integers past 2^53) and what is too long. */
function shown(v: unknown): string {
  if (typeof v === 'number' && (!Number.isFinite(v) || (Number.isInteger(v) && !Number.isSafeInteger(v)))) {
    return Number.isFinite(v) ? `${v} (beyond 2^53, not an exact integer)` : String(v);
  }
  if (Array.isArray(v)) return `[${v.map(shown).join(',')}]`;
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = typeof v;
  }
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

function fail(where: string, field: string, what: string, got: unknown): never {
  throw new ClozeError('E_VALUE', `${where}: Expected ${what} for ${field} but received ${shown(got)}`);
}

/** Checks one value against its spec; returns it. */
export function checkField(name: string, spec: FieldSpec, v: unknown, where: string): unknown {
  const inRange = (x: number): boolean =>
    (spec.min === undefined || (spec.exclusiveMin ? x > spec.min : x >= spec.min)) && (spec.max === undefined || (spec.exclusiveMax ? x < spec.max : x <= spec.max));
  const range = spec.min !== undefined || spec.max !== undefined
    ? ` in ${spec.exclusiveMin ? '(' : '['}${spec.min ?? '-∞'}, ${spec.max ?? '∞'}${spec.exclusiveMax ? ')' : ']'}`
    : '';
  switch (spec.kind) {
    case 'string':
    case 'string?':
      if (v === null && spec.kind === 'string?') return v;
      if (typeof v !== 'string' || v.length === 0) fail(where, name, 'a non-empty string', v);
      if (spec.choices && !spec.choices.includes(v)) fail(where, name, `one of ${spec.choices.join(', ')}`, v);
      return v;
    case 'number':
    case 'number?':
      if (v === null && spec.kind === 'number?') return v;
      if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v)) fail(where, name, `a number${range}`, v);
      return v;
    case 'integer':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || !inRange(v)) fail(where, name, `an integer${range}`, v);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') fail(where, name, 'true or false', v);
      return v;
    case 'number[2]':
      if (!Array.isArray(v) || v.length !== 2 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || !inRange(x)))
        fail(where, name, `two numbers${range}`, v);
      return v;
    case 'string[]':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0)) fail(where, name, 'a list of non-empty strings', v);
      return v;
  }
}

/** The values of one section: given ones checked, the others at their defaults. */
export function resolveSection<F extends Fields>(fields: F, given: Record<string, unknown>, where: string): ConfigOf<F> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(fields)) {
    // Own values only: an inherited `constructor` or `toString` is never a setting.
    const v = Object.hasOwn(given, name) ? given[name] : undefined;
    out[name] = v === undefined ? spec.default : checkField(name, spec, v, where);
  }
  return out as ConfigOf<F>;
}

/** Parses a JSON settings file into an object; errors name the file. */
export function readSettingsFile(path: string): Record<string, unknown> {
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
  return parsed as Record<string, unknown>;
}

/** The unknown-field check: only a table's own fields are known (`constructor`, `toString` and `__proto__` are not). */
export function isKnownField(fields: Fields, key: string): boolean {
  return Object.hasOwn(fields, key);
}
