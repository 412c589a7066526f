/**
 * Checkpoint directories, laid out so that Hugging Face `transformers` can load
 * one as it is (`from_pretrained(dir)`) and cloze can resume from it exactly:
 *
 *   <out>/checkpoint-<step>/
 *     model.safetensors      weights under the caller's (HF) names, metadata {"format": "pt"}
 *     config.json            the model config object the caller gives
 *     tokenizer files        copied from the paths given (tokenizer.json, vocab.txt, …)
 *     optimizer.safetensors  AdamW's flat moments: groups.<i>.m, groups.<i>.v (and
 *                            groups.<i>.master, fp32 master weights, for bf16 runs)
 *     trainer_state.json     step, optimizer settings, RNG states, data position,
 *                            dropout counters, the trainer's own JSON
 *     complete               written last: every file's name and size
 *
 * A save builds `checkpoint-<step>.tmp-<pid>-<random>/`, fsyncs every file and
 * the directory, then renames it into place: a crash at any point leaves the
 * previous checkpoints as they were, and `latestCheckpoint` only returns
 * directories named `checkpoint-<step>` with a `complete` marker.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClozeError, expected } from '../errors.js';
import { Rng } from '../rng.js';
import { Tensor } from '../tensor.js';
import type { AdamW } from '../optim/adamw.js';
import { checkInt } from '../validate.js';
import { fsyncDir, tempName, writeFileSynced } from './fsutil.js';
import { loadSafetensors, saveSafetensors } from './safetensors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export const CHECKPOINT_FORMAT = 'cloze-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const COMPLETE_MARKER = 'complete';
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const CONFIG_FILE = 'config.json';
/** Tokenizer files `loadCheckpoint` reports when present (HF's names). */
export const TOKENIZER_FILES = ['tokenizer.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

const RESERVED = new Set([COMPLETE_MARKER, MODEL_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE, CONFIG_FILE]);
const FINAL_NAME = /^checkpoint-(\d+)$/;
const LEFTOVER_NAME = /^checkpoint-\d+\.(?:tmp|old)-(\d+)-[0-9a-f]+$/;

export interface CheckpointContents {
  step: number;
  /** Weights by their HF names (`bert.encoder.layer.0.attention.self.query.weight`, …). */
  model: Record<string, Tensor>;
  /** Written as config.json. */
  config: { [key: string]: JsonValue };
  /** Paths of tokenizer files, copied in under their base names. */
  tokenizerFiles?: string[];
  optimizer?: AdamW;
  /** RNGs (or their getState()) by name. */
  rng?: Record<string, Rng | readonly number[]>;
  /** Where the data pipeline is (epoch, batch index, …). */
  dataPosition?: JsonValue;
  /** `Dropout.calls` by module name. */
  dropoutCounters?: Record<string, number>;
  /** Anything else the trainer needs to resume (lr schedule, loss history, …). */
  extra?: { [key: string]: JsonValue };
}

export interface SaveCheckpointOptions {
  /** Keep the newest `keepLast` checkpoints (by step) and delete older ones; default: keep all. */
  keepLast?: number;
  /** Called after each file lands in the temp directory (tests use it to fail mid-save). */
  afterFile?: (name: string) => void;
}

export interface OptimizerState {
  step: number;
  lr: number;
  betas: [number, number];
  eps: number;
  groups: Array<{ m: Tensor; v: Tensor; master?: Tensor; weightDecay: number; size: number }>;
}

interface TrainerStateFile {
  format: string;
  version: number;
  step: number;
  optimizer: null | { step: number; lr: number; betas: [number, number]; eps: number; groups: Array<{ weightDecay: number; size: number }> };
  rng: Record<string, Array<number | null>>;
  dataPosition: JsonValue;
  dropoutCounters: Record<string, number>;
  extra: { [key: string]: JsonValue };
}

export interface LoadedCheckpoint {
  dir: string;
  /** null for a directory without trainer_state.json (an imported HF model). */
  step: number | null;
  model: Record<string, Tensor>;
  config: { [key: string]: JsonValue };
  /** Paths of the tokenizer files present in the directory. */
  tokenizerFiles: string[];
  optimizer: OptimizerState | null;
  /** RNG states by name, for Rng.setState(). */
  rng: Record<string, number[]>;
  dataPosition: JsonValue;
  dropoutCounters: Record<string, number>;
  extra: { [key: string]: JsonValue };
  /** Frees the model and optimizer tensors. */
  dispose(): void;
}

/** Throws unless `v` survives JSON exactly: finite numbers, strings, booleans, null, arrays, plain objects. */
function checkJson(v: unknown, name: string): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw expected('a finite number (JSON)', name, v);
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => checkJson(x, `${name}[${i}]`));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v as object)) checkJson(x, `${name}.${k}`);
    return;
  }
  throw expected('a JSON value', name, v);
}

