/**
 * Fine-tuning batches are packed (unpadded: ids [nnz] with cuSeqlens) unless ASA
 * asks for padding. Packing must change nothing but float rounding: class logits
 * and the gradients of every parameter against the padded layout, for mlp-ft
 * ([CLS] pooling) and mvp ([MASK] rows through the label words), in float64,
 * with inputs of mixed lengths, pairs and templates before and after the input.
 */
import { describe, expect, it } from 'vitest';
import { backward } from '../src/autograd/backward.js';
import { crossEntropy, fromTypedArray } from '../src/index.js';
import { BertForSequenceClassification } from '../src/models/bert/classification.js';
import { BertForMaskedLM } from '../src/models/bert/model.js';
import { TextClassifier, type ClassifierModel } from '../src/tasks/finetune/classifier.js';

const tok = { clsId: 2, sepId: 3, padId: 0, maskId: 4 };
const config = { vocabSize: 40, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 40, hiddenDropout: 0 };
const ids = (...v: number[]) => Int32Array.from(v);
// Lengths 1 to 9, two with a pair: padding is most of the padded batch.
const examples: Array<[Int32Array, Int32Array | null]> = [
  [ids(7, 8, 9, 10, 11, 12, 13, 14, 15), null],
  [ids(12), ids(20, 21)],
  [ids(14, 15, 16), null],
  [ids(30, 31, 32, 33), ids(5, 6, 7, 8, 9, 10)],
];

function compare(m: ClassifierModel): void {
  const c = new TextClassifier(m, ['a', 'b', 'c'], tok, 16);
  const params = c.module.namedParameters();
  const labels = fromTypedArray(Int32Array.from([0, 2, 1, 2]), [4]);
  const run = (padded: boolean) => {
    for (const [, p] of params) p.grad = null;
    const { batch, maskRows } = c.batchOf(examples, { padded });
    const logits = c.classLogits(batch, maskRows);
    backward(crossEntropy(logits, labels));
    return { logits: Array.from(logits.toArray()), grads: params.map(([n, p]) => [n, Array.from(p.grad?.toArray() ?? [])] as const) };
  };
  const packedBatch = c.batchOf(examples).batch;
  expect(packedBatch.ids.shape.length).toBe(1); // packed by default
  const padded = run(true);
  const packed = run(false);
  for (let i = 0; i < padded.logits.length; i++) expect(packed.logits[i]).toBeCloseTo(padded.logits[i]!, 10);
  let checked = 0;
  for (let k = 0; k < params.length; k++) {
    const [name, a] = padded.grads[k]!;
    const b = packed.grads[k]![1];
    expect(b.length, name).toBe(a.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(b[i]! - a[i]!), `${name}[${i}]`).toBeLessThan(1e-10 + 1e-8 * Math.abs(a[i]!));
    if (a.some((v) => v !== 0)) checked++;
  }
  // The comparison covered real gradients, not zeros.
  expect(checked).toBeGreaterThan(params.length / 2);
  c.dispose();
}

describe('fine-tuning batches: packed against padded (float64)', () => {
  it('mlp-ft: logits and every gradient', () => {
    const model = new BertForSequenceClassification(config, { numLabels: 3, seed: 5, dtype: 'float64' });
    compare({ method: 'mlp-ft', model });
  });

  it('mvp: logits and every gradient, templates before and after the input', () => {
    const model = new BertForMaskedLM(config, { seed: 6, dtype: 'float64' });
    const templates = [
      { source: 'a [MASK] b', ids: ids(25, 4, 26), maskOffset: 1, after: false },
      { source: '[SEP] c [MASK]', ids: ids(3, 27, 4), maskOffset: 2, after: true },
    ];
    const verbalizer = { words: ids(10, 11, 12, 13), classOf: ids(0, 1, 2, 2), kept: [['x'], ['y'], ['z', 'w']] };
    compare({ method: 'mvp', model, prompts: { templates, verbalizer } });
  });
});
