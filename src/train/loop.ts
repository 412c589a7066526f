/**
 * The training loop every task shares (MLM, MIM): lr schedule, gradient
 * accumulation, the non-finite-loss stop, clipping, evaluation, metrics,
 * atomic checkpoints, exact resume and abort. A task supplies the model, the
 * loss of micro-batch k and its evaluation; everything random in a task must
 * be a pure function of (seed, k) so that resuming reproduces the run.
 */
import { backward } from '../autograd/backward.js';
import { scope } from '../autograd/mode.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointContents, type JsonValue, type LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import { SingleProcess, type Communicator } from '../distributed/communicator.js';

/** How long the other ranks wait for rank 0's evaluation (as for its setup): a dead rank 0 ends the job through mpirun. */
const EVAL_WAIT_MS = 24 * 3600 * 1000;
import { ClozeError, expected } from '../errors.js';
import type { Module } from '../nn/module.js';
import { scale } from '../ops/elementwise.js';
import { readNorm, type AdamW } from '../optim/adamw.js';
import type { NativeTensor } from '../native/types.js';
import type { Tensor } from '../tensor.js';
import type { SharedConfig } from './config.js';
import { join } from 'node:path';
import { MetricsLog } from './metrics.js';
import { METRICS_FILE, truncateMetrics } from './run-dir.js';
import type { Progress } from './progress.js';
import { learningRate } from './schedule.js';
import { partValues, type LossParts } from './loss-parts.js';
import { GradientBuckets } from './grad-buckets.js';
import { describeRun, nowStatus, writeRunStatus } from './run-status.js';

/** A 1-element float32 or bfloat16 tensor's value as a float32 copy on its device, kept past the step's scope. */
function widened(t: Tensor): NativeTensor {
  if (t.size !== 1) throw expected('a loss or loss part of one element', 'loss', t, 'E_SHAPE');
  return t.dtype === 'float32' ? t.native.clone() : t.native.cast('float32');
}

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Throughput in the task's unit: tokens (MLM) or images (MIM). */
  tokensPerSec: number;
  /** The loss's parts (MIM: reconstruction, MTO terms, HPM's ranking loss), averaged over micro-batches. */
  parts?: Record<string, number>;
  /**
   * Data parallel: milliseconds this step spent waiting for the gradient all-reduce after the backward (the other
   * ranks included); with buckets, what did not overlap the backward.
   */
  allreduceMs?: number;
  /** Data parallel with buckets: how many the gradients went in, and how many of them started before the backward ended. */
  buckets?: { total: number; startedInBackward: number };
}

/** What a task's evaluation returns: the step, numbers, and a line for the log. */
export interface TaskEval {
  step: number;
}

export interface MicroBatchLoss {
  loss: Tensor;
  /** Tokens or images in the micro-batch, for the throughput figure. */
  units: number;
  /**
   * The loss's parts, for logs: numbers, or 1-element float tensors of the graph that the loop reads after the
   * optimizer step is queued, with the loss (so that, on cuda, logging a part adds no wait mid-step).
   */
  parts?: LossParts;
}

export interface TrainTask<E extends TaskEval = TaskEval> {
  readonly model: Module;
  readonly optimizer: AdamW;
  /** 'tok' or 'img', for the progress line. */
  readonly unit: string;
  /** 'MLM' or 'MIM', for messages. */
  readonly name: string;
  /** Loss of global micro-batch k, during optimizer step `step` (0-based). Runs inside a scope. */
  microBatch(k: number, step: number): MicroBatchLoss;
  /** After each optimizer step (1-based count), e.g. an EMA teacher's update. */
  afterStep?(step: number): void;
  shouldEvaluate(step: number, last: boolean): boolean;
  evaluate(step: number): E;
  describe(e: E): string;
  /** config.json, tokenizer files, dropout counters and anything else the checkpoint carries. */
  checkpoint(step: number): Omit<CheckpointContents, 'step' | 'model' | 'optimizer'>;
  /** Restores what `checkpoint` saved beyond weights and optimizer (dropout counters, …); runs before the weights load, and throws if the checkpoint belongs to a different kind of run. */
  restore(ck: LoadedCheckpoint): void;
  dispose(): void;
}

