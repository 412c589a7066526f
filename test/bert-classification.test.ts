/**
 * BertForSequenceClassification: HF's parameter names, logits' shape for
 * padded, packed and sentence-pair batches (packed equals padded), a float64
 * finite-difference check of the pooler + head gradient, HF-style head
 * initialisation, and loading the trunk of one of our MLM checkpoints and of
 * an HF directory (bare BertModel names, with a pooler), with errors naming
 * what is missing or foreign.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  backward, BertForMaskedLM, BertForSequenceClassification, saveCheckpoint, saveSafetensors, tensor, unpadBatch,
  type BertConfigInput, type Tensor,
} from '../src/index.js';
import { hfBertConfig } from '../src/models/bert/hf-config.js';
import { bertConfig } from '../src/models/bert/config.js';
import { gradcheck } from './helpers/gradcheck.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const tiny: BertConfigInput = { vocabSize: 13, hidden: 8, layers: 2, heads: 2, intermediate: 16, maxPosition: 10, hiddenDropout: 0 };

/** [CLS] a b [SEP] (c d [SEP]) right-padded to L; types 1 on the second segment. */
function pairBatch(L: number) {
  const rows = [[2, 5, 6, 3, 7, 8, 9, 3], [2, 10, 3], [2, 4, 11, 12, 3, 6, 3]];
  const typeRows = [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0], [0, 0, 0, 0, 0, 1, 1]];
  const pad = (r: number[]) => [...r, ...new Array<number>(L - r.length).fill(0)];
  return {
    ids: tensor(rows.flatMap(pad), [3, L], 'int32'),
    attentionMask: tensor(rows.flatMap((r) => pad(r.map(() => 1))), [3, L], 'int32'),
    tokenTypeIds: tensor(typeRows.flatMap(pad), [3, L], 'int32'),
  };
}

describe('BertForSequenceClassification', () => {
  it("has Hugging Face's parameter names", () => {
    const m = new BertForSequenceClassification(tiny, { numLabels: 3 });
    const names = m.namedParameters().map(([n]) => n);
    expect(names.slice(0, 2)).toEqual(['bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight']);
    expect(names).toContain('bert.encoder.layer.1.attention.self.query.weight');
    expect(names.slice(-4)).toEqual(['bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias']);
    expect(names.some((n) => n.startsWith('cls.'))).toBe(false);
    expect(m.classifier.weight.shape).toEqual([3, 8]);
  });

  it('gives [B, C] logits for pairs; packed batches equal padded ones', () => {
    const m = new BertForSequenceClassification(tiny, { numLabels: 4, seed: 2 }).eval();
    const b = pairBatch(9);
    const padded = m.logits(b);
    expect(padded.shape).toEqual([3, 4]);
    const packed = m.logits(unpadBatch({ ...b, rows: tensor([0], [1], 'int32'), targets: tensor([0], [1], 'int32') }));
    assertClose(packed.toArray(), padded.toArray(), tolFor('float32'), 'packed vs padded');
    // The token types reach the encoder: other types, other logits.
    const swapped = m.logits({ ...b, tokenTypeIds: tensor(new Array(27).fill(0), [3, 9], 'int32') });
    expect(Array.from(swapped.toArray())).not.toEqual(Array.from(padded.toArray()));
  });

  it('passes a float64 gradient check through the pooler and head', () => {
    const m = new BertForSequenceClassification(tiny, { numLabels: 3, dtype: 'float64', seed: 4 });
    const b = pairBatch(8);
    const only = [m.bert.pooler.dense.weight, m.bert.pooler.dense.bias, m.classifier.weight, m.classifier.bias];
    gradcheck(() => m.logits(b), only as Tensor[], { tol: { atol: 1e-7, rtol: 1e-5 } });
    // And the loss's gradient reaches the word embeddings.
    const loss = m.loss(b, tensor([0, 2, 1], [3], 'int32'));
    backward(loss);
    expect(m.bert.embeddings.word_embeddings.weight.grad).not.toBeNull();
  });

  it('initialises the pooler and head as HF does: N(0, 0.02²) weights, zero biases', () => {
    const m = new BertForSequenceClassification({ ...tiny, hidden: 64, heads: 4 }, { numLabels: 50, seed: 9 });
    const w = Array.from(m.classifier.weight.toArray());
    const sd = Math.sqrt(w.reduce((a, x) => a + x * x, 0) / w.length);
    expect(Math.abs(sd - 0.02)).toBeLessThan(0.002);
    // Not truncated at 2σ, as torch's normal_ is not.
    expect(w.some((x) => Math.abs(x) > 0.04)).toBe(true);
    expect(Array.from(m.classifier.bias!.toArray()).every((x) => x === 0)).toBe(true);
    expect(Array.from(m.bert.pooler.dense.bias!.toArray()).every((x) => x === 0)).toBe(true);
  });

  it('rejects fewer than two labels and bad labels', () => {
    expect(() => new BertForSequenceClassification(tiny, { numLabels: 1 })).toThrow(/numLabels/);
    const m = new BertForSequenceClassification(tiny, { numLabels: 2 });
    expect(() => m.loss(pairBatch(8), tensor([0, 2, 1], [3], 'int32'))).toThrow(/class ids in \[0, 2\).*2 at position 1/);
  });
});

