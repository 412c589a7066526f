/**
 * `cloze bench mim` (npm run bench:mim): the MIM comparison suite. Every method pre-trains under one
 * budget (preset, epochs, batch, images) once per seed, keeping a checkpoint at every evaluation epoch.
 * Each point (epoch 0 is the untrained encoder of that seed, shared by every ViT method) is
 * - linear-probed: one classifier scored on a validation split held out of the training images and on
 *   the test set; a curve's "best" is the point chosen on validation, reported with its test figure;
 * - fine-tuned, for the methods named in `finetuneCurves` (default the four MTO-related ones); the
 *   others are fine-tuned at their final epoch only.
 * Fine-tuning's base lr is chosen per method (and for the untrained encoder) on validation: the first
 * seed's final point is fine-tuned at every rate of `finetuneBlrs`, and the rate with the best
 * validation top-1 is used for every other point and seed of that method; a curve's epoch 0 is the untrained
 * encoder, fine-tuned at the rate chosen for it (the "no pre-training" row) (MAE's recipe fixes no rate
 * for our sizes, and one rate chosen on the untrained ViT left MAE's fine-tuning below its probe).
 * The validation images are used by neither the probe's nor the fine-tuning's training.
 * MTO's claim is judged on fine-tuning: per method and its base (SimMIM+MTO vs SimMIM, MAE+MTO vs MAE),
 * RAUC paired by seed and the epochs to reach the base's final fine-tuned accuracy, with their spread.
 * Finished runs and scored points are kept, so an interrupted suite reruns only what it lacks.
 * SparK (opt-in: `--methods … spark`) has its own untrained convnet as epoch 0.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints, loadCheckpoint } from '../checkpoint/checkpoint.js';
import { holdOut } from '../data/images/dataset.js';
import { limit, openImageData } from '../data/images/open.js';
import { scoreEncoder, type EncoderUnderTest } from '../eval/encoder-score.js';
import { FINETUNE_EPOCHS, FINETUNE_RECIPE } from '../eval/probe.js';
import { validatedProbe } from '../eval/validated-probe.js';
import { ClozeError } from '../errors.js';
import { setNumThreads } from '../runtime.js';
import { pretrain, resolveRun } from '../tasks/pretrain.js';
import { modelConfigFor } from '../tasks/mim/data.js';
import { TASKS } from '../tasks/registry.js';
import {
  compareOverSeeds, fmtReach, fmtSpread, meanCurve, rauc, selectOnValidation, spread, type Curve, type SeedComparison, type ValidatedPoint,
} from '../report/curves.js';
import { lineChartSvg, type Series } from '../report/svg-plot.js';
import { markdownTable } from '../report/markdown.js';

export interface SuiteMethod {
  name: string;
  settings: Record<string, unknown>;
  /** The method it is compared with (itself for a base). */
  base: string;
  /** Off unless named in `methods` (SparK: another model family, and slower on a CPU). */
  optIn?: boolean;
}

export const SUITE_METHODS: SuiteMethod[] = [
  { name: 'simmim', settings: { method: 'simmim' }, base: 'simmim' },
  { name: 'simmim+mto', settings: { method: 'simmim', mto: true }, base: 'simmim' },
  { name: 'mae', settings: { method: 'mae' }, base: 'mae' },
  { name: 'mae+mto', settings: { method: 'mae', mto: true }, base: 'mae' },
  // SBAM and HPM are opt-in since issue 17: the default (3 seeds, fine-tuning curves) must fit an hour on 2 cores.
  { name: 'mae+sbam', settings: { method: 'mae', imageMasking: 'sbam' }, base: 'mae', optIn: true },
  { name: 'mae+hpm', settings: { method: 'mae', imageMasking: 'hpm' }, base: 'mae', optIn: true },
  { name: 'spark', settings: { task: 'spark', preset: 'spark-resnet-mini' }, base: 'spark', optIn: true },
];

/** The methods whose fine-tuning is scored at every evaluation point by default: MTO and its two bases. */
export const FINETUNE_CURVE_METHODS = ['simmim', 'simmim+mto', 'mae', 'mae+mto'];

