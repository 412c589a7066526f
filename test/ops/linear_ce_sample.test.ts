/**
 * linearSample (one token per row drawn from the softmax of the vocabulary-chunked logits, fused into the same pass
 * as linearCrossEntropy): the sampling distribution against the exact softmax (χ²), determinism under (seed, step),
 * the temperature, bad input, and the CUDA kernel against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { linearSample, liveBytes, scope, tensor, type DType } from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { describeCuda, get, put, roundBf16 } from '../helpers/cuda-harness.js';
import { vals } from '../helpers/cuda-linalg.js';

function softmaxRows(hv: number[], wv: number[], bv: number[] | null, M: number, D: number, V: number, temperature = 1): number[][] {
  return Array.from({ length: M }, (_, m) => {
    const z = Array.from({ length: V }, (_, v) => {
      let s = bv ? bv[v]! : 0;
      for (let d = 0; d < D; d++) s += hv[m * D + d]! * wv[v * D + d]!;
      return s / temperature;
    });
    const mx = Math.max(...z);
    const e = z.map((x) => Math.exp(x - mx));
    const tot = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / tot);
  });
}

/** Pearson's χ² of observed counts against expected probabilities (n draws). */
function chiSquare(counts: number[], p: number[], n: number): number {
  return counts.reduce((acc, c, v) => acc + (c - n * p[v]!) ** 2 / (n * p[v]!), 0);
}

describe('linearSample (fused sampling from the chunked logits)', () => {
  const D = 6;
  const V = 11;
  const wv = vals(V * D, 41).map((x) => 1.5 * x);
  const bv = vals(V, 42).map((x) => 0.5 * x);
  const row = vals(D, 43);

  /** `rows` copies of one row h, so every row samples from the same distribution (each with its own draws). */
  function drawCounts(rows: number, steps: number, chunk: number, temperature: number, dtype: DType = 'float32'): number[] {
    const counts = new Array<number>(V).fill(0);
    scope(() => {
      const h = tensor(Array.from({ length: rows * D }, (_, i) => row[i % D]!), [rows, D], dtype);
      const w = tensor(wv, [V, D], dtype);
      const b = tensor(bv, [V], dtype);
      for (let step = 0; step < steps; step++) {
        const ids = linearSample(h, w, b, { seed: 1234, step, chunkSize: chunk, temperature }).toArray();
        for (const id of ids) counts[id]!++;
      }
    });
    return counts;
  }

  // χ² with V − 1 = 10 degrees of freedom: 29.59 is its 0.999 quantile. The seeds are fixed, so the test is deterministic.
  for (const [chunk, temperature] of [[4096, 1], [3, 1], [4, 2]] as const)
    it(`matches softmax((h·Wᵀ + b)/T) by a χ² test (chunk ${chunk}, T ${temperature}, 20000 draws)`, () => {
      const counts = drawCounts(4000, 5, chunk, temperature);
      const p = softmaxRows(row, wv, bv, 1, D, V, temperature)[0]!;
      expect(counts.reduce((a, b) => a + b, 0)).toBe(20000);
      expect(chiSquare(counts, p, 20000)).toBeLessThan(29.59);
    });

  it('fails the χ² test against a wrong temperature (the test has power)', () => {
    const counts = drawCounts(4000, 5, 4096, 1);
    const p = softmaxRows(row, wv, bv, 1, D, V, 2)[0]!;
    expect(chiSquare(counts, p, 20000)).toBeGreaterThan(100);
  });

  it('float64 draws the same distribution', () => {
    const counts = drawCounts(2000, 5, 5, 1, 'float64');
    expect(chiSquare(counts, softmaxRows(row, wv, bv, 1, D, V)[0]!, 10000)).toBeLessThan(29.59);
  });

  it('is a pure function of (seed, step, row): same ids for the same key, whatever the chunk size; other ids for another step or seed', () => {
    scope(() => {
      const M = 64;
      const h = tensor(vals(M * D, 44), [M, D]);
      const w = tensor(wv, [V, D]);
      const b = tensor(bv, [V]);
      const a = Array.from(linearSample(h, w, b, { seed: 9, step: 3 }).toArray());
      expect(Array.from(linearSample(h, w, b, { seed: 9, step: 3 }).toArray())).toEqual(a);
      // The Gumbel noise of a column does not depend on the chunking.
      for (const chunk of [1, 2, 5, 11]) expect(Array.from(linearSample(h, w, b, { seed: 9, step: 3, chunkSize: chunk }).toArray())).toEqual(a);
      expect(Array.from(linearSample(h, w, b, { seed: 9, step: 4 }).toArray())).not.toEqual(a);
      expect(Array.from(linearSample(h, w, b, { seed: 10, step: 3 }).toArray())).not.toEqual(a);
      // A row's sample does not depend on the other rows' values.
      const h2 = tensor(vals(M * D, 44).map((x, i) => (i >= D ? -x : x)), [M, D]);
      expect(linearSample(h2, w, b, { seed: 9, step: 3 }).toArray()[0]).toBe(a[0]);
    });
  });

  it('rowOffset r: rows drawn as rows r… of the whole (a data-parallel rank\'s slice samples what one process does)', () => {
    scope(() => {
      const M = 64;
      const all = vals(M * D, 44);
      const w = tensor(wv, [V, D]);
      const b = tensor(bv, [V]);
      const whole = Array.from(linearSample(tensor(all, [M, D]), w, b, { seed: 9, step: 3 }).toArray());
      const parts = [[0, 20], [20, 64]].flatMap(([lo, hi]) =>
        Array.from(linearSample(tensor(all.slice(lo! * D, hi! * D), [hi! - lo!, D]), w, b, { seed: 9, step: 3, rowOffset: lo }).toArray()));
      expect(parts).toEqual(whole);
      // Without the offset the second slice draws the first rows' noise: other ids.
      const unshifted = Array.from(linearSample(tensor(all.slice(20 * D), [44, D]), w, b, { seed: 9, step: 3 }).toArray());
      expect(unshifted).not.toEqual(whole.slice(20));
      expect(() => linearSample(tensor(all, [M, D]), w, b, { seed: 9, step: 3, rowOffset: -1 })).toThrow(/rowOffset/);
    });
  });

  it('returns int32 [M] ids, never the [M, V] logits, and keeps nothing alive', () => {
    scope(() => {
      const M = 7;
      const Vb = 5000;
      const h = tensor(vals(M * D, 45), [M, D]);
      const w = tensor(vals(Vb * D, 46), [Vb, D]);
      const before = liveBytes();
      const ids = linearSample(h, w, null, { seed: 1, step: 0, chunkSize: 512 });
      expect(ids.shape).toEqual([M]);
      expect(ids.dtype).toBe('int32');
      expect(liveBytes() - before).toBe(4 * M);
      for (const id of ids.toArray()) expect(id >= 0 && id < Vb).toBe(true);
      expect(ids.requiresGrad).toBe(false);
    });
  });

  it('with one dominant logit always samples it; M = 0 gives an empty result', () => {
    scope(() => {
      const w = tensor([0, 0, 50, 0], [4, 1]);
      const h = tensor(new Array(100).fill(1), [100, 1]);
      expect(new Set(linearSample(h, w, null, { seed: 3, step: 0 }).toArray())).toEqual(new Set([2]));
      expect(linearSample(tensor([], [0, 1]), w, null, { seed: 3, step: 0 }).shape).toEqual([0]);
    });
  });

  it('refuses bad arguments, naming them', () => {
    scope(() => {
      const h = tensor(vals(2 * D, 47), [2, D]);
      const w = tensor(wv, [V, D]);
      expect(() => linearSample(h, tensor(vals(V * 3, 1), [V, 3]), null, { seed: 0, step: 0 })).toThrow(/weight/);
      expect(() => linearSample(h, w, tensor([1, 2], [2]), { seed: 0, step: 0 })).toThrow(/bias/);
      expect(() => linearSample(h, w, null, { seed: 0, step: 0, temperature: 0 })).toThrow(/temperature/);
      expect(() => linearSample(h, w, null, { seed: -1, step: 0 })).toThrow(/seed/);
      expect(() => linearSample(h, w, null, { seed: 0, step: 0, chunkSize: 0 })).toThrow(/chunkSize/);
    });
  });
});

