/**
 * `pretrain(config, hooks)`: masked-modeling pre-training end to end. The
 * task, picked from the table (registry.ts), supplies the data, model, loss
 * and evaluation; the loop (src/train/loop.ts) is shared: schedule,
 * checkpoints, exact resume, abort and the non-finite-loss stop.
 */
import { join } from 'node:path';
import { latestCheckpoint, listCheckpoints, type JsonValue } from '../checkpoint/checkpoint.js';
import { describeDevice, resolveDevice, type DeviceChoice } from '../device.js';
import { gradientPath, gradientsThroughNccl, localRank, NcclCommunicator, openCommunicator, releaseGradients, type Communicator } from '../distributed/index.js';
import { native } from '../native/loader.js';
import { checkResumeWorld } from '../distributed/resume-world.js';
import { ClozeError } from '../errors.js';
import type { ProbeResult } from '../eval/probe.js';
import { setNumThreads } from '../runtime.js';
import { trainTask, type StepInfo, type TaskEval } from '../train/loop.js';
import { Progress } from '../train/progress.js';
import { checkResumeSettings, checkRunFlags, discardUnsavedRun, openRunDir } from '../train/run-dir.js';
import { resolveConfig, resumeFields, type RunConfig } from './config.js';
import type { EvalResult } from './mlm/evaluate.js';
import { TASKS } from './registry.js';

/** How long the other ranks wait for rank 0's setup (tokenizer, data shard): 24 h. */
export const SETUP_TIMEOUT_MS = 24 * 3600 * 1000;

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
  /** Data-parallel runs: this process's rank (only rank 0's result names the checkpoint). */
  rank?: number;
}

/** The run's settings with the preset's recipe filling the fields the caller left unset. */
export function resolveRun(input: Partial<RunConfig> | Record<string, unknown>, where = 'options', ranks = 1): RunConfig {
  const raw = input as Record<string, unknown>;
  // Validate what was given before the recipe adds to it, so errors name the caller's fields.
  const task = TASKS[resolveConfig(raw, where).task as keyof typeof TASKS];
  return resolveConfig(task.recipe(raw, ranks), where);
}

/**
 * Pre-trains an encoder with masked modeling; see RUN_FIELDS for the options. Started by an MPI launcher
 * (`mpirun -np N`, distributed 'auto'), it trains data-parallel: each rank takes batchSize sequences of a
 * global batch of N × batchSize, and rank 0 alone writes the run directory. A rank that fails prints its
 * error naming its rank and ends the whole job (MPI_Abort), so no rank waits on a dead one.
 */
export async function pretrain(
  input: Partial<RunConfig> | Record<string, unknown>, hooks: PretrainHooks = {}, where = 'options',
): Promise<PretrainResult> {
  const single = resolveRun(input, where);
  const comm = openCommunicator(single.distributed, single.distributedTimeout * 1000);
  if (comm.size === 1) return pretrainOn(single, hooks, comm);
  // The recipe again, knowing the world size: an lr scaled by the batch (MIM) scales by the global one.
  const cfg = resolveRun(input, where, comm.size);
  try {
    return await pretrainOn(cfg, hooks, comm);
  } catch (e) {
    process.stderr.write(`cloze: rank ${comm.rank} of ${comm.size} failed, ending the job: ${(e as Error).message}\n`);
    return comm.abort(1);
  }
}