export interface LoopHooks<E> {
  signal?: AbortSignal;
  onStep?: (s: StepInfo) => void;
  onEval?: (e: E) => void;
}

export interface LoopResult<E> {
  step: number;
  stopped: 'done' | 'aborted';
  lastLoss: number;
  eval: E | null;
  checkpoint: string | null;
}

/**
 * The run's ranks, for data parallelism: every rank runs this loop on its share of each micro-batch (the
 * task splits the data and normalises its loss so that the ranks' gradients SUM to the single-process one);
 * the loop sums the gradients before clipping and the step, and only rank 0 writes checkpoints, metrics
 * and progress and evaluates.
 */
type Ranks = {
  comm?: Communicator;
  /** Run the data-parallel collectives even at one rank (`--distributed on`): the path several ranks take. */
  collectives?: boolean;
  /** Sequences in one global micro-batch (world size × per-rank batch), recorded with the data position: a resume
   * at another world size is exact when its ranks × batch equal it (pretrain checks). */
  globalBatch?: number;
};

type Schedule = Pick<SharedConfig, 'lr' | 'warmupRatio' | 'decay' | 'minLrRatio' | 'gradAccum' | 'gradClip' | 'saveEvery' | 'keepLast' | 'logEvery'> & { bucketMb?: number };

/** Loads weights, optimizer state and the task's own state from `dir`; returns the step. */
export function resumeTask(task: TrainTask<TaskEval>, dir: string): number {
  const ck = loadCheckpoint(dir);
  try {
    // The task's own state first: it checks that the run being resumed is the same kind of run.
    task.restore(ck);
    task.model.loadStateDict(ck.model);
    if (!ck.optimizer || ck.step === null) throw new ClozeError('E_VALUE', `Expected optimizer state in ${dir} for resume but received a weights-only checkpoint`);
    task.optimizer.loadState(ck.optimizer);
    return ck.step;
  } finally {
    ck.dispose();
  }
}

