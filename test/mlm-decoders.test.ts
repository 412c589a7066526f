/**
 * Enhanced MLM decoders (pretrain --decoder emd|drbert): forward against a
 * plain-loop float64 re-implementation, finite-difference gradients through
 * the decoder, the plain layer path unchanged, export dropping the decoder,
 * exact resume, and bad settings naming the field.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BertForMaskedLM, BertForSequenceClassification, Rng, scope, tensor, unpadBatch,
  type BertConfigInput, type PaddedMlmBatch, type Parameter, type Tensor,
} from '../src/index.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadSafetensors } from '../src/checkpoint/safetensors.js';
import { exportCheckpoint } from '../src/commands/export.js';
import type { MlmDecoder } from '../src/models/bert/model.js';
import { pretrain } from '../src/tasks/pretrain.js';
import { maskedLMOf } from '../src/tasks/finetune/model.js';
import { bertConfigFromHf } from '../src/models/bert/hf-config.js';
import { gradcheck } from './helpers/gradcheck.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';
import { gelu, layerNormRef } from './helpers/reference.js';
import { assertClose } from './helpers/tolerance.js';
import { straightAndResumed } from './helpers/resume.js';

const tiny: BertConfigInput = { vocabSize: 13, hidden: 8, layers: 2, heads: 2, intermediate: 16, maxPosition: 8, hiddenDropout: 0, initializerRange: 0.3 };
const DRBERT: MlmDecoder = { kind: 'drbert', layers: 2, unmaskFraction: 0.5, mixProb: 0.5 };

function makeBatch(rng: Rng, lengths: number[], L: number, V: number): PaddedMlmBatch {
  const B = lengths.length;
  const ids = new Array<number>(B * L).fill(0);
  const mask = new Array<number>(B * L).fill(0);
  const rows: number[] = [];
  const targets: number[] = [];
  lengths.forEach((len, b) => {
    for (let l = 0; l < len; l++) {
      const i = b * L + l;
      ids[i] = rng.int(V);
      mask[i] = 1;
      // Position 0 stays visible (as [CLS] is never masked), so no query loses every key.
      if (l > 0 && (rng.uniform() < 0.45 || l === 1)) {
        rows.push(i);
        targets.push(ids[i]!);
        ids[i] = 1;
      }
    }
  });
  return { ids: tensor(ids, [B, L], 'int32'), attentionMask: tensor(mask, [B, L], 'int32'), rows: tensor(rows, [rows.length], 'int32'), targets: tensor(targets, [targets.length], 'int32') };
}

// ---- the plain-loop float64 reference (post-LN BERT) ----
type SD = Record<string, Float64Array>;
const arrays = (m: BertForMaskedLM): SD => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, Float64Array.from(t.toArray())]));

function linearRef(x: Float64Array, w: Float64Array, b: Float64Array | undefined, N: number, I: number, O: number): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < I; i++) s += x[n * I + i]! * w[o * I + i]!;
      y[n * O + o] = s;
    }
  return y;
}
const addRef = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]!);

/** One post-LN layer: queries (and the residual) from x, keys and values from kv; masked(b, q, k) hides a key. */
function layerRef(sd: SD, p: string, x: Float64Array, kv: Float64Array, B: number, L: number, c: Required<Pick<BertConfigInput, 'hidden' | 'heads' | 'intermediate'>>, masked: (b: number, q: number, k: number) => boolean): Float64Array {
  const D = c.hidden, H = c.heads, Dh = D / H, N = B * L, eps = 1e-12;
  const q = linearRef(x, sd[`${p}attention.self.query.weight`]!, sd[`${p}attention.self.query.bias`], N, D, D);
  const k = linearRef(kv, sd[`${p}attention.self.key.weight`]!, sd[`${p}attention.self.key.bias`], N, D, D);
  const v = linearRef(kv, sd[`${p}attention.self.value.weight`]!, sd[`${p}attention.self.value.bias`], N, D, D);
  const ctx = new Float64Array(N * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L; i++) {
        const s = new Float64Array(L).fill(-Infinity);
        for (let j = 0; j < L; j++) {
          if (masked(b, i, j)) continue;
          let d = 0;
          for (let e = 0; e < Dh; e++) d += q[(b * L + i) * D + h * Dh + e]! * k[(b * L + j) * D + h * Dh + e]!;
          s[j] = d / Math.sqrt(Dh);
        }
        const mx = Math.max(...s);
        const w = s.map((z) => Math.exp(z - mx));
        const tot = w.reduce((a, z) => a + z, 0);
        for (let j = 0; j < L; j++) for (let e = 0; e < Dh; e++) ctx[(b * L + i) * D + h * Dh + e] += (w[j]! / tot) * v[(b * L + j) * D + h * Dh + e]!;
      }
  const a = linearRef(ctx, sd[`${p}attention.output.dense.weight`]!, sd[`${p}attention.output.dense.bias`], N, D, D);
  const h1 = layerNormRef(addRef(x, a), D, sd[`${p}attention.output.LayerNorm.weight`]!, sd[`${p}attention.output.LayerNorm.bias`]!, eps);
  const f = linearRef(h1, sd[`${p}intermediate.dense.weight`]!, sd[`${p}intermediate.dense.bias`], N, D, c.intermediate).map(gelu);
  const o = linearRef(f, sd[`${p}output.dense.weight`]!, sd[`${p}output.dense.bias`], N, c.intermediate, D);
  return layerNormRef(addRef(h1, o), D, sd[`${p}output.LayerNorm.weight`]!, sd[`${p}output.LayerNorm.bias`]!, eps);
}

