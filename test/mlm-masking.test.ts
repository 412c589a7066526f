/**
 * MLM masking: the selection strategies (token, whole word, span, n-gram) and
 * the option checks of applyMlmMasking. Its kernel, mlmMask, is tested in
 * test/ops/mlm_mask.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  applyMlmMasking, buildNgramLexicon, Rng, selectNgrams, selectSpans, selectTokens, selectWholeWords, tensor, type Tensor,
} from '../src/index.js';
import { sampleSpanLength } from '../src/masking/span.js';
import { batch, CLS, FIRST, groupsOf, isSpecial, MASK, sdTol, SEP, SPECIAL } from './helpers/mlm-batch.js';

describe('selectTokens', () => {
  const { ids, data } = batch(16, 133, 500, 3);
  const nCand = (b: number): number => data.subarray(b * 133, b * 133 + 133).filter((v) => !isSpecial(v)).length;

  for (const ratio of [0, 0.15, 0.3, 1]) {
    it(`selects exactly round(${ratio}·n) non-special tokens per sequence`, () => {
      const sel = selectTokens(ids, { ratio, special: SPECIAL, seed: 7 });
      for (let b = 0; b < 16; b++) {
        let k = 0;
        for (let l = 0; l < 133; l++) {
          const i = b * 133 + l;
          if (sel.select[i]) expect(isSpecial(data[i]!)).toBe(false);
          k += sel.select[i]!;
        }
        expect(k).toBe(Math.round(ratio * nCand(b)));
      }
      expect(sel.group).toBeNull();
    });
  }

  it('special flags work like special ids; same seed same selection, another seed another', () => {
    const flags = Uint8Array.from(data, (v) => (isSpecial(v) ? 1 : 0));
    const a = selectTokens(ids, { special: SPECIAL, seed: 1 });
    expect(selectTokens(ids, { special: flags, seed: 1 }).select).toEqual(a.select);
    expect(selectTokens(ids, { special: new Set(SPECIAL), seed: 1 }).select).toEqual(a.select);
    expect(selectTokens(ids, { special: SPECIAL, seed: 2 }).select).not.toEqual(a.select);
  });

  it('every position is equally likely', () => {
    const B = 4000, L = 20;
    const sel = selectTokens(tensor(new Int32Array(B * L).fill(FIRST), [B, L], 'int32'), { ratio: 0.15, seed: 5 });
    for (let l = 0; l < L; l++) {
      let c = 0;
      for (let b = 0; b < B; b++) c += sel.select[b * L + l]!;
      expect(Math.abs(c / B - 3 / 20)).toBeLessThan(sdTol(3 / 20, B));
    }
  });
});

/** A vocabulary of words and "##" pieces, and sequences of whole words of 1–4 pieces. */
function wordBatch(B: number, L: number, seed: number): { ids: Tensor; data: Int32Array; vocab: string[] } {
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  for (let i = 0; i < 200; i++) vocab.push(`w${i}`, `##p${i}`);
  const rng = new Rng(seed);
  const data = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    let l = 0;
    data[b * L + l++] = CLS;
    while (l < L - 1) {
      data[b * L + l++] = FIRST + 2 * rng.int(200);
      const pieces = rng.int(4);
      for (let j = 0; j < pieces && l < L - 1; j++) data[b * L + l++] = FIRST + 1 + 2 * rng.int(200);
    }
    data[b * L + L - 1] = SEP;
  }
  return { ids: tensor(data, [B, L], 'int32'), data, vocab };
}

/** [start, end) word ranges of a row; a word starts at a non-"##" piece. */
function words(data: Int32Array, vocab: string[], b: number, L: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let l = 0; l < L; l++) {
    const id = data[b * L + l]!;
    if (isSpecial(id)) continue;
    if (!vocab[id]!.startsWith('##') || out.length === 0 || out[out.length - 1]![1] !== l) out.push([l, l + 1]);
    else out[out.length - 1]![1] = l + 1;
  }
  return out;
}

describe('selectWholeWords', () => {
  const B = 12, L = 150;
  const { ids, data, vocab } = wordBatch(B, L, 4);

  for (const ratio of [0, 0.15, 0.4, 1]) {
    it(`keeps words whole, stays within round(${ratio}·n), and stops only when no word fits`, () => {
      const sel = selectWholeWords(ids, { ratio, vocab, special: SPECIAL, seed: 9 });
      for (let b = 0; b < B; b++) {
        const ws = words(data, vocab, b, L);
        const n = ws.reduce((s, [a, e]) => s + e - a, 0);
        const budget = Math.round(ratio * n);
        let taken = 0;
        const free: number[] = [];
        for (const [s, e] of ws) {
          const k = sel.select.subarray(b * L + s, b * L + e).reduce((x, y) => x + y, 0);
          expect(k === 0 || k === e - s).toBe(true);
          taken += k;
          if (k === 0) free.push(e - s);
        }
        expect(taken).toBeLessThanOrEqual(budget);
        expect(free.every((len) => len > budget - taken)).toBe(true);
        if (ratio === 1) expect(taken).toBe(n);
        for (const i of [b * L, b * L + L - 1]) expect(sel.select[i]).toBe(0);
      }
    });
  }

  it('word-start flags give the same selection as the vocabulary', () => {
    const starts = Uint8Array.from(data, (id) => (vocab[id]!.startsWith('##') ? 0 : 1));
    const a = selectWholeWords(ids, { vocab, special: SPECIAL, seed: 2 });
    expect(selectWholeWords(ids, { wordStarts: starts, special: SPECIAL, seed: 2 }).select).toEqual(a.select);
    expect(a.select.reduce((x, y) => x + y, 0)).toBeGreaterThan(B * 15);
  });
});

