/**
 * `finetune(config, hooks)`: fine-tunes a pre-trained encoder on a labelled
 * text task, end to end, on the shared loop (schedule, checkpoints, exact
 * resume, abort, the non-finite-loss stop). Without --init-from it starts
 * from runs/bert-tiny, pre-training it first when that run has no checkpoint,
 * and says so.
 */
import { basename, extname, join } from 'node:path';
import { latestCheckpoint, type JsonValue } from '../checkpoint/checkpoint.js';
import { describeDevice, resolveDevice, type DeviceChoice } from '../device.js';
import { placeModel, type Placement } from '../train/place-model.js';
import { ClozeError } from '../errors.js';
import { setNumThreads } from '../runtime.js';
import { trainTask, type StepInfo, type TaskEval } from '../train/loop.js';
import { Progress } from '../train/progress.js';
import { checkResumeSettings, checkRunFlags, discardUnsavedRun, openRunDir, savedRunSettings } from '../train/run-dir.js';
import { checkpointDir } from './evaluate.js';
import { encodeInputs } from './finetune/mvp-inputs.js';
import { classifierMethod, FINETUNE_FIELDS, FINETUNE_RUN_FIELDS, resolveFinetuneConfig, usesAsa, type FinetuneConfig } from './finetune/config.js';
import { loadFinetuneData, TEST_SPLIT_FILE } from './finetune/data.js';
import { writeLabelledJsonl } from '../data/labelled.js';
import type { FinetuneEval } from './finetune/evaluate.js';
import type { Method } from './finetune/classifier.js';
import { checkpointTokenizer, openClassifier } from './finetune/model.js';
import { finetuneRecord } from './finetune/predict.js';
import { fileSha256, readMaskFile } from '../checkpoint/mask-file.js';
import { buildFinetuneTask, checkDataParallelFinetune } from './finetune/task.js';
import { pretrain, SETUP_TIMEOUT_MS, stoppedBeforeStart } from './pretrain.js';
import { gradientPath, gradientsThroughNccl, localRank, NcclCommunicator, openCommunicator, releaseGradients, type Communicator } from '../distributed/index.js';
import { native } from '../native/loader.js';
import { checkResumeWorld } from '../distributed/resume-world.js';

export type { FinetuneEval } from './finetune/evaluate.js';
export type { StepInfo } from '../train/loop.js';

export interface FinetuneHooks {
  /** Aborting saves a checkpoint and returns with `stopped: 'aborted'`. */
  signal?: AbortSignal;
  onStep?: (s: StepInfo) => void;
  /** Test-split scores after every epoch and at the end. */
  onEval?: (e: FinetuneEval) => void;
  /** Where the progress bar and notes go; default process.stderr. Pass null for silence. */
  output?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean } | null;
}

export interface FinetuneResult {
  outDir: string;
  step: number;
  stopped: 'done' | 'aborted';
  lastLoss: number;
  eval: FinetuneEval | null;
  checkpoint: string | null;
  method: FinetuneConfig['method'];
  labels: string[];
}

/** The pre-trained run fine-tuning starts from when --init-from is not given. */
export const DEFAULT_INIT_RUN = join('runs', 'bert-tiny');

function defaultOut(cfg: FinetuneConfig): string {
  const data = cfg.task ?? basename(cfg.taskData!, extname(cfg.taskData!));
  return join('runs', `finetune-${data}-${cfg.method}${cfg.adv ? '-adv' : ''}${cfg.asa ? '-asa' : ''}`);
}

const FINETUNE_ALL_FIELDS = { ...FINETUNE_FIELDS, ...FINETUNE_RUN_FIELDS };

/**
 * Fine-tunes; see FINETUNE_FIELDS. Started by an MPI launcher (`mpirun -np N`, distributed 'auto'), mlp-ft and mvp
 * train data-parallel, as `pretrain` does: each rank takes its share of a global batch of N × batchSize examples,
 * rank 0 alone writes the run directory and evaluates, and a rank that fails ends the whole job. On cuda the
 * gradients are all-reduced through NCCL, as pretrain's.
 */
export async function finetune(input: Partial<FinetuneConfig> | Record<string, unknown>, hooks: FinetuneHooks = {}, where = 'options'): Promise<FinetuneResult> {
  const cfg = resolveFinetuneConfig(input as Record<string, unknown>, where);
  const comm = openCommunicator(cfg.distributed, cfg.distributedTimeout * 1000);
  if (comm.size === 1) return finetuneOn(cfg, hooks, where, comm);
  try {
    return await finetuneOn(cfg, hooks, where, comm);
  } catch (e) {
    process.stderr.write(`cloze: rank ${comm.rank} of ${comm.size} failed, ending the job: ${(e as Error).message}\n`);
    return comm.abort(1);
  }
}