/** The mean MLM loss of the reference: embeddings, encoder layers, then `decode` (hidden states → the rows' [M, D] head inputs), head, CE. */
function lossRef(m: BertForMaskedLM, batch: PaddedMlmBatch, decode: (sd: SD, emb: Float64Array, pad: (b: number, q: number, k: number) => boolean) => Float64Array): number {
  const sd = arrays(m);
  const c = m.config;
  const D = c.hidden, V = c.vocabSize;
  const [B, L] = batch.ids.shape as [number, number];
  const ids = batch.ids.toArray();
  const am = batch.attentionMask!.toArray();
  const pad = (b: number, _q: number, k: number): boolean => am[b * L + k] === 0;
  const x = new Float64Array(B * L * D);
  for (let n = 0; n < B * L; n++)
    for (let d = 0; d < D; d++)
      x[n * D + d] = sd['bert.embeddings.word_embeddings.weight']![ids[n]! * D + d]! + sd['bert.embeddings.position_embeddings.weight']![(n % L) * D + d]! + sd['bert.embeddings.token_type_embeddings.weight']![d]!;
  const emb = layerNormRef(x, D, sd['bert.embeddings.LayerNorm.weight']!, sd['bert.embeddings.LayerNorm.bias']!, 1e-12);
  const hm = decode(sd, emb, pad);
  const M = hm.length / D;
  const t = layerNormRef(linearRef(hm, sd['cls.predictions.transform.dense.weight']!, sd['cls.predictions.transform.dense.bias'], M, D, D).map(gelu), D,
    sd['cls.predictions.transform.LayerNorm.weight']!, sd['cls.predictions.transform.LayerNorm.bias']!, 1e-12);
  const logits = linearRef(t, sd['bert.embeddings.word_embeddings.weight']!, sd['cls.predictions.bias'], M, D, V);
  const tg = batch.targets.toArray();
  let loss = 0;
  for (let r = 0; r < M; r++) {
    const row = logits.slice(r * V, (r + 1) * V);
    const mx = Math.max(...row);
    loss += mx + Math.log(row.reduce((a, z) => a + Math.exp(z - mx), 0)) - row[tg[r]!]!;
  }
  return loss / M;
}

const gatherRows = (h: Float64Array, rows: ArrayLike<number>, D: number): Float64Array => {
  const out = new Float64Array(rows.length * D);
  Array.from(rows).forEach((r, i) => out.set(h.subarray(r * D, (r + 1) * D), i * D));
  return out;
};

function emdRef(m: BertForMaskedLM, batch: PaddedMlmBatch): number {
  const c = { hidden: m.config.hidden, heads: m.config.heads, intermediate: m.config.intermediate };
  const [B, L] = batch.ids.shape as [number, number];
  const n = m.config.layers;
  return lossRef(m, batch, (sd, emb, pad) => {
    let h = emb;
    for (let i = 0; i < n - 1; i++) h = layerRef(sd, `bert.encoder.layer.${i}.`, h, h, B, L, c, pad);
    let q: Float64Array<ArrayBufferLike> = new Float64Array(h.length);
    for (let r = 0; r < B * L; r++) for (let d = 0; d < c.hidden; d++) q[r * c.hidden + d] = h[r * c.hidden + d]! + sd['bert.embeddings.position_embeddings.weight']![(r % L) * c.hidden + d]!;
    for (let pass = 0; pass < 2; pass++) q = layerRef(sd, `bert.encoder.layer.${n - 1}.`, q, h, B, L, c, pad);
    return gatherRows(q, batch.rows.toArray(), c.hidden);
  });
}

