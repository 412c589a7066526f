/**
 * Probe-accuracy curves against pre-training epochs, and the two speed-up
 * measures that judge MTO (defined in the README's image pre-training section): RAUC and "epochs to reach".
 */
import { ClozeError, describe, expected } from '../errors.js';

/** Linear-probe accuracy in [0, 1] at strictly increasing epochs; epoch 0 may be the untrained encoder. */
export interface Curve {
  epochs: number[];
  accuracy: number[];
}

/** One method's row of a comparison against a reference method. */
export interface MethodSummary {
  method: string;
  finalAccuracy: number;
  bestAccuracy: number;
  /** Area under this curve over the reference's, on the same epoch grid. */
  rauc: number;
  /** First (interpolated) epoch at which this curve reaches the reference's final accuracy; null if never. */
  epochsToReach: number | null;
  /** epochsToReach over the reference's own; null when either is null or the reference's is 0. */
  epochsShare: number | null;
}

export interface Summary {
  reference: string;
  /** The reference's final accuracy: the target of every epochsToReach. */
  target: number;
  /** In the insertion order of the curves record. */
  methods: MethodSummary[];
}

/** The MTO claim: its epochs to reach the reference's final accuracy are at most half the reference's. */
export const MTO_EPOCH_SHARE_TARGET = 0.5;

/** Throws unless `c` is a curve: equal-length arrays, finite strictly increasing epochs, accuracy in [0, 1]. */
export function checkCurve(c: unknown, name: string): asserts c is Curve {
  if (typeof c !== 'object' || c === null) throw expected('a curve { epochs, accuracy }', name, c);
  const { epochs, accuracy } = c as Partial<Curve>;
  if (!Array.isArray(epochs) || epochs.length === 0) throw expected('a non-empty array', `${name}.epochs`, epochs);
  if (!Array.isArray(accuracy) || accuracy.length !== epochs.length) {
    throw expected(`an array of ${epochs.length} accuracies (one per epoch)`, `${name}.accuracy`, accuracy, 'E_SHAPE');
  }
  for (let i = 0; i < epochs.length; i++) {
    const e = epochs[i];
    if (typeof e !== 'number' || !Number.isFinite(e) || e < 0) {
      throw expected('a finite epoch ≥ 0', `${name}.epochs[${i}]`, e);
    }
    if (i > 0 && e <= epochs[i - 1]!) {
      throw expected(`an epoch above ${epochs[i - 1]} (epochs must increase)`, `${name}.epochs[${i}]`, e);
    }
    const a = accuracy[i];
    if (typeof a !== 'number' || !Number.isFinite(a) || a < 0 || a > 1) {
      throw expected('an accuracy in [0, 1]', `${name}.accuracy[${i}]`, a);
    }
  }
}

/** Trapezoidal area under accuracy against epochs; 0 for a single probe. */
export function curveArea(c: Curve): number {
  let area = 0;
  for (let i = 1; i < c.epochs.length; i++) {
    area += ((c.epochs[i]! - c.epochs[i - 1]!) * (c.accuracy[i]! + c.accuracy[i - 1]!)) / 2;
  }
  return area;
}

function sameGrid(a: Curve, b: Curve, aName: string, bName: string): void {
  if (a.epochs.length !== b.epochs.length || a.epochs.some((e, i) => e !== b.epochs[i])) {
    throw new ClozeError('E_SHAPE', `Expected the same epoch grid for ${aName} and ${bName} but received ${aName}.epochs ${describe(a.epochs)} and ${bName}.epochs ${describe(b.epochs)}`);
  }
}

function raucNamed(method: Curve, baseline: Curve, mName: string, bName: string): number {
  checkCurve(method, mName);
  checkCurve(baseline, bName);
  // Areas over different grids would reward whichever side was probed longer, so refuse rather than resample.
  sameGrid(method, baseline, mName, bName);
  const base = curveArea(baseline);
  if (!(base > 0)) {
    throw expected('a curve with a positive area (two or more probes, not all at accuracy 0)', bName, `area ${base}`);
  }
  return curveArea(method) / base;
}

/**
 * RAUC (**ours**, the README's image pre-training section): the trapezoidal area under the method's
 * accuracy curve divided by the baseline's. Both curves must share one epoch
 * grid; a mismatch throws, naming both.
 */
