/**
 * BertForMaskedLM: HF parameter names, forward/backward, finite-difference
 * gradients of the whole loss, post/pre-LN, ALiBi, packed (unpadded) batches
 * against padded ones, a short training run, presets and config validation.
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW, backward, BERT_PRESETS, bertConfig, bertPreset, BertForMaskedLM, Rng, scope, tensor, unpadBatch,
  type BertConfigInput, type PaddedMlmBatch, type Parameter, type Tensor,
} from '../src/index.js';
import { gradcheck } from './helpers/gradcheck.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const tiny: BertConfigInput = { vocabSize: 11, hidden: 8, layers: 1, heads: 2, intermediate: 16, maxPosition: 8, hiddenDropout: 0 };

/** A right-padded batch: B rows of the given lengths, width L, with about a third of the real tokens masked. */
function makeBatch(rng: Rng, lengths: number[], L: number, V: number, tokenTypes = false): PaddedMlmBatch {
  const B = lengths.length;
  const ids = new Array<number>(B * L).fill(0);
  const mask = new Array<number>(B * L).fill(0);
  const types = new Array<number>(B * L).fill(0);
  const rows: number[] = [];
  const targets: number[] = [];
  lengths.forEach((len, b) => {
    for (let l = 0; l < len; l++) {
      const i = b * L + l;
      ids[i] = rng.int(V);
      mask[i] = 1;
      types[i] = l >= len / 2 ? 1 : 0;
      if (rng.uniform() < 0.35 || l === 0) {
        rows.push(i);
        targets.push(ids[i]!);
        ids[i] = 1; // [MASK]
      }
    }
  });
  return {
    ids: tensor(ids, [B, L], 'int32'),
    attentionMask: tensor(mask, [B, L], 'int32'),
    ...(tokenTypes ? { tokenTypeIds: tensor(types, [B, L], 'int32') } : {}),
    rows: tensor(rows, [rows.length], 'int32'),
    targets: tensor(targets, [targets.length], 'int32'),
  };
}

function gradsOf(model: BertForMaskedLM, loss: () => Tensor): { loss: number; grads: Map<string, Float64Array> } {
  model.zeroGrad();
  for (const p of model.parameters()) p.grad = null;
  return scope(() => {
    const l = loss();
    backward(l);
    const grads = new Map<string, Float64Array>();
    for (const [n, p] of model.namedParameters()) grads.set(n, Float64Array.from(p.grad?.toArray() ?? []));
    return { loss: l.item(), grads };
  });
}

const layerNames = (i: number): string[] => {
  const p = `bert.encoder.layer.${i}.`;
  return [
    'attention.self.query.weight', 'attention.self.query.bias', 'attention.self.key.weight', 'attention.self.key.bias',
    'attention.self.value.weight', 'attention.self.value.bias', 'attention.output.dense.weight', 'attention.output.dense.bias',
    'attention.output.LayerNorm.weight', 'attention.output.LayerNorm.bias', 'intermediate.dense.weight', 'intermediate.dense.bias',
    'output.dense.weight', 'output.dense.bias', 'output.LayerNorm.weight', 'output.LayerNorm.bias',
  ].map((n) => p + n);
};

describe('BertForMaskedLM: parameters', () => {
  it("names equal Hugging Face BertForMaskedLM's, in its order, with the tied decoder once", () => {
    const m = new BertForMaskedLM({ vocabSize: 50, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 20 });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toEqual([
      'bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight',
      'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias',
      ...layerNames(0), ...layerNames(1),
      'cls.predictions.bias', 'cls.predictions.transform.dense.weight', 'cls.predictions.transform.dense.bias',
      'cls.predictions.transform.LayerNorm.weight', 'cls.predictions.transform.LayerNorm.bias',
    ]);
    const sd = m.stateDict();
    expect(sd['bert.embeddings.word_embeddings.weight']!.shape).toEqual([50, 16]);
    expect(sd['bert.embeddings.position_embeddings.weight']!.shape).toEqual([20, 16]);
    expect(sd['bert.encoder.layer.1.intermediate.dense.weight']!.shape).toEqual([32, 16]);
    expect(sd['bert.encoder.layer.1.output.dense.weight']!.shape).toEqual([16, 32]);
    expect(sd['cls.predictions.bias']!.shape).toEqual([50]);
    // The decoder is the word-embedding tensor itself: no second [V, D] parameter exists.
    expect(m.parameters().filter((p) => p.shape.join() === '50,16')).toHaveLength(1);
    expect(new Set(m.parameters()).size).toBe(names.length);
  });

  it('GeGLU, ALiBi and pre-LN variants: documented names and shapes', () => {
    const m = new BertForMaskedLM({ ...tiny, layers: 1, positionEmbedding: 'alibi', ffn: 'geglu', norm: 'pre' });
    const sd = m.stateDict();
    expect(sd['bert.embeddings.position_embeddings.weight']).toBeUndefined();
    expect(sd['bert.encoder.layer.0.intermediate.dense.weight']!.shape).toEqual([32, 8]);
    expect(sd['bert.encoder.layer.0.intermediate.dense.bias']).toBeUndefined();
    expect(sd['bert.encoder.LayerNorm.weight']!.shape).toEqual([8]);
  });
});

