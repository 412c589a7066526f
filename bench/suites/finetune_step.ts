/**
 * cloze's fine-tuning step as `cloze finetune` runs it, on random tokens: a
 * TextClassifier (BertForSequenceClassification for mlp-ft; BertForMaskedLM
 * with prompts for mvp) from a preset at its random init, the task of
 * src/tasks/finetune/task.ts (buildFinetuneTask: batches in a seeded order,
 * the method's class logits, cross-entropy, PGD with --adv) at `cloze
 * finetune`'s defaults, driven by the shared training loop itself (runLoop:
 * lr schedule, zeroGrad, backward, loss.item(), clipGradNorm, AdamW.step).
 * A step's time is the gap between the loop's consecutive onStep calls.
 *
 * MVP's prompts have the shape of the built-in spam task's: 2 classes, 3
 * label words each, 4 templates of 7, 1, 5 and 4 tokens (two before the
 * input, two after it), their words random ids. Every input has more tokens
 * than fit, so every sequence is truncated to exactly L tokens (no padding).
 *
 * It runs in a child process of its own (`--child`), as suites/mlm_step.ts
 * does, so its peak RSS is that of a process that only built and trained this
 * model; the parent reads one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertForSequenceClassification } from '../../src/models/bert/classification.js';
import { bertConfig, type BertConfig, type BertConfigInput } from '../../src/models/bert/config.js';
import { BertForMaskedLM } from '../../src/models/bert/model.js';
import { bertPreset, type BertPresetName } from '../../src/models/bert/presets.js';
import { Rng } from '../../src/rng.js';
import { runtimeInfo, setNumThreads } from '../../src/runtime.js';
import { TextClassifier, type EncodedExample, type Method } from '../../src/tasks/finetune/classifier.js';
import { resolveFinetuneConfig, type FinetuneConfig } from '../../src/tasks/finetune/config.js';
import { buildSequence, type MvpTemplate } from '../../src/tasks/finetune/mvp-inputs.js';
import { buildFinetuneTask } from '../../src/tasks/finetune/task.js';
import { runLoop } from '../../src/train/loop.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { median, nowMs } from '../lib/timing.js';
import { vmHwmBytes } from '../lib/rss.js';
import { runBaseline, type TorchStepReport } from '../lib/torch.js';

/** Examples per step (`cloze finetune`'s batch size) and tokens per sequence (its maxLength). */
export const FT_STEP_SHAPE = { B: 32, L: 128, seed: 1234 } as const;

/** BERT's special ids; random input ids start above them. */
const SPECIALS = { padId: 0, clsId: 101, sepId: 102, maskId: 103 } as const;
const FIRST_ID = 1000;

/** The spam task's prompt shape: tokens per template, where its [MASK] is, and whether it goes after the input. */
const SPAM_TEMPLATES = [
  { source: 'Kind of the message is [MASK] .', tokens: 7, maskOffset: 5, after: false },
  { source: '[SEP] [MASK]', tokens: 1, maskOffset: 0, after: true },
  { source: 'This is a [MASK] message', tokens: 5, maskOffset: 3, after: false },
  { source: '[SEP] The message is [MASK]', tokens: 4, maskOffset: 3, after: true },
] as const;
const SPAM_WORDS_PER_CLASS = [3, 3] as const;

export interface FinetuneCase {
  preset: BertPresetName;
  method: Method;
  adv: boolean;
  /** Train with ASA (mlp-ft: `--method asa`; mvp: `--asa`). cloze only: PyTorch has no reference of it. */
  asa?: boolean;
}

export const caseName = (c: FinetuneCase): string => `${c.preset} ${c.method}${c.adv ? ' --adv' : ''}${c.asa ? ' +asa' : ''}`;

/** What both sides need to build the same step: the model shape, the classes, and for mvp the words and [MASK] positions. */
export interface FinetuneStepSpec {
  config: BertConfig;
  B: number;
  L: number;
  classes: number;
  /** mvp: the templates, their words random ids; empty for mlp-ft. */
  templates: MvpTemplate[];
  /** mvp: label word ids [K] and each word's class [K]; empty for mlp-ft. */
  words: number[];
  classOf: number[];
  /** mvp: the [MASK] position of each template's sequences (every one full length); empty for mlp-ft. */
  maskPositions: number[];
  /** `cloze finetune`'s resolved settings for this method (lr, betas, eps, weight decay, clip, warmup ratio, batch size, maxLength). */
  cfg: FinetuneConfig;
}

/** Random ids in [FIRST_ID, V). */
function randomIds(rng: Rng, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => FIRST_ID + rng.int(V - FIRST_ID));
}

function mvpTemplates(rng: Rng, V: number): MvpTemplate[] {
  return SPAM_TEMPLATES.map((t) => {
    const ids = randomIds(rng, t.tokens, V);
    ids[t.maskOffset] = SPECIALS.maskId;
    return { source: t.source, ids, maskOffset: t.maskOffset, after: t.after };
  });
}

