/**
 * `cloze bench text`: the text pre-training objectives judged downstream under
 * one compute budget. On the same corpus (default: the bundled one) and one
 * WordPiece tokenizer trained once and shared, each objective pre-trains for
 * the same number of training FLOPs (src/models/text-flops.ts: one formula;
 * each objective's step count is derived from the budget):
 *
 *   mlm      BERT's MLM (15% masking, the shared optimizer defaults)
 *   mosaic   MosaicBERT: the mosaic-bert-* preset of the same size when one
 *            exists (bert-mini → mosaic-bert-mini: ALiBi, GeGLU, unpadded),
 *            else the MosaicBERT recipe (30% masking, its AdamW and schedule)
 *            on the same BERT preset
 *   emd      MLM with DeBERTa's enhanced mask decoder (--decoder emd)
 *   drbert   MLM with DrBERT's decoder blocks (--decoder drbert)
 *   electra  ELECTRA with the BERT preset as discriminator (generator ¼ wide)
 *
 * Each pre-trained encoder (by default at a third, two thirds and the end of
 * the budget; `points`) is fine-tuned with mlp-ft on each built-in task ×
 * seed. The fine-tuning learning rate is chosen per objective and task on a
 * validation split held out of the task's training split (never the test
 * split): the final checkpoint is fine-tuned with each rate of `lrs` on the
 * first seed's training subset, and the rate with the best validation
 * accuracy (the first on ties) is used for every checkpoint and seed. The suite writes summary.md (per-task accuracy mean ± half range over
 * seeds, their average as a GLUE-style score, pre-training seconds, steps and
 * FLOPs per objective), downstream.svg (score against pre-training FLOPs, one
 * line per objective), downstream-time.svg (the same against pre-training minutes: equal wall-clock as a second
 * view) and results.json, which lets an interrupted suite redo
 * only what it lacks.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from '../checkpoint/checkpoint.js';
import { perClassSubset, stratifiedSplit, writeLabelledJsonl, type LabelledExample } from '../data/labelled.js';
import { loadTokenizer, trainWordPiece } from '../data/tokenizer.js';
import { ClozeError } from '../errors.js';
import { bertConfig } from '../models/bert/config.js';
import { BERT_PRESETS, bertPreset, type BertPresetName } from '../models/bert/presets.js';
import { generatorConfig } from '../models/electra/model.js';
import { fmtFlops, stepsForBudget, textTrainingFlops, type TextFlops } from '../models/text-flops.js';
import { fmtSpread, markdownTable, spread } from '../report/markdown.js';
import { lineChartSvg } from '../report/svg-plot.js';
import { setNumThreads } from '../runtime.js';
import { checkInt, checkNumber } from '../validate.js';
import { BUILTIN_TASKS, loadTaskData, type BuiltinTaskName } from '../tasks/finetune/datasets.js';
import { defaultCorpus } from '../tasks/mlm/data.js';
import { pretrain, resolveRun } from '../tasks/pretrain.js';
import { finetune } from '../tasks/run-finetune.js';

export const TEXT_OBJECTIVES = ['mlm', 'mosaic', 'emd', 'drbert', 'electra'] as const;
export type TextObjective = (typeof TEXT_OBJECTIVES)[number];

export const TEXT_DEFAULTS = {
  preset: 'bert-tiny',
  /** The budget: the FLOPs of this many steps of the mlm objective (× scale); 1000 is `cloze pretrain`'s default run. */
  budgetSteps: 1000,
  batchSize: 32,
  /** Pre-training sequence length. */
  seqLength: 128,
  vocabSize: 8000,
  /** Checkpoints fine-tuned per objective, spread over the budget (every ⌈steps/points⌉ steps and the last; 1: the final one only). */
  points: 3,
  tasks: Object.keys(BUILTIN_TASKS) as BuiltinTaskName[],
  seeds: [0, 1, 2],
  /**
   * 1 epoch on 1,000 examples (31 steps) left every encoder at the majority class (bench/RESULTS.md); 3 epochs on
   * 2,000 (188 steps) at a rate chosen on validation, fixed before any test score was seen.
   */
  finetuneEpochs: 3,
  /** Training examples per task (a per-class subset drawn with each seed, from the split minus validation). */
  maxTrain: 2000,
  /** Fine-tuning learning rates tried on the validation split (one: no selection runs). */
  lrs: [1e-4, 3e-4, 1e-3],
  /** The share of each task's training split held out for validation (stratified, with dataSeed; none with one rate)… */
  valFraction: 0.1,
  /** … of which at most this many examples are scored (a per-class subset). */
  valMax: 500,
  /** Fine-tuning max length. */
  maxLength: 64,
  scale: 1,
  seed: 0,
  dataSeed: 0,
} as const;