export interface SuiteOptions {
  out: string;
  preset: string;
  epochs: number;
  batchSize: number;
  trainImages: number;
  /** Evaluation points: every N pre-training epochs (and the last). */
  probeEvery: number;
  probeImages: number;
  probeEpochs: number;
  /** Epochs of each fine-tuning (at every point of the finetuneCurves methods, else at the end); 0: no fine-tuning. */
  finetuneEpochs: number;
  finetuneImages: number;
  /** Fine-tuning base lrs (× batch / 256) to choose from on validation, per method (default SUITE_DEFAULTS.finetuneBlrs). */
  finetuneBlrs?: number[];
  /** Methods fine-tuned at every evaluation point (default FINETUNE_CURVE_METHODS); the others only at the end. */
  finetuneCurves?: string[];
  /** Validation images held out of the training set (class-stratified, seeded), for choosing a curve's best point. */
  valImages: number;
  /** Each seed drives pre-training, the validation split, the probe and the fine-tuning. */
  seeds: number[];
  threads: number;
  /** Multiplies epochs and training images (capped by the data), for a GPU or a long run. */
  scale: number;
  methods?: string[];
  data?: string | null;
  log?: (line: string) => void;
}

/**
 * One seed by default (`seeds: [0, 1, 2]` for the spread): 4 pre-trainings, 9 probes and 14 fine-tunings of 20 epochs
 * on 5,000 images (10 for the rate selection, 4 at epoch 4). The fine-tunings dominate, and 10 epochs were not enough:
 * at 10 every encoder was underfitted and MAE's stayed below its probe (bench/RESULTS.md).
 */
export const SUITE_DEFAULTS: Omit<SuiteOptions, 'out'> = {
  preset: 'vit-micro-fmnist', epochs: 8, batchSize: 128, trainImages: 10000, probeEvery: 4, probeImages: 5000, probeEpochs: 100,
  finetuneEpochs: FINETUNE_EPOCHS, finetuneImages: 5000, valImages: 1000, seeds: [0], threads: 0, scale: 1,
  // 1e-3 and 4e-3 lost to 1.6e-2 for every encoder at 10 epochs (bench/RESULTS.md); 3.2e-2 won for MAE at 20.
  finetuneBlrs: [1.6e-2, 3.2e-2],
};

/** One evaluation point of one run. */
export interface PointScore {
  epoch: number;
  probe: { validation: number; test: number };
  /** Fine-tuned test top-1 at the method's chosen base lr; absent where the point is not fine-tuned. */
  finetune?: number;
  /** That fine-tuning's base lr and validation top-1. */
  finetuneBlr?: number;
  finetuneValidation?: number;
  /** Every fine-tuning of this point (the selection point has one per candidate rate). */
  tried?: FinetuneTry[];
}

/** One fine-tuning of a point at one base lr: top-1 on the validation split and on the test set. */
export interface FinetuneTry {
  blr: number;
  validation: number;
  test: number;
}

/** The candidate with the best validation top-1 (the first in `blrs` order on ties). */
export function chooseBlr(tried: readonly FinetuneTry[], blrs: readonly number[]): FinetuneTry {
  let best: FinetuneTry | null = null;
  for (const b of blrs) {
    const t = tried.find((x) => x.blr === b);
    if (!t) throw new ClozeError('E_VALUE', `Expected a fine-tuning at blr ${b} to choose from but received none`);
    if (best === null || t.validation > best.validation) best = t;
  }
  if (best === null) throw new ClozeError('E_VALUE', 'Expected at least one base lr for finetuneBlrs but received none');
  return best;
}