async function finetuneOn(cfg: FinetuneConfig, hooks: FinetuneHooks, where: string, comm: Communicator): Promise<FinetuneResult> {
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const outDir = cfg.out ?? defaultOut(cfg);
  const root = comm.isRoot;
  // 'on' takes the data-parallel path at one rank too (as pretrain's).
  const parallel = comm.size > 1 || cfg.distributed === 'on';
  if (root) checkRunFlags(outDir, cfg);
  const resumeDir = cfg.resume ? latestCheckpoint(outDir) : null;
  if (cfg.resume && !resumeDir) throw new ClozeError('E_IO', `Expected a checkpoint in ${outDir} for resume but received none`);
  // Logs and progress come from rank 0 only.
  const progress = hooks.output === null || !root ? null : new Progress(hooks.output ?? process.stderr, cfg.logEvery);
  // Every kernel fine-tuning calls has a cuda path (label words, PGD, tanh, ASA, masked linear), though none of it has run on a GPU yet.
  const device = resolveDevice(cfg.device as DeviceChoice);
  let nccl = false;
  if (parallel) {
    // Refused before any data is read; buildFinetuneTask checks the same.
    checkDataParallelFinetune(cfg, comm.size);
    if (!resumeDir && cfg.initFrom === null && latestCheckpoint(DEFAULT_INIT_RUN) === null) {
      throw new ClozeError('E_VALUE', `Expected --init-from, or a pre-trained ${DEFAULT_INIT_RUN}, for data-parallel fine-tuning (${comm.size} MPI ranks) but received neither; pre-train first (npx cloze pretrain --preset bert-tiny)`);
    }
    // On cuda the gradients are all-reduced through NCCL (loaded at run time), as pretrain's: 'auto' falls back to
    // the CPU when it cannot be loaded, an explicit 'cuda' is refused naming the reason; --distributed-backend mpi
    // sums them through host copies over MPI instead. (The NCCL communicator itself is made below, inside the try
    // that closes it.)
    if (device === 'cuda' && cfg.device !== 'cpu' && cfg.distributedBackend === 'nccl') {
      nccl = gradientsThroughNccl(cfg.device, comm.size, 'data-parallel fine-tuning');
      if (!nccl) cfg.device = 'cpu';
    }
  }
  progress?.note(`device ${describeDevice(cfg.device === 'cpu' ? 'cpu' : device)}${parallel ? `, ${comm.size} data-parallel ranks (${gradientPath(nccl, cfg.device !== 'cpu' && device === 'cuda')}), global batch ${comm.size * cfg.batchSize}` : ''}`);
  const saved = resumeDir ? finetuneRecord(resumeDir) : null;
  if (saved && saved.method !== cfg.method) {
    throw new ClozeError('E_VALUE', `Expected method ${saved.method} (the setting of the run in ${resumeDir}) for resume but received ${cfg.method}`);
  }
  // The run's settings, for a resume's check and for people reading the checkpoint.
  const run = JSON.parse(JSON.stringify(cfg)) as Record<string, JsonValue>;
  // The world size is recorded only for data-parallel runs: a single-process run's settings stay as they were.
  // (Not for a 1-rank --distributed on run: it trains as one process, and resumes to and from one.)
  if (comm.size > 1) run.worldSize = comm.size;
  // Batches are packed unless ASA needs them padded; dropout masks and PGD's starts are drawn by element index, so
  // the layout is part of what a step draws.
  run.batchLayout = usesAsa(cfg) ? 'padded' : 'packed';
  if (resumeDir) {
    // Another world size is let through when the global batch is the same (then batchSize is compared as saved).
    const checked = { ...checkResumeWorld(resumeDir, run, comm.size, cfg.batchSize) };
    // Runs from before packing recorded no layout: they resume, told that they are no longer bit-exact.
    if (savedRunSettings(resumeDir)?.batchLayout === undefined) {
      delete checked.batchLayout;
      if (run.batchLayout === 'packed') progress?.note('note: this run was trained on padded batches (before fine-tuning packed them); its remaining steps are packed, and their dropout masks (and PGD starts) differ, so it is not bit-exact with an unbroken run');
    }
    for (const n of checkResumeSettings(resumeDir, checked, undefined, FINETUNE_ALL_FIELDS)) progress?.note(`note: ${n}`);
  }
  if (!parallel && hooks.signal?.aborted) {
    const r = stoppedBeforeStart(outDir, resumeDir, progress);
    return { ...r, eval: null, method: cfg.method, labels: saved?.labels ?? [] };
  }
  // Refuses a directory that holds another run before anything is written (the default init run included).
  const dir = root ? openRunDir(outDir, cfg) : null;
  let grads: Communicator = comm;
  let finished = false;
  try {
    // NCCL selects this rank's GPU, so it comes before the model is placed (in finetuneIn); made here, every path
    // from it on reaches the finally below.
    if (nccl) grads = new NcclCommunicator(comm, cfg.distributedTimeout * 1000);
    // Host copies over MPI: each rank takes its node-local GPU as NCCL's set-up would (local rank % GPUs).
    else if (parallel && device === 'cuda' && cfg.distributedBackend === 'mpi') native().cudaSelectDevice(localRank());
    const r = await finetuneIn(cfg, outDir, resumeDir, hooks, progress, where, run, grads);
    // Stopped during setup: no checkpoint, so nothing of this run stays.
    if (r.checkpoint === null && dir) discardUnsavedRun(dir);
    finished = true;
    return r;
  } catch (e) {
    if (dir) discardUnsavedRun(dir);
    throw e;
  } finally {
    releaseGradients(grads, finished);
  }
}