describe('BertForMaskedLM: forward and backward', () => {
  const variants: Array<[string, Partial<BertConfigInput>]> = [
    ['post-LN, absolute, GELU', {}],
    ['pre-LN, absolute, GELU', { norm: 'pre' }],
    ['post-LN, ALiBi, GeGLU', { positionEmbedding: 'alibi', ffn: 'geglu' }],
    ['pre-LN, ALiBi, GeGLU, 3 heads', { positionEmbedding: 'alibi', ffn: 'geglu', norm: 'pre', heads: 3, hidden: 12 }],
  ];
  for (const [name, extra] of variants)
    it(`${name}: finite loss near ln V at init, and every parameter gets a non-zero gradient`, () => {
      const cfg = { ...tiny, layers: 2, hiddenDropout: 0.1, ...extra };
      const m = new BertForMaskedLM(cfg, { seed: 3 });
      const b = makeBatch(new Rng(5), [8, 5, 6], 8, cfg.vocabSize, true);
      const { loss, grads } = gradsOf(m, () => m.loss(b));
      expect(Number.isFinite(loss)).toBe(true);
      expect(Math.abs(loss - Math.log(cfg.vocabSize))).toBeLessThan(0.5);
      for (const [n, g] of grads) {
        expect(g.length, n).toBeGreaterThan(0);
        expect(g.some((v) => v !== 0), `${n} has a zero gradient`).toBe(true);
        expect(g.every(Number.isFinite), n).toBe(true);
      }
    });

  it('post-LN and pre-LN place the norms differently: same weights, different states', () => {
    // A wide init so that the sublayers, not just the embedding LayerNorm, shape the output.
    const cfg = { ...tiny, initializerRange: 0.5 };
    const post = new BertForMaskedLM(cfg, { seed: 9 });
    const pre = new BertForMaskedLM({ ...cfg, norm: 'pre' }, { seed: 9 });
    pre.loadStateDict(post.stateDict(), { strict: false });
    const ids = tensor([3, 4, 5, 6, 7, 8], [1, 6], 'int32');
    const a = scope(() => post.encode({ ids }).toArray());
    const b = scope(() => pre.encode({ ids }).toArray());
    const maxDiff = Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    expect(maxDiff).toBeGreaterThan(0.05);
  });

  it('ALiBi makes the encoder position-aware without position embeddings', () => {
    // Identical tokens at different positions: without positions they would get identical states.
    const m = new BertForMaskedLM({ ...tiny, positionEmbedding: 'alibi', typeVocabSize: 0, initializerRange: 0.5 }, { seed: 4 });
    const h = scope(() => m.encode({ ids: tensor([5, 5, 5, 5, 7], [1, 5], 'int32') }).toArray());
    const row = (i: number): number[] => Array.from(h.slice(i * 8, i * 8 + 8));
    // Token 7 is 1 step from position 3 and 4 steps from position 0: ALiBi weights it differently.
    expect(Math.max(...row(0).map((v, j) => Math.abs(v - row(3)[j]!)))).toBeGreaterThan(1e-2);
  });

  it('ALiBi depends only on i − j: shifting a sequence inside its padding leaves its states unchanged', () => {
    const m = new BertForMaskedLM({ ...tiny, positionEmbedding: 'alibi', typeVocabSize: 0 }, { seed: 6 });
    const a = scope(() => m.encode({ ids: tensor([3, 4, 5, 0, 0], [1, 5], 'int32'), attentionMask: tensor([1, 1, 1, 0, 0], [1, 5], 'int32') }).toArray());
    const b = scope(() => m.encode({ ids: tensor([0, 0, 3, 4, 5], [1, 5], 'int32'), attentionMask: tensor([0, 0, 1, 1, 1], [1, 5], 'int32') }).toArray());
    assertClose(b.slice(16, 40), a.slice(0, 24), tolFor('float32'), 'shifted states');
  });
});

