/**
 * `cloze bench robust`: MVP's robustness claim under one budget. From one
 * pre-trained encoder, every method (mlp-ft, mlp-ft+adv, mvp, mvp+adv, asa,
 * mvp+asa; the list is open for weight-mask tuning) is fine-tuned on each task
 * with the same data, epochs and seeds, then attacked by PWWS and the
 * BERT-Attack style attack on the same first N test examples. The suite
 * writes summary.md (clean accuracy, accuracy under each attack, success
 * rate, words perturbed, queries; mean ± half the range over seeds),
 * robust-accuracy.svg (method × attack per task) and results.json, which
 * also lets an interrupted suite skip the runs it already has.
 *
 * Nothing is chosen on the test set: the settings are fixed up front and the
 * last epoch's model is the one attacked.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import { perClassSubset, writeLabelledJsonl, type LabelledExample } from '../data/labelled.js';
import type { AttackMetrics } from '../eval/attack/metrics.js';
import { groupedBarChartSvg } from '../report/svg-bars.js';
import { fmtSpread, markdownTable, spread } from '../report/markdown.js';
import { ClozeError } from '../errors.js';
import { setNumThreads } from '../runtime.js';
import { checkInt } from '../validate.js';
import { attack, ATTACKS, defaultMaxPerturb, type AttackName } from '../tasks/finetune/attack.js';
import { BUILTIN_TASKS, loadTaskData, type BuiltinTaskName } from '../tasks/finetune/datasets.js';
import { pretrain } from '../tasks/pretrain.js';
import { DEFAULT_INIT_RUN, finetune } from '../tasks/run-finetune.js';

/** A fine-tuning method of the suite: `cloze finetune` settings under a name. */
export interface RobustMethod {
  name: string;
  settings: { method: string; adv?: boolean } & Record<string, unknown>;
  /** Left out of the default run (named with --methods only): keeps the default within an hour on 2 cores. */
  optional?: boolean;
}

export const ROBUST_METHODS: RobustMethod[] = [
  { name: 'mlp-ft', settings: { method: 'mlp-ft' } },
  { name: 'mlp-ft+adv', settings: { method: 'mlp-ft', adv: true } },
  { name: 'mvp', settings: { method: 'mvp' } },
  { name: 'mvp+adv', settings: { method: 'mvp', adv: true } },
  { name: 'mask-tune', settings: { method: 'mask-tune' } },
  // ASA: adversarial self-attention (about 2× a step of the method it trains; the adversary is dropped before the attacks).
  { name: 'asa', settings: { method: 'asa' } },
  // mvp+asa costs about 2.5× mvp, the dearest method already: the default run would pass an hour on 2 cores.
  { name: 'mvp+asa', settings: { method: 'mvp', asa: true }, optional: true },
];

/** A task of the suite: its splits, and MVP's templates and verbalizer. */
export interface RobustTask {
  name: string;
  train: LabelledExample[];
  test: LabelledExample[];
  templates: readonly string[];
  verbalizer: Readonly<Record<string, readonly string[]>>;
  /** --max-perturb of its attacks. */
  maxPerturb: number;
}

export const ROBUST_DEFAULTS = {
  tasks: Object.keys(BUILTIN_TASKS) as BuiltinTaskName[],
  seeds: [0, 1, 2],
  epochs: 1,
  maxTrain: 2000,
  examples: 50,
  maxLength: 64,
  maxQueries: 2000,
  scale: 1,
  dataSeed: 0,
} as const;

