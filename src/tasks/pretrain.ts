/**
 * `pretrain(config, hooks)`: masked-modeling pre-training end to end. The
 * task, picked from the table (registry.ts), supplies the data, model, loss
 * and evaluation; the loop (src/train/loop.ts) is shared: schedule,
 * checkpoints, exact resume, abort and the non-finite-loss stop.
 */
import { join } from 'node:path';
import { latestCheckpoint, listCheckpoints, type JsonValue } from '../checkpoint/checkpoint.js';
import { describeDevice, resolveDevice, type DeviceChoice } from '../device.js';
import { ClozeError } from '../errors.js';
import type { ProbeResult } from '../eval/probe.js';
import { setNumThreads } from '../runtime.js';
import { trainTask, type StepInfo, type TaskEval } from '../train/loop.js';
import { Progress } from '../train/progress.js';
import { checkResumeSettings, checkRunFlags, discardUnsavedRun, openRunDir } from '../train/run-dir.js';
import { resolveConfig, resumeFields, type RunConfig } from './config.js';
import type { EvalResult } from './mlm/evaluate.js';
import { TASKS } from './registry.js';

// The types of pretrain()'s hooks and result.
export type { EvalResult } from './mlm/evaluate.js';
export type { ProbeResult } from '../eval/probe.js';
export type { StepInfo } from '../train/loop.js';

export interface PretrainHooks {
  /** Aborting saves a checkpoint and returns with `stopped: 'aborted'`. */
  signal?: AbortSignal;
  onStep?: (s: StepInfo) => void;
  /** MLM: held-out masked-token metrics; MIM: linear-probe results. */
  onEval?: (e: EvalResult | ProbeResult) => void;
  /** Where the progress bar and notes go; default process.stderr. Pass null for silence. */
  output?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean } | null;
}

export interface PretrainResult {
  outDir: string;
  step: number;
  stopped: 'done' | 'aborted';
  lastLoss: number;
  eval: EvalResult | ProbeResult | null;
  checkpoint: string | null;
}

/** The run's settings with the preset's recipe filling the fields the caller left unset. */
export function resolveRun(input: Partial<RunConfig> | Record<string, unknown>, where = 'options'): RunConfig {
  const raw = input as Record<string, unknown>;
  // Validate what was given before the recipe adds to it, so errors name the caller's fields.
  const task = TASKS[resolveConfig(raw, where).task as keyof typeof TASKS];
  return resolveConfig(task.recipe(raw), where);
}

/** Pre-trains an encoder with masked modeling; see RUN_FIELDS for the options. */
export async function pretrain(
  input: Partial<RunConfig> | Record<string, unknown>, hooks: PretrainHooks = {}, where = 'options',
): Promise<PretrainResult> {
  const cfg = resolveRun(input, where);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const outDir = cfg.out ?? join('runs', cfg.preset);
  checkRunFlags(outDir, cfg);
  const resumeDir = cfg.resume ? latestCheckpoint(outDir) : null;
  if (cfg.resume && !resumeDir) throw new ClozeError('E_IO', `Expected a checkpoint in ${outDir} for resume but received none`);
  const progress = hooks.output === null ? null : new Progress(hooks.output ?? process.stderr, cfg.logEvery);
  const device = resolveDevice(cfg.device as DeviceChoice);
  const entry = TASKS[cfg.task as keyof typeof TASKS];
  if (device === 'cuda' && !entry.devices.includes('cuda')) {
    if (cfg.device === 'cuda') throw new ClozeError('E_DEVICE', `Expected a task that trains on cuda (${Object.entries(TASKS).filter(([, t]) => t.devices.includes('cuda')).map(([n]) => n).join(', ')}) for device 'cuda' but received task '${cfg.task}' (it trains on the CPU for now)`);
    cfg.device = 'cpu';
  }
  // The run's settings, for `cloze eval`, for a resume's check, and for people reading the checkpoint.
  const run = JSON.parse(JSON.stringify(cfg)) as Record<string, JsonValue>;
  if (resumeDir) for (const n of checkResumeSettings(resumeDir, run, undefined, resumeFields(cfg))) progress?.note(`note: ${n}`);
  // Aborted before the call: stop before anything is built, written or trained.
  if (hooks.signal?.aborted) return stoppedBeforeStart(outDir, resumeDir, progress);
  const dir = openRunDir(outDir, cfg);
  progress?.note(`device ${describeDevice(cfg.device === 'cpu' ? 'cpu' : device)}`);

  try {
    const task = await entry.build(cfg, outDir, resumeDir, progress);
    try {
      const r = await trainTask(task, { ...cfg, outDir, resumeDir, run },
        { signal: hooks.signal, onStep: hooks.onStep, onEval: hooks.onEval as (e: TaskEval) => void }, progress);
      // Stopped during setup: no checkpoint, so nothing of this run stays.
      if (r.checkpoint === null) discardUnsavedRun(dir);
      return { outDir, ...r, eval: r.eval as EvalResult | ProbeResult | null };
    } finally {
      // Native memory goes back even when a step throws (a non-finite loss, bad data).
      task.dispose();
    }
  } catch (e) {
    // A run that failed before its first checkpoint leaves no run directory (or no metrics in one it did not make).
    discardUnsavedRun(dir);
    throw e;
  }
}

/** The result of a run whose signal was aborted before it started: nothing trained, nothing written. */
export function stoppedBeforeStart(outDir: string, resumeDir: string | null, progress: Progress | null): PretrainResult {
  progress?.note('stopped before the first step; nothing saved');
  const step = resumeDir ? (listCheckpoints(outDir).at(-1)?.step ?? 0) : 0;
  return { outDir, step, stopped: 'aborted', lastLoss: NaN, eval: null, checkpoint: resumeDir };
}
