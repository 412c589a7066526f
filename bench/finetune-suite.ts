/**
 * `npm run bench:finetune -- [options]`: the text fine-tuning suite (issue 12's evidence). For every task × method ×
 * seed it fine-tunes from one pre-trained checkpoint and scores the test split, next to two sanity floors (the
 * majority class and a bag-of-words logistic regression, src/eval/bag-of-words.ts). Per task it reports accuracy and
 * macro-F1 as the mean ± half the range (and min–max) over seeds, seconds per run and training examples/s, and writes
 * summary.md and results.json under --out.
 *
 * Every method of a (task, seed) sees the same data: the built-in task's split from --data-seed (the test split is
 * the same for every seed and every method, and is never used to choose anything), and, with --max-train N, a
 * per-class subset of the training split drawn with the run's seed (N examples in all, in proportion to the classes,
 * at least one per class). The examples go to `finetune` as JSONL files, with the built-in task's templates and
 * verbalizer for mvp, so the fine-tuning recipe is `cloze finetune`'s defaults except for --epochs.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { latestCheckpoint } from '../src/checkpoint/checkpoint.js';
import { perClassSubset, writeLabelledJsonl } from '../src/data/labelled.js';
import { fmtSpread, spread } from '../src/report/markdown.js';
import { bagOfWordsBaseline, majorityBaseline, type BaselineResult } from '../src/eval/bag-of-words.js';
import { setNumThreads } from '../src/runtime.js';
import { BUILTIN_TASKS, loadTaskData, type BuiltinTaskName } from '../src/tasks/finetune/datasets.js';
import { labelIds } from '../src/tasks/finetune/data.js';
import { finetune } from '../src/tasks/run-finetune.js';
import { parseOrExit, printHeader, sourceState } from './lib/header.js';
import { choiceList } from './lib/args.js';

const TASKS = Object.keys(BUILTIN_TASKS) as BuiltinTaskName[];
const METHODS = ['majority', 'bow-lr', 'mlp-ft', 'mvp'] as const;
type MethodName = (typeof METHODS)[number];
/** Fine-tuning's batch size (`cloze finetune`'s default). */
const BATCH = 32;

const USAGE = `usage: npm run bench:finetune -- [--tasks ${TASKS.join(',')}] [--methods ${METHODS.join(',')}] [--seeds 0,1,2]
                              [--epochs 3] [--init-from runs/bert-mini] [--max-train N] [--data-seed 0]
                              [--threads N] [--out bench/results/finetune]
  The majority class and bow-lr are cheap and always reported; --methods picks the fine-tuning methods among them.
  --max-train 0 (the default) trains on the whole training split.`;

interface Args {
  tasks: BuiltinTaskName[];
  methods: MethodName[];
  seeds: number[];
  epochs: number;
  initFrom: string;
  maxTrain: number;
  dataSeed: number;
  threads: number;
  out: string;
}

function int(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`Expected an integer ≥ ${min} for ${name} but received ${v ?? 'nothing'}\n${USAGE}`);
  return n;
}


function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    tasks: [...TASKS], methods: [...METHODS], seeds: [0, 1, 2], epochs: 3,
    initFrom: existsSync(join('runs', 'bert-mini')) ? join('runs', 'bert-mini') : join('runs', 'bert-tiny'),
    maxTrain: 0, dataSeed: 0, threads: availableParallelism(), out: join('bench', 'results', 'finetune'),
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--tasks': a.tasks = choiceList(k, v, TASKS, USAGE); i++; break;
      case '--methods': a.methods = choiceList(k, v, METHODS, USAGE); i++; break;
      case '--seeds': a.seeds = [...new Set((v ?? '').split(',').map((s) => int(k, s, 0)))]; i++; break;
      case '--epochs': a.epochs = int(k, v, 1); i++; break;
      case '--init-from': if (!v) throw new Error(`Expected a directory for ${k}\n${USAGE}`); a.initFrom = v; i++; break;
      case '--max-train': a.maxTrain = int(k, v, 0); i++; break;
      case '--data-seed': a.dataSeed = int(k, v, 0); i++; break;
      case '--threads': a.threads = int(k, v, 1); i++; break;
      case '--out': if (!v) throw new Error(`Expected a directory for ${k}\n${USAGE}`); a.out = v; i++; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`Expected a known option but received ${k}\n${USAGE}`);
    }
  }
  // The floors are always measured; keep the report's order.
  a.methods = METHODS.filter((m) => m === 'majority' || m === 'bow-lr' || a.methods.includes(m));
  return a;
}