/** Runs optimizer steps from `startStep` to `totalSteps`; disposes nothing (the caller owns the task). */
export async function runLoop<E extends TaskEval>(
  task: TrainTask<E>,
  o: Schedule & Ranks & { totalSteps: number; warmupSteps: number; startStep: number; outDir: string; run: JsonValue },
  hooks: LoopHooks<E>,
  progress: Progress | null,
  metrics: MetricsLog | null,
): Promise<LoopResult<E>> {
  const opt = task.optimizer;
  const comm = o.comm ?? new SingleProcess();
  const parallel = comm.size > 1 || o.collectives === true;
  let step = o.startStep;
  // Rank 0 writes; the others' result names no checkpoint.
  const save = (): string | null =>
    !comm.isRoot ? null : saveCheckpoint(o.outDir, {
      ...task.checkpoint(step),
      step,
      model: task.model.stateDict(),
      optimizer: opt,
      dataPosition: { microBatch: step * o.gradAccum, ...(o.globalBatch ? { globalBatch: o.globalBatch, worldSize: comm.size } : {}) },
      extra: { run: o.run },
    }, { keepLast: o.keepLast });

  let lastLoss = NaN;
  let lastEval: E | null = null;
  let checkpoint: string | null = null;
  let stopped: LoopResult<E>['stopped'] = 'done';
  let t0 = performance.now();
  let units = 0;
  task.model.train();
  // MPI only: NCCL's all-reduce is queued on the stream after the backward's kernels anyway.
  const startReduce = parallel ? (comm as Communicator).startAllreduceSum?.bind(comm) : undefined;
  const buckets = startReduce && (o.bucketMb ?? 25) > 0 ? new GradientBuckets(opt, startReduce, (o.bucketMb ?? 25) * 1e6) : null;
  while (step < o.totalSteps) {
    // Data parallel, a stop is decided together: a rank that stopped alone would leave the others waiting.
    if (parallel ? comm.sumNumbers([hooks.signal?.aborted ? 1 : 0])[0]! > 0 : hooks.signal?.aborted) {
      stopped = 'aborted';
      break;
    }
    const lr = learningRate(step, { lr: o.lr, totalSteps: o.totalSteps, warmupSteps: o.warmupSteps, decay: o.decay as 'linear', minLrRatio: o.minLrRatio });
    opt.zeroGrad();
    let stepLoss = 0;
    const parts: Record<string, number> = {};
    // One process: the losses are read after the optimizer step is queued, with the gradient norm, so that on
    // cuda the host waits once per step rather than after every backward and again for the norm. AdamW skips
    // the update on the device when any of them is not finite (stepClipped's guards); the checks below then stop
    // the run exactly as an eager read would have, before any state with it is kept. Data parallel, the ranks sum
    // their losses on the host (sumNumbers), so they are read at once.
    const deferred: NativeTensor[] = [];
    // Per deferred micro-batch, its parts: numbers, or float32 copies read with the losses.
    const lossParts: Array<Record<string, number | NativeTensor>> = [];
    const defer = !parallel && o.gradAccum <= 6;
    let allreduceMs: number | undefined;
    let bucketInfo: StepInfo['buckets'];
    let gradNorm: number;
    // The deferred loss clones are freed whatever throws: a micro-batch, the backward, the all-reduce or a read.
    try {
      for (let a = 0; a < o.gradAccum; a++) {
        const k = step * o.gradAccum + a;
        scope(() => {
          const mb = task.microBatch(k, step);
          units += mb.units;
          // The backward is queued before the loss is read: on cuda, reading waits for the stream, and
          // reading first would leave the GPU idle while the backward is being launched. A non-finite
          // loss still stops the run before the optimizer step, so nothing of this state is kept.
          // Data parallel, the last micro-batch's backward starts each gradient bucket's all-reduce as soon as its
          // parameters are final (earlier micro-batches only accumulate); the rest is waited on below.
          if (buckets && a === o.gradAccum - 1) buckets.arm();
          backward(o.gradAccum > 1 ? scale(mb.loss, 1 / o.gradAccum) : mb.loss, undefined, buckets && a === o.gradAccum - 1 ? buckets.hooks : null);
          if (defer && (mb.loss.dtype === 'float32' || mb.loss.dtype === 'bfloat16')) {
            // A bfloat16 loss (a model in bf16 on cuda) is widened on the device for the guard: exactly, and a
            // non-finite value stays non-finite. A float64 one is read at once (float32 could overflow it).
            deferred.push(widened(mb.loss));
            // Tensor parts are kept as float32 copies (the scope frees the graph) and read with the losses.
            const kept: Record<string, number | NativeTensor> = {};
            lossParts.push(kept);
            for (const [n, x] of Object.entries(mb.parts ?? {})) kept[n] = typeof x === 'number' ? x : x.dtype === 'float64' ? x.item() : widened(x);
            return;
          }
          const mbParts = partValues(mb.parts ?? {});
          let v = mb.loss.item();
          if (parallel) {
            // The micro-batch's loss is the ranks' sum (each rank's is its share of the global mean), and every
            // rank sees it, so a non-finite loss stops all of them at the same step.
            // The parts too are the ranks' shares (MIM's, ELECTRA's), summed in one collective with the loss.
            const names = Object.keys(mbParts);
            const [sum, tokens, ...partSums] = comm.sumNumbers([v, mb.units, ...names.map((n) => mbParts[n]!)]);
            v = sum!;
            units += tokens! - mb.units;
            names.forEach((n, i) => (mbParts[n] = partSums[i]!));
          }
          if (!Number.isFinite(v)) {
            const detail = mb.parts ? ` (parts: ${Object.entries(mbParts).map(([n, x]) => `${n} ${x}`).join(', ')})` : '';
            throw new ClozeError('E_VALUE', `The ${task.name} loss became ${v} at step ${step + 1} (lr ${lr.toExponential(3)})${detail}; stopping without saving this state. Lower the learning rate or check the data.`);
          }
          stepLoss += v / o.gradAccum;
          for (const [n, x] of Object.entries(mbParts)) parts[n] = (parts[n] ?? 0) + x / o.gradAccum;
        });
      }
      if (parallel) {
        // The SUM of the ranks' gradients is the single-process gradient (up to the order of the float sums).
        const t = performance.now();
        if (buckets) bucketInfo = buckets.finish();
        else comm.allreduceSumAll(opt.flatGrads());
        allreduceMs = performance.now() - t;
      }
      // The norm is checked even without clipping: a finite loss can still have a NaN or infinite gradient (an
      // overflow in a backward kernel), and one optimizer step with it would write NaN weights. stepClipped skips
      // such a step on the device; the norm and the deferred losses are read once, after it is queued.
      opt.lr = lr;
      gradNorm = readNorm(opt.stepClipped(o.gradClip > 0 ? o.gradClip : Number.MAX_VALUE, deferred));
      deferred.forEach((t, i) => {
        const v = t.read()[0] as number;
        const p = Object.entries(lossParts[i]!).map(([n, x]) => [n, typeof x === 'number' ? x : (x.read()[0] as number)] as const);
        if (!Number.isFinite(v)) {
          const detail = p.length > 0 ? ` (parts: ${p.map(([n, x]) => `${n} ${x}`).join(', ')})` : '';
          opt.undoSkippedStep();  // the kernel skipped the step: this loss was one of its guards
          throw new ClozeError('E_VALUE', `The ${task.name} loss became ${v} at step ${step + 1} (lr ${lr.toExponential(3)})${detail}; stopping without saving this state. Lower the learning rate or check the data.`);
        }
        stepLoss += v / o.gradAccum;
        for (const [n, x] of p) parts[n] = (parts[n] ?? 0) + x / o.gradAccum;
      });
    } finally {
      for (const t of deferred) t.dispose();
      for (const p of lossParts) for (const x of Object.values(p)) if (typeof x !== 'number') x.dispose();
    }
    if (!Number.isFinite(gradNorm)) {
      opt.undoSkippedStep();  // the kernel skipped the step: the norm was its guard
      throw new ClozeError('E_VALUE', `The ${task.name} gradient norm became ${gradNorm} at step ${step + 1} (loss ${stepLoss}, lr ${lr.toExponential(3)}); stopping before the optimizer step, without saving this state. Lower the learning rate or check the data.`);
    }
    step++;
    task.afterStep?.(step);
    lastLoss = stepLoss;
    const secs = (performance.now() - t0) / 1000;
    const info: StepInfo = { step, loss: stepLoss, lr, gradNorm, tokensPerSec: units / Math.max(secs, 1e-9) };
    if (Object.keys(parts).length > 0) info.parts = parts;
    if (allreduceMs !== undefined) info.allreduceMs = allreduceMs;
    if (bucketInfo) info.buckets = bucketInfo;
    hooks.onStep?.(info);
    progress?.update({ step, totalSteps: o.totalSteps, loss: stepLoss, tokensPerSec: info.tokensPerSec, lr, unit: task.unit }, secs / Math.max(1, step - o.startStep));
    if (step % o.logEvery === 0 || step === o.totalSteps) metrics?.write({ kind: 'train', ...info });
    const evaluating = task.shouldEvaluate(step, step === o.totalSteps);
    if (comm.isRoot && evaluating) {
      lastEval = task.evaluate(step);
      hooks.onEval?.(lastEval);
      metrics?.write({ kind: 'eval', ...(lastEval as unknown as Record<string, unknown>) });
      progress?.note(task.describe(lastEval));
      task.model.train();
    }
    // Rank 0's evaluation (a fine-tune scores its whole test split) may outlast the collective bound: the others
    // wait for it here, with the setup's long bound, instead of timing out in the next step's first collective.
    if (parallel && evaluating) comm.barrier(EVAL_WAIT_MS);
    if (step % o.saveEvery === 0 && step !== o.totalSteps) checkpoint = save();
    // Let timers and I/O run between steps: the event loop stays responsive.
    await new Promise<void>((r) => setImmediate(r));
    if (step === o.startStep + 1) {
      // The first step pays one-off costs (allocations, page faults); rates start after it.
      t0 = performance.now();
      units = 0;
    }
  }
  if (step > o.startStep) checkpoint = save();
  progress?.end();
  // Stopped before the first step (an abort during setup, or a signal aborted before the call): nothing new
  // to save, and no checkpoint with a NaN "last loss".
  if (step === o.startStep) progress?.note(stopped === 'aborted' ? 'stopped before the first step; nothing saved' : `nothing to train: the run is at its last step (${step})`);
  else progress?.note(`${stopped === 'aborted' ? 'stopped' : 'finished'} at step ${step}; checkpoint ${checkpoint}`);
  return { step, stopped, lastLoss, eval: lastEval, checkpoint };
}