describe('BertForMaskedLM: finite-difference gradients of the loss (float64)', () => {
  const pick = (m: BertForMaskedLM, names: string[]): Parameter[] => {
    const sd = m.stateDict();
    return names.map((n) => sd[n] as Parameter);
  };
  it('post-LN, absolute positions, token types', () => {
    const m = new BertForMaskedLM(tiny, { seed: 1, dtype: 'float64' });
    const b = makeBatch(new Rng(2), [5, 3], 5, 11, true);
    gradcheck(() => m.loss(b), pick(m, [
      'bert.embeddings.word_embeddings.weight', 'bert.embeddings.position_embeddings.weight',
      'bert.encoder.layer.0.attention.self.query.weight', 'bert.encoder.layer.0.attention.output.LayerNorm.weight',
      'bert.encoder.layer.0.intermediate.dense.weight', 'cls.predictions.transform.dense.weight', 'cls.predictions.bias',
    ]));
  });
  it('pre-LN, ALiBi, GeGLU on a packed batch', () => {
    const m = new BertForMaskedLM({ ...tiny, norm: 'pre', positionEmbedding: 'alibi', ffn: 'geglu' }, { seed: 1, dtype: 'float64' });
    const b = unpadBatch(makeBatch(new Rng(3), [5, 2, 4], 5, 11));
    gradcheck(() => m.loss(b), pick(m, [
      'bert.embeddings.word_embeddings.weight', 'bert.encoder.layer.0.attention.self.key.weight',
      'bert.encoder.layer.0.intermediate.dense.weight', 'bert.encoder.LayerNorm.bias', 'cls.predictions.transform.LayerNorm.weight',
    ]));
  });
});

describe('BertForMaskedLM: packed (unpadded) batches', () => {
  for (const extra of [{}, { positionEmbedding: 'alibi', ffn: 'geglu' }] as Array<Partial<BertConfigInput>>)
    it(`give the padded batch's loss and gradients: ${JSON.stringify(extra)}`, () => {
      const m = new BertForMaskedLM({ ...tiny, layers: 2, ...extra }, { seed: 8, dtype: 'float64' });
      const padded = makeBatch(new Rng(4), [7, 3, 5, 1], 7, 11, true);
      const packed = unpadBatch(padded);
      expect(packed.ids.shape).toEqual([16]);
      expect(Array.from(packed.cuSeqlens.toArray())).toEqual([0, 7, 10, 15, 16]);
      expect(packed.maxSeqlen).toBe(7);
      const a = gradsOf(m, () => m.loss(padded));
      const b = gradsOf(m, () => m.loss(packed));
      assertClose([b.loss], [a.loss], tolFor('float64'), 'loss');
      for (const [n, g] of a.grads) assertClose(b.grads.get(n)!, g, tolFor('float64'), n);
    });

  it('unpadBatch rejects left padding and masked rows on padding', () => {
    const ids = tensor([1, 2, 3, 4], [2, 2], 'int32');
    const one = tensor([0], [1], 'int32');
    expect(() => unpadBatch({ ids, attentionMask: tensor([0, 1, 1, 1], [2, 2], 'int32'), rows: one, targets: one })).toThrow(/right padding/);
    expect(() =>
      unpadBatch({ ids, attentionMask: tensor([1, 0, 1, 1], [2, 2], 'int32'), rows: tensor([1], [1], 'int32'), targets: one }),
    ).toThrow(/masked rows at real tokens for rows/);
  });
});

describe('BertForMaskedLM: training', () => {
  it('loss falls over 100 AdamW steps on a repetitive synthetic corpus, and accuracy rises', () => {
    const V = 16;
    const MASK = 1;
    const m = new BertForMaskedLM({ vocabSize: V, hidden: 32, layers: 2, heads: 2, intermediate: 64, maxPosition: 16, hiddenDropout: 0 }, { seed: 0 });
    const opt = new AdamW(m.parameters(), { lr: 3e-3, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 1e-5 });
    const rng = new Rng(12);
    // Each sequence repeats one of 4 fixed period-3 patterns over tokens 2..15: masked tokens are recoverable from context.
    const patterns = Array.from({ length: 4 }, () => [2 + rng.int(V - 2), 2 + rng.int(V - 2), 2 + rng.int(V - 2)]);
    const batch = (): PaddedMlmBatch => {
      const B = 8;
      const L = 12;
      const ids: number[] = [];
      const rows: number[] = [];
      const targets: number[] = [];
      for (let b = 0; b < B; b++) {
        const pat = patterns[rng.int(patterns.length)]!;
        for (let l = 0; l < L; l++) {
          const t = pat[l % 3]!;
          if (rng.uniform() < 0.15) {
            rows.push(b * L + l);
            targets.push(t);
            ids.push(MASK);
          } else ids.push(t);
        }
      }
      return { ids: tensor(ids, [B, L], 'int32'), rows: tensor(rows, [rows.length], 'int32'), targets: tensor(targets, [targets.length], 'int32') };
    };
    const evalBatch = batch();
    const acc0 = scope(() => m.accuracy(evalBatch));
    const losses: number[] = [];
    for (let step = 0; step < 100; step++) {
      opt.zeroGrad();
      losses.push(
        scope(() => {
          const l = m.loss(batch());
          backward(l);
          return l.item();
        }),
      );
      opt.step();
    }
    const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
    const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
    expect(last).toBeLessThan(0.5 * first);
    const acc1 = scope(() => m.accuracy(evalBatch));
    expect(acc1.count).toBe(evalBatch.targets.size);
    expect(acc1.correct / acc1.count).toBeGreaterThan(acc0.correct / acc0.count + 0.3);
  });
});

