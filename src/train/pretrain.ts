/**
 * `pretrain(config, hooks)`: BERT-style MLM pre-training, end to end. Data →
 * tokenizer → cached shard → packed sequences → masking → model → AdamW, with
 * evaluation, metrics, checkpoints and exact resume.
 *
 * Everything random is a pure function of (seed, step): the data order of
 * each epoch, the token selection (an Rng seeded per micro-batch), the 80/10/10
 * draws (Philox) and dropout (Philox with per-site call counters, which the
 * checkpoint carries). Resuming therefore needs only the weights, the
 * optimizer state, the step and the dropout counters.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../autograd/backward.js';
import { scope } from '../autograd/mode.js';
export type { EvalResult } from './evaluate.js';
import { loadCheckpoint, latestCheckpoint, saveCheckpoint } from '../checkpoint/checkpoint.js';
import { loadTokenizer, trainWordPiece, type TextTokenizer } from '../data/tokenizer.js';
import { openShard, prepareShard } from '../data/prepare.js';
import { PackedCorpus, type Batch } from '../data/packing.js';
import { ClozeError } from '../errors.js';
import { packageRoot } from '../native/loader.js';
import { Dropout } from '../nn/layers.js';
import { scale } from '../ops/elementwise.js';
import { AdamW } from '../optim/adamw.js';
import { setNumThreads } from '../runtime.js';
import { BertForMaskedLM } from '../models/bert/model.js';
import { bertPreset, BERT_PRESETS, type BertPresetName } from '../models/bert/presets.js';
import { resolveConfig, type RunConfig } from './config.js';
import { evaluateMlm, type EvalResult } from './evaluate.js';
import { bertConfigFromHf, hfBertConfig, HF_EXTRA_KEYS } from './hf-config.js';
import { MaskingPlan } from './masking-plan.js';
import { MetricsLog } from './metrics.js';
import { Progress } from './progress.js';
import { learningRate } from './schedule.js';

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
}

export interface PretrainHooks {
  /** Aborting saves a checkpoint and returns with `stopped: 'aborted'`. */
  signal?: AbortSignal;
  onStep?: (s: StepInfo) => void;
  onEval?: (e: EvalResult) => void;
  /** Where the progress bar and notes go; default process.stderr. Pass null for silence. */
  output?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean } | null;
}

export interface PretrainResult {
  outDir: string;
  step: number;
  stopped: 'done' | 'aborted';
  lastLoss: number;
  eval: EvalResult | null;
  checkpoint: string | null;
}

/** The bundled WordNet corpus (data/corpus/README.md). */
export function defaultCorpus(): string {
  return join(packageRoot(), 'data', 'corpus', 'default.txt');
}

function readJsonFile(path: string): { [key: string]: unknown } {
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { [key: string]: unknown };
  } catch (e) {
    throw new ClozeError('E_VALUE', `Expected JSON in ${path} but received text that does not parse (${(e as Error).message})`);
  }
}

/** Recipe values of a preset, used for the fields a caller left unset. */
function withRecipe(input: Record<string, unknown>): Record<string, unknown> {
  const name = (input.preset ?? 'bert-tiny') as BertPresetName;
  const recipe = BERT_PRESETS[name]?.recipe;
  if (!recipe) return input;
  const fromRecipe: Record<string, unknown> = {
    maskRatio: recipe.maskRatio,
    lr: recipe.optimizer.lr,
    betas: recipe.optimizer.betas,
    eps: recipe.optimizer.eps,
    weightDecay: recipe.optimizer.weightDecay,
    warmupRatio: recipe.warmupFraction,
    minLrRatio: recipe.finalLrFactor,
    decay: 'linear',
  };
  return { ...fromRecipe, ...input };
}

async function makeTokenizer(cfg: RunConfig, data: string, outDir: string, resumeDir: string | null): Promise<TextTokenizer> {
  const saved = join(outDir, 'tokenizer.json');
  if (resumeDir && existsSync(join(resumeDir, 'tokenizer.json'))) return loadTokenizer(join(resumeDir, 'tokenizer.json'));
  if (cfg.initFrom) {
    for (const f of ['tokenizer.json', 'vocab.txt']) if (existsSync(join(cfg.initFrom, f))) return loadTokenizer(join(cfg.initFrom, f), { lowercase: cfg.lowercase });
    throw new ClozeError('E_IO', `Expected tokenizer.json or vocab.txt in ${cfg.initFrom} for initFrom but received neither`);
  }
  if (cfg.tokenizer) return loadTokenizer(cfg.tokenizer, { lowercase: cfg.lowercase });
  if (existsSync(saved)) return loadTokenizer(saved);
  const tok = await trainWordPiece(data, { vocabSize: cfg.vocabSize, lowercase: cfg.lowercase, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField });
  tok.save(saved);
  return tok;
}