/** DrBERT's reference with its draws written out: u per masked row, then the mix per masked row, from Rng(seed). */
function drbertRef(m: BertForMaskedLM, batch: PaddedMlmBatch, seed: number, dec: { layers: number; unmaskFraction: number; mixProb: number }): number {
  const c = { hidden: m.config.hidden, heads: m.config.heads, intermediate: m.config.intermediate };
  const D = c.hidden;
  const [B, L] = batch.ids.shape as [number, number];
  const rows = Array.from(batch.rows.toArray());
  const rng = new Rng(seed);
  const u = rows.map(() => rng.uniform());
  const fromDec = rows.map(() => rng.uniform() < dec.mixProb);
  return lossRef(m, batch, (sd, emb, pad) => {
    let e = emb;
    for (let i = 0; i < m.config.layers; i++) e = layerRef(sd, `bert.encoder.layer.${i}.`, e, e, B, L, c, pad);
    let h = e;
    for (let i = 0; i < dec.layers; i++) {
      const t = dec.layers === 1 ? dec.unmaskFraction : dec.unmaskFraction + ((1 - dec.unmaskFraction) * i) / (dec.layers - 1);
      const hidden = new Set(rows.filter((_, r) => u[r]! >= t));
      h = layerRef(sd, `cls.drbert.layer.${i}.`, h, h, B, L, c, (b, q, k) => pad(b, q, k) || hidden.has(b * L + k));
    }
    const out = new Float64Array(rows.length * D);
    rows.forEach((r, i) => out.set((fromDec[i] ? h : e).subarray(r * D, (r + 1) * D), i * D));
    return out;
  });
}

const pick = (m: BertForMaskedLM, names: string[]): Parameter[] => {
  const sd = m.stateDict();
  return names.map((n) => sd[n] as Parameter);
};

describe('MLM decoders: forward against a float64 reference', () => {
  it('EMD: the last layer twice more, queries H + positions, keys and values H', () => {
    const m = new BertForMaskedLM(tiny, { seed: 3, dtype: 'float64', decoder: { kind: 'emd' } });
    const b = makeBatch(new Rng(7), [7, 4, 6], 7, 13);
    const got = scope(() => m.loss(b).item());
    assertClose([got], [emdRef(m, b)], { atol: 1e-10, rtol: 1e-9 }, 'EMD loss');
    // EMD has no parameters of its own: the same names as the plain model.
    const plain = new BertForMaskedLM(tiny, { seed: 3, dtype: 'float64' });
    expect(Object.keys(m.stateDict())).toEqual(Object.keys(plain.stateDict()));
    // …and it changes the loss (the decoder runs).
    expect(Math.abs(scope(() => plain.loss(b).item()) - got)).toBeGreaterThan(1e-6);
    // Packed batches give the padded batch's loss.
    assertClose([scope(() => m.loss(unpadBatch(b)).item())], [got], { atol: 1e-10, rtol: 1e-9 }, 'EMD packed loss');
  });

  for (const dec of [DRBERT, { kind: 'drbert', layers: 3, unmaskFraction: 0.3, mixProb: 0.7 }] as Array<Extract<MlmDecoder, { kind: 'drbert' }>>)
    it(`DrBERT ${JSON.stringify(dec)}: gradual unmasking blocks and the per-position mix`, () => {
      const m = new BertForMaskedLM(tiny, { seed: 5, dtype: 'float64', decoder: dec });
      const b = makeBatch(new Rng(11), [8, 5, 7], 8, 13);
      for (const seed of [0, 12345, 987654321]) {
        const got = scope(() => m.loss(b, { drawSeed: seed }).item());
        assertClose([got], [drbertRef(m, b, seed, dec)], { atol: 1e-10, rtol: 1e-9 }, `DrBERT loss, seed ${seed}`);
      }
      expect(Object.keys(m.stateDict()).filter((k) => k.startsWith('cls.drbert.layer.'))).toHaveLength(16 * dec.layers);
      // The draws are a pure function of the seed.
      expect(scope(() => m.loss(b, { drawSeed: 42 }).item())).toBe(scope(() => m.loss(b, { drawSeed: 42 }).item()));
    });

  it("the decoder leaves the encoder's init unchanged: same seed, same encoder and head weights", () => {
    const plain = new BertForMaskedLM(tiny, { seed: 9 }).stateDict();
    const dr = new BertForMaskedLM(tiny, { seed: 9, decoder: DRBERT }).stateDict();
    for (const [k, t] of Object.entries(plain)) expect(Array.from(dr[k]!.toArray()), k).toEqual(Array.from(t.toArray()));
  });

  it('a layer forward with kv = its input equals the plain forward (float32 round-off)', () => {
    // The plain forward projects q, k and v with one stacked GEMM (the fused QKV projection); with kv it takes three,
    // whose products the BLAS may sum in another order: equal up to float32 round-off, not bit for bit.
    const x = tensor(Array.from({ length: 2 * 5 * 8 }, (_, i) => Math.sin(i)), [2, 5, 8]);
    for (const norm of ['post', 'pre'] as const) {
      const mm = new BertForMaskedLM({ ...tiny, norm }, { seed: 2 });
      const l = mm.bert.encoder.layer.items[0]!;
      const a = scope(() => l.forward(x, {}).toArray());
      const c = scope(() => l.forward(x, {}, undefined, { kv: x }).toArray());
      assertClose(Array.from(c), Array.from(a), { atol: 1e-6, rtol: 1e-6 }, `${norm}-LN layer, kv = x`);
    }
  });
});

