// mlmMask on cuda gives the CPU's result bit for bit: the same Philox draws,
// the same in-order rows/targets, the same errors.
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { describeCuda, get, put } from './harness.js';

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
