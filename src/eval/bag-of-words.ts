/**
 * Sanity floors for text classification: the majority class, and a
 * bag-of-words multinomial logistic regression.
 *
 * Bag of words: lowercase word unigrams of `text` (and of `textPair`, prefixed
 * `b:` so a pair's second-text words are features of their own); the
 * vocabulary is the training split's words seen at least `minCount` times;
 * a feature is log(1 + count) (or 1 when `binary`). The model is a linear
 * layer (weights [K, V] and a bias) trained on the mean cross-entropy plus
 * (l2 / 2)·‖W‖² by mini-batch Adam (AdamW with decoupled decay 0: the L2 term
 * is in the loss). Each batch's sparse rows are made dense [B, V] and go
 * through the project's ops (linear, crossEntropy); no JS loops over weights.
 * Hyperparameters are fixed, never chosen on the test set.
 */
import { backward } from '../autograd/backward.js';
import { noGrad, scope } from '../autograd/mode.js';
import type { LabelledExample } from '../data/labelled.js';
import { ClozeError } from '../errors.js';
import { Linear } from '../nn/layers.js';
import { argmax, crossEntropy } from '../ops/cross_entropy.js';
import { add, mul, scale, sum } from '../ops/elementwise.js';
import { AdamW } from '../optim/adamw.js';
import { Rng } from '../rng.js';
import { tensor } from '../tensor.js';
import { classificationScores, type ClassificationScores } from './classification.js';

/** Lowercase word unigrams: runs of letters/digits (apostrophes inside a word kept). */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu) ?? [];
}

/** An example's tokens: its text's words, then its pair's words prefixed `b:`. */
export function exampleTokens(e: Pick<LabelledExample, 'text' | 'textPair'>): string[] {
  const t = words(e.text);
  if (e.textPair !== undefined) for (const w of words(e.textPair)) t.push(`b:${w}`);
  return t;
}

/** Sparse features of one example: vocabulary ids and their values. */
interface SparseRow {
  ids: Int32Array;
  values: Float32Array;
}

