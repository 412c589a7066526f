/**
 * `pretrain(config, hooks)`: masked-modeling pre-training end to end. The
 * task (`mlm` for BERT-style text, `mim` for ViTs on images) supplies the data,
 * model and loss; the loop (loop.ts) is shared: schedule, checkpoints, exact
 * resume, abort and the non-finite-loss stop.
 */
import { describeDevice, resolveDevice, type DeviceChoice } from '../device.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import { ClozeError } from '../errors.js';
import { setNumThreads } from '../runtime.js';
import { resolveConfig, type RunConfig } from './config.js';
import type { EvalResult } from './evaluate.js';
import { resumeTask, runLoop, type StepInfo, type TaskEval, type TrainTask } from './loop.js';
import { MetricsLog } from './metrics.js';
import { buildMlmTask, withMlmRecipe } from './mlm-task.js';
import { buildMimTask, withMimRecipe, type ProbeResult } from '../mim/task.js';
import { buildSparkTask, withSparkRecipe } from '../spark/task.js';
import { Progress } from './progress.js';

export type { EvalResult } from './evaluate.js';
export type { StepInfo } from './loop.js';
export type { ProbeResult } from '../mim/task.js';
export { defaultCorpus } from './mlm-task.js';

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
  resolveConfig(raw, where);
  const recipe = raw.task === 'mim' ? withMimRecipe : raw.task === 'spark' ? withSparkRecipe : withMlmRecipe;
  return resolveConfig(recipe(raw), where);
}

/** Pre-trains an encoder with masked modeling; see RUN_FIELDS for the options. */
export async function pretrain(
  input: Partial<RunConfig> | Record<string, unknown>, hooks: PretrainHooks = {}, where = 'options',
): Promise<PretrainResult> {
  const cfg = resolveRun(input, where);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const outDir = cfg.out ?? join('runs', cfg.preset);
  mkdirSync(outDir, { recursive: true });
  const resumeDir = cfg.resume ? latestCheckpoint(outDir) : null;
  if (cfg.resume && !resumeDir) throw new ClozeError('E_IO', `Expected a checkpoint in ${outDir} for resume but received none`);
  const progress = hooks.output === null ? null : new Progress(hooks.output ?? process.stderr, cfg.logEvery);
  const device = resolveDevice(cfg.device as DeviceChoice);
  if (device === 'cuda' && cfg.task !== 'mlm') {
    // The kernels exist on cuda, but these tasks still build their per-step index tensors on the host and have not been run on a GPU.
    if (cfg.device === 'cuda') throw new ClozeError('E_DEVICE', `Expected task 'mlm' for device 'cuda' but received task '${cfg.task}' (mim and spark train on the CPU for now)`);
    cfg.device = 'cpu';
  }
  progress?.note(`device ${describeDevice(cfg.device === 'cpu' ? 'cpu' : device)}`);

  const task = (cfg.task === 'mim'
    ? await buildMimTask(cfg, outDir, resumeDir, progress)
    : cfg.task === 'spark'
      ? await buildSparkTask(cfg, outDir, resumeDir, progress)
      : await buildMlmTask(cfg, outDir, resumeDir)) as TrainTask<TaskEval> & {
    totalSteps: number;
  };
  try {
    let startStep = 0;
    if (resumeDir) {
      startStep = resumeTask(task, resumeDir);
      progress?.note(`resumed from ${resumeDir} at step ${startStep}`);
    }
    const r = await runLoop(task, {
      ...cfg,
      totalSteps: task.totalSteps,
      warmupSteps: Math.round(cfg.warmupRatio * task.totalSteps),
      startStep,
      outDir,
      // The run's settings, for `cloze eval` and for people reading the checkpoint.
      run: JSON.parse(JSON.stringify(cfg)),
    }, { signal: hooks.signal, onStep: hooks.onStep, onEval: hooks.onEval as (e: TaskEval) => void }, progress, new MetricsLog(join(outDir, 'metrics.jsonl')));
    return { outDir, ...r, eval: r.eval as EvalResult | ProbeResult | null };
  } finally {
    // Native memory goes back even when a step throws (a non-finite loss, bad data).
    task.dispose();
  }
}