/** The micro-batch with global index `k`: epochs follow each other, each in its own seeded order. */
class BatchCursor {
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);
  readonly perEpoch: number;
  constructor(
    private readonly corpus: PackedCorpus,
    private readonly batchSize: number,
  ) {
    this.perEpoch = Math.floor(corpus.trainIndices.length / batchSize);
    if (this.perEpoch === 0) {
      throw new ClozeError('E_VALUE', `Expected at least batchSize (${batchSize}) training sequences for batchSize but received ${corpus.trainIndices.length}; use a smaller batch or more data`);
    }
  }
  at(k: number): Batch {
    const epoch = Math.floor(k / this.perEpoch);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.order = this.corpus.trainOrder(epoch);
    }
    const first = (k % this.perEpoch) * this.batchSize;
    return this.corpus.batchOf(this.order.subarray(first, first + this.batchSize));
  }
}

function dropoutCounters(model: BertForMaskedLM): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, m] of model.namedModules()) if (m instanceof Dropout) out[name] = m.calls;
  return out;
}

function restoreDropout(model: BertForMaskedLM, counters: Record<string, number>): void {
  for (const [name, m] of model.namedModules()) {
    if (m instanceof Dropout) {
      const v = counters[name];
      if (v === undefined) throw new ClozeError('E_VALUE', `Expected a dropout counter for ${name} in the checkpoint but received none`);
      m.calls = v;
    }
  }
}

