/**
 * mlmMask, the fused native corruption kernel (through applyMlmMasking):
 * exact invariants, statistics and its own argument checks; and the CUDA
 * kernel against the CPU's result, bit for bit.
 */
import { describe, expect, it } from 'vitest';
import {
  applyMlmMasking, runtimeInfo, selectSpans, selectTokens, setNumThreads, tensor, type MaskSelection, type Tensor,
} from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { describeCuda, get, put } from '../helpers/cuda-harness.js';
import { batch, FIRST, groupsOf, ints, isSpecial, MASK, sdTol, SPECIAL } from '../helpers/mlm-batch.js';

describe('mlmMask native kernel: exact invariants', () => {
  const V = 1000;
  const { ids, data } = batch(7, 97, V, 1);
  const sel = selectTokens(ids, { ratio: 0.3, special: SPECIAL, seed: 3 });
  const opts = { vocabSize: V, maskId: MASK, randomLow: FIRST, seed: 11, step: 0 };
  const r = applyMlmMasking(ids, sel, opts);

  it('rows are the selected flat positions in order; targets the original ids there', () => {
    const want = [...sel.select.keys()].filter((i) => sel.select[i]);
    expect(want.length).toBeGreaterThan(100);
    expect(ints(r.rows)).toEqual(want);
    expect(ints(r.targets)).toEqual(want.map((i) => data[i]!));
    expect(r.ids.shape).toEqual([7, 97]);
  });

  it('unselected tokens are unchanged; selected become [MASK], an allowed random id, or stay', () => {
    const out = ints(r.ids);
    for (let i = 0; i < out.length; i++) {
      if (!sel.select[i]) expect(out[i]).toBe(data[i]);
      else expect(out[i] === MASK || out[i] === data[i] || (out[i]! >= FIRST && out[i]! < V)).toBe(true);
    }
  });

  it('is deterministic in (seed, step); another step or seed draws differently', () => {
    expect(ints(applyMlmMasking(ids, sel, opts).ids)).toEqual(ints(r.ids));
    const diff = (a: Tensor): number => ints(a).filter((v, i) => v !== ints(r.ids)[i]).length;
    expect(diff(applyMlmMasking(ids, sel, { ...opts, step: 1 }).ids)).toBeGreaterThan(20);
    expect(diff(applyMlmMasking(ids, sel, { ...opts, seed: 12 }).ids)).toBeGreaterThan(20);
  });

  it('does not change with the thread count', () => {
    const big = batch(64, 256, V, 5);
    const bigSel = selectSpans(big.ids, { ratio: 0.3, special: SPECIAL, seed: 2 });
    const before = runtimeInfo().threads;
    const outs: number[][] = [];
    try {
      for (const t of [1, 3]) {
        setNumThreads(t);
        const o = applyMlmMasking(big.ids, bigSel, opts);
        outs.push([...ints(o.ids), ...ints(o.rows), ...ints(o.targets)]);
      }
    } finally {
      setNumThreads(before);
    }
    expect(outs[1]).toEqual(outs[0]);
  });

  it('an empty selection gives empty rows and targets and the ids unchanged', () => {
    const none: MaskSelection = { B: 7, L: 97, select: new Uint8Array(7 * 97), group: null };
    const e = applyMlmMasking(ids, none, opts);
    expect(e.rows.shape).toEqual([0]);
    expect(e.targets.shape).toEqual([0]);
    expect(ints(e.ids)).toEqual(Array.from(data));
  });

  it('group[i] = own position is the same as no groups', () => {
    const own = new Int32Array(7 * 97).map((_, i) => i % 97);
    expect(ints(applyMlmMasking(ids, { ...sel, group: own }, opts).ids)).toEqual(ints(r.ids));
  });
});