/**
 * The frozen base a mask is over: the --init-from checkpoint, named by the
 * sha256 of its model.safetensors (a resumed run keeps its record's). An
 * --apply-mask file must name the same base and the run's labels.
 */
function maskBase(cfg: FinetuneConfig, from: string, resumeDir: string | null, labels: readonly string[], pair: boolean): { sha256: string; dir: string } {
  const saved = resumeDir ? finetuneRecord(resumeDir)?.mask : undefined;
  if (saved) return { sha256: saved.base_sha256, dir: saved.base };
  const base = { sha256: fileSha256(join(from, 'model.safetensors')), dir: from };
  if (cfg.applyMask !== null && !resumeDir) {
    const h = readMaskFile(cfg.applyMask).header;
    if (h.base_sha256 !== base.sha256) {
      throw new ClozeError('E_VALUE', `${cfg.applyMask}: Expected a mask over the base ${from} (model.safetensors sha256 ${base.sha256}) but received one over the base with sha256 ${h.base_sha256}`);
    }
    if (h.pair !== pair) {
      throw new ClozeError('E_VALUE', `${cfg.applyMask}: Expected a mask for ${pair ? 'a sentence-pair' : 'a single-text'} task (the run's data) but received one for ${h.pair ? 'sentence pairs' : 'single texts'}`);
    }
    if (h.labels.join('\u0000') !== labels.join('\u0000')) {
      throw new ClozeError('E_VALUE', `${cfg.applyMask}: Expected the labels of the run's data (${labels.join(', ')}) but received a mask for labels ${h.labels.join(', ')}`);
    }
  }
  return base;
}

async function finetuneIn(
  cfg: FinetuneConfig, outDir: string, resumeDir: string | null, hooks: FinetuneHooks, progress: Progress | null, where: string, run: Record<string, JsonValue>,
  comm: Communicator,
): Promise<FinetuneResult> {
  const parallel = comm.size > 1 || cfg.distributed === 'on';
  // Rank 0 prepares the data cache, the test split and the tokenizer in the run directory; the others wait, then read.
  if (parallel && !comm.isRoot) comm.barrier(SETUP_TIMEOUT_MS);
  const r = await finetunePrepared(cfg, outDir, resumeDir, hooks, progress, where, run, comm, () => {
    if (parallel && comm.isRoot) comm.barrier(SETUP_TIMEOUT_MS);
  });
  return r;
}