/** Pre-trains a BERT-style encoder with masked language modeling; see RUN_FIELDS for the options. */
export async function pretrain(input: Partial<RunConfig> | Record<string, unknown>, hooks: PretrainHooks = {}): Promise<PretrainResult> {
  const cfg = resolveConfig(withRecipe(input as Record<string, unknown>));
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const outDir = cfg.out ?? join('runs', cfg.preset);
  mkdirSync(outDir, { recursive: true });
  const data = cfg.data ?? defaultCorpus();
  const resumeDir = cfg.resume ? latestCheckpoint(outDir) : null;
  if (cfg.resume && !resumeDir) throw new ClozeError('E_IO', `Expected a checkpoint in ${outDir} for resume but received none`);
  const progress = hooks.output === null ? null : new Progress(hooks.output ?? process.stderr, cfg.logEvery);

  const tok = await makeTokenizer(cfg, data, outDir, resumeDir);
  const shard = await prepareShard(data, tok, { cacheDir: outDir, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField });
  const corpus = new PackedCorpus(openShard(shard.path), { clsId: tok.clsId, sepId: tok.sepId, padId: tok.padId }, {
    maxLength: cfg.maxLength,
    evalFraction: cfg.evalFraction,
    seed: cfg.seed,
  });
  const preset = bertPreset(cfg.preset as BertPresetName, { vocabSize: tok.vocabSize, maxPosition: Math.max(512, cfg.maxLength) });
  // The model's shape: a resumed run's own config.json, else the one of the directory it starts from, else the preset.
  const shapeFrom = resumeDir ?? cfg.initFrom;
  const modelConfig = shapeFrom ? bertConfigFromHf(readJsonFile(join(shapeFrom, 'config.json')), join(shapeFrom, 'config.json')) : preset.config;
  const init = cfg.initFrom && !resumeDir ? loadCheckpoint(cfg.initFrom) : null;
  const model = new BertForMaskedLM(modelConfig, { seed: cfg.seed });
  if (init) {
    try {
      const weights = Object.fromEntries(Object.entries(init.model).filter(([k]) => !HF_EXTRA_KEYS.has(k)));
      model.loadStateDict(weights);
    } finally {
      init.dispose();
    }
  }
  const opt = new AdamW(model.parameters(), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const plan = new MaskingPlan(cfg, tok, corpus, preset.unpadded);
  const cursor = new BatchCursor(corpus, cfg.batchSize);
  const metrics = new MetricsLog(join(outDir, 'metrics.jsonl'));
  const hfConfig = hfBertConfig(model.config);

  let step = 0;
  if (resumeDir) {
    const ck = loadCheckpoint(resumeDir);
    try {
      model.loadStateDict(ck.model);
      if (!ck.optimizer || ck.step === null) throw new ClozeError('E_VALUE', `Expected optimizer state in ${resumeDir} for resume but received a weights-only checkpoint`);
      opt.loadState(ck.optimizer);
      restoreDropout(model, ck.dropoutCounters);
      step = ck.step;
    } finally {
      ck.dispose();
    }
    progress?.note(`resumed from ${resumeDir} at step ${step}`);
  }

  const save = (): string =>
    saveCheckpoint(outDir, {
      step,
      model: model.stateDict(),
      config: hfConfig,
      tokenizerFiles: [join(outDir, 'tokenizer.json')].filter((f) => existsSync(f)),
      optimizer: opt,
      dataPosition: { microBatch: step * cfg.gradAccum },
      dropoutCounters: dropoutCounters(model),
      // The run's settings, for `cloze eval` and for people reading the checkpoint.
      extra: { run: JSON.parse(JSON.stringify(cfg)) },
    }, { keepLast: cfg.keepLast });
  if (!existsSync(join(outDir, 'tokenizer.json'))) tok.save(join(outDir, 'tokenizer.json'));

  const evaluate = (): EvalResult =>
    evaluateMlm(model, corpus, plan, { seed: cfg.seed, batchSize: cfg.batchSize, maxBatches: cfg.evalBatches, step });

  try {
    let lastLoss = NaN;
    let lastEval: EvalResult | null = null;
    let checkpoint: string | null = null;
    let stopped: PretrainResult['stopped'] = 'done';
    let t0 = performance.now();
    let tokens = 0;
    model.train();
    while (step < cfg.maxSteps) {
      if (hooks.signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const lr = learningRate(step, { lr: cfg.lr, totalSteps: cfg.maxSteps, warmupSteps: Math.round(cfg.warmupRatio * cfg.maxSteps), decay: cfg.decay as 'linear', minLrRatio: cfg.minLrRatio });
      opt.zeroGrad();
      let stepLoss = 0;
      for (let a = 0; a < cfg.gradAccum; a++) {
        const k = step * cfg.gradAccum + a;
        scope(() => {
          const mb = plan.build(cursor.at(k), cfg.seed, k);
          tokens += mb.realTokens;
          const loss = model.loss(mb.batch);
          const v = loss.item();
          if (!Number.isFinite(v)) {
            throw new ClozeError('E_VALUE', `The MLM loss became ${v} at step ${step + 1} (lr ${lr.toExponential(3)}); stopping without saving this state. Lower the learning rate or check the data.`);
          }
          stepLoss += v / cfg.gradAccum;
          backward(cfg.gradAccum > 1 ? scale(loss, 1 / cfg.gradAccum) : loss);
        });
      }
      const gradNorm = cfg.gradClip > 0 ? opt.clipGradNorm(cfg.gradClip) : NaN;
      opt.lr = lr;
      opt.step();
      step++;
      lastLoss = stepLoss;
      const secs = (performance.now() - t0) / 1000;
      const info: StepInfo = { step, loss: stepLoss, lr, gradNorm, tokensPerSec: tokens / Math.max(secs, 1e-9) };
      hooks.onStep?.(info);
      progress?.update({ step, totalSteps: cfg.maxSteps, loss: stepLoss, tokensPerSec: info.tokensPerSec, lr }, secs / Math.max(1, step));
      if (step % cfg.logEvery === 0 || step === cfg.maxSteps) metrics.write({ kind: 'train', ...info });
      if (step % cfg.evalEvery === 0 || step === cfg.maxSteps) {
        lastEval = evaluate();
        hooks.onEval?.(lastEval);
        metrics.write({ kind: 'eval', ...lastEval });
        progress?.note(`eval step ${step}: loss ${lastEval.loss.toFixed(4)}  accuracy ${(100 * lastEval.accuracy).toFixed(2)}%  perplexity ${lastEval.perplexity.toFixed(2)}`);
      }
      if (step % cfg.saveEvery === 0 && step !== cfg.maxSteps) checkpoint = save();
      // Let timers and I/O run between steps: the event loop stays responsive.
      await new Promise<void>((r) => setImmediate(r));
      if (step === 1) {
        // The first step pays one-off costs (allocations, page faults); rates start after it.
        t0 = performance.now();
        tokens = 0;
      }
    }
    checkpoint = save();
    progress?.end();
    progress?.note(`${stopped === 'aborted' ? 'stopped' : 'finished'} at step ${step}; checkpoint ${checkpoint}`);
    return { outDir, step, stopped, lastLoss, eval: lastEval, checkpoint };
  } finally {
    // Native memory goes back even when a step throws (a non-finite loss, bad data).
    opt.dispose();
    model.dispose();
    plan.dispose();
  }
}