export function rauc(method: Curve, baseline: Curve): number {
  return raucNamed(method, baseline, 'method', 'baseline');
}

/**
 * The first epoch at which accuracy ≥ target. When the crossing lies between
 * two probes, the epoch is linearly interpolated between those two probes
 * (the accuracy is assumed to move linearly between them), so the result can
 * be fractional. A curve already at the target on its first probe returns
 * that probe's epoch. Null if no probe reaches the target.
 */
export function epochsToReach(curve: Curve, target: number): number | null {
  checkCurve(curve, 'curve');
  if (typeof target !== 'number' || !Number.isFinite(target)) throw expected('a finite number', 'target', target);
  const { epochs, accuracy } = curve;
  const i = accuracy.findIndex((a) => a >= target);
  if (i < 0) return null;
  if (i === 0) return epochs[0]!;
  const a0 = accuracy[i - 1]!;
  const a1 = accuracy[i]!;
  // a0 < target ≤ a1, so a1 > a0 and the fraction lies in (0, 1].
  const t = (target - a0) / (a1 - a0);
  return epochs[i - 1]! + t * (epochs[i]! - epochs[i - 1]!);
}

/**
 * Compares every curve with the reference's (e.g. 'simmim'): final and best
 * accuracy, RAUC against the reference, the epochs to reach the reference's
 * final accuracy, and those epochs as a share of the reference's own (MTO's
 * target is ≤ MTO_EPOCH_SHARE_TARGET). All curves must share the reference's
 * epoch grid.
 */
export function summarize(curves: Record<string, Curve>, reference: string): Summary {
  if (typeof curves !== 'object' || curves === null) throw expected('a record of curves', 'curves', curves);
  const names = Object.keys(curves);
  if (!Object.prototype.hasOwnProperty.call(curves, reference)) {
    throw expected(`one of the curve names ${describe(names)}`, 'reference', reference);
  }
  const ref = curves[reference]!;
  checkCurve(ref, `curves.${reference}`);
  const target = ref.accuracy[ref.accuracy.length - 1]!;
  const refEpochs = epochsToReach(ref, target);
  const methods = names.map((method): MethodSummary => {
    const c = curves[method]!;
    const r = raucNamed(c, ref, `curves.${method}`, `curves.${reference}`);
    const reach = epochsToReach(c, target);
    return {
      method,
      finalAccuracy: c.accuracy[c.accuracy.length - 1]!,
      bestAccuracy: Math.max(...c.accuracy),
      rauc: r,
      epochsToReach: reach,
      epochsShare: reach === null || refEpochs === null || refEpochs === 0 ? null : reach / refEpochs,
    };
  });
  return { reference, target, methods };
}

/** One evaluation point scored on a validation split and on the test set by the same classifier. */
export interface ValidatedPoint {
  epoch: number;
  validation: number;
  test: number;
}

/**
 * The point with the highest validation accuracy (the earliest on a tie) and its test accuracy: the
 * "best" of a curve without choosing on the test set.
 */
export function selectOnValidation(points: ValidatedPoint[]): ValidatedPoint {
  if (!Array.isArray(points) || points.length === 0) throw expected('a non-empty array of points', 'points', points);
  let best = points[0]!;
  for (const p of points) if (p.validation > best.validation) best = p;
  return best;
}

/** Mean and spread of one figure over seeds: sd is the sample standard deviation (n − 1; 0 for one seed). */
export interface Spread {
  mean: number;
  sd: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: number[]): Spread {
  if (!Array.isArray(values) || values.length === 0) throw expected('a non-empty array of numbers', 'values', values);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw expected('a finite number', `values[${i}]`, v);
  });
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values), n };
}

/** The pointwise mean and sample sd of curves on one epoch grid (one curve per seed). */
export function meanCurve(curves: Curve[]): { epochs: number[]; mean: number[]; sd: number[] } {
  if (!Array.isArray(curves) || curves.length === 0) throw expected('a non-empty array of curves', 'curves', curves);
  curves.forEach((c, i) => {
    checkCurve(c, `curves[${i}]`);
    sameGrid(c, curves[0]!, `curves[${i}]`, 'curves[0]');
  });
  const at = curves[0]!.epochs.map((_, j) => spread(curves.map((c) => c.accuracy[j]!)));
  return { epochs: [...curves[0]!.epochs], mean: at.map((s) => s.mean), sd: at.map((s) => s.sd) };
}

