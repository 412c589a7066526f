/**
 * `cloze bench mim` (npm run bench:mim): the MIM comparison suite. Every
 * method pre-trains under one budget (preset, epochs, batch, images, seed),
 * is linear-probed at the same epochs, and the suite writes a markdown table
 * (final top-1, RAUC, epochs to reach SimMIM's final top-1) and an SVG plot of
 * probe top-1 against epochs. The baseline without pre-training is the probe
 * of the shared random initialisation (every method's encoder starts from the
 * same weights, so it is also each curve's epoch-0 point). SparK (opt-in: `--methods … spark`)
 * has its own untrained convnet as epoch 0, and a from-scratch fine-tuning row.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scoreEncoder } from '../eval/encoder-score.js';
import type { ProbeResult } from '../eval/probe.js';
import { setNumThreads } from '../runtime.js';
import { evaluateImageCheckpoint } from '../tasks/evaluate.js';
import { pretrain, resolveRun } from '../tasks/pretrain.js';
import { TASKS } from '../tasks/registry.js';
import { rauc, summarize, type Curve } from '../report/curves.js';
import { lineChartSvg } from '../report/svg-plot.js';
import { markdownTable } from '../report/markdown.js';

export interface SuiteMethod {
  name: string;
  settings: Record<string, unknown>;
  /** The method it is compared with besides SimMIM (MAE for the MAE variants). */
  base: string;
  /** Off unless named in `methods` (SparK: another model family, and slower on a CPU). */
  optIn?: boolean;
}

export const SUITE_METHODS: SuiteMethod[] = [
  { name: 'simmim', settings: { method: 'simmim' }, base: 'simmim' },
  { name: 'simmim+mto', settings: { method: 'simmim', mto: true }, base: 'simmim' },
  { name: 'mae', settings: { method: 'mae' }, base: 'mae' },
  { name: 'mae+mto', settings: { method: 'mae', mto: true }, base: 'mae' },
  { name: 'mae+sbam', settings: { method: 'mae', imageMasking: 'sbam' }, base: 'mae' },
  { name: 'mae+hpm', settings: { method: 'mae', imageMasking: 'hpm' }, base: 'mae' },
  { name: 'spark', settings: { task: 'spark', preset: 'spark-resnet-mini' }, base: 'spark', optIn: true },
];

export interface SuiteOptions {
  out: string;
  preset: string;
  epochs: number;
  batchSize: number;
  trainImages: number;
  probeEvery: number;
  probeImages: number;
  probeEpochs: number;
  /** After pre-training, fine-tune each encoder (and the untrained one) for this many epochs; 0: skip. */
  finetuneEpochs: number;
  finetuneImages: number;
  seed: number;
  threads: number;
  /** Multiplies epochs and training images (capped by the data), for a GPU or a long run. */
  scale: number;
  methods?: string[];
  data?: string | null;
  log?: (line: string) => void;
}

export const SUITE_DEFAULTS: Omit<SuiteOptions, 'out'> = {
  preset: 'vit-micro-fmnist', epochs: 16, batchSize: 128, trainImages: 20000, probeEvery: 2, probeImages: 5000, probeEpochs: 100, finetuneEpochs: 4, finetuneImages: 5000, seed: 0, threads: 0, scale: 1,
};

export interface SuiteResult {
  curves: Record<string, Curve>;
  baselineAccuracy: number;
  /** Test top-1 after fine-tuning, by method ('no pre-training' included); empty when finetuneEpochs is 0. */
  finetune: Record<string, number>;
  seconds: Record<string, number>;
  table: string;
  files: string[];
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

export async function runMimSuite(o: SuiteOptions): Promise<SuiteResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  if (o.threads > 0) setNumThreads(o.threads);
  mkdirSync(o.out, { recursive: true });
  const epochs = Math.max(1, Math.round(o.epochs * o.scale));
  const common = {
    task: 'mim', preset: o.preset, epochs, batchSize: o.batchSize, trainImages: Math.round(o.trainImages * o.scale),
    probeEvery: o.probeEvery, probeImages: o.probeImages, probeEpochs: o.probeEpochs, seed: o.seed, saveEvery: 1_000_000, keepLast: 1,
    ...(o.data ? { data: o.data } : {}),
  };
  const methods = o.methods ? SUITE_METHODS.filter((m) => o.methods!.includes(m.name)) : SUITE_METHODS.filter((m) => !m.optIn);

