/**
 * BertForMaskedLM.labelWordLogits (MVP's scoring) against the full MLM
 * logits: the same encoder and head transform at the [MASK] rows, then all V
 * logits through linear(h, decoder, bias) and the word columns picked by a
 * one-hot matmul. Values and every parameter's gradient, padded and packed,
 * float64.
 */
import { describe, expect, it } from 'vitest';
import {
  backward, BertForMaskedLM, embedding, linear, matmul, mul, reshape, Rng, scope, sum, tensor, unpadBatch,
  type BertConfigInput, type EncoderBatch, type PaddedMlmBatch, type Tensor,
} from '../src/index.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const config: BertConfigInput = { vocabSize: 23, hidden: 8, layers: 1, heads: 2, intermediate: 16, maxPosition: 8, hiddenDropout: 0 };
const V = 23;

/** Two right-padded sequences (lengths 6 and 4, width 7) with one [MASK] row each, plus their rows. */
function makeBatch(): PaddedMlmBatch {
  const rng = new Rng(9);
  const lengths = [6, 4];
  const L = 7;
  const ids: number[] = [];
  const mask: number[] = [];
  lengths.forEach((len) => {
    for (let l = 0; l < L; l++) {
      ids.push(l < len ? 2 + rng.int(V - 2) : 0);
      mask.push(l < len ? 1 : 0);
    }
  });
  const rows = [2, L + 3];
  for (const r of rows) ids[r] = 1;  // [MASK]
  return {
    ids: tensor(ids, [2, L], 'int32'),
    attentionMask: tensor(mask, [2, L], 'int32'),
    rows: tensor(rows, [2], 'int32'),
    targets: tensor([0, 0], [2], 'int32'),
  };
}

/** The full-vocabulary path: every one of the V logits at the rows, then the word columns by a one-hot [V, K] matmul. */
function fullLogitsColumns(model: BertForMaskedLM, batch: EncoderBatch, rows: Tensor, words: number[]): Tensor {
  const h = reshape(model.encode(batch), [-1, 8]);
  const x = model.cls.predictions.transform.forward(embedding(h, rows));
  const logits = linear(x, model.bert.embeddings.word_embeddings.weight, model.cls.predictions.bias);
  const sel = new Array<number>(V * words.length).fill(0);
  words.forEach((w, k) => (sel[w * words.length + k] = 1));
  return matmul(logits, tensor(sel, [V, words.length], 'float64'));
}

function valueAndGrads(model: BertForMaskedLM, f: () => Tensor, weights: Tensor): { out: Float64Array; grads: Map<string, Float64Array> } {
  model.zeroGrad();
  for (const p of model.parameters()) p.grad = null;
  return scope(() => {
    const out = f();
    backward(sum(mul(out, weights)));
    const grads = new Map<string, Float64Array>();
    for (const [n, p] of model.namedParameters()) grads.set(n, Float64Array.from(p.grad?.toArray() ?? []));
    return { out: Float64Array.from(out.toArray()), grads };
  });
}

describe('BertForMaskedLM.labelWordLogits', () => {
  const words = [5, 17, 22, 5];  // a word listed twice
  const weights = tensor([0.3, -1.2, 0.7, 0.4, -0.5, 0.9, 1.1, -0.2], [2, 4], 'float64');

  for (const packed of [false, true])
    it(`equals the word columns of the full MLM logits, values and every parameter's gradient (${packed ? 'packed' : 'padded'})`, () => {
      const model = new BertForMaskedLM(config, { seed: 3, dtype: 'float64' });
      const padded = makeBatch();
      const batch = packed ? unpadBatch(padded) : padded;
      const ids = tensor(words, [4], 'int32');
      const fused = valueAndGrads(model, () => model.labelWordLogits(batch, batch.rows, ids), weights);
      const full = valueAndGrads(model, () => fullLogitsColumns(model, batch, batch.rows, words), weights);
      expect(fused.out.length).toBe(2 * 4);
      const tol = tolFor('float64');
      assertClose(fused.out, full.out, tol, 'logits');
      for (const [name, g] of full.grads) {
        expect(g.some((x) => x !== 0)).toBe(true);
        assertClose(fused.grads.get(name)!, g, tol, `gradient of ${name}`);
      }
    });

  it('rejects rows that are not an int32 [M]', () => {
    const model = new BertForMaskedLM(config, { seed: 3, dtype: 'float64' });
    const batch = makeBatch();
    const ids = tensor([5], [1], 'int32');
    expect(() => model.labelWordLogits(batch, tensor([2, 10], [1, 2], 'int32'), ids)).toThrow(
      'Expected an int32 tensor [M] for rows but received int32 tensor [1, 2]',
    );
    expect(() => model.labelWordLogits(batch, tensor([2], [1]), ids)).toThrow('Expected an int32 tensor for rows but received float32 tensor [1]');
    expect(() => model.labelWordLogits(batch, batch.rows, tensor([23], [1], 'int32'))).toThrow(
      'labelWordLogits: Expected indices in [0, 23) for words but received 23 at position 0',
    );
  });
});