async function pretrainOn(cfg: RunConfig, hooks: PretrainHooks, comm: Communicator): Promise<PretrainResult> {
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const outDir = cfg.out ?? join('runs', cfg.preset);
  const root = comm.isRoot;
  // 'on' takes the data-parallel path at one rank too: `mpirun -np 1` then exercises NCCL on a single GPU.
  const parallel = comm.size > 1 || cfg.distributed === 'on';
  const entry = TASKS[cfg.task as keyof typeof TASKS];
  if (parallel && !entry.dataParallel) {
    throw new ClozeError('E_VALUE', `Expected task ${Object.entries(TASKS).filter(([, t]) => t.dataParallel).map(([n]) => n).join(' or ')} for data-parallel training (${comm.size} MPI ranks) but received task '${cfg.task}' (not data-parallel yet); run one process, or pass --distributed off`);
  }
  if (root) checkRunFlags(outDir, cfg);
  const resumeDir = cfg.resume ? latestCheckpoint(outDir) : null;
  if (cfg.resume && !resumeDir) throw new ClozeError('E_IO', `Expected a checkpoint in ${outDir} for resume but received none`);
  // Logs and progress come from rank 0 only.
  const progress = hooks.output === null || !root ? null : new Progress(hooks.output ?? process.stderr, cfg.logEvery);
  const device = resolveDevice(cfg.device as DeviceChoice);
  if (device === 'cuda' && !entry.devices.includes('cuda')) {
    if (cfg.device === 'cuda') throw new ClozeError('E_DEVICE', `Expected a task that trains on cuda (${Object.entries(TASKS).filter(([, t]) => t.devices.includes('cuda')).map(([n]) => n).join(', ')}) for device 'cuda' but received task '${cfg.task}' (it trains on the CPU for now)`);
    cfg.device = 'cpu';
  }
  // On cuda the gradients are all-reduced through NCCL (loaded at run time); 'auto' falls back to the CPU when it
  // cannot be loaded, an explicit 'cuda' is refused naming the reason. --distributed-backend mpi sums them through
  // host copies over MPI instead (MpiCommunicator). (The NCCL communicator itself is made below, inside the try that
  // closes or aborts it.)
  const onCuda = parallel && device === 'cuda' && cfg.device !== 'cpu';
  const nccl = onCuda && cfg.distributedBackend === 'nccl' && gradientsThroughNccl(cfg.device, comm.size, 'data-parallel training');
  if (onCuda && cfg.distributedBackend === 'nccl' && !nccl) cfg.device = 'cpu';
  // The run's settings, for `cloze eval`, for a resume's check, and for people reading the checkpoint.
  const run = JSON.parse(JSON.stringify(cfg)) as Record<string, JsonValue>;
  // The world size is recorded only for data-parallel runs: a single-process run's settings stay as they were.
  // (Not for a 1-rank --distributed on run: it trains as one process, and resumes to and from one.)
  if (comm.size > 1) run.worldSize = comm.size;
  if (resumeDir) {
    // Another world size is let through when the global batch is the same (then batchSize is compared as saved).
    const checked = checkResumeWorld(resumeDir, run, comm.size, cfg.batchSize);
    for (const n of checkResumeSettings(resumeDir, checked, undefined, resumeFields(cfg))) progress?.note(`note: ${n}`);
  }
  // Aborted before the call: stop before anything is built, written or trained.
  if (!parallel && hooks.signal?.aborted) return stoppedBeforeStart(outDir, resumeDir, progress);
  // Rank 0 makes the run directory, the tokenizer and the data shard; the others wait, then read them.
  const dir = root ? openRunDir(outDir, cfg) : null;
  progress?.note(`device ${describeDevice(cfg.device === 'cpu' ? 'cpu' : device)}${parallel ? `, ${comm.size} data-parallel ranks (${gradientPath(nccl, cfg.device !== 'cpu' && device === 'cuda')}), global batch ${comm.size * cfg.batchSize}` : ''}`);

  let grads: Communicator = comm;
  let finished = false;
  try {
    // NCCL selects this rank's GPU, so it comes before the task places its model; made inside this try, a failure
    // after it (the setup below, a resume check, the training) reaches the abort in the finally.
    if (nccl) grads = new NcclCommunicator(comm, cfg.distributedTimeout * 1000);
    // Host copies over MPI: each rank takes its node-local GPU as NCCL's set-up would (local rank % GPUs).
    else if (onCuda && cfg.distributedBackend === 'mpi') native().cudaSelectDevice(localRank());
    // Rank 0 may train a tokenizer and tokenize a large corpus first: the others wait longer than a step's
    // collective bound (a rank that dies meanwhile ends the job through mpirun, not through this timeout).
    if (parallel && !root) comm.barrier(SETUP_TIMEOUT_MS);
    const task = await entry.build(cfg, outDir, resumeDir, progress, parallel ? grads : undefined);
    if (parallel && root) comm.barrier(SETUP_TIMEOUT_MS);
    try {
      const r = await trainTask(task, { ...cfg, outDir, resumeDir, run, comm: grads, collectives: parallel, globalBatch: comm.size * cfg.batchSize },
        { signal: hooks.signal, onStep: hooks.onStep, onEval: hooks.onEval as (e: TaskEval) => void }, progress);
      // Stopped during setup: no checkpoint, so nothing of this run stays.
      if (r.checkpoint === null && dir) discardUnsavedRun(dir);
      finished = true;
      return { outDir, ...r, eval: r.eval as EvalResult | ProbeResult | null, ...(parallel ? { rank: comm.rank } : {}) };
    } finally {
      // Native memory goes back even when a step throws (a non-finite loss, bad data).
      task.dispose();
    }
  } catch (e) {
    // A run that failed before its first checkpoint leaves no run directory (or no metrics in one it did not make).
    if (dir) discardUnsavedRun(dir);
    throw e;
  } finally {
    // After a failure in the setup or the training too.
    releaseGradients(grads, finished);
  }
}

/** The result of a run whose signal was aborted before it started: nothing trained, nothing written. */
export function stoppedBeforeStart(outDir: string, resumeDir: string | null, progress: Progress | null): PretrainResult {
  progress?.note('stopped before the first step; nothing saved');
  const step = resumeDir ? (listCheckpoints(outDir).at(-1)?.step ?? 0) : 0;
  return { outDir, step, stopped: 'aborted', lastLoss: NaN, eval: null, checkpoint: resumeDir };
}