describe('mlmMask native kernel: statistics', () => {
  // Every ordinary token of 64 × 512 is selected: about 30,000 draws.
  const V = 30522;
  const { ids, data } = batch(64, 512, V, 2);
  const all: MaskSelection = { B: 64, L: 512, select: Uint8Array.from(data, (v) => (isSpecial(v) ? 0 : 1)), group: null };
  const n = all.select.reduce((a, b) => a + b, 0);

  function split(out: number[], sel: MaskSelection): { mask: number; random: number; keep: number } {
    let mask = 0, random = 0, keep = 0;
    for (let i = 0; i < out.length; i++) {
      if (!sel.select[i]) continue;
      if (out[i] === MASK) mask++;
      else if (out[i] === data[i]) keep++;
      else random++;
    }
    return { mask, random, keep };
  }

  it('80/10/10 split within 5 standard deviations', () => {
    const s = split(ints(applyMlmMasking(ids, all, { vocabSize: V, maskId: MASK, randomLow: FIRST, seed: 5, step: 9 }).ids), all);
    // A random draw equal to the original id reads as "keep".
    const pSame = 1 / (V - FIRST);
    const want = { mask: 0.8, random: 0.1 * (1 - pSame), keep: 0.1 + 0.1 * pSame };
    for (const k of ['mask', 'random', 'keep'] as const) expect(Math.abs(s[k] / n - want[k])).toBeLessThan(sdTol(want[k], n));
  });

  it('random replacements are uniform over [randomLow, randomHigh) and never special (chi-square, α = 0.001)', () => {
    const lo = FIRST, hi = 50, K = hi - lo;
    const out = ints(applyMlmMasking(ids, all, { vocabSize: V, maskId: MASK, maskProb: 0, randomProb: 1, randomLow: lo, randomHigh: hi, seed: 6, step: 0 }).ids);
    const counts = new Array<number>(K).fill(0);
    for (let i = 0; i < out.length; i++) {
      if (!all.select[i]) continue;
      expect(out[i]! >= lo && out[i]! < hi).toBe(true);
      counts[out[i]! - lo]!++;
    }
    const e = n / K;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    // Wilson–Hilferty 0.999 quantile of chi-square with K − 1 degrees of freedom.
    const df = K - 1, z = 3.0902;
    const crit = df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
    expect(chi2).toBeLessThan(crit);
  });

  it('keep-only keeps every token but still returns every target; mask-only masks all', () => {
    const keep = applyMlmMasking(ids, all, { vocabSize: V, maskId: MASK, maskProb: 0, randomProb: 0, seed: 1, step: 1 });
    expect(ints(keep.ids)).toEqual(Array.from(data));
    expect(keep.rows.shape).toEqual([n]);
    const mask = applyMlmMasking(ids, all, { vocabSize: V, maskId: MASK, maskProb: 1, randomProb: 0, seed: 1, step: 1 });
    expect(split(ints(mask.ids), all)).toEqual({ mask: n, random: 0, keep: 0 });
  });

  it('tokens of one group share one draw; groups split 80/10/10', () => {
    const sel = selectSpans(ids, { ratio: 0.15, special: SPECIAL, seed: 8 });
    const out = ints(applyMlmMasking(ids, sel, { vocabSize: V, maskId: MASK, randomLow: FIRST, seed: 4, step: 2 }).ids);
    const kind = (i: number): number => (out[i] === MASK ? 0 : out[i] === data[i] ? 2 : 1);
    const groups = [...groupsOf(sel).values()];
    let masked = 0, multi = 0;
    for (const g of groups) {
      if (g.length > 1) multi++;
      // Within a random group a draw can hit the original id (p = 1/30517): allow no such case at this seed.
      expect(new Set(g.map(kind)).size).toBe(1);
      masked += kind(g[0]!) === 0 ? 1 : 0;
    }
    expect(multi).toBeGreaterThan(500);
    expect(Math.abs(masked / groups.length - 0.8)).toBeLessThan(sdTol(0.8, groups.length));
  });
});