describe('selectSpans', () => {
  it('span lengths follow Geometric(0.2) renormalised over 1..10 (mean ≈ 3.8)', () => {
    const p = 0.2, q = 0.8, N = 40000;
    const probs = Array.from({ length: 10 }, (_, k) => (p * q ** k) / (1 - q ** 10));
    const mean = probs.reduce((s, pk, k) => s + (k + 1) * pk, 0);
    const sd = Math.sqrt(probs.reduce((s, pk, k) => s + (k + 1 - mean) ** 2 * pk, 0));
    expect(mean).toBeCloseTo(3.8, 1);
    const rng = new Rng(21);
    const counts = new Array<number>(11).fill(0);
    let sum = 0;
    for (let i = 0; i < N; i++) {
      const k = sampleSpanLength(rng);
      counts[k]!++;
      sum += k;
    }
    expect(counts[0]).toBe(0);
    expect(Math.abs(sum / N - mean)).toBeLessThan((5 * sd) / Math.sqrt(N));
    for (let k = 1; k <= 10; k++) expect(Math.abs(counts[k]! / N - probs[k - 1]!)).toBeLessThan(sdTol(probs[k - 1]!, N));
  });

  it('tokens as words: exactly round(ratio·n) per sequence, contiguous spans of ≤ 10 with the first position as group', () => {
    const { ids, data } = batch(20, 300, 5000, 6);
    for (const ratio of [0, 0.15, 1]) {
      const sel = selectSpans(ids, { ratio, special: SPECIAL, seed: 13 });
      for (let b = 0; b < 20; b++) {
        let k = 0, n = 0;
        for (let l = 0; l < 300; l++) {
          n += isSpecial(data[b * 300 + l]!) ? 0 : 1;
          k += sel.select[b * 300 + l]!;
        }
        expect(k).toBe(Math.round(ratio * n));
      }
      for (const [key, g] of groupsOf(sel)) {
        expect(g[0]).toBe(key);
        expect(g.length).toBeLessThanOrEqual(10);
        expect(g[g.length - 1]! - g[0]!).toBe(g.length - 1);
        for (const i of g) expect(isSpecial(data[i]!)).toBe(false);
      }
    }
  });

  it('with a vocabulary: spans are whole words, at most 10 of them, within the budget', () => {
    const B = 12, L = 400;
    const { ids, data, vocab } = wordBatch(B, L, 7);
    const sel = selectSpans(ids, { ratio: 0.15, vocab, special: SPECIAL, seed: 17 });
    const groups = groupsOf(sel);
    expect(groups.size).toBeGreaterThan(B * 5);
    for (let b = 0; b < B; b++) {
      const ws = words(data, vocab, b, L);
      const n = ws.reduce((s, [a, e]) => s + e - a, 0);
      let taken = 0;
      const free: number[] = [];
      for (const [s, e] of ws) {
        const k = sel.select.subarray(b * L + s, b * L + e).reduce((x, y) => x + y, 0);
        expect(k === 0 || k === e - s).toBe(true);
        taken += k;
        if (k === 0) free.push(e - s);
      }
      expect(taken).toBeLessThanOrEqual(Math.round(0.15 * n));
      expect(free.every((len) => len > Math.round(0.15 * n) - taken)).toBe(true);
      for (const [key, g] of groups) {
        if (Math.floor(key / L) !== b) continue;
        expect(g[g.length - 1]! - g[0]!).toBe(g.length - 1);
        const spanWords = ws.filter(([s]) => b * L + s >= g[0]! && b * L + s <= g[g.length - 1]!).length;
        expect(spanWords).toBeGreaterThanOrEqual(1);
        expect(spanWords).toBeLessThanOrEqual(10);
      }
    }
  });
});