describe('BERT presets and config validation', () => {
  it('presets have the published sizes; MosaicBERT adds ALiBi, GeGLU, unpadding, a 64-multiple vocabulary and its recipe', () => {
    const sizes = Object.fromEntries(Object.entries(BERT_PRESETS).map(([k, p]) => [k, [p.config.layers, p.config.hidden, p.config.heads, p.config.intermediate]]));
    expect(sizes).toEqual({
      'bert-tiny': [2, 128, 2, 512], 'bert-mini': [4, 256, 4, 1024], 'bert-small': [4, 512, 8, 2048], 'bert-base': [12, 768, 12, 3072],
      'mosaic-bert-mini': [4, 256, 4, 1024], 'mosaic-bert-base': [12, 768, 12, 3072],
    });
    for (const p of Object.values(BERT_PRESETS)) expect(() => bertConfig(p.config)).not.toThrow();
    const mb = bertPreset('mosaic-bert-base', { vocabSize: 30522 });
    expect(mb.config.vocabSize).toBe(30528);
    expect(mb.config.positionEmbedding).toBe('alibi');
    expect(mb.config.ffn).toBe('geglu');
    expect(mb.unpadded).toBe(true);
    expect(mb.recipe).toEqual({
      maskRatio: 0.3, evalMaskRatio: 0.15, optimizer: { lr: 5e-4, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 1e-5 },
      warmupFraction: 0.06, finalLrFactor: 0.02,
    });
    expect(bertPreset('bert-base', { vocabSize: 30522 }).config.vocabSize).toBe(30522);
  });

  it('errors name the field', () => {
    const base = { vocabSize: 10, hidden: 8, layers: 1, heads: 2, intermediate: 16 };
    expect(() => bertConfig({ ...base, attentionDropout: 0.1 })).toThrow(
      'Expected 0 (the fused attention kernel has no attention-probability dropout) for attentionDropout but received 0.1',
    );
    expect(() => bertConfig({ ...base, hidden: 9 })).toThrow('Expected a width divisible by heads (2) for hidden but received 9');
    expect(() => bertConfig({ ...base, vocabSize: 0 })).toThrow(/for vocabSize but received 0/);
    expect(() => bertConfig({ ...base, ffn: 'swiglu' as never })).toThrow(/Expected one of 'gelu', 'geglu' for ffn but received/);
    expect(() => bertConfig({ ...base, norm: 'sandwich' as never })).toThrow(/for norm but/);
    expect(() => bertConfig({ ...base, positionEmbedding: 'rope' as never })).toThrow(/for positionEmbedding but/);
    expect(() => bertConfig({ ...base, hiddenDropout: 1.5 })).toThrow(/for hiddenDropout but received 1.5/);
    expect(() => bertConfig({ ...base, tieWordEmbeddings: false })).toThrow(/for tieWordEmbeddings but received false/);
    expect(() => bertConfig({ ...base, intermediate: undefined as never })).toThrow(/for intermediate but/);
    expect(() => new BertForMaskedLM({ ...base, attentionDropout: 0.1 })).toThrow(/attentionDropout/);
  });

  it('the model rejects sequences longer than maxPosition and token types without a table', () => {
    const m = new BertForMaskedLM({ ...tiny, maxPosition: 4 });
    const one = tensor([0], [1], 'int32');
    expect(() => scope(() => m.loss({ ids: tensor([1, 2, 3, 4, 5], [1, 5], 'int32'), rows: one, targets: one }))).toThrow(
      /at most maxPosition \(4\) tokens for ids but received 5/,
    );
    const n = new BertForMaskedLM({ ...tiny, typeVocabSize: 0 });
    const ids = tensor([1, 2], [1, 2], 'int32');
    expect(() => scope(() => n.loss({ ids, tokenTypeIds: ids, rows: one, targets: one }))).toThrow(/for tokenTypeIds/);
  });
});