describe('MLM decoders: finite-difference gradients through the decoder (float64)', () => {
  it('EMD, post-LN', () => {
    const m = new BertForMaskedLM({ ...tiny, hidden: 4, intermediate: 8, vocabSize: 7 }, { seed: 1, dtype: 'float64', decoder: { kind: 'emd' } });
    const b = makeBatch(new Rng(2), [5, 3], 5, 7);
    gradcheck(() => m.loss(b), pick(m, [
      'bert.embeddings.position_embeddings.weight', 'bert.encoder.layer.0.attention.self.value.weight',
      'bert.encoder.layer.1.attention.self.query.weight', 'bert.encoder.layer.1.attention.self.key.weight',
      'bert.encoder.layer.1.output.LayerNorm.weight', 'cls.predictions.transform.dense.weight',
    ]));
  });
  it('EMD, pre-LN on a packed batch', () => {
    const m = new BertForMaskedLM({ ...tiny, hidden: 4, intermediate: 8, vocabSize: 7, norm: 'pre' }, { seed: 1, dtype: 'float64', decoder: { kind: 'emd' } });
    const b = unpadBatch(makeBatch(new Rng(3), [5, 2, 4], 5, 7));
    gradcheck(() => m.loss(b), pick(m, [
      'bert.encoder.layer.1.attention.output.LayerNorm.weight', 'bert.encoder.layer.1.attention.self.key.bias',
      'bert.encoder.layer.1.intermediate.dense.weight', 'bert.encoder.LayerNorm.bias',
    ]));
  });
  it('DrBERT', () => {
    const m = new BertForMaskedLM({ ...tiny, hidden: 4, intermediate: 8, vocabSize: 7 }, { seed: 1, dtype: 'float64', decoder: DRBERT });
    const b = makeBatch(new Rng(4), [6, 4], 6, 7);
    gradcheck(() => m.loss(b, { drawSeed: 77 }), pick(m, [
      'bert.encoder.layer.1.attention.self.query.weight', 'cls.drbert.layer.0.attention.self.key.weight',
      'cls.drbert.layer.0.output.dense.weight', 'cls.drbert.layer.1.attention.self.value.weight', 'cls.drbert.layer.1.output.LayerNorm.bias',
    ]));
  });
});

describe('MLM decoders: bad input', () => {
  it('EMD refuses a model without a position table; DrBERT refuses a packed batch', () => {
    expect(() => new BertForMaskedLM({ ...tiny, positionEmbedding: 'alibi' }, { decoder: { kind: 'emd' } })).toThrow(/position table.*positionEmbedding/);
    const m = new BertForMaskedLM(tiny, { decoder: DRBERT });
    const b = unpadBatch(makeBatch(new Rng(1), [5, 3], 5, 13));
    expect(() => scope(() => m.loss(b))).toThrow(/padded batch for decoder drbert/);
    expect(() => new BertForMaskedLM(tiny, { decoder: { ...DRBERT, unmaskFraction: 2 } })).toThrow(/unmaskFraction/);
  });
});