describe('n-gram lexicon and selection', () => {
  // A corpus where three bigrams and two trigrams recur among random tokens.
  const planted = [[10, 11], [20, 21], [30, 31], [40, 41, 42], [50, 51, 52]];
  function corpus(B: number, L: number, seed: number): { ids: Tensor; data: Int32Array } {
    const rng = new Rng(seed);
    const data = new Int32Array(B * L);
    for (let b = 0; b < B; b++) {
      let l = 0;
      data[b * L + l++] = CLS;
      while (l < L - 1) {
        const g = rng.uniform() < 0.5 ? planted[rng.int(planted.length)]! : [100 + rng.int(5000)];
        for (const id of g) if (l < L - 1) data[b * L + l++] = id;
      }
      data[b * L + L - 1] = SEP;
    }
    return { ids: tensor(data, [B, L], 'int32'), data };
  }
  const B = 20, L = 2048;
  const { ids, data } = corpus(B, L, 8);
  const seqs = Array.from({ length: B }, (_, b) => data.subarray(b * L, (b + 1) * L));
  const lexicon = buildNgramLexicon(seqs, { maxN: 3, minCount: 20, special: SPECIAL });

  it('the lexicon holds the frequent n-grams with their counts, nothing rarer, nothing with specials', () => {
    for (const g of planted) expect(lexicon.counts.get(g.join(','))).toBeGreaterThanOrEqual(20);
    for (const [k, c] of lexicon.counts) {
      expect(c).toBeGreaterThanOrEqual(20);
      const n = k.split(',').map(Number);
      expect(n.length >= 2 && n.length <= 3).toBe(true);
      expect(n.some(isSpecial)).toBe(false);
    }
    // Count one bigram by hand.
    let c = 0;
    for (const s of seqs) for (let i = 0; i + 1 < s.length; i++) c += s[i] === 10 && s[i + 1] === 11 ? 1 : 0;
    expect(lexicon.counts.get('10,11')).toBe(c);
  });

  it('units are 1-grams or lexicon entries, the budget is met exactly, n follows 1/n (**ours**)', () => {
    const sel = selectNgrams(ids, { ratio: 0.15, special: SPECIAL, lexicon, seed: 5, perUnit: true });
    const bySize = [0, 0, 0, 0];
    for (const g of groupsOf(sel).values()) {
      expect(g[g.length - 1]! - g[0]!).toBe(g.length - 1);
      expect(g.length).toBeLessThanOrEqual(3);
      if (g.length > 1) expect(lexicon.counts.has(g.map((i) => data[i]).join(','))).toBe(true);
      for (const i of g) expect(isSpecial(data[i]!)).toBe(false);
      bySize[g.length]!++;
    }
    for (let b = 0; b < B; b++) {
      const k = sel.select.subarray(b * L, (b + 1) * L).reduce((x, y) => x + y, 0);
      expect(k).toBe(Math.round(0.15 * (L - 2)));
    }
    // Expected shares 6/11, 3/11, 2/11; the last unit or two of a sequence may fall back to a smaller n
    // (≤ 2 of ~190 units per sequence), hence 0.01 beside the sampling error.
    const units = bySize[1]! + bySize[2]! + bySize[3]!;
    [6 / 11, 3 / 11, 2 / 11].forEach((p, j) => {
      expect(Math.abs(bySize[j + 1]! / units - p)).toBeLessThan(sdTol(p, units, 4) + 0.01);
    });
  });

  it('ratio 0 selects nothing, ratio 1 every non-special token; per token draws by default', () => {
    expect(selectNgrams(ids, { ratio: 0, lexicon, special: SPECIAL, seed: 1 }).select.every((v) => v === 0)).toBe(true);
    const full = selectNgrams(ids, { ratio: 1, lexicon, special: SPECIAL, seed: 1 });
    expect(Array.from(full.select)).toEqual(Array.from(data, (v) => (isSpecial(v) ? 0 : 1)));
    expect(full.group).toBeNull();
  });
});

describe('bad input', () => {
  const { ids } = batch(2, 6, 50, 1);
  const sel = selectTokens(ids, { ratio: 0.5, special: SPECIAL, seed: 1 });
  const opts = { vocabSize: 50, maskId: MASK, seed: 0, step: 0 };

  it('TypeScript checks use the one wording', () => {
    expect(() => selectTokens(ids, { ratio: 1.5, seed: 0 })).toThrow('Expected a number in [0, 1] for ratio but received 1.5');
    expect(() => selectTokens(tensor([1, 2], [1, 2]), { seed: 0 })).toThrow('Expected an int32 tensor for ids but received float32 tensor [1, 2]');
    expect(() => selectTokens(ids, { special: new Uint8Array(5), seed: 0 })).toThrow('Expected a uint8 array of 12 flags for special but received 5');
    expect(() => selectWholeWords(ids, { seed: 0 })).toThrow('Expected word-start flags or a vocab for wordStarts but received undefined');
    expect(() => applyMlmMasking(ids, sel, { ...opts, maskProb: 1.2 })).toThrow('Expected a number in [0, 1] for maskProb but received 1.2');
    expect(() => applyMlmMasking(ids, sel, { ...opts, maskProb: 0.9, randomProb: 0.2 })).toThrow('for randomProb but received 0.2');
    expect(() => applyMlmMasking(ids, sel, { ...opts, randomHigh: 51 })).toThrow('Expected an integer in [1, 50] for randomHigh but received 51');
    expect(() => applyMlmMasking(ids, sel, { ...opts, maskId: 50 })).toThrow('Expected an integer in [0, 49] for maskId but received 50');
    expect(() => applyMlmMasking(ids, { ...sel, L: 5 }, opts)).toThrow('Expected a selection of shape [2, 6] for selection but received [2, 5]');
  });
});