interface RunRecord {
  task: BuiltinTaskName;
  method: MethodName;
  seed: number;
  trainExamples: number;
  testExamples: number;
  accuracy: number;
  macroF1: number;
  /** Wall seconds of the run (data encoding, training, every evaluation). */
  seconds: number;
  /** Training examples per second, evaluation time excluded (fine-tuning only). */
  examplesPerSec: number | null;
  trainAccuracy?: number;
  features?: number;
  /** Test accuracy after each epoch (fine-tuning only). */
  epochAccuracy?: number[];
}

/** Fine-tunes one method from `init` on the JSONL files; returns its final test scores and its training rate. */
async function fineTuneRun(a: Args, task: BuiltinTaskName, method: 'mlp-ft' | 'mvp', seed: number, init: string, files: { train: string; test: string; verbalizer: string }, trainN: number, runDir: string): Promise<Omit<RunRecord, 'task' | 'method' | 'seed' | 'trainExamples' | 'testExamples'>> {
  const t = BUILTIN_TASKS[task];
  let first = NaN;
  let last = NaN;
  let lastStep = 0;
  const evals: Array<{ step: number; secs: number }> = [];
  const epochAccuracy: number[] = [];
  const t0 = performance.now();
  const r = await finetune({
    taskData: files.train, testData: files.test, method, seed, epochs: a.epochs, batchSize: BATCH, initFrom: init, out: runDir, threads: a.threads,
    keepLast: 1, saveEvery: 1_000_000, overwrite: true, // a suite re-run redoes each run from scratch
    ...(method === 'mvp' ? { template: [...t.templates], verbalizer: files.verbalizer } : {}),
  }, {
    output: null,
    onStep: (s) => {
      last = performance.now();
      if (s.step === 1) first = last;
      lastStep = s.step;
    },
    onEval: (e) => {
      // The loop evaluates right after a step's onStep, so this gap is the evaluation.
      evals.push({ step: lastStep, secs: (performance.now() - last) / 1000 });
      epochAccuracy.push(e.accuracy);
      process.stdout.write(`    ${method} epoch ${e.epoch}: accuracy ${(100 * e.accuracy).toFixed(2)}%  macro-F1 ${(100 * e.macroF1).toFixed(2)}%\n`);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.eval === null) throw new Error(`${task} ${method} seed ${seed}: no final evaluation`);
  // Steps 2..N: the first step's one-off costs are left out, and so are the evaluations between steps. Every epoch
  // covers the training examples once, so steps 2..N train on epochs × N less the first batch.
  const examplesTimed = a.epochs * trainN - Math.min(BATCH, trainN);
  const timedSecs = (last - first) / 1000 - evals.filter((e) => e.step < lastStep).reduce((s, e) => s + e.secs, 0);
  return {
    accuracy: r.eval.accuracy, macroF1: r.eval.macroF1, seconds,
    examplesPerSec: timedSecs > 0 && lastStep > 1 ? examplesTimed / timedSecs : null,
    epochAccuracy: epochAccuracy.slice(0, a.epochs),
  };
}

function summary(a: Args, records: RunRecord[], init: string, header: string): string {
  const lines: string[] = [header, ''];
  lines.push(`Accuracy and macro-F1 on the test split, in %: the mean ± half the range (min–max) over seeds ${a.seeds.join(', ')}. ` +
    `Seconds: wall time of one run (for fine-tuning: encoding, ${a.epochs} epoch(s) of training and an evaluation after each); ` +
    `examples/s: fine-tuning's training throughput, evaluations excluded. Fine-tuned from ${init}.`, '');
  for (const task of a.tasks) {
    const rows = records.filter((r) => r.task === task);
    if (rows.length === 0) continue;
    const tr = rows[0]!;
    lines.push(`### ${task} (train ${tr.trainExamples.toLocaleString('en-US')}${a.maxTrain > 0 ? ` of the split, --max-train ${a.maxTrain}` : ''}, test ${tr.testExamples.toLocaleString('en-US')})`, '');
    lines.push('| method | accuracy % | macro-F1 % | seconds / run | train examples/s |', '| --- | --- | --- | --- | --- |');
    for (const m of a.methods) {
      const rs = rows.filter((r) => r.method === m);
      if (rs.length === 0) continue;
      const eps = rs.map((r) => r.examplesPerSec).filter((x): x is number => x !== null);
      lines.push(`| ${m} | ${fmtSpread(spread(rs.map((r) => r.accuracy)))} | ${fmtSpread(spread(rs.map((r) => r.macroF1)))} | ${spread(rs.map((r) => r.seconds)).mean.toFixed(1)} | ${eps.length ? spread(eps).mean.toFixed(1) : '–'} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  setNumThreads(a.threads);
  printHeader('bench:finetune', `threads ${a.threads}`);
  const init = latestCheckpoint(a.initFrom) ?? a.initFrom;
  if (!existsSync(join(init, 'model.safetensors'))) throw new Error(`Expected a pre-trained run or checkpoint for --init-from but received ${a.initFrom} (no model.safetensors)`);
  const command = `npm run bench:finetune -- ${process.argv.slice(2).join(' ')}`.trim();
  const started = new Date();
  const header = [
    `# bench:finetune`, '',
    `- command: \`${command}\``,
    `- date: ${started.toISOString()}`,
    `- cpu: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; ${a.threads} thread(s)`,
    `- source: ${sourceState()}`,
    `- init: ${init}; tasks ${a.tasks.join(', ')}; methods ${a.methods.join(', ')}; seeds ${a.seeds.join(', ')}; epochs ${a.epochs}; ` +
      `max-train ${a.maxTrain || 'all'}; data split seed ${a.dataSeed}`,
  ].join('\n');
  mkdirSync(a.out, { recursive: true });
  const records: RunRecord[] = [];
  const save = (): void => {
    writeFileSync(join(a.out, 'results.json'), JSON.stringify({ command, date: started.toISOString(), args: a, init, records }, null, 2) + '\n');
    writeFileSync(join(a.out, 'summary.md'), summary(a, records, init, header) + '\n');
  };
  for (const task of a.tasks) {
    const dataDir = join(a.out, 'data', task);
    mkdirSync(dataDir, { recursive: true });
    const data = loadTaskData({ task, cacheDir: dataDir, seed: a.dataSeed });
    const testLabels = labelIds(data.test, data.labels, 'test');
    const testFile = join(dataDir, 'test.jsonl');
    writeLabelledJsonl(testFile, data.test);
    const verbalizerFile = join(dataDir, 'verbalizer.json');
    writeFileSync(verbalizerFile, JSON.stringify(BUILTIN_TASKS[task].verbalizer) + '\n');
    for (const seed of a.seeds) {
      const train = perClassSubset(data.train, a.maxTrain, seed);
      const trainLabels = labelIds(train, data.labels, 'train');
      const trainFile = join(dataDir, `train.seed${seed}.jsonl`);
      writeLabelledJsonl(trainFile, train);
      console.log(`${task} seed ${seed}: train ${train.length}, test ${data.test.length}, ${data.labels.length} classes`);
      const base = { task, seed, trainExamples: train.length, testExamples: data.test.length };
      for (const method of a.methods) {
        let rec: RunRecord;
        if (method === 'majority' || method === 'bow-lr') {
          const r: BaselineResult = method === 'majority'
            ? majorityBaseline(trainLabels, testLabels, data.labels.length)
            : bagOfWordsBaseline(train, trainLabels, data.test, testLabels, data.labels.length, { seed });
          rec = { ...base, method, accuracy: r.accuracy, macroF1: r.macroF1, seconds: r.seconds, examplesPerSec: null, trainAccuracy: r.trainAccuracy, ...(r.features ? { features: r.features } : {}) };
        } else {
          const runDir = join(a.out, 'runs', `${task}-${method}-seed${seed}`);
          const r = await fineTuneRun(a, task, method, seed, init, { train: trainFile, test: testFile, verbalizer: verbalizerFile }, train.length, runDir);
          rec = { ...base, method, ...r };
        }
        records.push(rec);
        console.log(`  ${method.padEnd(8)} accuracy ${(100 * rec.accuracy).toFixed(2)}%  macro-F1 ${(100 * rec.macroF1).toFixed(2)}%  ${rec.seconds.toFixed(1)} s` +
          (rec.examplesPerSec !== null ? `  ${rec.examplesPerSec.toFixed(1)} ex/s` : ''));
        save();
      }
    }
  }
  save();
  console.log(`\n${summary(a, records, init, header)}`);
  console.log(`wrote ${join(a.out, 'summary.md')} and ${join(a.out, 'results.json')}`);
}

await main();