/**
 * Resumes `task` from `resumeDir` when given, then runs the loop to its last step with metrics in
 * outDir/metrics.jsonl; what `cloze pretrain` and `cloze finetune` share after building their task.
 */
export async function trainTask<E extends TaskEval>(
  task: TrainTask<E> & { totalSteps: number },
  o: Schedule & Ranks & { warmupRatio: number; outDir: string; resumeDir: string | null; run: JsonValue },
  hooks: LoopHooks<E>,
  progress: Progress | null,
): Promise<LoopResult<E>> {
  let startStep = 0;
  if (o.resumeDir) {
    // Every rank loads rank 0's checkpoint.
    startStep = resumeTask(task, o.resumeDir);
    // Lines a crashed run wrote after its last checkpoint would be written again by the resumed steps.
    const dropped = o.comm && !o.comm.isRoot ? 0 : truncateMetrics(o.outDir, startStep);
    progress?.note(`resumed from ${o.resumeDir} at step ${startStep}${dropped > 0 ? ` (dropped ${dropped} metrics line${dropped === 1 ? '' : 's'} after it)` : ''}`);
  }
  // Rank 0 keeps run-status.json (cloze board reads it): running now, then done, stopped or failed.
  const root = !o.comm || o.comm.isRoot;
  const started = new Date().toISOString();
  const about = { started, totalSteps: task.totalSteps, ...describeRun(o.run, o.comm?.size ?? 1) };
  if (root) writeRunStatus(o.outDir, nowStatus({ status: 'running', ...about }));
  let r: LoopResult<E>;
  try {
    r = await runLoop(task, {
      ...o,
      totalSteps: task.totalSteps,
      warmupSteps: Math.round(o.warmupRatio * task.totalSteps),
      startStep,
    }, hooks, progress, root ? new MetricsLog(join(o.outDir, METRICS_FILE)) : null);
  } catch (e) {
    if (root) writeRunStatus(o.outDir, nowStatus({ status: 'failed', ...about, error: (e as Error).message }));
    throw e;
  }
  if (root) writeRunStatus(o.outDir, nowStatus({ status: r.stopped === 'aborted' ? 'stopped' : 'done', ...about, step: r.step }));
  // Nothing ran (stopped at once, or the run was already finished): the resumed checkpoint is the run's latest.
  return r.checkpoint === null && o.resumeDir ? { ...r, checkpoint: o.resumeDir } : r;
}
