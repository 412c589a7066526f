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

function raucNamed(method: Curve, baseline: Curve, mName: string, bName: string): number {
  checkCurve(method, mName);
  checkCurve(baseline, bName);
  const same = method.epochs.length === baseline.epochs.length && method.epochs.every((e, i) => e === baseline.epochs[i]);
  // Areas over different grids would reward whichever side was probed longer, so refuse rather than resample.
  if (!same) {
    throw new ClozeError(
      'E_SHAPE',
      `Expected the same epoch grid for ${mName} and ${bName} but received ${mName}.epochs ${describe(method.epochs)} ` +
        `and ${bName}.epochs ${describe(baseline.epochs)}`,
    );
  }
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
