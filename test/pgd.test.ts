/**
 * One-step L2 PGD on the word embeddings (src/tasks/finetune/pgd.ts): the
 * perturbation's L2 norm is at most ε per sequence, padding rows stay 0, the
 * loss rises on it (more than on a random perturbation of the same norm),
 * for the classifier and for the MLM head MVP scores through; the weights get
 * no gradient from the attack; the draw is a pure function of (seed, step);
 * and the gradient it steps along, ∂loss/∂δ, passes a float64 finite-difference check.
 */
import { describe, expect, it } from 'vitest';
import {
  BertForMaskedLM, BertForSequenceClassification, noGrad, pgdRandomStart, tensor, unpadBatch,
  type BertConfigInput, type EncoderBatch, type PaddedMlmBatch, type Tensor,
} from '../src/index.js';
import { pgdPerturbation, pgdSegments } from '../src/tasks/finetune/pgd.js';
import { gradcheck } from './helpers/gradcheck.js';

const tiny: BertConfigInput = { vocabSize: 17, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 12, hiddenDropout: 0.1 };

/** Three right-padded sequences of 9, 4 and 6 tokens, width 9, with token types. */
function batch(): Omit<PaddedMlmBatch, 'rows' | 'targets'> {
  const lens = [9, 4, 6];
  const L = 9;
  const ids: number[] = [];
  const mask: number[] = [];
  lens.forEach((n, b) => {
    for (let l = 0; l < L; l++) {
      ids.push(l === 0 ? 2 : l < n ? 5 + ((b * 7 + l * 3) % 12) : 0);
      mask.push(l < n ? 1 : 0);
    }
  });
  return {
    ids: tensor(ids, [3, L], 'int32'),
    attentionMask: tensor(mask, [3, L], 'int32'),
    tokenTypeIds: tensor(ids.map((_, i) => (i % L >= 3 ? 1 : 0)), [3, L], 'int32'),
  };
}
const labels = tensor([1, 0, 2], [3], 'int32');

/** Per-sequence L2 norms of δ [B, L, D] and the largest |δ| on padding rows. */
function norms(delta: Tensor, mask: Tensor): { perSeq: number[]; padMax: number } {
  const [B, L, D] = delta.shape as [number, number, number];
  const d = delta.toArray();
  const m = mask.toArray();
  const perSeq = new Array<number>(B).fill(0);
  let padMax = 0;
  for (let b = 0; b < B; b++)
    for (let l = 0; l < L; l++)
      for (let k = 0; k < D; k++) {
        const v = d[(b * L + l) * D + k]!;
        perSeq[b]! += v * v;
        if (m[b * L + l] === 0) padMax = Math.max(padMax, Math.abs(v));
      }
  return { perSeq: perSeq.map(Math.sqrt), padMax };
}

describe('PGD on the word embeddings', () => {
  it('classifier: ‖δ‖ ≤ ε per sequence, 0 on padding, and the loss rises (beyond a random δ of the same norm)', () => {
    const model = new BertForSequenceClassification(tiny, { numLabels: 3, seed: 3 });
    const b = batch();
    const lossOf = (x: EncoderBatch): Tensor => model.loss(x, labels);
    for (const eps of [1, 0.3]) {
      const delta = pgdPerturbation(model, b, lossOf, { eps, seed: 11, step: 4 });
      const { perSeq, padMax } = norms(delta, b.attentionMask!);
      for (const n of perSeq) expect(n).toBeLessThanOrEqual(eps * (1 + 1e-6));
      expect(padMax).toBe(0);
      expect(model.training).toBe(true);
      model.eval();
      const [clean, adv, rand] = noGrad(() => [
        lossOf(b).item(),
        lossOf({ ...b, wordEmbeddingDelta: delta }).item(),
        lossOf({ ...b, wordEmbeddingDelta: pgdRandomStart(delta, pgdSegments(b), { eps, seed: 99, step: 0 }) }).item(),
      ]);
      model.train();
      expect(adv).toBeGreaterThan(clean);
      expect(adv).toBeGreaterThan(rand);
    }
  });

  it('MLM head (what MVP scores through): the masked-token loss rises too', () => {
    const model = new BertForMaskedLM(tiny, { seed: 5 });
    const b = batch();
    const mlm = { ...b, rows: tensor([1, 12, 20], [3], 'int32'), targets: tensor([7, 8, 9], [3], 'int32') };
    const lossOf = (x: EncoderBatch): Tensor => model.loss({ ...mlm, ...x });
    const delta = pgdPerturbation(model, b, lossOf, { seed: 1, step: 0 });
    model.eval();
    const [clean, adv] = noGrad(() => [lossOf(b).item(), lossOf({ ...b, wordEmbeddingDelta: delta }).item()]);
    expect(adv).toBeGreaterThan(clean);
  });

  it('leaves the weights without gradients, restores eval mode, and repeats exactly for the same (seed, step)', () => {
    const model = new BertForSequenceClassification(tiny, { numLabels: 3, seed: 2 }).eval();
    const b = batch();
    const lossOf = (x: EncoderBatch): Tensor => model.loss(x, labels);
    const a = pgdPerturbation(model, b, lossOf, { seed: 7, step: 3 }).toArray();
    expect(model.parameters().every((p) => p.grad === null && p.requiresGrad)).toBe(true);
    expect(model.training).toBe(false);
    expect(Array.from(pgdPerturbation(model, b, lossOf, { seed: 7, step: 3 }).toArray())).toEqual(Array.from(a));
    expect(Array.from(pgdPerturbation(model, b, lossOf, { seed: 7, step: 4 }).toArray())).not.toEqual(Array.from(a));
  });

  it('works on packed batches: the same per-sequence norms', () => {
    const model = new BertForSequenceClassification(tiny, { numLabels: 3, seed: 2 });
    const packed = unpadBatch({ ...batch(), rows: tensor([0], [1], 'int32'), targets: tensor([0], [1], 'int32') });
    const delta = pgdPerturbation(model, packed, (x) => model.loss(x, labels), { seed: 1, step: 1 });
    expect(delta.shape).toEqual([19, 16]);
    const d = delta.toArray();
    [[0, 9], [9, 13], [13, 19]].forEach(([s, e]) => {
      let n = 0;
      for (let i = s! * 16; i < e! * 16; i++) n += d[i]! * d[i]!;
      expect(Math.sqrt(n)).toBeLessThanOrEqual(1 + 1e-6);
    });
  });

  it('∂loss/∂δ, the direction PGD steps along, passes a float64 finite-difference check', () => {
    const model = new BertForSequenceClassification({ ...tiny, hiddenDropout: 0 }, { numLabels: 3, seed: 8, dtype: 'float64' });
    const b = batch();
    const d = tensor(Array.from({ length: 3 * 9 * 16 }, (_, i) => Math.sin(i) * 0.05), [3, 9, 16], 'float64');
    d.requiresGrad = true;
    gradcheck(([x]) => model.logits({ ...b, wordEmbeddingDelta: x! }), [d]);
  });

  it('rejects a batch that already carries a perturbation', () => {
    const model = new BertForSequenceClassification(tiny, { numLabels: 3 });
    const b = batch();
    const d = tensor(new Array(3 * 9 * 16).fill(0), [3, 9, 16]);
    expect(() => pgdPerturbation(model, { ...b, wordEmbeddingDelta: d }, (x) => model.loss(x, labels), { seed: 0, step: 0 })).toThrow(/clean batch/);
  });
});