/** One seed's epochs-to-reach: the target is the base's final accuracy of the same seed. */
export interface SeedReach {
  seed: number;
  target: number;
  /** The curve's epoch-0 accuracy (the untrained encoder), shown for reference. */
  untrained: number;
  /** Interpolated epoch of reaching the target; null when not reached or when the measure is degenerate. */
  epochs: number | null;
  /** The untrained encoder already scores ≥ the target, so "reaching" it says nothing about pre-training. */
  degenerate: boolean;
}

/** A method against its base over seeds, paired by seed. */
export interface SeedComparison {
  method: string;
  base: string;
  seeds: number[];
  /** rauc(method's curve, base's curve) of each seed, and their mean and spread. */
  raucBySeed: number[];
  rauc: Spread;
  reach: SeedReach[];
  /** Over the seeds that reached the target (not degenerate); null when none did. */
  reached: Spread | null;
  /** The base's own epochs to its final accuracy (the first epoch at which it gets there), per seed, for scale. */
  baseReach: SeedReach[];
  final: Spread;
}

function seedReach(c: Curve, target: number, seed: number): SeedReach {
  const untrained = c.accuracy[0]!;
  const degenerate = c.epochs[0] === 0 && untrained >= target;
  return { seed, target, untrained, epochs: degenerate ? null : epochsToReach(c, target), degenerate };
}

/**
 * Compares a method's curves with its base's, seed by seed (`method[i]` and `base[i]` come from
 * `seeds[i]`): RAUC of each pair, the epochs at which the method reaches the base's final accuracy
 * of the same seed, and the mean and sample sd of both over seeds. A seed whose untrained point
 * (epoch 0) already reaches the target is marked degenerate rather than counted as "0 epochs".
 */
export function compareOverSeeds(methodName: string, baseName: string, seeds: number[], method: Curve[], base: Curve[]): SeedComparison {
  if (!Array.isArray(seeds) || seeds.length === 0) throw expected('a non-empty array of seeds', 'seeds', seeds);
  for (const [name, arr] of [[methodName, method], [baseName, base]] as const) {
    if (!Array.isArray(arr) || arr.length !== seeds.length) {
      throw expected(`${seeds.length} curves (one per seed)`, `curves of ${name}`, arr, 'E_SHAPE');
    }
  }
  const raucBySeed = seeds.map((s, i) => raucNamed(method[i]!, base[i]!, `${methodName} (seed ${s})`, `${baseName} (seed ${s})`));
  const reach = seeds.map((s, i) => seedReach(method[i]!, base[i]!.accuracy.at(-1)!, s));
  const baseReach = seeds.map((s, i) => seedReach(base[i]!, base[i]!.accuracy.at(-1)!, s));
  const got = reach.filter((r) => r.epochs !== null).map((r) => r.epochs!);
  return {
    method: methodName, base: baseName, seeds: [...seeds], raucBySeed, rauc: spread(raucBySeed), reach,
    reached: got.length > 0 ? spread(got) : null, baseReach, final: spread(method.map((c) => c.accuracy.at(-1)!)),
  };
}

/** "mean ± sd" of a spread, each value formatted by `f`. */
export function fmtSpread(s: Spread, f: (x: number) => string): string {
  return s.n > 1 ? `${f(s.mean)} ± ${f(s.sd)}` : f(s.mean);
}

/** The epochs-to-reach cell: "mean ± sd (k/n seeds)", "not reached", with degenerate seeds named. */
export function fmtReach(c: Pick<SeedComparison, 'reach' | 'reached'>): string {
  const n = c.reach.length;
  const degenerate = c.reach.filter((r) => r.degenerate).length;
  const note = degenerate > 0 ? `; ${degenerate}/${n} degenerate: untrained ≥ target` : '';
  if (!c.reached) return degenerate === n ? `degenerate on every seed (untrained ≥ target)` : `not reached${note}`;
  return `${fmtSpread(c.reached, (x) => x.toFixed(2))} (${c.reached.n}/${n} seeds${note})`;
}