/**
 * The spec of a case: the preset's config (its hidden dropout, V = 30522 for
 * the BERT sizes) unless `config` overrides it, `cloze finetune`'s defaults
 * for `method`, and the prompts' words and [MASK] positions, the positions
 * from buildSequence on a full-length input.
 */
export function finetuneStepSpec(c: FinetuneCase, opts: { config?: BertConfigInput; B?: number; L?: number; seed?: number } = {}): FinetuneStepSpec {
  const B = opts.B ?? FT_STEP_SHAPE.B;
  const L = opts.L ?? FT_STEP_SHAPE.L;
  const config = bertConfig(opts.config ?? bertPreset(c.preset).config);
  const asa = c.asa === true;
  const cfg = resolveFinetuneConfig({
    taskData: '(random tokens)', method: asa && c.method === 'mlp-ft' ? 'asa' : c.method, asa: asa && c.method === 'mvp', adv: c.adv, batchSize: B, maxLength: L, seed: 0,
  }, 'bench:finetune-step');
  const classes = SPAM_WORDS_PER_CLASS.length;
  if (c.method === 'mlp-ft') return { config, B, L, classes, templates: [], words: [], classOf: [], maskPositions: [], cfg };
  const rng = new Rng(opts.seed ?? FT_STEP_SHAPE.seed);
  const templates = mvpTemplates(rng, config.vocabSize);
  const K = SPAM_WORDS_PER_CLASS.reduce((x, y) => x + y, 0);
  const words = Array.from(randomIds(rng, K, config.vocabSize));
  const classOf = SPAM_WORDS_PER_CLASS.flatMap((n, cl) => Array<number>(n).fill(cl));
  const full = randomIds(rng, L, config.vocabSize);
  const maskPositions = templates.map((t) => buildSequence(SPECIALS, full, null, t, L).maskPos);
  return { config, B, L, classes, templates, words, classOf, maskPositions, cfg };
}

export interface FinetuneStepResult {
  ok: true;
  threads: number;
  params: number;
  /** Sequences per step: B, or B·T for mvp. */
  sequences: number;
  medianMs: number;
  samplesMs: number[];
  examplesPerS: number;
  cpuUserMs: number;
  cpuSysMs: number;
  losses: number[];
  /** VmHWM at the end of the timed steps: the whole process's peak resident set. */
  peakRssBytes: number | null;
}

export type FinetuneStepOutcome = FinetuneStepResult | { ok: false; error: string };


/** The classifier of a spec at its random init (seed 0), with the spec's prompts for mvp. */
function buildClassifier(spec: FinetuneStepSpec, method: Method): TextClassifier {
  const labels = Array.from({ length: spec.classes }, (_, i) => `class${i}`);
  if (method === 'mlp-ft') {
    const model = new BertForSequenceClassification(spec.config, { numLabels: spec.classes, seed: 0 });
    return new TextClassifier({ method, model }, labels, SPECIALS, spec.L);
  }
  const verbalizer = { words: Int32Array.from(spec.words), classOf: Int32Array.from(spec.classOf), kept: [] };
  const model = new BertForMaskedLM(spec.config, { seed: 0 });
  return new TextClassifier({ method, model, prompts: { templates: spec.templates, verbalizer } }, labels, SPECIALS, spec.L);
}

/**
 * Trains `warmup + reps` steps through runLoop and times the last `reps`
 * (the gaps between consecutive onStep calls). `spec` comes from
 * finetuneStepSpec (tests pass a small config).
 */