async function finetunePrepared(
  cfg: FinetuneConfig, outDir: string, resumeDir: string | null, hooks: FinetuneHooks, progress: Progress | null, where: string, run: Record<string, JsonValue>,
  comm: Communicator, prepared: () => void,
): Promise<FinetuneResult> {
  const root = comm.isRoot;
  let initDir: string | null = null;
  if (!resumeDir) {
    if (cfg.initFrom === null && latestCheckpoint(DEFAULT_INIT_RUN) === null) {
      progress?.note(`no --init-from: pre-training bert-tiny into ${DEFAULT_INIT_RUN} first (as npx cloze pretrain --preset bert-tiny)`);
      const pre = await pretrain({ preset: 'bert-tiny', out: DEFAULT_INIT_RUN, seed: cfg.seed, device: cfg.device }, { signal: hooks.signal, output: hooks.output });
      if (pre.stopped === 'aborted') {
        throw new ClozeError('E_STATE', `stopped while pre-training ${DEFAULT_INIT_RUN} (its checkpoint at step ${pre.step} is saved: finish it with npx cloze pretrain --preset bert-tiny --resume, or give --init-from)`);
      }
    }
    initDir = checkpointDir(cfg.initFrom ?? DEFAULT_INIT_RUN);
    if (cfg.initFrom === null) progress?.note(`no --init-from: starting from ${initDir}`);
  }
  const from = resumeDir ?? initDir!;

  const data = loadFinetuneData(cfg, outDir);
  // The run's own copy of its test split: `cloze eval` scores it without following the checkpoint's path to the file.
  if (cfg.taskData !== null && root) writeLabelledJsonl(join(outDir, TEST_SPLIT_FILE), data.test);
  progress?.note(`data: ${data.source}; ${data.labels.length} classes`);
  const tok = await checkpointTokenizer(from);
  if (root) tok.save(join(outDir, 'tokenizer.json'));
  prepared();
  const base = cfg.method === 'mask-tune' || cfg.applyMask !== null ? maskBase(cfg, from, resumeDir, data.labels, data.pair) : null;
  const classifier = await openClassifier(from, {
    method: cfg.method === 'mask-tune' ? 'mask-tune' : classifierMethod(cfg.method) as Method, labels: data.labels,
    mask: { threshold: cfg.maskThreshold, initSparsity: cfg.maskInitSparsity, initScale: cfg.maskInitScale },
    // On resume the checkpoint holds the run's weights or scores: the mask was applied at its start.
    ...(cfg.applyMask !== null && !resumeDir ? { maskFile: cfg.applyMask } : {}), maxLength: cfg.maxLength, seed: cfg.seed, templates: data.templates, verbalizer: data.verbalizer,
    verbalizerSource: cfg.verbalizer ?? `the ${cfg.task} task's verbalizer`,
  }, tok, (m) => progress?.note(`warning: ${m}`));
  let task: ReturnType<typeof buildFinetuneTask>;
  let placement: Placement | null = null;
  try {
    // On cuda the model moves before the optimizer flattens the parameters there (the verbalizer's word ids
    // stay on the host: see TextClassifier).
    placement = placeModel([classifier.module], cfg);
    const mc = classifier.module.config;
    if (mc.positionEmbedding === 'absolute' && cfg.maxLength > mc.maxPosition) {
      throw new ClozeError('E_VALUE', `${where}: Expected maxLength at most ${mc.maxPosition} (the model's max_position_embeddings in ${from}/config.json) for maxLength but received ${cfg.maxLength}`);
    }
    const [train, test] = [await encodeInputs(tok, data.train), await encodeInputs(tok, data.test)];
    const describe = {
      method: cfg.method, adv: cfg.adv, ...(usesAsa(cfg) ? { asa: true, asa_tau: cfg.asaTau } : {}), task: cfg.task, labels: data.labels, pair: data.pair, max_length: cfg.maxLength, source: data.source,
      ...(base ? { mask: { threshold: cfg.maskThreshold, base_sha256: base.sha256, base: base.dir, ...(cfg.applyMask !== null ? { applied: cfg.applyMask } : {}) } } : {}),
      ...(cfg.method === 'mvp' && classifier.m.method === 'mvp'
        ? { templates: data.templates, verbalizer: Object.fromEntries(data.labels.map((l, i) => [l, classifier.m.method === 'mvp' ? classifier.m.prompts.verbalizer.kept[i]! : []])) }
        : {}),
    };
    task = buildFinetuneTask(cfg, outDir, { classifier, train: { examples: train, labels: data.trainLabels }, test: { examples: test, labels: data.testLabels }, describe },
      comm.size > 1 ? { rank: comm.rank, size: comm.size } : null);
  } catch (e) {
    classifier.dispose();
    placement?.release();
    throw e;
  }
  try {
    progress?.note(`fine-tuning: ${classifierMethod(cfg.method)}${cfg.adv ? ' + PGD' : ''}${usesAsa(cfg) ? ` + ASA (τ = ${cfg.asaTau})` : ''}, ${data.train.length} training examples (${task.perEpoch} steps/epoch), ${data.test.length} test examples`);
    const collectives = comm.size > 1 || cfg.distributed === 'on';
    const r = await trainTask(task, { ...cfg, outDir, resumeDir, run, ...(collectives ? { comm, collectives, globalBatch: comm.size * cfg.batchSize } : {}) },
      { signal: hooks.signal, onStep: hooks.onStep, onEval: hooks.onEval as (e: TaskEval) => void }, progress);
    return { outDir, ...r, method: cfg.method, labels: data.labels };
  } finally {
    task.dispose();
    placement.release();
  }
}
