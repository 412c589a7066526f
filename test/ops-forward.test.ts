/** Forward values of each op against plain float64 TypeScript references, in float32 and float64. */
import { describe, expect, it } from 'vitest';
import {
  argmax, biasAdd, crossEntropy, dropout, embedding, gelu, layerNorm, linear, mean, relu, Rng, softmax, sum, tensor,
  type DType, type Tensor,
} from '../src/index.js';
import { crossEntropyRef, gelu as geluRef, layerNormRef, matmulRef, softmaxRef } from './helpers/reference.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const rng = new Rng(99);
function rand(shape: number[], dtype: DType, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
}
/** The values a float32 tensor actually holds, for references computed in float64. */
const vals = (t: Tensor): number[] => Array.from(t.toArray());

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('linear at odd sizes equals x·wᵀ + b', () => {
      const x = rand([3, 7, 13], dtype);
      const w = rand([11, 13], dtype);
      const b = rand([11], dtype);
      const ref = matmulRef(vals(x), vals(w), 21, 11, 13, false, true);
      const bv = vals(b);
      for (let i = 0; i < ref.length; i++) ref[i]! += bv[i % 11]!;
      assertClose(linear(x, w, b).toArray(), ref, tol, 'linear');
    });
    it('gelu uses the exact erf form; relu clamps', () => {
      const x = rand([257], dtype, -4, 4);
      assertClose(gelu(x).toArray(), vals(x).map(geluRef), tol, 'gelu');
      assertClose(relu(x).toArray(), vals(x).map((v) => Math.max(v, 0)), tol, 'relu');
    });
    it('layerNorm matches mean/variance normalisation', () => {
      const x = rand([5, 37], dtype, -3, 5);
      const w = rand([37], dtype);
      const b = rand([37], dtype);
      assertClose(layerNorm(x, w, b, 1e-5).toArray(), layerNormRef(vals(x), 37, vals(w), vals(b), 1e-5), tol, 'layerNorm');
      assertClose(layerNorm(x, null, null, 1e-3).toArray(), layerNormRef(vals(x), 37, null, null, 1e-3), tol, 'layerNorm plain');
    });
    it('softmax, including a fully −∞ row that must give zeros', () => {
      const x = rand([4, 33], dtype, -8, 8);
      const raw = x.toArray();
      for (let c = 0; c < 33; c++) raw[33 + c] = -Infinity;
      raw[70] = -Infinity;
      const t = tensor(raw, [4, 33], dtype);
      const y = softmax(t).toArray();
      assertClose(y, softmaxRef(Array.from(raw), 33), tol, 'softmax');
      expect(Array.from(y.slice(33, 66)).every((v) => v === 0)).toBe(true);
    });
    it('crossEntropy over selected rows with ignore index, large logits', () => {
      const logits = rand([9, 50], dtype, -30, 30);
      const targets = tensor([3, 49, -100, 0, 17], [5], 'int32');
      const rows = tensor([8, 0, 4, 2, 5], [5], 'int32');
      const got = crossEntropy(logits, targets, { rows }).item();
      const ref = crossEntropyRef(vals(logits), 50, [3, 49, -100, 0, 17], [8, 0, 4, 2, 5], -100);
      assertClose([got], [ref], tol, 'crossEntropy');
      const all = crossEntropy(logits, tensor([-100, -100, -100, -100, -100, -100, -100, -100, -100], [9], 'int32'));
      expect(all.item()).toBe(0);
    });
    it('embedding gathers rows', () => {
      const table = rand([10, 6], dtype);
      const ids = [9, 0, 3, 3];
      const out = embedding(table, tensor(ids, [2, 2], 'int32'));
      expect(out.shape).toEqual([2, 2, 6]);
      const tv = vals(table);
      assertClose(out.toArray(), ids.flatMap((i) => tv.slice(i * 6, i * 6 + 6)), tol, 'embedding');
    });
    it('argmax picks the first largest value of each row, at an odd width', () => {
      const x = rand([3, 7, 1003], dtype);
      const raw = x.toArray();
      raw[5] = raw[900] = 5; // a tie in row 0: the first wins
      const t = tensor(raw, [3, 7, 1003], dtype);
      const ref = Array.from({ length: 21 }, (_, r) => {
        let best = 0;
        for (let c = 1; c < 1003; c++) if (raw[r * 1003 + c]! > raw[r * 1003 + best]!) best = c;
        return best;
      });
      const got = argmax(t);
      expect(got.dtype).toBe('int32');
      expect(got.shape).toEqual([3, 7]);
      expect(Array.from(got.toArray())).toEqual(ref);
      expect(ref[0]).toBe(5);
      expect(() => argmax(tensor([1, 2], [2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
    });
    it('biasAdd, sum and mean', () => {
      const x = rand([6, 5], dtype);
      const b = rand([5], dtype);
      const xv = vals(x);
      const bv = vals(b);
      assertClose(biasAdd(x, b).toArray(), xv.map((v, i) => v + bv[i % 5]!), tol, 'biasAdd');
      const s = xv.reduce((a, c) => a + c, 0);
      assertClose([sum(x).item()], [s], tol, 'sum');
      assertClose([mean(x).item()], [s / 30], tol, 'mean');
    });
  });
}

describe('dropout', () => {
  const x = tensor(new Array(200_000).fill(1), [200_000], 'float32');
  it('keeps about 1−p of the elements, scaled by 1/(1−p)', () => {
    const y = dropout(x, { p: 0.25, seed: 5, step: 0 }).toArray();
    const kept = y.filter((v) => v !== 0);
    expect(Math.abs(kept.length / y.length - 0.75)).toBeLessThan(0.01);
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
  });
  it('is deterministic in (seed, step) and differs across steps and seeds', () => {
    const a = dropout(x, { p: 0.5, seed: 1, step: 3 }).toArray();
    const b = dropout(x, { p: 0.5, seed: 1, step: 3 }).toArray();
    const c = dropout(x, { p: 0.5, seed: 1, step: 4 }).toArray();
    const d = dropout(x, { p: 0.5, seed: 2, step: 3 }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    const agree = (u: ArrayLike<number>, v: ArrayLike<number>): number => {
      let n = 0;
      for (let i = 0; i < u.length; i++) if ((u[i] === 0) === (v[i] === 0)) n++;
      return n / u.length;
    };
    // Independent masks agree on about half the positions.
    expect(Math.abs(agree(a, c) - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(agree(a, d) - 0.5)).toBeLessThan(0.01);
  });
  it('p = 0 and eval mode pass values through; p = 1 zeroes', () => {
    const small = tensor([1, 2, 3]);
    expect(Array.from(dropout(small, { p: 0, seed: 1, step: 0 }).toArray())).toEqual([1, 2, 3]);
    expect(Array.from(dropout(small, { p: 0.9, seed: 1, step: 0, training: false }).toArray())).toEqual([1, 2, 3]);
    expect(Array.from(dropout(small, { p: 1, seed: 1, step: 0 }).toArray())).toEqual([0, 0, 0]);
  });
});