export interface RobustOptions {
  out: string;
  /** A pre-trained run or checkpoint; default runs/bert-tiny, pre-trained first (`cloze pretrain --preset bert-tiny`) when absent. */
  initFrom?: string | null;
  tasks?: string[];
  /** Built-in or given tasks (tests give their own). */
  taskData?: RobustTask[];
  methods?: string[];
  attacks?: AttackName[];
  seeds?: number[];
  epochs?: number;
  /** Training examples per task (a seeded per-class subset; 0: the whole split). */
  maxTrain?: number;
  /** Test examples attacked per run (the first N, the same for every run). */
  examples?: number;
  maxLength?: number;
  maxQueries?: number;
  /** Multiplies epochs, training examples and attacked examples (e.g. on a GPU). */
  scale?: number;
  dataSeed?: number;
  threads?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** One fine-tuned model, its clean score, and each attack's metrics. */
export interface RobustRecord {
  task: string;
  method: string;
  seed: number;
  trainExamples: number;
  /** Accuracy on the whole test split. */
  testAccuracy: number;
  fineTuneSeconds: number;
  attacks: Partial<Record<AttackName, AttackMetrics & { queriesPerSecond: number; seconds: number }>>;
}

export interface RobustResult {
  records: RobustRecord[];
  summary: string;
  files: string[];
}

function keyOf(r: Pick<RobustRecord, 'task' | 'method' | 'seed'>): string {
  return `${r.task}/${r.method}/${r.seed}`;
}

export async function runRobustSuite(o: RobustOptions): Promise<RobustResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const scale = o.scale ?? ROBUST_DEFAULTS.scale;
  if (!(Number.isFinite(scale) && scale > 0)) throw new ClozeError('E_VALUE', `Expected a positive number for scale but received ${scale}`);
  if (o.epochs !== undefined) checkInt(o.epochs, 'epochs', 1);
  if (o.maxTrain !== undefined) checkInt(o.maxTrain, 'maxTrain', 0);
  if (o.examples !== undefined) checkInt(o.examples, 'examples', 1);
  if (o.seeds !== undefined) {
    if (o.seeds.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one seed for seeds but received none');
    o.seeds.forEach((x, i) => checkInt(x, `seeds[${i}]`, 0));
  }
  const epochs = Math.max(1, Math.round((o.epochs ?? ROBUST_DEFAULTS.epochs) * scale));
  const maxTrain = Math.round((o.maxTrain ?? ROBUST_DEFAULTS.maxTrain) * scale);
  const examples = Math.max(1, Math.round((o.examples ?? ROBUST_DEFAULTS.examples) * scale));
  const seeds = o.seeds ?? [...ROBUST_DEFAULTS.seeds];
  const attacks = o.attacks ?? [...ATTACKS];
  const methods = (o.methods ?? ROBUST_METHODS.filter((m) => !m.optional).map((m) => m.name)).map((n) => {
    const m = ROBUST_METHODS.find((x) => x.name === n);
    if (!m) throw new ClozeError('E_VALUE', `Expected one of ${ROBUST_METHODS.map((x) => x.name).join(', ')} for methods but received ${JSON.stringify(n)}`);
    return m;
  });
  if (o.threads) setNumThreads(o.threads);
  mkdirSync(o.out, { recursive: true });

  let init = o.initFrom ?? null;
  if (init === null) {
    if (latestCheckpoint(DEFAULT_INIT_RUN) === null) {
      log(`no --init-from: pre-training bert-tiny into ${DEFAULT_INIT_RUN} (npx cloze pretrain --preset bert-tiny)`);
      const pre = await pretrain({ preset: 'bert-tiny', out: DEFAULT_INIT_RUN, seed: 0 }, { signal: o.signal, output: process.stderr });
      if (pre.stopped === 'aborted') throw new ClozeError('E_STATE', `stopped while pre-training ${DEFAULT_INIT_RUN} (its checkpoint is saved: finish it with npx cloze pretrain --preset bert-tiny --resume, or give --init-from)`);
    }
    init = DEFAULT_INIT_RUN;
  }
  const initDir = latestCheckpoint(init) ?? init;

  const tasks: RobustTask[] = o.taskData ?? (o.tasks ?? [...ROBUST_DEFAULTS.tasks]).map((name) => {
    if (!(name in BUILTIN_TASKS)) throw new ClozeError('E_VALUE', `Expected one of ${Object.keys(BUILTIN_TASKS).join(', ')} for tasks but received ${JSON.stringify(name)}`);
    const t = BUILTIN_TASKS[name as BuiltinTaskName];
    const d = loadTaskData({ task: name, cacheDir: join(o.out, 'data'), seed: o.dataSeed ?? ROBUST_DEFAULTS.dataSeed });
    return { name, train: d.train, test: d.test, templates: t.templates, verbalizer: t.verbalizer, maxPerturb: defaultMaxPerturb(name) };
  });

  const resultsFile = join(o.out, 'results.json');
  const settings = { init: initDir, epochs, maxTrain, examples, seeds, maxLength: o.maxLength ?? ROBUST_DEFAULTS.maxLength, maxQueries: o.maxQueries ?? ROBUST_DEFAULTS.maxQueries, dataSeed: o.dataSeed ?? ROBUST_DEFAULTS.dataSeed };
  const previous = readPrevious(resultsFile, settings);
  const records: RobustRecord[] = [];
  const save = (): void => writeFileSync(resultsFile, JSON.stringify({ settings, records }, null, 2) + '\n');

  for (const task of tasks) {
    const dir = join(o.out, 'runs', task.name);
    mkdirSync(dir, { recursive: true });
    const testFile = join(dir, 'test.jsonl');
    writeLabelledJsonl(testFile, task.test);
    const verbalizerFile = join(dir, 'verbalizer.json');
    writeFileSync(verbalizerFile, JSON.stringify(task.verbalizer) + '\n');
    for (const seed of seeds) {
      const train = perClassSubset(task.train, maxTrain, seed);
      const trainFile = join(dir, `train-seed${seed}.jsonl`);
      writeLabelledJsonl(trainFile, train);
      for (const m of methods) {
        if (o.signal?.aborted) break;
        const done = previous.get(keyOf({ task: task.name, method: m.name, seed }));
        if (done && attacks.every((a) => done.attacks[a])) {
          records.push(done);
          continue;
        }
        const runDir = join(dir, `${m.name}-seed${seed}`);
        const t0 = performance.now();
        log(`${task.name} ${m.name} seed ${seed}: fine-tuning on ${train.length} examples, ${epochs} epoch(s)`);
        const r = await finetune({
          taskData: trainFile, testData: testFile, seed, epochs, initFrom: initDir, out: runDir, maxLength: settings.maxLength,
          keepLast: 1, saveEvery: 1_000_000, overwrite: true, ...m.settings, // an unfinished run of an interrupted suite starts afresh
          ...(m.settings.method === 'mvp' ? { template: [...task.templates], verbalizer: verbalizerFile } : {}),
        }, { output: null, signal: o.signal });
        if (r.stopped === 'aborted' || r.eval === null) break;
        const rec: RobustRecord = {
          task: task.name, method: m.name, seed, trainExamples: train.length, testAccuracy: r.eval.accuracy,
          fineTuneSeconds: (performance.now() - t0) / 1000, attacks: {},
        };
        for (const a of attacks) {
          const rep = await attack({
            checkpoint: runDir, attack: a, examples, maxPerturb: task.maxPerturb, maxQueries: settings.maxQueries, mlm: initDir, signal: o.signal,
          });
          rec.attacks[a] = { ...rep.metrics, queriesPerSecond: rep.queriesPerSecond, seconds: rep.time.total };
          log(`  ${a}: clean ${(100 * rep.metrics.cleanAccuracy!).toFixed(1)}%, under attack ${(100 * rep.metrics.accuracyUnderAttack!).toFixed(1)}%, ` +
            `${rep.queriesPerSecond.toFixed(0)} queries/s, ${rep.time.total.toFixed(1)} s`);
        }
        records.push(rec);
        save();
      }
    }
  }
  save();
  const summary = robustSummary(records, tasks.map((t) => t.name), methods.map((m) => m.name), attacks, settings, tasks);
  const files = [resultsFile, join(o.out, 'summary.md'), join(o.out, 'robust-accuracy.svg')];
  writeFileSync(files[1]!, summary + '\n');
  writeFileSync(files[2]!, robustChart(records, tasks.map((t) => t.name), methods.map((m) => m.name), attacks));
  return { records, summary, files };
}

/** Records of an earlier run of the same settings (an interrupted suite resumes); other settings start afresh. */
function readPrevious(file: string, settings: object): Map<string, RobustRecord> {
  const out = new Map<string, RobustRecord>();
  if (!existsSync(file)) return out;
  try {
    const prev = JSON.parse(readFileSync(file, 'utf8')) as { settings: object; records: RobustRecord[] };
    if (JSON.stringify(prev.settings) !== JSON.stringify(settings)) return out;
    for (const r of prev.records) out.set(keyOf(r), r);
  } catch {
    // An unreadable results.json is redone, not trusted.
  }
  return out;
}

const ATTACK_LABEL: Record<AttackName, string> = { pwws: 'PWWS', 'bert-attack': 'BERT-Attack' };

export function robustSummary(
  records: readonly RobustRecord[], tasks: readonly string[], methods: readonly string[], attacks: readonly AttackName[],
  settings: { init: string; epochs: number; maxTrain: number; examples: number; seeds: readonly number[]; maxLength: number; maxQueries: number }, taskInfo: readonly RobustTask[],
): string {
  const lines = [
    '# Robustness suite', '',
    `Fine-tuned from ${settings.init}: ${settings.epochs} epoch(s) on ${settings.maxTrain > 0 ? `at most ${settings.maxTrain} training examples (a per-class subset drawn with each seed)` : 'the whole training split'}, ` +
    `max length ${settings.maxLength}, seeds ${settings.seeds.join(', ')}. Each model is attacked on the first ${settings.examples} test examples ` +
    `(≤ ${settings.maxQueries} queries each). Percentages: mean ± half the range (min–max) over seeds; TextAttack's definitions ` +
    '(clean accuracy on the attacked examples; accuracy under attack = failed attacks / N; success rate = succeeded / (succeeded + failed); ' +
    'words perturbed over successful attacks; queries over non-skipped examples). No sentence-encoder constraint (none exists offline).', '',
  ];
  for (const task of tasks) {
    const rows = records.filter((r) => r.task === task);
    if (rows.length === 0) continue;
    const t = taskInfo.find((x) => x.name === task);
    lines.push(`## ${task}${t ? ` (≤ ${Math.round(100 * t.maxPerturb)}% of words may change)` : ''}`, '');
    const header = ['method', 'test acc %', 'clean acc %'];
    for (const a of attacks) header.push(`${ATTACK_LABEL[a]} acc under attack %`, `${ATTACK_LABEL[a]} success %`, `${ATTACK_LABEL[a]} words perturbed %`, `${ATTACK_LABEL[a]} queries`);
    const body: string[][] = [];
    for (const m of methods) {
      const rs = rows.filter((r) => r.method === m);
      if (rs.length === 0) continue;
      const of = (f: (r: RobustRecord) => number | null | undefined): string => {
        const xs = rs.map(f).filter((x): x is number => typeof x === 'number');
        return xs.length === 0 ? '–' : fmtSpread(spread(xs));
      };
      const row = [m, of((r) => r.testAccuracy), of((r) => r.attacks[attacks[0]!]?.cleanAccuracy)];
      for (const a of attacks) {
        const q = rs.map((r) => r.attacks[a]?.avgQueries).filter((x): x is number => typeof x === 'number');
        row.push(of((r) => r.attacks[a]?.accuracyUnderAttack), of((r) => r.attacks[a]?.attackSuccessRate),
          of((r) => (r.attacks[a]?.avgWordsPerturbedPercent ?? null) === null ? null : r.attacks[a]!.avgWordsPerturbedPercent! / 100),
          q.length ? spread(q).mean.toFixed(0) : '–');
      }
      body.push(row);
    }
    lines.push(markdownTable(header, body, header.map((_, i) => (i === 0 ? 'l' : 'r'))), '');
  }
  return lines.join('\n');
}

/** Accuracy under each attack (and clean) per method, one panel per task, mean with the seeds' half range as whiskers. */
export function robustChart(records: readonly RobustRecord[], tasks: readonly string[], methods: readonly string[], attacks: readonly AttackName[]): string {
  const series = ['clean', ...attacks.map((a) => ATTACK_LABEL[a])];
  const panels = tasks.filter((t) => records.some((r) => r.task === t)).map((task) => ({
    title: task,
    groups: methods.filter((m) => records.some((r) => r.task === task && r.method === m)).map((m) => {
      const rs = records.filter((r) => r.task === task && r.method === m);
      const cell = (f: (r: RobustRecord) => number | null | undefined): { v: number | null; e: number | null } => {
        const xs = rs.map(f).filter((x): x is number => typeof x === 'number');
        if (xs.length === 0) return { v: null, e: null };
        const s = spread(xs);
        return { v: 100 * s.mean, e: (100 * (s.max - s.min)) / 2 };
      };
      const cells = [cell((r) => r.attacks[attacks[0]!]?.cleanAccuracy), ...attacks.map((a) => cell((r) => r.attacks[a]?.accuracyUnderAttack))];
      return { name: m, values: cells.map((c) => c.v), errors: cells.map((c) => c.e) };
    }),
  }));
  return groupedBarChartSvg({ title: 'Accuracy under attack (clean: before attack)', yLabel: 'accuracy %', series, panels, yMin: 0, yMax: 100 });
}