export interface TextTask {
  name: string;
  train: LabelledExample[];
  test: LabelledExample[];
}

export interface TextSuiteOptions {
  out: string;
  preset?: string;
  /** Objectives to run (default: all five). */
  objectives?: string[];
  /** The budget as steps of the mlm objective (ignored when budgetFlops is given). */
  budgetSteps?: number;
  /** The budget in training FLOPs. */
  budgetFlops?: number;
  batchSize?: number;
  seqLength?: number;
  vocabSize?: number;
  /** Pre-training text (default: the bundled corpus). */
  data?: string | null;
  points?: number;
  tasks?: string[];
  /** Tasks given directly (tests). */
  taskData?: TextTask[];
  seeds?: number[];
  finetuneEpochs?: number;
  maxTrain?: number;
  maxLength?: number;
  /** Fine-tuning learning rates to choose from on the validation split (default TEXT_DEFAULTS.lrs). */
  lrs?: number[];
  /** The share of each training split held out for validation, in (0, 1). */
  valFraction?: number;
  /** Multiplies the budget, fine-tuning epochs and training examples (e.g. on a GPU). */
  scale?: number;
  seed?: number;
  dataSeed?: number;
  threads?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** One objective's pre-training: its settings, steps, FLOPs and checkpoints. */
export interface PretrainRecord {
  objective: string;
  /** The preset it trained and what it stands for. */
  preset: string;
  note: string;
  steps: number;
  flopsPerStep: number;
  flops: number;
  seconds: number;
  /** Fine-tuned checkpoints: step and training FLOPs at that step. */
  points: Array<{ step: number; flops: number; dir: string }>;
}

export interface FinetuneRecord {
  objective: string;
  step: number;
  flops: number;
  task: string;
  seed: number;
  /** The learning rate chosen on validation for this objective and task. */
  lr: number;
  trainExamples: number;
  testAccuracy: number;
  seconds: number;
}

/** One selection run: an objective's final checkpoint fine-tuned at one rate, scored on the validation split. */
export interface SelectionRecord {
  objective: string;
  task: string;
  lr: number;
  seed: number;
  trainExamples: number;
  valExamples: number;
  valAccuracy: number;
  seconds: number;
}

/** The rate with the best validation accuracy, the first in `lrs` order on ties. */
export function chooseLr(selections: readonly SelectionRecord[], objective: string, task: string, lrs: readonly number[]): number {
  if (lrs.length === 1) return lrs[0]!;
  let best = lrs[0]!;
  let bestAcc = -1;
  for (const lr of lrs) {
    const r = selections.find((x) => x.objective === objective && x.task === task && x.lr === lr);
    if (!r) throw new ClozeError('E_VALUE', `Expected a selection run for objective ${objective}, task ${task}, lr ${lr} but received none`);
    if (r.valAccuracy > bestAcc) {
      best = lr;
      bestAcc = r.valAccuracy;
    }
  }
  return best;
}

export interface TextSuiteResult {
  pretraining: PretrainRecord[];
  records: FinetuneRecord[];
  summary: string;
  files: string[];
}

/** An objective's pre-training settings (before the budget's steps) and what they stand for. */
export function objectiveSettings(objective: TextObjective, preset: string): { settings: Record<string, unknown>; note: string } {
  switch (objective) {
    case 'mlm':
      return { settings: { preset }, note: `BERT MLM, ${preset}` };
    case 'mosaic': {
      const twin = preset.replace(/^bert-/, 'mosaic-bert-');
      if (twin !== preset && Object.prototype.hasOwnProperty.call(BERT_PRESETS, twin)) {
        return { settings: { preset: twin }, note: `MosaicBERT, ${twin} (the ${preset} size with ALiBi, GeGLU, unpadded; its recipe: 30% masking)` };
      }
      const r = BERT_PRESETS['mosaic-bert-mini'].recipe!;
      return {
        settings: {
          preset, maskRatio: r.maskRatio, evalMaskRatio: r.evalMaskRatio, lr: r.optimizer.lr, betas: r.optimizer.betas, eps: r.optimizer.eps,
          weightDecay: r.optimizer.weightDecay, warmupRatio: r.warmupFraction, minLrRatio: r.finalLrFactor, decay: 'linear',
        },
        note: `MosaicBERT's recipe (30% masking, its AdamW and schedule) on ${preset} (no mosaic-bert preset of that size: architecture unchanged)`,
      };
    }
    case 'emd':
      return { settings: { preset, decoder: 'emd' }, note: `MLM + DeBERTa's EMD, ${preset}` };
    case 'drbert':
      return { settings: { preset, decoder: 'drbert' }, note: `MLM + DrBERT decoder (2 blocks), ${preset}` };
    case 'electra':
      return { settings: { preset, objective: 'electra' }, note: `ELECTRA, discriminator ${preset}, generator ¼ wide` };
  }
}

/** Training FLOPs of one step of a resolved run's settings, with a tokenizer of `vocab` tokens. */
export function runFlopsPerStep(settings: Record<string, unknown>, vocab: number): TextFlops {
  const cfg = resolveRun({ task: 'mlm', ...settings });
  if (!Object.prototype.hasOwnProperty.call(BERT_PRESETS, cfg.preset)) throw new ClozeError('E_VALUE', `Expected a bert-* or mosaic-bert-* preset for preset but received ${JSON.stringify(cfg.preset)}`);
  const p = bertPreset(cfg.preset as BertPresetName, { vocabSize: vocab });
  const c = bertConfig(p.config);
  const encoder = { layers: c.layers, hidden: c.hidden, intermediate: c.intermediate, ffn: c.ffn };
  const base = { encoder, vocabSize: c.vocabSize, seqLength: cfg.maxLength, batchSize: cfg.batchSize * cfg.gradAccum, maskRatio: cfg.maskRatio };
  if (cfg.objective === 'electra') {
    const g = generatorConfig(c);
    return textTrainingFlops({ ...base, generator: { layers: g.layers, hidden: g.hidden, intermediate: g.intermediate, ffn: g.ffn } });
  }
  const extraLayers = cfg.decoder === 'emd' ? 1 : cfg.decoder === 'drbert' ? cfg.decoderLayers : 0;
  return textTrainingFlops({ ...base, extraLayers });
}

/** Each objective's steps under one budget: steps = round(budget / FLOPs per step), so every objective is within half a step of it. */
export function budgetSteps(budget: number, perStep: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(perStep).map(([k, f]) => [k, stepsForBudget(budget, f)]));
}

