/**
 * Classification scores from predicted and true class ids: accuracy and
 * macro-F1, the unweighted mean of F1 = 2PR/(P+R) over the classes present in
 * the labels or the predictions, as scikit-learn's f1_score(average='macro')
 * computes it (a class predicted but never true, or true but never
 * predicted, counts with F1 0).
 */
import { ClozeError } from '../errors.js';

export interface ClassificationScores {
  accuracy: number;
  macroF1: number;
  /** Per class: F1, in class-id order (0 for a class absent from labels and predictions). */
  f1: number[];
  examples: number;
}

export function classificationScores(predicted: ArrayLike<number>, truth: ArrayLike<number>, numClasses: number): ClassificationScores {
  if (predicted.length !== truth.length) {
    throw new ClozeError('E_SHAPE', `Expected as many predictions as labels for predicted but received ${predicted.length} predictions and ${truth.length} labels`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new ClozeError('E_VALUE', `Expected a positive integer for numClasses but received ${numClasses}`);
  const tp = new Float64Array(numClasses);
  const predCount = new Float64Array(numClasses);
  const trueCount = new Float64Array(numClasses);
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    const p = predicted[i]!;
    const t = truth[i]!;
    for (const [v, name] of [[p, 'predicted'], [t, 'truth']] as const) {
      if (!Number.isInteger(v) || v < 0 || v >= numClasses) throw new ClozeError('E_INDEX', `Expected class ids in [0, ${numClasses}) for ${name} but received ${v} at ${i}`);
    }
    predCount[p]++;
    trueCount[t]++;
    if (p === t) {
      tp[p]++;
      correct++;
    }
  }
  const f1 = Array.from({ length: numClasses }, (_, c) => {
    const denom = predCount[c]! + trueCount[c]!;
    return denom === 0 ? 0 : (2 * tp[c]!) / denom;
  });
  const n = truth.length;
  const present = f1.filter((_, c) => predCount[c]! + trueCount[c]! > 0);
  return { accuracy: n > 0 ? correct / n : NaN, macroF1: present.length > 0 ? present.reduce((a, b) => a + b, 0) / present.length : NaN, f1, examples: n };
}