describe('BertForSequenceClassification.fromPretrained', () => {
  it("loads the trunk of one of our MLM checkpoints and reports the pooler and head as initialised", () => {
    const mlm = new BertForMaskedLM(tiny, { seed: 7 });
    const out = mkdtempSync(join(tmpdir(), 'cloze-cls-'));
    const dir = saveCheckpoint(out, { step: 3, model: mlm.stateDict(), config: hfBertConfig(bertConfig(tiny)) });
    const { model, initialised } = BertForSequenceClassification.fromPretrained(dir, { numLabels: 2, seed: 1 });
    expect(initialised).toEqual(['bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias']);
    for (const [n, p] of mlm.bert.namedParameters('bert.')) {
      expect(Array.from(model.stateDict()[n]!.toArray()), n).toEqual(Array.from(p.toArray()));
    }
    // The same trunk gives the same hidden states.
    model.eval();
    mlm.eval();
    const b = pairBatch(8);
    expect(Array.from(model.encode(b).toArray())).toEqual(Array.from(mlm.encode(b).toArray()));
  });

  it('loads an HF directory with bare BertModel names and a pooler', () => {
    const src = new BertForSequenceClassification(tiny, { numLabels: 2, seed: 5 });
    const dir = mkdtempSync(join(tmpdir(), 'cloze-hf-'));
    const bare = Object.fromEntries(
      Object.entries(src.stateDict()).filter(([k]) => k.startsWith('bert.')).map(([k, t]) => [k.slice(5), t]),
    );
    saveSafetensors(join(dir, 'model.safetensors'), { ...bare, 'embeddings.position_ids': tensor([0, 1], [2], 'int32') });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hfBertConfig(bertConfig(tiny)), architectures: ['BertModel'] }));
    const { model, initialised } = BertForSequenceClassification.fromPretrained(dir, { numLabels: 2 });
    expect(initialised).toEqual(['classifier.weight', 'classifier.bias']);
    expect(Array.from(model.bert.pooler.dense.weight.toArray())).toEqual(Array.from(src.bert.pooler.dense.weight.toArray()));
  });

  it('names missing encoder weights and foreign keys', () => {
    const m = new BertForSequenceClassification(tiny, { numLabels: 2 });
    const sd = { ...m.stateDict() };
    delete sd['bert.encoder.layer.1.output.dense.bias'];
    expect(() => m.loadPretrained(sd, 'x.safetensors')).toThrow(/every encoder weight in x.safetensors.*bert\.encoder\.layer\.1\.output\.dense\.bias/);
    expect(() => m.loadPretrained({ ...m.stateDict(), 'vit.blocks.0.weight': tensor([1]) }, 'y')).toThrow(/BERT parameter names in y.*vit\.blocks/);
  });
});