const fkey = (r: Pick<FinetuneRecord, 'objective' | 'step' | 'task' | 'seed'>): string => `${r.objective}/${r.step}/${r.task}/${r.seed}`;
const skey = (r: Pick<SelectionRecord, 'objective' | 'task' | 'lr'>): string => `${r.objective}/${r.task}/${r.lr}`;

export async function runTextSuite(o: TextSuiteOptions): Promise<TextSuiteResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const D = TEXT_DEFAULTS;
  const scale = o.scale ?? D.scale;
  if (!(Number.isFinite(scale) && scale > 0)) throw new ClozeError('E_VALUE', `Expected a positive number for scale but received ${scale}`);
  const objectives = (o.objectives ?? [...TEXT_OBJECTIVES]).map((n) => {
    if (!(TEXT_OBJECTIVES as readonly string[]).includes(n)) throw new ClozeError('E_VALUE', `Expected one of ${TEXT_OBJECTIVES.join(', ')} for objectives but received ${JSON.stringify(n)}`);
    return n as TextObjective;
  });
  if (objectives.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one objective for objectives but received none');
  const points = o.points ?? D.points;
  checkInt(points, 'points', 1);
  if (o.budgetSteps !== undefined) checkInt(o.budgetSteps, 'budgetSteps', 1);
  if (o.finetuneEpochs !== undefined) checkInt(o.finetuneEpochs, 'finetuneEpochs', 1);
  if (o.maxTrain !== undefined) checkInt(o.maxTrain, 'maxTrain', 0);
  const lrs = o.lrs ?? [...D.lrs];
  if (lrs.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one learning rate for lrs but received none');
  lrs.forEach((x, i) => checkNumber(x, `lrs[${i}]`, 1e-12, 10));
  if (new Set(lrs).size !== lrs.length) throw new ClozeError('E_VALUE', `Expected distinct learning rates for lrs but received ${lrs.join(', ')}`);
  const valFraction = o.valFraction ?? D.valFraction;
  checkNumber(valFraction, 'valFraction', 1e-9, 1 - 1e-9);
  const seeds = o.seeds ?? [...D.seeds];
  if (seeds.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one seed for seeds but received none');
  seeds.forEach((x, i) => checkInt(x, `seeds[${i}]`, 0));
  const preset = o.preset ?? D.preset;
  if (!/^bert-/.test(preset) || !Object.prototype.hasOwnProperty.call(BERT_PRESETS, preset)) {
    throw new ClozeError('E_VALUE', `Expected a bert-* preset (${Object.keys(BERT_PRESETS).filter((p) => p.startsWith('bert-')).join(', ')}) for preset but received ${JSON.stringify(preset)}`);
  }
  const finetuneEpochs = Math.max(1, Math.round((o.finetuneEpochs ?? D.finetuneEpochs) * scale));
  const maxTrain = Math.round((o.maxTrain ?? D.maxTrain) * scale);
  const maxLength = o.maxLength ?? D.maxLength;
  const seed = o.seed ?? D.seed;
  const common = { task: 'mlm', batchSize: o.batchSize ?? D.batchSize, maxLength: o.seqLength ?? D.seqLength, seed };
  if (o.threads) setNumThreads(o.threads);
  mkdirSync(o.out, { recursive: true });

  const dataSeed = o.dataSeed ?? D.dataSeed;
  const tasks: TextTask[] = o.taskData ?? (o.tasks ?? [...D.tasks]).map((name) => {
    if (!(name in BUILTIN_TASKS)) throw new ClozeError('E_VALUE', `Expected one of ${Object.keys(BUILTIN_TASKS).join(', ')} for tasks but received ${JSON.stringify(name)}`);
    const d = loadTaskData({ task: name, cacheDir: join(o.out, 'data'), seed: dataSeed });
    return { name, train: d.train, test: d.test };
  });
  // Validation held out of each training split (fixed by dataSeed): fine-tuning trains on the rest, rates are chosen
  // on it, and the test split is only ever reported.
  // With one rate there is nothing to choose: no hold-out, training draws from the whole split.
  const splits = new Map(tasks.map((t) => {
    if (lrs.length === 1) return [t.name, { pool: t.train, val: [] as LabelledExample[] }] as const;
    const { train: pool, test: heldOut } = stratifiedSplit(t.train, valFraction, dataSeed);
    return [t.name, { pool, val: perClassSubset(heldOut, D.valMax, dataSeed) }] as const;
  }));

  // One tokenizer, trained once on the corpus, shared by every objective.
  const data = o.data ?? defaultCorpus();
  const tokPath = join(o.out, 'tokenizer.json');
  const vocabSize = o.vocabSize ?? D.vocabSize;
  // What it was trained from: another corpus or size trains it anew.
  const tokSource = join(o.out, 'tokenizer-source.json');
  const source = JSON.stringify({ data, vocabSize });
  if (!existsSync(tokPath) || !existsSync(tokSource) || readFileSync(tokSource, 'utf8') !== source) {
    log(`training a ${vocabSize}-token WordPiece tokenizer on ${data}`);
    (await trainWordPiece(data, { vocabSize })).save(tokPath);
    writeFileSync(tokSource, source);
  }
  const vocab = (await loadTokenizer(tokPath)).vocabSize;

  // The budget and each objective's steps.
  const plans = objectives.map((obj) => {
    const { settings, note } = objectiveSettings(obj, preset);
    const full: Record<string, unknown> = { ...common, ...settings, data, tokenizer: tokPath };
    return { objective: obj, settings: full, note, flops: runFlopsPerStep(full, vocab) };
  });
  const mlmPerStep = runFlopsPerStep({ ...common, preset }, vocab).perStep;
  const budget = o.budgetFlops !== undefined ? o.budgetFlops * scale : Math.round((o.budgetSteps ?? D.budgetSteps) * scale) * mlmPerStep;
  if (!(Number.isFinite(budget) && budget > 0)) throw new ClozeError('E_VALUE', `Expected a positive budget but received ${budget}`);
  const steps = budgetSteps(budget, Object.fromEntries(plans.map((p) => [p.objective, p.flops.perStep])));

  const pretrainSettings = { data, vocab, preset, budget, batchSize: common.batchSize, seqLength: common.maxLength, points, seed };
  const settings = {
    ...pretrainSettings,
    finetuneEpochs, maxTrain, maxLength, seeds, tasks: tasks.map((t) => t.name), dataSeed, lrs, valFraction, valMax: D.valMax,
  };
  const resultsFile = join(o.out, 'results.json');
  const prev = readPrevious(resultsFile, settings, Object.keys(pretrainSettings));
  const pretraining: PretrainRecord[] = [];
  const selections: SelectionRecord[] = [];
  const records: FinetuneRecord[] = [];
  const save = (): void => writeFileSync(resultsFile, JSON.stringify({ settings, pretraining, selections, records }, null, 2) + '\n');

  for (const p of plans) {
    if (o.signal?.aborted) break;
    const n = steps[p.objective]!;
    log(`${p.objective}: ${p.note}; ${fmtFlops(p.flops.perStep)} FLOPs/step × ${n} steps = ${fmtFlops(n * p.flops.perStep)} (budget ${fmtFlops(budget)})`);
    const dir = join(o.out, 'pretrain', p.objective);
    let rec = prev.pretraining.get(p.objective);
    if (!rec || rec.steps !== n || !rec.points.every((x) => existsSync(x.dir))) {
      const every = Math.max(1, Math.ceil(n / points));
      const t0 = performance.now();
      const r = await pretrain({
        ...p.settings, out: dir, overwrite: true, maxSteps: n, saveEvery: every, keepLast: points + 1,
        evalEvery: n, evalBatches: 2,
      }, { output: null, signal: o.signal });
      if (r.stopped === 'aborted') break;
      const seconds = (performance.now() - t0) / 1000;
      const cps = listCheckpoints(dir).slice(-points);
      // A new encoder: fine-tunings and selections recorded from the old one are stale.
      for (const [k, v] of prev.records) if (v.objective === p.objective) prev.records.delete(k);
      for (const [k, v] of prev.selections) if (v.objective === p.objective) prev.selections.delete(k);
      rec = {
        objective: p.objective, preset: String(p.settings.preset), note: p.note, steps: n, flopsPerStep: p.flops.perStep,
        flops: n * p.flops.perStep, seconds, points: cps.map((c) => ({ step: c.step, flops: c.step * p.flops.perStep, dir: c.dir })),
      };
      log(`  pre-trained ${n} steps in ${seconds.toFixed(0)} s (${(n / seconds).toFixed(2)} steps/s)`);
    }
    pretraining.push(rec);
    save();
  }

  const trainOf = (task: TextTask, s: number): { file: string; examples: LabelledExample[] } => {
    const dir = join(o.out, 'finetune', task.name);
    mkdirSync(dir, { recursive: true });
    const examples = perClassSubset(splits.get(task.name)!.pool, maxTrain, s);
    const file = join(dir, `train-seed${s}.jsonl`);
    writeLabelledJsonl(file, examples);
    return { file, examples };
  };

  // Selection: each objective's final checkpoint at every rate, on the first seed, scored on validation.
  const s0 = seeds[0]!;
  const chosen = new Map<string, number>();
  for (const task of tasks) {
    if (o.signal?.aborted) break;
    const dir = join(o.out, 'finetune', task.name);
    const { file: trainFile, examples: train } = trainOf(task, s0);
    const val = splits.get(task.name)!.val;
    const valFile = join(dir, 'validation.jsonl');
    if (lrs.length > 1) writeLabelledJsonl(valFile, val);
    for (const pr of pretraining) {
      const final = pr.points.at(-1);
      if (!final) continue;
      for (const lr of lrs.length > 1 ? lrs : []) {
        if (o.signal?.aborted) break;
        const key = { objective: pr.objective, task: task.name, lr };
        const done = prev.selections.get(skey(key));
        if (done) {
          selections.push(done);
          continue;
        }
        const t0 = performance.now();
        log(`${task.name} ${pr.objective} lr ${lr}: fine-tuning on ${train.length} examples for validation`);
        const r = await finetune({
          method: 'mlp-ft', taskData: trainFile, testData: valFile, seed: s0, epochs: finetuneEpochs, initFrom: final.dir, lr,
          out: join(dir, `select-${pr.objective}-lr${lr}`), maxLength, keepLast: 1, saveEvery: 1_000_000, overwrite: true,
        }, { output: null, signal: o.signal });
        if (r.stopped === 'aborted' || r.eval === null) break;
        selections.push({ ...key, seed: s0, trainExamples: train.length, valExamples: val.length, valAccuracy: r.eval.accuracy, seconds: (performance.now() - t0) / 1000 });
        log(`  validation accuracy ${(100 * r.eval.accuracy).toFixed(1)}%`);
        save();
      }
      if (o.signal?.aborted) break;
      const lr = chooseLr(selections, pr.objective, task.name, lrs);
      chosen.set(`${pr.objective}|${task.name}`, lr);
      if (lrs.length > 1) log(`${task.name} ${pr.objective}: lr ${lr} chosen on validation`);
    }
  }

  for (const task of tasks) {
    const dir = join(o.out, 'finetune', task.name);
    mkdirSync(dir, { recursive: true });
    const testFile = join(dir, 'test.jsonl');
    writeLabelledJsonl(testFile, task.test);
    for (const s of seeds) {
      if (o.signal?.aborted) break;
      const { file: trainFile, examples: train } = trainOf(task, s);
      for (const pr of pretraining) {
        const lr = chosen.get(`${pr.objective}|${task.name}`);
        if (lr === undefined) continue; // selection was interrupted
        for (const pt of pr.points) {
          if (o.signal?.aborted) break;
          const key = { objective: pr.objective, step: pt.step, task: task.name, seed: s };
          const done = prev.records.get(fkey(key));
          if (done && done.lr === lr) {
            records.push(done);
            continue;
          }
          const t0 = performance.now();
          log(`${task.name} ${pr.objective} step ${pt.step} seed ${s}: fine-tuning on ${train.length} examples at lr ${lr}`);
          const r = await finetune({
            method: 'mlp-ft', taskData: trainFile, testData: testFile, seed: s, epochs: finetuneEpochs, initFrom: pt.dir, lr,
            out: join(dir, `${pr.objective}-step${pt.step}-seed${s}`), maxLength, keepLast: 1, saveEvery: 1_000_000, overwrite: true,
          }, { output: null, signal: o.signal });
          if (r.stopped === 'aborted' || r.eval === null) break;
          records.push({ ...key, lr, flops: pt.flops, trainExamples: train.length, testAccuracy: r.eval.accuracy, seconds: (performance.now() - t0) / 1000 });
          log(`  test accuracy ${(100 * r.eval.accuracy).toFixed(1)}%`);
          save();
        }
      }
    }
  }
  save();
  const summary = textSummary(pretraining, records, tasks.map((t) => t.name), settings, selections);
  const files = [join(o.out, 'summary.md'), join(o.out, 'downstream.svg'), resultsFile, join(o.out, 'downstream-time.svg')];
  writeFileSync(files[0]!, summary + '\n');
  writeFileSync(files[1]!, textChart(pretraining, records, tasks.map((t) => t.name)));
  writeFileSync(files[3]!, textTimeChart(pretraining, records, tasks.map((t) => t.name)));
  return { pretraining, records, summary, files };
}

/**
 * Records of an earlier run: its pre-trainings when the pre-training settings (`pretrainKeys` of settings) match, its
 * selections and fine-tunings only when every setting does. Other settings start afresh.
 */
function readPrevious(file: string, settings: Record<string, unknown>, pretrainKeys: readonly string[]): {
  pretraining: Map<string, PretrainRecord>; selections: Map<string, SelectionRecord>; records: Map<string, FinetuneRecord>;
} {
  const out = { pretraining: new Map<string, PretrainRecord>(), selections: new Map<string, SelectionRecord>(), records: new Map<string, FinetuneRecord>() };
  if (!existsSync(file)) return out;
  try {
    const prev = JSON.parse(readFileSync(file, 'utf8')) as { settings: Record<string, unknown>; pretraining: PretrainRecord[]; selections?: SelectionRecord[]; records: FinetuneRecord[] };
    const pick = (x: Record<string, unknown>) => JSON.stringify(pretrainKeys.map((k) => x[k]));
    if (pick(prev.settings) !== pick(settings)) return out;
    for (const p of prev.pretraining) out.pretraining.set(p.objective, p);
    if (JSON.stringify(prev.settings) !== JSON.stringify(settings)) return out;
    for (const r of prev.selections ?? []) out.selections.set(skey(r), r);
    for (const r of prev.records) out.records.set(fkey(r), r);
  } catch {
    // An unreadable results.json is redone, not trusted.
  }
  return out;
}

/** The GLUE-style score of a checkpoint: the mean over tasks of each task's mean accuracy over seeds (null when a task is missing). */
function score(records: readonly FinetuneRecord[], objective: string, step: number, tasks: readonly string[]): number | null {
  const per = tasks.map((t) => records.filter((r) => r.objective === objective && r.step === step && r.task === t).map((r) => r.testAccuracy));
  if (per.some((xs) => xs.length === 0)) return null;
  return per.reduce((a, xs) => a + spread(xs).mean, 0) / per.length;
}

export function textSummary(
  pretraining: readonly PretrainRecord[], records: readonly FinetuneRecord[], tasks: readonly string[],
  s: {
    budget: number; preset: string; batchSize: number; seqLength: number; vocab: number; finetuneEpochs: number; maxTrain: number; maxLength: number;
    seeds: readonly number[]; lrs: readonly number[]; valFraction: number; valMax: number;
  },
  selections: readonly SelectionRecord[] = [],
): string {
  const lines = [
    '# Text pre-training suite', '',
    `One budget of ${fmtFlops(s.budget)} training FLOPs per objective (6·T·ΣP_layer + 12·T·S·ΣD + 6·M·P_head + 6·T·P_token; src/models/text-flops.ts), ` +
    `batches of ${s.batchSize} × ${s.seqLength} tokens, one ${s.vocab}-token WordPiece tokenizer (M = masking ratio × T, the expected masked tokens). Each checkpoint is fine-tuned with mlp-ft for ` +
    `${s.finetuneEpochs} epoch(s) on ${s.maxTrain > 0 ? `at most ${s.maxTrain} training examples per task (a per-class subset drawn with each seed)` : 'the whole training split'}, ` +
    `max length ${s.maxLength}, seeds ${s.seeds.join(', ')}; test accuracy %, mean ± half the range over seeds. Score: the mean over tasks (GLUE-style). The table is the final checkpoint's; seconds: pre-training wall-clock (equal FLOPs is not equal time). ` +
    (s.lrs.length > 1
      ? `The learning rate (of ${s.lrs.join(', ')}) is chosen per objective and task on a validation split (${Math.round(100 * s.valFraction)}% of the training split held out, at most ${s.valMax} scored; the final checkpoint, seed ${s.seeds[0]}), never on the test split.`
      : `One learning rate, ${s.lrs[0]}, for every run.`), '',
  ];
  const header = ['objective', ...tasks.map((t) => `${t} %`), 'score %', 'pre-training steps', 'FLOPs', 'seconds', 'recipe'];
  const rows = pretraining.map((p) => {
    const last = p.points.at(-1);
    const at = (t: string): string => {
      const xs = records.filter((r) => r.objective === p.objective && r.step === last?.step && r.task === t).map((r) => r.testAccuracy);
      return xs.length === 0 ? '–' : fmtSpread(spread(xs));
    };
    const sc = last ? score(records, p.objective, last.step, tasks) : null;
    return [p.objective, ...tasks.map(at), sc === null ? '–' : (100 * sc).toFixed(1), String(p.steps), fmtFlops(p.flops), p.seconds.toFixed(1), p.note];
  });
  lines.push(markdownTable(header, rows, header.map((_, i) => (i === 0 || i === header.length - 1 ? 'l' : 'r'))), '');
  if (selections.length > 0) {
    lines.push('## Learning rate chosen on validation', '', 'Validation accuracy % of the final checkpoint at each rate; the chosen one in bold.', '');
    const body = pretraining.flatMap((p) => tasks.map((t) => {
      const mine = selections.filter((x) => x.objective === p.objective && x.task === t);
      let pick: number | null = null;
      try {
        pick = chooseLr(selections, p.objective, t, s.lrs);
      } catch {
        pick = null; // an interrupted selection
      }
      const cells = s.lrs.map((lr) => {
        const r = mine.find((x) => x.lr === lr);
        if (!r) return '–';
        const v = (100 * r.valAccuracy).toFixed(1);
        return lr === pick ? `**${v}**` : v;
      });
      return [p.objective, t, ...cells];
    }));
    lines.push(markdownTable(['objective', 'task', ...s.lrs.map((lr) => `lr ${lr}`)], body, ['l', 'l', ...s.lrs.map(() => 'r' as const)]), '');
  }
  if (pretraining.some((p) => p.points.length > 1)) {
    lines.push('## Score at intermediate checkpoints', '');
    const body = pretraining.flatMap((p) => p.points.map((pt) => {
      const sc = score(records, p.objective, pt.step, tasks);
      return [p.objective, String(pt.step), fmtFlops(pt.flops), sc === null ? '–' : (100 * sc).toFixed(1)];
    }));
    lines.push(markdownTable(['objective', 'step', 'FLOPs', 'score %'], body, ['l', 'r', 'r', 'r']), '');
  }
  return lines.join('\n');
}

/**
 * The second view, equal wall-clock: score against pre-training minutes, one line per objective. A checkpoint's
 * minutes are its share of the run's steps times the run's whole wall-clock (setup, evaluations and saves
 * included, spread evenly over the steps: an approximation that places early checkpoints slightly early; a shared
 * machine's load is in the seconds as measured).
 */
export function textTimeChart(pretraining: readonly PretrainRecord[], records: readonly FinetuneRecord[], tasks: readonly string[]): string {
  const series = pretraining.map((p) => {
    const pts = p.points.map((pt) => ({ x: (p.seconds * pt.step) / p.steps / 60, y: score(records, p.objective, pt.step, tasks) }))
      .filter((q): q is { x: number; y: number } => q.y !== null);
    return { name: p.objective, x: pts.map((q) => q.x), y: pts.map((q) => 100 * q.y) };
  }).filter((s) => s.x.length > 0);
  return lineChartSvg({ title: `Downstream score vs pre-training wall-clock (${tasks.join(', ')})`, xLabel: 'pre-training minutes (this machine)', yLabel: 'mean test accuracy %', series });
}

/** Score (mean test accuracy over tasks) against pre-training FLOPs, one line per objective. */
export function textChart(pretraining: readonly PretrainRecord[], records: readonly FinetuneRecord[], tasks: readonly string[]): string {
  const series = pretraining.map((p) => {
    const pts = p.points.map((pt) => ({ x: pt.flops, y: score(records, p.objective, pt.step, tasks) })).filter((q): q is { x: number; y: number } => q.y !== null);
    return { name: p.objective, x: pts.map((q) => q.x), y: pts.map((q) => 100 * q.y) };
  }).filter((s) => s.x.length > 0);
  // Ticks in units of 10^e FLOPs, so they stay short.
  const top = Math.max(0, ...series.flatMap((s) => s.x));
  const e = top > 0 ? Math.floor(Math.log10(top)) : 0;
  const scaled = series.map((s) => ({ ...s, x: s.x.map((v) => v / 10 ** e) }));
  return lineChartSvg({ title: `Downstream score vs pre-training FLOPs (${tasks.join(', ')})`, xLabel: `pre-training FLOPs (×1e${e})`, yLabel: 'mean test accuracy %', series: scaled });
}