export class BagOfWords {
  readonly vocab: Map<string, number>;
  constructor(
    train: readonly Pick<LabelledExample, 'text' | 'textPair'>[],
    readonly minCount = 2,
    readonly binary = false,
  ) {
    const counts = new Map<string, number>();
    for (const e of train) for (const w of exampleTokens(e)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const kept = [...counts].filter(([, c]) => c >= minCount).map(([w]) => w).sort();
    this.vocab = new Map(kept.map((w, i) => [w, i]));
  }
  get size(): number {
    return this.vocab.size;
  }
  row(e: Pick<LabelledExample, 'text' | 'textPair'>): SparseRow {
    const c = new Map<number, number>();
    for (const w of exampleTokens(e)) {
      const id = this.vocab.get(w);
      if (id !== undefined) c.set(id, (c.get(id) ?? 0) + 1);
    }
    const ids = Int32Array.from(c.keys());
    const values = Float32Array.from(c.values(), (n) => (this.binary ? 1 : Math.log1p(n)));
    return { ids, values };
  }
}

/** Rows `idx` of `rows` as a dense [idx.length, V] matrix. */
function dense(rows: readonly SparseRow[], idx: ArrayLike<number>, V: number): Float32Array {
  const out = new Float32Array(idx.length * V);
  for (let i = 0; i < idx.length; i++) {
    const r = rows[idx[i]!]!;
    for (let j = 0; j < r.ids.length; j++) out[i * V + r.ids[j]!] = r.values[j]!;
  }
  return out;
}

export interface BagOfWordsOptions {
  /** Default 2. */
  minCount?: number;
  /** 1 for a present word instead of log(1 + count); default false. */
  binary?: boolean;
  /** Default 10. */
  epochs?: number;
  /** Default 256. */
  batchSize?: number;
  /** Adam's lr; default 0.02, cosine-free constant. */
  lr?: number;
  /** L2 strength λ in (λ/2)·‖W‖² added to the mean cross-entropy; default 1e-4. */
  l2?: number;
  seed?: number;
}

export interface BaselineResult extends ClassificationScores {
  /** Predicted class ids on the test examples. */
  predictions: Int32Array;
  trainAccuracy: number;
  /** Vocabulary size (bag of words only). */
  features?: number;
  seconds: number;
}

function checkLabels(labels: Int32Array, n: number, numClasses: number, name: string): void {
  if (labels.length !== n) throw new ClozeError('E_SHAPE', `Expected one label per example for ${name} but received ${labels.length} labels for ${n} examples`);
  for (let i = 0; i < labels.length; i++) {
    if (!Number.isInteger(labels[i]) || labels[i]! < 0 || labels[i]! >= numClasses) throw new ClozeError('E_INDEX', `Expected class ids in [0, ${numClasses}) for ${name} but received ${labels[i]} at ${i}`);
  }
}

/** Predicts the training split's most frequent class (the lowest id on ties) for every test example. */
export function majorityBaseline(trainLabels: Int32Array, testLabels: Int32Array, numClasses: number): BaselineResult {
  const t0 = performance.now();
  checkLabels(trainLabels, trainLabels.length, numClasses, 'trainLabels');
  if (trainLabels.length === 0) throw new ClozeError('E_VALUE', 'Expected training labels for the majority class but received none');
  const counts = new Float64Array(numClasses);
  for (const y of trainLabels) counts[y]++;
  let best = 0;
  for (let c = 1; c < numClasses; c++) if (counts[c]! > counts[best]!) best = c;
  const predictions = new Int32Array(testLabels.length).fill(best);
  return {
    ...classificationScores(predictions, testLabels, numClasses), predictions,
    trainAccuracy: counts[best]! / trainLabels.length, seconds: (performance.now() - t0) / 1000,
  };
}

/** Trains a bag-of-words logistic regression on `train` and scores it on `test`. */
export function bagOfWordsBaseline(
  train: readonly LabelledExample[], trainLabels: Int32Array, test: readonly LabelledExample[], testLabels: Int32Array, numClasses: number,
  o: BagOfWordsOptions = {},
): BaselineResult {
  const t0 = performance.now();
  checkLabels(trainLabels, train.length, numClasses, 'trainLabels');
  checkLabels(testLabels, test.length, numClasses, 'testLabels');
  const bow = new BagOfWords(train, o.minCount ?? 2, o.binary ?? false);
  const V = bow.size;
  if (V === 0) throw new ClozeError('E_VALUE', `Expected some training word seen at least ${bow.minCount} times but received none`);
  const trainRows = train.map((e) => bow.row(e));
  const testRows = test.map((e) => bow.row(e));
  const epochs = o.epochs ?? 10;
  const lr = o.lr ?? 0.02;
  const l2 = o.l2 ?? 1e-4;
  const N = train.length;
  const bs = Math.min(o.batchSize ?? 256, N);
  const rng = new Rng(o.seed ?? 0);
  const head = new Linear(V, numClasses, { rng, std: 0 });
  const opt = new AdamW(head.parameters(), { lr, weightDecay: 0 });
  const predict = (rows: readonly SparseRow[]): Int32Array => {
    const out = new Int32Array(rows.length);
    for (let s = 0; s < rows.length; s += bs) {
      const idx = Array.from({ length: Math.min(bs, rows.length - s) }, (_, i) => s + i);
      scope(() => noGrad(() => out.set(argmax(head.forward(tensor(dense(rows, idx, V), [idx.length, V]))).toArray() as Int32Array, s)));
    }
    return out;
  };
  try {
    const order = Int32Array.from({ length: N }, (_, i) => i);
    for (let e = 0; e < epochs; e++) {
      for (let i = N - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      for (let s = 0; s < N; s += bs) {
        const idx = order.subarray(s, Math.min(N, s + bs));
        scope(() => {
          opt.zeroGrad();
          const x = tensor(dense(trainRows, idx, V), [idx.length, V]);
          const y = tensor(Int32Array.from(idx, (i) => trainLabels[i]!), [idx.length], 'int32');
          const ce = crossEntropy(head.forward(x), y);
          const w = head.weight;
          backward(l2 > 0 ? add(ce, scale(sum(mul(w, w)), l2 / 2)) : ce);
          opt.step();
        });
      }
    }
    const trainPred = predict(trainRows);
    const predictions = predict(testRows);
    return {
      ...classificationScores(predictions, testLabels, numClasses), predictions,
      trainAccuracy: classificationScores(trainPred, trainLabels, numClasses).accuracy,
      features: V, seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    opt.dispose();
    head.dispose();
  }
}