describe('bad input', () => {
  const { ids } = batch(2, 6, 50, 1);
  const sel = selectTokens(ids, { ratio: 0.5, special: SPECIAL, seed: 1 });

  it('the native kernel checks again and throws, never aborts', () => {
    const u8 = (v: number[]): Tensor => tensor(v, [2, 6], 'uint8');
    const s = u8(Array.from(sel.select));
    const call = (i: Tensor, se: Tensor, g: Tensor | null, V = 50) => () =>
      native().mlmMask(i.native, se.native, g?.native ?? null, V, MASK, 0.8, 0.1, 0, V, 0, 0);
    expect(call(ids, tensor(Array.from(sel.select), [2, 6], 'int32'), null)).toThrow(
      'mlmMask: Expected a uint8 tensor for select but received int32 tensor [2, 6]',
    );
    expect(call(ids, s, null, 10)).toThrow(/^mlmMask: Expected ids in \[0, 10\) for ids but received \d+ at position \d+$/);
    expect(call(ids, u8([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), null)).toThrow(
      'mlmMask: Expected values 0 or 1 for select but received 2 at position 0',
    );
    const g = tensor(new Array(12).fill(6), [2, 6], 'int32');
    expect(call(ids, u8([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), g)).toThrow(
      'mlmMask: Expected in-row positions in [0, 6) at selected tokens for group but received 6 at position 1',
    );
    expect(call(ids, tensor([1, 0], [2], 'uint8'), null)).toThrow('mlmMask: Expected shape [2, 6] for select but received uint8 tensor [2]');
    expect(() => native().mlmMask(ids.native, s.native, null, 50, MASK, 0.8, 0.3, 0, 50, 0, 0)).toThrow(
      'mlmMask: Expected a probability in [0, 1 - maskProb] for randomProb but received 0.3',
    );
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// mlmMask on cuda gives the CPU's result bit for bit: the same Philox draws,
// the same in-order rows/targets, the same errors.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  function ints(n: number, seed: number, mod: number): number[] {
    let s = seed >>> 0;
    return Array.from({ length: n }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % mod;
    });
  }

  type Args = { ids: number[]; sel: number[]; group: number[] | null; B: number; L: number };

  function run(dev: 'cpu' | 'cuda', a: Args, seed = 7, step = 3) {
    const t = (v: number[], dt: 'int32' | 'uint8'): NativeTensor => put(v, [a.B, a.L], dt, dev);
    const r = native().mlmMask(t(a.ids, 'int32'), t(a.sel, 'uint8'), a.group ? t(a.group, 'int32') : null, 1000, 4, 0.8, 0.1, 10, 1000, seed, step);
    return { ids: Array.from(get(r.ids)), rows: Array.from(get(r.rows)), targets: Array.from(get(r.targets)), dev: r.ids.device };
  }

  describeCuda('mlmMask', () => {
    // L = 300 spans two scan tiles of 256 threads; B = 3 rows.
    const B = 3;
    const L = 300;
    const ids = ints(B * L, 1, 1000);
    for (const [name, sel] of [
      ['15% selected', ints(B * L, 2, 100).map((x) => (x < 15 ? 1 : 0))],
      ['none selected', new Array(B * L).fill(0)],
      ['all selected', new Array(B * L).fill(1)],
    ] as Array<[string, number[]]>) {
      it(`matches the CPU bit for bit (${name}), with and without span groups`, () => {
        for (const group of [null, Array.from({ length: B * L }, (_, i) => (i % L) - ((i % L) % 3))]) {
          for (const [seed, step] of [[7, 3], [123456789, 2 ** 40]]) {
            const a = { ids, sel, group, B, L };
            const c = run('cpu', a, seed, step);
            const g = run('cuda', a, seed, step);
            expect(g.dev).toBe('cuda');
            expect(g.ids).toEqual(c.ids);
            expect(g.rows).toEqual(c.rows);
            expect(g.targets).toEqual(c.targets);
          }
        }
      });
    }

    it('handles a single short row and an empty batch', () => {
      for (const a of [
        { ids: [5, 6, 7], sel: [1, 0, 1], group: null, B: 1, L: 3 },
        { ids: [], sel: [], group: null, B: 0, L: 4 },
      ]) {
        expect(run('cuda', a)).toEqual({ ...run('cpu', a), dev: 'cuda' });
      }
    });

    it('reports the first bad entry with the CPU message', () => {
      const base = () => ({ ids: ints(2 * 40, 3, 1000), sel: ints(2 * 40, 4, 2), group: null as number[] | null, B: 2, L: 40 });
      const cases: Args[] = [];
      let a = base();
      a.ids[50] = 1000;
      a.sel[60] = 2;
      cases.push(a);
      a = base();
      a.sel[13] = 3;
      a.ids[70] = -1;
      cases.push(a);
      a = base();
      a.group = Array.from({ length: 80 }, (_, i) => i % 40);
      a.sel[33] = 1;
      a.group[33] = 40;
      cases.push(a);
      for (const c of cases) {
        let msg = '';
        try {
          run('cpu', c);
        } catch (e) {
          msg = (e as Error).message;
        }
        expect(msg).toMatch(/Expected/);
        expect(() => run('cuda', c)).toThrow(msg);
      }
    });
  });
}