export async function ourFinetuneStep(c: FinetuneCase, threads: number, warmup: number, reps: number, spec = finetuneStepSpec(c)): Promise<FinetuneStepResult> {
  setNumThreads(threads);
  const { B, L, config, cfg } = spec;
  const steps = Math.max(1, warmup) + reps;
  const classifier = buildClassifier(spec, c.method);
  const rng = new Rng(FT_STEP_SHAPE.seed + 1);
  // A different batch every step, as in training: B·steps examples of L tokens (more than fit: each is truncated).
  const examples: EncodedExample[] = Array.from({ length: B * steps }, () => [randomIds(rng, L, config.vocabSize), null]);
  const trainLabels = Int32Array.from(examples, () => rng.int(spec.classes));
  const out = mkdtempSync(join(tmpdir(), 'cloze-finetune-step-'));
  const runCfg: FinetuneConfig = { ...cfg, epochs: 0, maxSteps: steps };
  const task = buildFinetuneTask(runCfg, out, {
    classifier,
    train: { examples, labels: trainLabels },
    test: { examples: examples.slice(0, 1), labels: trainLabels.slice(0, 1) },
    describe: {},
  });
  try {
    const stamps: number[] = [];
    const losses: number[] = [];
    let c0: NodeJS.CpuUsage | null = null;
    let cpu: NodeJS.CpuUsage | null = null;
    let peak: number | null = null;
    const w = steps - reps;
    await runLoop({ ...task, shouldEvaluate: () => false }, {
      ...runCfg, saveEvery: Number.MAX_SAFE_INTEGER, logEvery: Number.MAX_SAFE_INTEGER, keepLast: 1,
      totalSteps: steps, warmupSteps: Math.round(runCfg.warmupRatio * steps), startStep: 0, outDir: out, run: {},
    }, {
      onStep: (s) => {
        stamps.push(nowMs());
        losses.push(s.loss);
        if (s.step === w) c0 = process.cpuUsage();
        if (s.step === steps) {
          cpu = process.cpuUsage(c0 ?? undefined);
          peak = vmHwmBytes();
        }
      },
    }, null, new MetricsLog(join(out, 'metrics.jsonl')));
    const samples = stamps.slice(w).map((t, i) => t - stamps[w - 1 + i]!);
    const med = median(samples);
    const used = cpu as NodeJS.CpuUsage | null;
    return {
      ok: true,
      threads: runtimeInfo().threads,
      params: task.model.parameters().reduce((a, p) => a + p.size, 0),
      sequences: B * classifier.sequencesPerExample,
      medianMs: med,
      samplesMs: samples,
      examplesPerS: B / (med / 1e3),
      cpuUserMs: used ? used.user / 1e3 / reps : NaN,
      cpuSysMs: used ? used.system / 1e3 / reps : NaN,
      losses,
      peakRssBytes: peak,
    };
  } finally {
    task.dispose();
    rmSync(out, { recursive: true, force: true });
  }
}

/** Runs ourFinetuneStep in a fresh `node --expose-gc` process (this build's dist/bench/finetune-step.js, `--child`). */
export function runOurFinetuneStep(c: FinetuneCase, threads: number, warmup: number, reps: number): FinetuneStepOutcome {
  const entry = fileURLToPath(new URL('../finetune-step.js', import.meta.url));
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', entry, '--child', c.preset, c.method, ...(c.adv ? ['--adv'] : []), ...(c.asa ? ['--asa'] : []),
      '--threads', String(threads), '--warmup', String(warmup), '--reps', String(reps)],
    { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 * 2 ** 20 },
  );
  if (r.error) return { ok: false, error: `could not run ${process.execPath}: ${r.error.message}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as FinetuneStepOutcome;
  } catch {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `child exited with ${r.signal ? `signal ${r.signal}` : `status ${r.status}`}: ${why}` };
  }
}

/** What bench/baselines/finetune_torch.py prints. */
export interface TorchFinetuneResult extends TorchStepReport {
  sequences: number;
  examples_per_s: number;
}

export type TorchFinetuneOutcome = TorchFinetuneResult | { ok: false; error: string };

/** finetune_torch.py's arguments for the same step as `spec` (model shape, classes, prompts, cloze finetune's optimizer settings). */
export function torchFinetuneArgs(spec: FinetuneStepSpec, c: FinetuneCase, warmup: number, reps: number): string[] {
  const { config: m, cfg } = spec;
  const args = [
    '--method', c.method, ...(c.adv ? ['--adv'] : []),
    '--batch', String(spec.B), '--length', String(spec.L),
    '--vocab', String(m.vocabSize), '--hidden', String(m.hidden), '--layers', String(m.layers), '--heads', String(m.heads),
    '--intermediate', String(m.intermediate), '--dropout', String(m.hiddenDropout), '--classes', String(spec.classes),
    '--lr', String(cfg.lr), '--beta1', String(cfg.betas[0]), '--beta2', String(cfg.betas[1]), '--eps', String(cfg.eps),
    '--weight-decay', String(cfg.weightDecay), '--clip', String(cfg.gradClip), '--warmup-ratio', String(cfg.warmupRatio),
    '--warmup', String(warmup), '--reps', String(reps), '--seed', String(FT_STEP_SHAPE.seed),
  ];
  if (c.method === 'mvp') args.push('--words', spec.words.join(','), '--class-of', spec.classOf.join(','), '--mask-pos', spec.maskPositions.join(','));
  return args;
}

/** The PyTorch reference of the same step, in a child process (runBaseline); keepMemory adds KEEP_MEMORY_ENV. */
export function runTorchFinetune(python: string, threads: number, spec: FinetuneStepSpec, c: FinetuneCase, warmup: number, reps: number, keepMemory = false): TorchFinetuneOutcome {
  if (c.asa) return { ok: false, error: 'no PyTorch reference of ASA (its cost is read against the cloze step without it)' };
  return runBaseline<TorchFinetuneResult>({ python, script: 'finetune_torch.py', args: torchFinetuneArgs(spec, c, warmup, reps), threads, keepMemory, timeoutMs: 600_000 });
}
