/** embedding: the gathered rows, the scatter-add backward by finite differences, and the CUDA kernels against the CPU. */
import { describe, expect, it } from 'vitest';
import { embedding, tensor } from '../../src/index.js';
import { describeCuda, get, itOnDevice, put } from '../helpers/cuda-harness.js';
import { bfSum, check, cpu64, dev, DTYPES, ints, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand, vals } from '../helpers/op-inputs.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('embedding gathers rows', () => {
      const table = rand([10, 6], dtype);
      const ids = [9, 0, 3, 3];
      const out = embedding(table, tensor(ids, [2, 2], 'int32'));
      expect(out.shape).toEqual([2, 2, 6]);
      const tv = vals(table);
      assertClose(out.toArray(), ids.flatMap((i) => tv.slice(i * 6, i * 6 + 6)), tol, 'embedding');
    });
  });
}

describe('gradcheck: normalisation, softmax, loss, embedding', () => {
  it('embedding with repeated ids (scatter-add backward)', () => {
    const ids = tensor([1, 3, 1, 0, 3, 3], [2, 3], 'int32');
    gradcheck(([t]) => embedding(t!, ids), [leaf(5, 4)]);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Gathers are exact; the float32 backward sums in the CPU's order (groups up to 64 positions).

describeCuda('nn', () => {

  it('embedding gathers exactly; embeddingBackward sums repeated ids in a fixed order', () => {
    for (const dtype of DTYPES)
      for (const [V, D, N] of [[50, 33, 200], [7, 300, 5], [200000, 3, 10]] as const) {
        const table = quantize(values(V * D, V + D, 1), dtype);
        const ids = values(N, N + V).map((v) => Math.floor((v + 1) * 0.5 * V) % V);
        ids[N - 1] = ids[0]!;  // at least one repeat
        const out = native().embedding(dev(table, [V, D], dtype), ints(ids, [N], 'cuda'));
        expect(out.shape).toEqual([N, D]);
        expect(Array.from(get(out))).toEqual(Array.from(get(native().embedding(cpu64(table, [V, D]), ints(ids, [N], 'cpu')))));
        const g = quantize(values(N * D, 3 * N + D), dtype);
        const dt = native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V);
        expect(dt.shape).toEqual([V, D]);
        const l = `embeddingBackward V=${V} D=${D} N=${N}`;
        if (dtype === 'float32') {
          // Same summation order as the CPU's float32 kernel: equal bit for bit.
          const c32 = native().embeddingBackward(put(g, [N, D], 'float32', 'cpu'), ints(ids, [N], 'cpu'), V);
          expect(Array.from(get(dt))).toEqual(Array.from(get(c32)));
        }
        const naive = new Array<number>(V * D).fill(0);
        for (let v = 0; v < V; v++)
          if (ids.includes(v))
            for (let c = 0; c < D; c++) naive[v * D + c] = bfSum(ids.flatMap((id, i) => (id === v ? [g[i * D + c]!] : [])));
        check(l, dtype, dt, native().embeddingBackward(cpu64(g, [N, D]), ints(ids, [N], 'cpu'), V), naive);
        expect(Array.from(get(dt))).toEqual(Array.from(get(native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V))));
      }
  });

  it('embeddingBackward sums groups of thousands of positions in chunks, deterministically', () => {
    // Groups longer than 64 positions (a token type, [MASK], padding) are cut
    // into about √length chunks whose partial sums are added in order: no
    // longer the CPU's sequential order, so float32 is held to its tolerance.
    for (const dtype of DTYPES)
      // [1, 33, 20011]: one group of 20011 positions, cut into chunks of ⌈√20011⌉ = 142 (above the 64 minimum).
      for (const [V, D, N] of [[2, 77, 3001], [40, 300, 4099], [1, 33, 20011]] as const) {
        // Every fifth position takes id 1 (0 where V = 1: an id must be below V).
        const ids = values(N, N + V).map((v, i) => (i % 5 === 0 ? 1 % V : Math.floor((v + 1) * 0.5 * V) % V));
        const g = quantize(values(N * D, 5 * N + D), dtype);
        const dt = native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V);
        const naive = new Array<number>(V * D).fill(0);
        for (let v = 0; v < V; v++)
          if (ids.includes(v))
            for (let c = 0; c < D; c++) naive[v * D + c] = bfSum(ids.flatMap((id, i) => (id === v ? [g[i * D + c]!] : [])));
        const ref = native().embeddingBackward(cpu64(g, [N, D]), ints(ids, [N], 'cpu'), V);
        if (dtype === 'float32') {
          // Element-wise tolerances scale with |sum|, which cancellation can make tiny beside the terms of a group
          // of thousands; float32 summation is bounded by the terms instead: a sum of chunk sums, chunks of
          // s = max(64, ⌈√n⌉) positions, errs by at most (s + ⌈n/s⌉)·2^-24·Σ|g| (first order).
          const r = get(ref);
          const d = get(dt);
          for (let v = 0; v < V; v++) {
            const rows = ids.flatMap((id, i) => (id === v ? [i] : []));
            const s = Math.max(64, Math.ceil(Math.sqrt(rows.length)));
            const depth = s + Math.ceil(rows.length / s);
            for (let c = 0; c < D; c++) {
              const abs = rows.reduce((t, i) => t + Math.abs(g[i * D + c]!), 0);
              const err = Math.abs(d[v * D + c]! - r[v * D + c]!);
              if (!(err <= depth * 2 ** -24 * abs + 1e-30))
                throw new Error(`embeddingBackward V=${V} D=${D} N=${N} (float32) [${v}, ${c}]: error ${err} beyond ${depth}·2^-24·${abs}`);
            }
          }
        } else check(`embeddingBackward V=${V} D=${D} N=${N}`, dtype, dt, ref, naive);
        expect(Array.from(get(dt))).toEqual(Array.from(get(native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V))));
      }
  });

  itOnDevice('embedding on cuda reports an out-of-range id as the CPU does, at the next read, and never reads out of range', () => {
    // The ids are checked on the device (no host copy, no wait); the error
    // comes at the next read or synchronize, naming the op, and is cleared.
    const t = dev(values(6, 2), [3, 2], 'float32');
    const out = native().embedding(t, ints([0, 3, -1, 2, 7], [5], 'cuda'));
    let err: (Error & { code?: string; op?: string }) | null = null;
    try {
      out.read();
    } catch (e) {
      err = e as Error & { code?: string; op?: string };
    }
    expect(err?.message).toContain('Expected indices in [0, 3) for ids but received 3 at position 1');
    expect(err?.code).toBe('E_INDEX');
    expect(err?.message).toMatch(/^embedding: /);
    // Reported once: the record is clear after it, and the good rows were gathered.
    const rows = Array.from(get(out));
    const tab = Array.from(get(t));
    expect(rows.slice(0, 2)).toEqual(tab.slice(0, 2));
    expect(rows.slice(6, 8)).toEqual(tab.slice(4, 6));
    native().cudaSynchronize();
  });

  itOnDevice('reports the earliest bad index among several calls at cudaSynchronize', () => {
    const t = dev(values(8, 3), [4, 2], 'float32');
    native().embedding(t, ints([1, 2, 3], [3], 'cuda')).dispose();
    native().embedding(t, ints([0, 9, 1, 5], [4], 'cuda')).dispose();
    native().embeddingBackward(dev(values(4, 5), [2, 2], 'float32'), ints([4, 0], [2], 'cuda'), 4).dispose();
    expect(() => native().cudaSynchronize()).toThrow('Expected indices in [0, 4) for ids but received 9 at position 1');
    expect(() => native().cudaSynchronize()).not.toThrow();
  });

  itOnDevice('embeddingBackward on cuda skips a bad id and sums the good ones', () => {
    const V = 5, D = 3;
    const ids = [1, 6, 1, 4, -2, 4, 4];
    const g = values(ids.length * D, 11);
    const dt = native().embeddingBackward(dev(g, [ids.length, D], 'float32'), ints(ids, [ids.length], 'cuda'), V);
    expect(() => native().cudaSynchronize()).toThrow('Expected indices in [0, 5) for ids but received 6 at position 1');
    const good = ids.map((v) => (v >= 0 && v < V ? v : 0));
    const gGood = g.map((x, i) => (ids[Math.floor(i / D)]! >= 0 && ids[Math.floor(i / D)]! < V ? x : 0));
    const ref = native().embeddingBackward(put(gGood, [ids.length, D], 'float32', 'cpu'), ints(good, [ids.length], 'cpu'), V);
    expect(Array.from(get(dt))).toEqual(Array.from(get(ref)));
  });
});