describe('pretrain --decoder', () => {
  const root = mkdtempSync(join(tmpdir(), 'cloze-decoders-'));
  let corpus = '';
  let tokenizer = '';
  const base = { maxLength: 32, batchSize: 8, evalBatches: 2, logEvery: 5, threads: 0, evalEvery: 100, saveEvery: 100 };
  beforeAll(async () => {
    corpus = writeFixtureCorpus(join(root, 'data'));
    tokenizer = fixtureTokenizerIn(root);
  });

  for (const decoder of ['emd', 'drbert'])
    it(`${decoder}: resumes exactly`, async () => {
      const cfg = { ...base, data: corpus, tokenizer, maxSteps: 8, decoder };
      const { straight, resumed, stoppedAt, finalStep } = await straightAndResumed(pretrain, cfg, join(root, `${decoder}-resume`), 3);
      expect(stoppedAt).toBe(3);
      expect(finalStep).toBe(8);
      expect(resumed).toEqual(straight);
      // The decoder changes training: not the plain run's losses.
      if (decoder === 'drbert') {
        const plain: number[] = [];
        await pretrain({ ...cfg, decoder: 'none', maxSteps: 2, out: join(root, 'plain') }, { output: null, onStep: (s) => plain.push(s.loss) });
        expect(plain[1]).not.toBe(straight[1]);
      }
    });

  it('export drops the DrBERT blocks and writes the encoder and head bit for bit; fine-tuning ignores them', async () => {
    const r = await pretrain({ ...base, data: corpus, tokenizer, maxSteps: 3, decoder: 'drbert', out: join(root, 'dr-export') }, { output: null });
    const ck = loadCheckpoint(r.checkpoint!);
    const keys = Object.keys(ck.model);
    expect(keys.filter((k) => k.startsWith('cls.drbert.layer.1.'))).toHaveLength(16);
    exportCheckpoint(r.outDir, join(root, 'dr-exported'));
    const ex = loadSafetensors(join(root, 'dr-exported', 'model.safetensors'));
    expect(Object.keys(ex).sort()).toEqual(keys.filter((k) => !k.startsWith('cls.drbert.')).sort());
    for (const [k, t] of Object.entries(ex)) expect(Buffer.from((t as Tensor).toArray().buffer).equals(Buffer.from(ck.model[k]!.toArray().buffer)), k).toBe(true);
    // The export loads as a plain BertForMaskedLM; the MLM-head fine-tuning methods and a classifier read the checkpoint itself, skipping cls.drbert.*.
    const exported = loadCheckpoint(join(root, 'dr-exported'));
    maskedLMOf(exported, join(root, 'dr-exported'), 0).dispose();
    exported.dispose();
    maskedLMOf(ck, r.checkpoint!, 0).dispose();
    const clf = new BertForSequenceClassification(bertConfigFromHf(ck.config, 'config.json'), { numLabels: 2 });
    clf.loadPretrained(ck.model);
    clf.dispose();
    ck.dispose();
  });

  it('bad settings name the field', async () => {
    await expect(pretrain({ ...base, data: corpus, tokenizer, maxSteps: 1, decoder: 'emd', preset: 'mosaic-bert-mini', out: join(root, 'bad1') }, { output: null }))
      .rejects.toThrow(/absolute position embeddings for decoder emd.*mosaic-bert-mini/);
    await expect(pretrain({ ...base, data: corpus, tokenizer, maxSteps: 1, decoder: 'drbert', preset: 'mosaic-bert-mini', out: join(root, 'bad4') }, { output: null }))
      .rejects.toThrow(/padded batches for decoder drbert.*mosaic-bert-mini/);
    await expect(pretrain({ ...base, data: corpus, tokenizer, maxSteps: 1, decoder: 'drbert', objective: 'electra', out: join(root, 'bad2') }, { output: null }))
      .rejects.toThrow(/decoder 'none' with objective electra.*decoder 'drbert'/);
    await expect(pretrain({ ...base, data: corpus, tokenizer, maxSteps: 1, decoder: 'deberta', out: join(root, 'bad3') }, { output: null }))
      .rejects.toThrow(/decoder/);
  });
});