/** Writes `<outDir>/checkpoint-<step>/` atomically, then prunes; returns its path. */
export function saveCheckpoint(outDir: string, c: CheckpointContents, opts: SaveCheckpointOptions = {}): string {
  checkInt(c.step, 'step');
  if (opts.keepLast !== undefined) checkInt(opts.keepLast, 'keepLast', 1);
  checkJson(c.config, 'config');
  checkJson(c.dataPosition ?? null, 'dataPosition');
  checkJson(c.dropoutCounters ?? {}, 'dropoutCounters');
  checkJson(c.extra ?? {}, 'extra');
  const rng: Record<string, Array<number | null>> = {};
  for (const [name, r] of Object.entries(c.rng ?? {})) {
    const s = r instanceof Rng ? r.getState() : [...r];
    if (s.length !== 5) throw expected('an RNG state of 5 numbers', `rng.${name}`, s.length);
    rng[name] = s.map((x) => (Number.isNaN(x) ? null : x)); // NaN: no spare normal
  }
  const tokenizerFiles = c.tokenizerFiles ?? [];
  const names = new Set<string>();
  for (const f of tokenizerFiles) {
    const base = path.basename(f);
    if (RESERVED.has(base) || names.has(base)) throw expected('tokenizer files with distinct, unreserved names', 'tokenizerFiles', f);
    if (!fs.statSync(f, { throwIfNoEntry: false })?.isFile()) throw expected('an existing file', 'tokenizerFiles', f);
    names.add(base);
  }

  const final = path.join(outDir, `checkpoint-${c.step}`);
  const tmp = tempName(final);
  try {
    fs.mkdirSync(outDir, { recursive: true });
    fs.mkdirSync(tmp);
  } catch (err) {
    throw saveFailed(err, outDir, final, c.step, opts.keepLast);
  }
  try {
    const done = (name: string): void => opts.afterFile?.(name);
    saveSafetensors(path.join(tmp, MODEL_FILE), c.model, { format: 'pt' });
    done(MODEL_FILE);
    let optimizer: TrainerStateFile['optimizer'] = null;
    if (c.optimizer) {
      const s = c.optimizer.state();
      const tensors: Record<string, Tensor> = {};
      s.groups.forEach((g, i) => {
        tensors[`groups.${i}.m`] = new Tensor(g.m.reshape(g.m.shape));
        tensors[`groups.${i}.v`] = new Tensor(g.v.reshape(g.v.shape));
        // Mixed precision: the fp32 master weights, which the bf16 model file only rounds.
        if (g.master) tensors[`groups.${i}.master`] = new Tensor(g.master.reshape(g.master.shape));
      });
      try {
        saveSafetensors(path.join(tmp, OPTIMIZER_FILE), tensors, { format: 'cloze-adamw', step: String(s.step) });
      } finally {
        for (const t of Object.values(tensors)) t.dispose();
      }
      optimizer = {
        step: s.step, lr: c.optimizer.lr, betas: [c.optimizer.beta1, c.optimizer.beta2], eps: c.optimizer.eps,
        groups: s.groups.map((g) => ({ weightDecay: g.weightDecay, size: g.size })),
      };
      done(OPTIMIZER_FILE);
    }
    writeFileSynced(path.join(tmp, CONFIG_FILE), `${JSON.stringify(c.config, null, 2)}\n`);
    done(CONFIG_FILE);
    for (const f of tokenizerFiles) {
      writeFileSynced(path.join(tmp, path.basename(f)), fs.readFileSync(f));
      done(path.basename(f));
    }
    const state: TrainerStateFile = {
      format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step: c.step, optimizer, rng,
      dataPosition: c.dataPosition ?? null, dropoutCounters: c.dropoutCounters ?? {}, extra: c.extra ?? {},
    };
    writeFileSynced(path.join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    done(TRAINER_STATE_FILE);
    const files = Object.fromEntries(fs.readdirSync(tmp).sort().map((f) => [f, fs.statSync(path.join(tmp, f)).size]));
    writeFileSynced(path.join(tmp, COMPLETE_MARKER), `${JSON.stringify({ step: c.step, files }, null, 2)}\n`);
    done(COMPLETE_MARKER);
    fsyncDir(tmp);
    commitDir(tmp, final);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw saveFailed(err, outDir, final, c.step, opts.keepLast);
  }
  fsyncDir(outDir);
  pruneCheckpoints(outDir, opts.keepLast ?? Infinity, final);
  return final;
}

/**
 * The error of a save that failed (a full disk, a lost mount, an injected failure): it names the checkpoint, the
 * step and the last good checkpoint, which the failed save never touches. A new checkpoint is written whole before
 * old ones are pruned, so a disk needs room for one checkpoint more than keepLast; with keepLast 1 on a nearly full
 * disk no save can ever succeed, and the error says so.
 */
function saveFailed(err: unknown, outDir: string, final: string, step: number, keepLast: number | undefined): ClozeError {
  const e = err as NodeJS.ErrnoException;
  let last: string | null = null;
  try {
    last = latestCheckpoint(outDir);
  } catch {
    // An unreadable directory: the error below says what failed.
  }
  const kept = last ? `the last good checkpoint ${last} is kept` : 'no earlier checkpoint exists';
  const space = e?.code === 'ENOSPC' || e?.code === 'EDQUOT';
  const hint = !space
    ? ''
    : keepLast === 1
      ? '; the disk is full: with keepLast 1 the new checkpoint is written before the old one is pruned, so the disk needs room for two checkpoints at once (free space, or save elsewhere)'
      : '; the disk is full: free space for one more checkpoint (new ones are written before old ones are pruned)';
  const out = new ClozeError('E_IO', `Could not save checkpoint ${final} at step ${step} (${e?.message ?? String(err)}); ${kept}${hint}`);
  (out as Error & { cause?: unknown }).cause = err;
  return out;
}

/** Renames `tmp` to `final`; an existing `final` (the same step saved again) is moved aside first, then removed. */
function commitDir(tmp: string, final: string): void {
  if (!fs.existsSync(final)) {
    fs.renameSync(tmp, final);
    return;
  }
  const old = `${final}.old-${path.basename(tmp).split('.tmp-')[1]}`;
  fs.renameSync(final, old);
  fs.renameSync(tmp, final);
  fs.rmSync(old, { recursive: true, force: true });
}

/** Complete checkpoints under `outDir`, oldest step first. */
export function listCheckpoints(outDir: string): Array<{ step: number; dir: string }> {
  if (!fs.existsSync(outDir)) return [];
  return fs
    .readdirSync(outDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && FINAL_NAME.test(e.name) && fs.existsSync(path.join(outDir, e.name, COMPLETE_MARKER)))
    .map((e) => ({ step: Number(FINAL_NAME.exec(e.name)![1]), dir: path.join(outDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** The complete checkpoint with the highest step, or null; temp and unmarked directories are ignored. */
export function latestCheckpoint(outDir: string): string | null {
  return listCheckpoints(outDir).at(-1)?.dir ?? null;
}

/**
 * Deletes complete checkpoints older than the newest `keepLast` (never `protect`),
 * and temp directories left by processes that no longer run.
 */
export function pruneCheckpoints(outDir: string, keepLast: number, protect?: string): void {
  const all = listCheckpoints(outDir);
  for (const { dir } of all.slice(0, Math.max(0, all.length - keepLast))) {
    if (dir !== protect) fs.rmSync(dir, { recursive: true, force: true });
  }
  for (const e of fs.readdirSync(outDir, { withFileTypes: true })) {
    const m = LEFTOVER_NAME.exec(e.name);
    if (e.isDirectory() && m && !processRuns(Number(m[1]))) fs.rmSync(path.join(outDir, e.name), { recursive: true, force: true });
  }
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return false; // this process is not inside a save now
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ClozeError('E_IO', `checkpoint: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    // The position only: the parser's message quotes the file's text, and a checkpoint's file may be anything.
    const pos = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new ClozeError('E_IO', `checkpoint: cannot read ${file}: not valid JSON${pos ? ` (at byte ${pos})` : ''}`);
  }
}

/** A name the `complete` marker may list: a plain file name of the checkpoint directory (no path, no '..'). */
export function isPlainFileName(f: string): boolean {
  return f.length > 0 && f.length <= 255 && f !== '.' && f !== '..' && !/[/\\\0]/.test(f) && path.basename(f) === f;
}

/**
 * Loads a checkpoint directory written by saveCheckpoint, or a Hugging Face
 * model directory (model.safetensors + config.json, tokenizer files optional)
 * to continue pre-training from it.
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const modelPath = path.join(dir, MODEL_FILE);
  if (!fs.existsSync(modelPath)) {
    const hint = fs.existsSync(path.join(dir, 'pytorch_model.bin')) ? ' (convert pytorch_model.bin to safetensors first)' : '';
    throw expected(`a directory with ${MODEL_FILE}${hint}`, 'checkpoint', dir, 'E_IO');
  }
  const statePath = path.join(dir, TRAINER_STATE_FILE);
  let state: TrainerStateFile | null = null;
  if (fs.existsSync(statePath)) {
    const marker = path.join(dir, COMPLETE_MARKER);
    if (!fs.existsSync(marker)) throw expected(`a '${COMPLETE_MARKER}' marker (the save did not finish)`, 'checkpoint', dir, 'E_IO');
    const { files } = (readJson(marker) ?? {}) as { files?: Record<string, number> };
    if (typeof files !== 'object' || files === null || Array.isArray(files)) throw expected('a marker listing the files', marker, files, 'E_IO');
    for (const [f, size] of Object.entries(files)) {
      if (!isPlainFileName(f)) {
        const shown = JSON.stringify(f.length > 80 ? `${f.slice(0, 80)}…` : f);
        throw expected('plain file names of the checkpoint directory', `the files of ${marker}`, `${shown}, a path outside it`, 'E_IO');
      }
      const got = fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.size;
      if (got !== size) throw expected(`${f} of ${size} bytes`, 'checkpoint', `${got === undefined ? 'no such file' : `${got} bytes`} in ${dir}`, 'E_IO');
    }
    const raw = readJson(statePath);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw expected('a JSON object', statePath, Array.isArray(raw) ? 'an array' : raw, 'E_IO');
    state = raw as TrainerStateFile;
    if (state.format !== CHECKPOINT_FORMAT || state.version !== CHECKPOINT_VERSION) {
      throw expected(`${CHECKPOINT_FORMAT} version ${CHECKPOINT_VERSION}`, statePath, `${state.format} version ${state.version}`);
    }
  }
  const config = fs.existsSync(path.join(dir, CONFIG_FILE)) ? (readJson(path.join(dir, CONFIG_FILE)) as LoadedCheckpoint['config']) : {};
  const model = loadSafetensors(modelPath);
  let optimizer: OptimizerState | null = null;
  if (state?.optimizer) {
    const o = state.optimizer;
    const t = loadSafetensors(path.join(dir, OPTIMIZER_FILE));
    try {
      optimizer = {
        step: o.step, lr: o.lr, betas: o.betas, eps: o.eps,
        groups: o.groups.map((g, i) => {
          const m = t[`groups.${i}.m`];
          const v = t[`groups.${i}.v`];
          if (!m || !v || m.size !== g.size || v.size !== g.size) {
            throw expected(`moments of ${g.size} elements for group ${i}`, path.join(dir, OPTIMIZER_FILE), m ?? 'none');
          }
          const master = t[`groups.${i}.master`];
          if (master && master.size !== g.size) {
            throw expected(`master weights of ${g.size} elements for group ${i}`, path.join(dir, OPTIMIZER_FILE), master);
          }
          return { m, v, ...(master ? { master } : {}), weightDecay: g.weightDecay, size: g.size };
        }),
      };
    } catch (err) {
      for (const x of [...Object.values(t), ...Object.values(model)]) x.dispose();
      throw err;
    }
  }
  const rng = Object.fromEntries(Object.entries(state?.rng ?? {}).map(([k, s]) => [k, s.map((x) => x ?? NaN)]));
  return {
    dir,
    step: state?.step ?? null,
    model,
    config,
    tokenizerFiles: TOKENIZER_FILES.map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f)),
    optimizer,
    rng,
    dataPosition: state?.dataPosition ?? null,
    dropoutCounters: state?.dropoutCounters ?? {},
    extra: state?.extra ?? {},
    dispose() {
      for (const t of Object.values(model)) t.dispose();
      for (const g of optimizer?.groups ?? []) {
        g.m.dispose();
        g.v.dispose();
        g.master?.dispose();
      }
    },
  };
}