describeCuda('linearSample', () => {
  const M = 300;
  const D = 16;
  const V = 37;
  const hv = vals(M * D, 51);
  const wv = vals(V * D, 52);
  const bv = vals(V, 53);
  for (const chunk of [8, 37, 4096])
    it(`draws the CPU's ids from the same Philox stream (chunk ${chunk}; all but rare last-ulp ties)`, () => {
      const r = native().linearSample(put(hv, [M, D], 'float32', 'cpu'), put(wv, [V, D], 'float32', 'cpu'), put(bv, [V], 'float32', 'cpu'), 5, 2, chunk, 1);
      const g = native().linearSample(put(hv, [M, D], 'float32', 'cuda'), put(wv, [V, D], 'float32', 'cuda'), put(bv, [V], 'float32', 'cuda'), 5, 2, chunk, 1);
      expect(g.device).toBe('cuda');
      expect(g.dtype).toBe('int32');
      const a = get(r);
      const b = get(g);
      let same = 0;
      for (let i = 0; i < M; i++) same += a[i] === b[i] ? 1 : 0;
      expect(same).toBeGreaterThanOrEqual(M - 2);
    });

  it("rowOffset: the kernel draws the CPU's ids for a slice at its place (all but rare last-ulp ties)", () => {
    const lo = 100;
    const part = hv.slice(lo * D);
    const r = native().linearSample(put(hv, [M, D], 'float32', 'cpu'), put(wv, [V, D], 'float32', 'cpu'), put(bv, [V], 'float32', 'cpu'), 5, 2, 8, 1);
    const g = native().linearSample(put(part, [M - lo, D], 'float32', 'cuda'), put(wv, [V, D], 'float32', 'cuda'), put(bv, [V], 'float32', 'cuda'), 5, 2, 8, 1, lo);
    const a = get(r).slice(lo);
    const b = get(g);
    let same = 0;
    for (let i = 0; i < M - lo; i++) same += a[i] === b[i] ? 1 : 0;
    expect(same).toBeGreaterThanOrEqual(M - lo - 2);
  });

  it('bfloat16 samples its softmax (χ² on 20000 draws)', () => {
    const rowv = vals(D, 54);
    const rows = 4000;
    const counts = new Array<number>(V).fill(0);
    const hb = put(Array.from({ length: rows * D }, (_, i) => rowv[i % D]!), [rows, D], 'bfloat16', 'cuda');
    const wb = put(wv, [V, D], 'bfloat16', 'cuda');
    const bb = put(bv, [V], 'bfloat16', 'cuda');
    for (let step = 0; step < 5; step++) for (const id of get(native().linearSample(hb, wb, bb, 7, step, 16, 1))) counts[id]!++;
    const p = softmaxRows(Array.from(roundBf16(rowv)), Array.from(roundBf16(wv)), Array.from(roundBf16(bv)), 1, D, V)[0]!;
    expect(chiSquare(counts, p, 20000)).toBeLessThan(58.6);  // 0.999 quantile of χ² with 36 df
  });
});