  // The untrained encoder: the no-pre-training baseline and every curve's epoch 0.
  const enc = await TASKS.mim.openEncoder!(resolveRun({ ...common, method: 'mae' }), null);
  const t0 = performance.now();
  const tuned: Record<string, number> = {};
  let base: ReturnType<typeof scoreEncoder>;
  try {
    base = scoreEncoder(enc, { probeEpochs: o.probeEpochs, seed: o.seed });
    log(`no pre-training: probe top-1 ${pct(base.accuracy)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    if (o.finetuneEpochs > 0) {
      // The same pool as the pre-trained encoders' fine-tuning (cloze eval): the full training set.
      tuned['no pre-training'] = scoreEncoder(enc, { probeEpochs: o.probeEpochs, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, seed: o.seed }).accuracy;
      log(`no pre-training: fine-tuned top-1 ${pct(tuned['no pre-training']!)}`);
    }
  } finally {
    enc.dispose();
  }

  const curves: Record<string, Curve> = {};
  const seconds: Record<string, number> = {};
  // SparK is another model: its own untrained convnet is its epoch 0 and its from-scratch baseline.
  const startOf: Record<string, number> = {};
  if (methods.some((m) => m.settings.task === 'spark')) {
    const senc = await TASKS.spark.openEncoder!(resolveRun({ ...common, task: 'spark', preset: 'spark-resnet-mini' }), null);
    try {
      startOf.spark = scoreEncoder(senc, { probeEpochs: o.probeEpochs, seed: o.seed }).accuracy;
      log(`spark, no pre-training: probe top-1 ${pct(startOf.spark)}`);
      if (o.finetuneEpochs > 0) {
        tuned['spark from scratch'] = scoreEncoder(senc, { probeEpochs: o.probeEpochs, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, seed: o.seed }).accuracy;
        log(`spark from scratch: fine-tuned top-1 ${pct(tuned['spark from scratch']!)}`);
      }
    } finally {
      senc.dispose();
    }
  }
  for (const m of methods) {
    const probes: ProbeResult[] = [];
    const t = performance.now();
    log(`${m.name}: pre-training ${epochs} epochs…`);
    const out = join(o.out, m.name.replace('+', '-'));
    // A suite re-run redoes each method's run from scratch.
    await pretrain({ ...common, ...m.settings, out, overwrite: true }, {
      output: null,
      onEval: (e) => {
        const p = e as ProbeResult;
        probes.push(p);
        log(`  ${m.name} epoch ${p.epoch}: probe top-1 ${pct(p.accuracy)}`);
      },
    });
    seconds[m.name] = (performance.now() - t) / 1000;
    curves[m.name] = { epochs: [0, ...probes.map((p) => p.epoch)], accuracy: [startOf[m.name] ?? base.accuracy, ...probes.map((p) => p.accuracy)] };
    log(`${m.name}: pre-trained in ${seconds[m.name]!.toFixed(0)} s`);
    if (o.finetuneEpochs > 0) {
      const r = await evaluateImageCheckpoint({ checkpoint: out, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, ...(o.data ? { data: o.data } : {}) });
      tuned[m.name] = r.accuracy;
      log(`${m.name}: fine-tuned top-1 ${pct(r.accuracy)}`);
    }
  }

  const ref = curves.simmim;
  // Final, best, RAUC and epochs-to-reach against SimMIM come from the report's summary.
  const vsSimmim = ref ? new Map(summarize(curves, 'simmim').methods.map((r) => [r.method, r])) : null;
  const rows = methods.map((m) => {
    const c = curves[m.name]!;
    const own = curves[m.base];
    const r = vsSimmim?.get(m.name);
    const reach = !r ? '–' : r.epochsToReach === null ? 'not reached'
      : `${r.epochsToReach.toFixed(2)}${r.epochsShare !== null ? ` (${(100 * r.epochsShare).toFixed(0)}%)` : ' (SimMIM reached it at epoch 0)'}`;
    return [
      m.name,
      pct(c.accuracy[c.accuracy.length - 1]!),
      pct(Math.max(...c.accuracy)),
      r ? r.rauc.toFixed(3) : '–',
      own && m.base !== m.name ? `${rauc(c, own).toFixed(3)} vs ${m.base}` : '–',
      reach,
      tuned[m.name] === undefined ? '–' : pct(tuned[m.name]!),
      `${seconds[m.name]!.toFixed(0)} s`,
    ];
  });
  // The flat curve of the untrained encoder, on SimMIM's grid.
  const flat = ref ? rauc({ epochs: ref.epochs, accuracy: ref.epochs.map(() => base.accuracy) }, ref).toFixed(3) : '–';
  rows.push(['no pre-training', pct(base.accuracy), pct(base.accuracy), flat, '–', '–', tuned['no pre-training'] === undefined ? '–' : pct(tuned['no pre-training']!), '–']);
  if (startOf.spark !== undefined) {
    rows.push(['spark from scratch', pct(startOf.spark), pct(startOf.spark), '–', '–', '–', tuned['spark from scratch'] === undefined ? '–' : pct(tuned['spark from scratch']!), '–']);
  }
  const table = markdownTable(
    ['method', 'final probe top-1', 'best probe', 'RAUC vs SimMIM', 'RAUC vs own base', 'epochs to SimMIM\'s final probe (share of SimMIM\'s)', 'fine-tuned top-1', 'pre-training time'],
    rows,
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
  const svg = lineChartSvg({
    title: `Linear probe vs pre-training epochs (${o.preset}, ${common.trainImages} images)`,
    xLabel: 'pre-training epoch',
    yLabel: 'probe top-1',
    series: [
      ...methods.map((m) => ({ name: m.name, x: curves[m.name]!.epochs, y: curves[m.name]!.accuracy })),
      { name: 'no pre-training', x: [0, epochs], y: [base.accuracy, base.accuracy] },
    ],
  });
  const files = [join(o.out, 'summary.md'), join(o.out, 'probe-accuracy.svg'), join(o.out, 'curves.json')];
  writeFileSync(files[0]!, `${table}\n`);
  writeFileSync(files[1]!, svg);
  writeFileSync(files[2]!, `${JSON.stringify({ options: { ...o, log: undefined }, baselineAccuracy: base.accuracy, curves, finetune: tuned, seconds }, null, 2)}\n`);
  return { curves, baselineAccuracy: base.accuracy, finetune: tuned, seconds, table, files };
}