export interface SuiteResult {
  seeds: number[];
  /** Per method, one array of points per seed (in `seeds` order); epoch 0 is the untrained encoder. */
  points: Record<string, PointScore[][]>;
  /** Linear-probe test curves, per method and seed. */
  probe: Record<string, Curve[]>;
  /** Fine-tuning test curves, per method and seed (only [0, final] for methods without a fine-tuning curve). */
  finetune: Record<string, Curve[]>;
  /** Per method and seed: the point chosen on validation, with its test figure. */
  selected: Record<string, ValidatedPoint[]>;
  /** Fine-tuning comparisons of each method with its base, paired by seed. */
  comparisons: SeedComparison[];
  seconds: Record<string, number[]>;
  table: string;
  files: string[];
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const key = (name: string): string => name.replace(/\+/g, '-');

interface Cache {
  settings: string;
  points: Record<string, PointScore>;
}

function readCache(path: string, settings: string): Record<string, PointScore> {
  if (!existsSync(path)) return {};
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as Cache;
    return c.settings === settings ? c.points : {};
  } catch {
    return {};
  }
}

export async function runMimSuite(o: SuiteOptions): Promise<SuiteResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  if (!Array.isArray(o.seeds) || o.seeds.length === 0 || o.seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new ClozeError('E_VALUE', `Expected one or more integer seeds ≥ 0 for seeds but received ${JSON.stringify(o.seeds)}`);
  }
  if (new Set(o.seeds).size !== o.seeds.length) throw new ClozeError('E_VALUE', `Expected distinct seeds for seeds but received ${JSON.stringify(o.seeds)}`);
  if (!Number.isInteger(o.valImages) || o.valImages < 1) throw new ClozeError('E_VALUE', `Expected an integer ≥ 1 for valImages but received ${o.valImages}`);
  if (!Number.isInteger(o.probeEvery) || o.probeEvery < 1) throw new ClozeError('E_VALUE', `Expected an integer ≥ 1 for probeEvery but received ${o.probeEvery}`);
  if (o.threads > 0) setNumThreads(o.threads);
  mkdirSync(o.out, { recursive: true });
  const epochs = Math.max(1, Math.round(o.epochs * o.scale));
  const trainImages = Math.round(o.trainImages * o.scale);
  const common = {
    task: 'mim', preset: o.preset, epochs, batchSize: o.batchSize, trainImages,
    // The runs' own probe (on the test set) is left to the end and kept cheap: the suite scores the checkpoints itself.
    probeEvery: 0, probeImages: 64, probeEpochs: 1, ...(o.data ? { data: o.data } : {}),
  };
  const methods = o.methods ? SUITE_METHODS.filter((m) => o.methods!.includes(m.name)) : SUITE_METHODS.filter((m) => !m.optIn);
  const unknown = (o.methods ?? []).filter((n) => !SUITE_METHODS.some((m) => m.name === n));
  if (unknown.length > 0) throw new ClozeError('E_VALUE', `Expected methods among ${SUITE_METHODS.map((m) => m.name).join(', ')} for methods but received ${unknown.join(', ')}`);
  const curveSet = new Set(o.finetuneCurves ?? FINETUNE_CURVE_METHODS);
  const fineTunes = o.finetuneEpochs > 0;
  const blrs = o.finetuneBlrs ?? [...SUITE_DEFAULTS.finetuneBlrs!];
  if (!Array.isArray(blrs) || blrs.length === 0 || blrs.some((b) => !(Number.isFinite(b) && b > 0))) {
    throw new ClozeError('E_VALUE', `Expected one or more positive base learning rates for finetuneBlrs but received ${JSON.stringify(blrs)}`);
  }
  if (new Set(blrs).size !== blrs.length) throw new ClozeError('E_VALUE', `Expected distinct base learning rates for finetuneBlrs but received ${JSON.stringify(blrs)}`);
  // What a cached point depends on besides its checkpoint: a change of any of these rescores (fine-tunings are kept per rate).
  // v 5: the ViT's global-pool fine-tuning features and its token initialisation changed (2026-12-04).
  const settings = JSON.stringify({ v: 5, recipe: { ...FINETUNE_RECIPE, blr: undefined }, valImages: o.valImages, probeImages: o.probeImages, probeEpochs: o.probeEpochs, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, data: o.data ?? null });

  /**
   * Scores one encoder (a checkpoint, or null: untrained): the probe on validation and test unless `have` has it,
   * then a fine-tuning at each base lr of `blrs` that `have` lacks (each from the checkpoint's own weights).
   */
  const scorePoint = async (run: Record<string, unknown>, ckDir: string | null, seed: number, epoch: number, blrs: readonly number[], have?: PointScore): Promise<PointScore> => {
    const cfg = resolveRun({ ...run, trainImages: 0, seed });
    const ck = ckDir ? loadCheckpoint(ckDir) : null;
    const point: PointScore = have ? { ...have, tried: [...(have.tried ?? [])] } : { epoch, probe: { validation: NaN, test: NaN }, tried: [] };
    const open = async <T>(f: (e: EncoderUnderTest, split: ReturnType<typeof holdOut>) => T): Promise<T> => {
      const e = await TASKS[cfg.task as keyof typeof TASKS].openEncoder!(cfg, ck);
      try {
        // The same split for every method of a seed; neither the probe nor the fine-tuning trains on it.
        return f(e, holdOut(e.train, Math.min(o.valImages, e.train.n - 1), seed + 3));
      } finally {
        e.dispose();
      }
    };
    try {
      if (!have) {
        await open((e, split) => {
          const probeTrain = limit(split.rest, o.probeImages, seed + 1);
          const p = validatedProbe(e.encoder, probeTrain, split.held, e.test, { epochs: o.probeEpochs, seed, norm: e.norm });
          point.probe = { validation: p.validation.accuracy, test: p.test.accuracy };
        });
      }
      for (const blr of blrs) {
        if (point.tried!.some((t) => t.blr === blr)) continue;
        // Fine-tuning changes the encoder in place: a fresh one per rate.
        const r = await open((e, split) => scoreEncoder({ ...e, train: split.rest }, {
          probeEpochs: o.probeEpochs, finetuneEpochs: o.finetuneEpochs, finetuneImages: o.finetuneImages, seed, finetune: { blr }, validation: split.held,
        }));
        point.tried!.push({ blr, validation: r.validationAccuracy!, test: r.accuracy });
      }
      return point;
    } finally {
      ck?.dispose();
    }
  };

  /**
   * A run's points, scoring only what its cache lacks. A target's `blrs` are the rates it is fine-tuned at (none: the
   * probe only); `use` is the rate whose fine-tuning the point reports (chosen on validation by the caller).
   */
  const scoreRun = async (name: string, run: Record<string, unknown>, cachePath: string, seed: number, targets: Array<{ epoch: number; dir: string | null; blrs: readonly number[] }>): Promise<PointScore[]> => {
    // A cached point stands for this run's settings and the suite's scoring settings only.
    const stamp = JSON.stringify({ settings, run: resolveRun({ ...run, seed }) });
    const cached = readCache(cachePath, stamp);
    const out: PointScore[] = [];
    for (const t of targets) {
      const have = cached[String(t.epoch)];
      if (have && t.blrs.every((b) => have.tried?.some((x) => x.blr === b))) {
        out.push(have);
        continue;
      }
      const t0 = performance.now();
      const p = await scorePoint(run, t.dir, seed, t.epoch, t.blrs, have);
      cached[String(t.epoch)] = p;
      writeFileSync(cachePath, `${JSON.stringify({ settings: stamp, points: cached } satisfies Cache, null, 2)}\n`);
      const fts = p.tried!.filter((x) => t.blrs.includes(x.blr)).map((x) => `fine-tuned at blr ${x.blr} ${pct(x.test)} (validation ${pct(x.validation)})`);
      log(`  ${name} seed ${seed} epoch ${t.epoch}: probe top-1 ${pct(p.probe.test)} (validation ${pct(p.probe.validation)})` +
        `${fts.length > 0 ? `, ${fts.join(', ')}` : ''} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      out.push(p);
    }
    return out;
  };

  /** The point as reported: its fine-tuning at `blr` (null: not fine-tuned). */
  const at = (p: PointScore, blr: number | null): PointScore => {
    const { finetune: _f, finetuneBlr: _b, finetuneValidation: _v, ...rest } = p;
    const t = blr === null ? undefined : p.tried?.find((x) => x.blr === blr);
    return t ? { ...rest, finetune: t.test, finetuneBlr: t.blr, finetuneValidation: t.validation } : rest;
  };
  /** Per method (and 'no pre-training', 'spark from scratch'): the base lr chosen on the first seed's final point. */
  const chosen: Record<string, FinetuneTry> = {};
  const firstSeed = o.seeds[0]!;
  /** The rates a final point of `name` is fine-tuned at on `seed`: every candidate on the first seed, else the chosen one. */
  const finalBlrs = (name: string, seed: number): number[] => (!fineTunes ? [] : seed === firstSeed ? blrs : [chosen[name]!.blr]);
  const choose = (name: string, p: PointScore, seed: number): void => {
    if (fineTunes && seed === firstSeed) {
      chosen[name] = chooseBlr(p.tried!, blrs);
      if (blrs.length > 1) log(`  ${name}: blr ${chosen[name]!.blr} chosen on validation (${blrs.map((b) => `${b}: ${pct(p.tried!.find((x) => x.blr === b)!.validation)}`).join(', ')})`);
    }
  };

  // Training images in the data (before trainImages), to place checkpoints at the evaluation epochs.
  const vit = modelConfigFor({ preset: o.preset, initFrom: null }, null);
  const fullTrain = (await openImageData(o.data ?? null, { size: vit.imageSize, channels: vit.channels })).train.n;
  const points: Record<string, PointScore[][]> = {};
  const seconds: Record<string, number[]> = {};
  const untrainedRun = { vit: { ...common, method: 'mae' }, spark: { ...common, task: 'spark', preset: 'spark-resnet-mini' } };
  for (const seed of o.seeds) {
    const dir = join(o.out, 'untrained');
    mkdirSync(dir, { recursive: true });
    // Every ViT method starts from the same seeded initialisation: its epoch 0. SparK has its own convnet.
    const start: Record<string, PointScore> = {};
    // The untrained encoders choose their own rate, like every method.
    const vit0 = (await scoreRun('no pre-training', untrainedRun.vit, join(dir, `vit-seed-${seed}.json`), seed, [{ epoch: 0, dir: null, blrs: finalBlrs('no pre-training', seed) }]))[0]!;
    choose('no pre-training', vit0, seed);
    start.vit = at(vit0, fineTunes ? chosen['no pre-training']!.blr : null);
    if (methods.some((m) => m.settings.task === 'spark')) {
      const spark0 = (await scoreRun('spark, no pre-training', untrainedRun.spark, join(dir, `spark-seed-${seed}.json`), seed, [{ epoch: 0, dir: null, blrs: finalBlrs('spark from scratch', seed) }]))[0]!;
      choose('spark from scratch', spark0, seed);
      start.spark = at(spark0, fineTunes ? chosen['spark from scratch']!.blr : null);
    }
    (points['no pre-training'] ??= []).push([start.vit]);
    if (start.spark) (points['spark from scratch'] ??= []).push([start.spark]);

    for (const m of methods) {
      const run = { ...common, ...m.settings, seed };
      const cfg = resolveRun(run);
      const runDir = join(o.out, key(m.name), `seed-${seed}`);
      // Checkpoints at every evaluation epoch: steps per epoch as the image batchers count them (whole batches).
      const perEpoch = Math.floor((trainImages > 0 && trainImages < fullTrain ? trainImages : fullTrain) / cfg.batchSize);
      if (perEpoch < 1) throw new ClozeError('E_VALUE', `Expected trainImages ≥ batchSize (${cfg.batchSize}) for the suite but received ${trainImages}`);
      const totalSteps = Math.ceil((epochs * perEpoch) / cfg.gradAccum);
      const every = Math.max(1, Math.round((o.probeEvery * perEpoch) / cfg.gradAccum));
      // A run directory left by other settings (another budget or preset) is redone, not resumed or reused.
      const stampPath = join(runDir, 'suite-run.json');
      // The resolved settings (a changed code default, e.g. a method's recipe, redoes the run) and the checkpoint spacing.
      // `code` 3: the ViT tokens' initialisation changed twice on 2026-12-04; runs pre-trained before are redone.
      const stamp = JSON.stringify({ run: cfg, every, code: 3 });
      const same = existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp;
      const have = same ? listCheckpoints(runDir) : [];
      const t = performance.now();
      if (!have.some((c) => c.step === totalSteps)) {
        log(`${m.name} seed ${seed}: pre-training ${epochs} epochs${have.length > 0 ? ` (resuming at step ${have.at(-1)!.step})` : ''}…`);
        if (have.length === 0) rmSync(runDir, { recursive: true, force: true });
        mkdirSync(runDir, { recursive: true });
        writeFileSync(stampPath, stamp);
        const r = await pretrain({ ...run, out: runDir, saveEvery: every, keepLast: Math.ceil(totalSteps / every) + 1, ...(have.length > 0 ? { resume: true } : { overwrite: true }) }, { output: null });
        if (r.step !== totalSteps) throw new ClozeError('E_VALUE', `Expected ${m.name} seed ${seed} to pre-train for ${totalSteps} steps but it stopped at step ${r.step} (${r.stopped}); see ${runDir}/metrics.jsonl`);
        // Pre-training time survives a rerun that reuses the run (a resumed run counts its last part only).
        writeFileSync(join(runDir, 'pretrain-seconds.txt'), `${(performance.now() - t) / 1000}\n`);
      }
      const secondsPath = join(runDir, 'pretrain-seconds.txt');
      (seconds[m.name] ??= []).push(existsSync(secondsPath) ? Number(readFileSync(secondsPath, 'utf8')) : (performance.now() - t) / 1000);
      const cks = listCheckpoints(runDir).filter((c) => c.step % every === 0 || c.step === totalSteps);
      const base = m.settings.task === 'spark' ? start.spark! : start.vit;
      const curve = curveSet.has(m.name);
      const targets = cks.map((c) => ({ epoch: Math.round(((c.step * cfg.gradAccum) / perEpoch) * 1000) / 1000, dir: c.dir, final: c.step === totalSteps }));
      const cachePath = join(runDir, 'points.json');
      // The final point first: on the first seed it chooses the rate that the earlier points then use.
      const final = targets.filter((x) => x.final);
      if (final.length !== 1) throw new ClozeError('E_VALUE', `Expected one checkpoint at step ${totalSteps} in ${runDir} but received ${final.length}`);
      const last = (await scoreRun(m.name, run, cachePath, seed, [{ ...final[0]!, blrs: finalBlrs(m.name, seed) }]))[0]!;
      choose(m.name, last, seed);
      const use = fineTunes ? chosen[m.name]!.blr : null;
      const earlier = await scoreRun(m.name, run, cachePath, seed, targets.filter((x) => !x.final).map((x) => ({ ...x, blrs: curve && use !== null ? [use] : [] })));
      // Earlier points report a fine-tuning only for curve methods (a cache may hold others from another setting).
      (points[m.name] ??= []).push([base, ...earlier.map((p) => at(p, curve ? use : null)), at(last, use)]);
    }
  }

  return report(o, methods, curveSet, epochs, trainImages, points, seconds, fineTunes, blrs, selection(points, blrs));
}


/** Per row name: the first seed's fine-tunings of its final point at every candidate rate (the selection). */
function selection(points: Record<string, PointScore[][]>, blrs: readonly number[]): Record<string, FinetuneTry[]> {
  // Only this run's candidates (a cache keeps every rate it ever fine-tuned at).
  return Object.fromEntries(Object.entries(points).map(([name, runs]) => [name, (runs[0]!.at(-1)!.tried ?? []).filter((t) => blrs.includes(t.blr))]));
}

function report(
  o: SuiteOptions, methods: SuiteMethod[], curveSet: Set<string>, epochs: number, trainImages: number,
  points: Record<string, PointScore[][]>, seconds: Record<string, number[]>, fineTunes: boolean,
  blrs: readonly number[], tried: Record<string, FinetuneTry[]>,
): SuiteResult {
  const probe: Record<string, Curve[]> = {};
  const finetune: Record<string, Curve[]> = {};
  const selected: Record<string, ValidatedPoint[]> = {};
  for (const m of methods) {
    const runs = points[m.name]!;
    probe[m.name] = runs.map((ps) => ({ epochs: ps.map((p) => p.epoch), accuracy: ps.map((p) => p.probe.test) }));
    selected[m.name] = runs.map((ps) => selectOnValidation(ps.map((p) => ({ epoch: p.epoch, validation: p.probe.validation, test: p.probe.test }))));
    if (fineTunes) {
      finetune[m.name] = runs.map((ps) => {
        const f = ps.filter((p) => p.finetune !== undefined);
        return { epochs: f.map((p) => p.epoch), accuracy: f.map((p) => p.finetune!) };
      });
    }
  }
  const seeds = o.seeds;
  const byName = new Map(methods.map((m) => [m.name, m]));
  const comparisons = fineTunes
    ? methods.filter((m) => m.base !== m.name && curveSet.has(m.name) && curveSet.has(m.base) && byName.has(m.base))
      .map((m) => compareOverSeeds(m.name, m.base, seeds, finetune[m.name]!, finetune[m.base]!))
    : [];
  const untrained = points['no pre-training']!.map((ps) => ps[0]!);
  const s = (xs: number[]): string => fmtSpread(spread(xs), pct);
  const finalOf = (c: Curve): number => c.accuracy.at(-1)!;

  // Final fine-tuned minus final probe, per seed in points (item 3 of issue 17: fine-tuning must beat the probe).
  const gain = (finals: PointScore[]): string => finals.map((p) => { const d = 100 * (p.finetune! - p.probe.test); return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(2)}`; }).join(' / ');
  const ftCells = (finals: PointScore[]): string[] => fineTunes ? [s(finals.map((p) => p.finetune!)), String(finals[0]!.finetuneBlr), gain(finals)] : ['–', '–', '–'];
  // The probe table: final and validation-chosen best (test figures), RAUC vs own base paired by seed.
  const probeRows = methods.map((m) => {
    const own = probe[m.base];
    return [
      m.name,
      s(probe[m.name]!.map(finalOf)),
      `${s(selected[m.name]!.map((p) => p.test))} (epoch ${selected[m.name]!.map((p) => p.epoch).join(', ')})`,
      own && m.base !== m.name ? `${fmtSpread(spread(probe[m.name]!.map((c, i) => rauc(c, own[i]!))), (x) => x.toFixed(3))} vs ${m.base}` : '–',
      ...ftCells(points[m.name]!.map((ps) => ps.at(-1)!)),
      `${spread(seconds[m.name]!).mean.toFixed(0)} s`,
    ];
  });
  probeRows.push(['no pre-training', s(untrained.map((p) => p.probe.test)), '–', '–', ...ftCells(untrained), '–']);
  const spark = points['spark from scratch']?.map((ps) => ps[0]!);
  if (spark) probeRows.push(['spark from scratch', s(spark.map((p) => p.probe.test)), '–', '–', ...ftCells(spark), '–']);
  const sd = seeds.length > 1 ? ' (mean ± sd over seeds)' : '';
  const sections = [
    `# MIM suite: ${o.preset}, ${epochs} epochs, ${trainImages} pre-training images, seeds ${seeds.join(' ')}`,
    '',
    `Linear probe${sd}: test top-1; "best" is the point chosen on ${o.valImages} validation images held out of the training set, reported on test.`,
    '',
    markdownTable(
      ['method', 'final probe top-1', 'best probe (chosen on validation)', 'probe RAUC vs own base', 'final fine-tuned top-1', 'fine-tuning blr (chosen)', 'fine-tuned − final probe, per seed (points)', 'pre-training time'],
      probeRows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ];
  if (fineTunes && blrs.length > 1) {
    // The selection: seed seeds[0]'s final encoder of each row fine-tuned at every rate, scored on validation.
    const names = [...methods.map((m) => m.name), 'no pre-training', ...(spark ? ['spark from scratch'] : [])];
    sections.push('', `Fine-tuning's base lr (× batch / 256), chosen per method on the ${o.valImages} validation images: validation top-1 of seed ${seeds[0]}'s final encoder at each rate, the chosen one in bold (the tables report the test figure of the chosen rate only; results.json keeps every run).`, '',
      markdownTable(['method', ...blrs.map((b) => `blr ${b}`)], names.map((n) => {
        const ts = tried[n] ?? [];
        const pick = ts.length === blrs.length ? chooseBlr(ts, blrs).blr : null;
        return [n, ...blrs.map((b) => {
          const t = ts.find((x) => x.blr === b);
          return !t ? '–' : b === pick ? `**${pct(t.validation)}**` : pct(t.validation);
        })];
      }), ['l', ...blrs.map(() => 'r' as const)]));
  }
  if (comparisons.length > 0) {
    const ftRows = comparisons.map((c) => [
      `${c.method} vs ${c.base}`,
      s(finetune[c.method]!.map(finalOf)),
      s(finetune[c.base]!.map(finalOf)),
      fmtSpread(c.rauc, (x) => x.toFixed(3)),
      fmtReach(c),
      fmtReach({ reach: c.baseReach, reached: c.baseReach.some((r) => r.epochs !== null) ? spread(c.baseReach.filter((r) => r.epochs !== null).map((r) => r.epochs!)) : null }),
      s(untrained.map((p) => p.finetune!)),
    ]);
    sections.push('', `Fine-tuning${sd} (${o.finetuneEpochs} epochs on ${o.finetuneImages || 'all'} images at each point): RAUC and epochs-to-reach are paired by seed; the target is the base's final fine-tuned top-1 of the same seed.`, '',
      markdownTable(['method vs base', 'final fine-tuned', 'base final', 'fine-tuning RAUC vs base', 'epochs to base\'s final', 'base\'s own epochs to it', 'untrained fine-tuned (reference)'], ftRows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']));
    const curveMethods = methods.filter((m) => curveSet.has(m.name));
    const grid = finetune[curveMethods[0]!.name]![0]!.epochs;
    sections.push('', 'Fine-tuned top-1 at each evaluation epoch:', '', markdownTable(
      ['method', ...grid.map((e) => `epoch ${e}`)],
      curveMethods.map((m) => [m.name, ...grid.map((_, j) => s(finetune[m.name]!.map((c) => c.accuracy[j]!)))]),
      ['l', ...grid.map(() => 'r' as const)],
    ));
  }
  const table = sections.join('\n');

  const files = [join(o.out, 'summary.md'), join(o.out, 'probe-accuracy.svg'), join(o.out, 'results.json')];
  const band = (name: string, cs: Curve[]): Series => {
    const mc = meanCurve(cs);
    return { name, x: mc.epochs, y: mc.mean, lo: mc.mean.map((v, j) => v - mc.sd[j]!), hi: mc.mean.map((v, j) => v + mc.sd[j]!) };
  };
  const spreadNote = seeds.length > 1 ? `, mean ± sd over ${seeds.length} seeds` : '';
  writeFileSync(files[0]!, `${table}\n`);
  writeFileSync(files[1]!, lineChartSvg({
    title: `Linear probe vs pre-training epochs (${o.preset}, ${trainImages} images${spreadNote})`, xLabel: 'pre-training epoch', yLabel: 'probe top-1 (test)',
    series: methods.map((m) => band(m.name, probe[m.name]!)),
  }));
  const curveMethods = methods.filter((m) => fineTunes && curveSet.has(m.name));
  if (curveMethods.length > 0) {
    files.push(join(o.out, 'finetune-accuracy.svg'));
    writeFileSync(files[3]!, lineChartSvg({
      title: `Fine-tuned top-1 vs pre-training epochs (${o.preset}${spreadNote})`, xLabel: 'pre-training epoch', yLabel: 'fine-tuned top-1 (test)',
      series: curveMethods.map((m) => band(m.name, finetune[m.name]!)),
    }));
  }
  const result = { seeds, points, probe, finetune, selected, comparisons, seconds };
  writeFileSync(files[2]!, `${JSON.stringify({ options: { ...o, log: undefined }, ...result }, null, 2)}\n`);
  return { ...result, table, files };
}
