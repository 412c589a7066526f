/**
 * SparK's sparse sites, rulebook and conversions: activeSites in row-major
 * order with an inverting grid, neighbourTable against a brute-force lookup and
 * its submanifold symmetry, toDense/toSparse, bad input; and the CUDA kernels
 * against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { scope, tensor } from '../../src/index.js';
import { activeSites, neighbourTable, toDense, toSparse } from '../../src/ops/sparse_rulebook.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { describeCuda, put } from '../helpers/cuda-harness.js';
import * as cudaSparse from '../helpers/cuda-sparse.js';
import { rand, rng, scatterRows, smallMap, sparkMasks } from '../helpers/spark-maps.js';

describe('sites and rulebook', () => {
  it('activeSites lists the active sites in row-major order, and the grid inverts it', () => {
    scope(() => {
      const [B, H, W] = [2, 7, 5];
      const mask = Uint8Array.from({ length: B * H * W }, () => (rng.uniform() < 0.4 ? 1 : 0));
      const { coords, grid } = activeSites(tensor(mask, [B, H, W], 'uint8'));
      const want: number[] = [];
      const wantGrid = new Int32Array(B * H * W).fill(-1);
      for (let i = 0; i < mask.length; i++) {
        if (!mask[i]) continue;
        wantGrid[i] = want.length / 3;
        want.push(Math.floor(i / (H * W)), Math.floor(i / W) % H, i % W);
      }
      expect(Array.from(coords.toArray())).toEqual(want);
      expect(coords.shape).toEqual([want.length / 3, 3]);
      expect(Array.from(grid.toArray())).toEqual(Array.from(wantGrid));
    });
  });

  it('neighbourTable matches a brute-force lookup (strides 1 and 2, explicit padding)', () => {
    scope(() => {
      const [B, H, W] = [2, 9, 8];
      const mask = Uint8Array.from({ length: B * H * W }, () => (rng.uniform() < 0.5 ? 1 : 0));
      const { grid } = activeSites(tensor(mask, [B, H, W], 'uint8'));
      const g = grid.toArray() as Int32Array;
      for (const [k, stride, padding] of [[1, 1, 0], [3, 1, 1], [3, 2, 0], [3, 2, 2], [5, 2, 2], [7, 1, 3]] as const) {
        const Ho = Math.floor((H + 2 * padding - k) / stride) + 1;
        const Wo = Math.floor((W + 2 * padding - k) / stride) + 1;
        const out: number[] = [];
        for (let b = 0; b < B; b++) for (let y = 0; y < Ho; y++) for (let x = 0; x < Wo; x++) if (rng.uniform() < 0.7) out.push(b, y, x);
        const nbr = neighbourTable(grid, tensor(out, [out.length / 3, 3], 'int32'), { kernel: k, stride, padding });
        const want: number[] = [];
        for (let m = 0; m < out.length / 3; m++)
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) {
              const y = out[3 * m + 1]! * stride + dy - padding;
              const x = out[3 * m + 2]! * stride + dx - padding;
              want.push(y >= 0 && y < H && x >= 0 && x < W ? g[(out[3 * m]! * H + y) * W + x]! : -1);
            }
        expect(Array.from(nbr.toArray())).toEqual(want);
      }
    });
  });

  it('submanifold tables are symmetric: nbr[m, o] = i exactly when nbr[i, k²−1−o] = m', () => {
    scope(() => {
      for (const k of [3, 5, 7]) {
        const { fine } = smallMap(2, 11, 9, 0.6);
        const t = neighbourTable(fine.grid, fine.coords, { kernel: k }).toArray() as Int32Array;
        const K2 = k * k;
        const N = fine.coords.shape[0]!;
        let pairs = 0;
        for (let m = 0; m < N; m++) {
          expect(t[m * K2 + (K2 - 1) / 2]).toBe(m);  // the centre is the site itself
          for (let o = 0; o < K2; o++) {
            const i = t[m * K2 + o]!;
            if (i < 0) continue;
            pairs++;
            expect(t[i * K2 + (K2 - 1 - o)]).toBe(m);
          }
        }
        expect(pairs).toBeGreaterThan(N);
      }
    });
  });
});

describe('toDense and toSparse', () => {
  for (const ratio of [0, 0.6, 1])
    it(`place rows at their sites with the fill token elsewhere, and gather them back (${ratio * 100}% masked)`, () => {
      scope(() => {
        const [B, C, H, W] = [2, 3, 5, 7];
        const masks = sparkMasks(B, H, W, ratio);
        const sites = activeSites(tensor(masks.fine, [B, H, W], 'uint8'));
        const N = sites.coords.shape[0]!;
        const x = rand([N, C], 'float32', false);
        const fill = tensor([0.5, -2, 3], [3], 'float32');
        const d = toDense(x, sites.coords, B, H, W, fill).toArray();
        const want = scatterRows(x.toArray(), sites.coords.toArray() as Int32Array, B, C, H, W);
        for (let i = 0; i < want.length; i++) if (!masks.fine[Math.floor(i / (C * H * W)) * H * W + (i % (H * W))]) want[i] = [0.5, -2, 3][Math.floor(i / (H * W)) % C]!;
        expect(Array.from(d)).toEqual(Array.from(Float32Array.from(want)));
        expect(Array.from(toSparse(toDense(x, sites.coords, B, H, W, null), sites.coords).toArray())).toEqual(Array.from(x.toArray()));
      });
    });
});

describe('bad input', () => {
  const sites = () => activeSites(tensor([1, 1, 0, 1, 0, 1], [1, 2, 3], 'uint8'));

  it('names the sites, grid, mask and options of the rulebook and conversions', () => {
    scope(() => {
      const s = sites();
      expect(() => activeSites(tensor([0, 2], [1, 1, 2], 'uint8'))).toThrow(/Expected values 0 or 1 \(1 = active\) for mask but received 2/);
      expect(() => activeSites(tensor([0, 1], [1, 2], 'uint8'))).toThrow(/3-D tensor for mask/);
      expect(() => activeSites(tensor([0, 1], [1, 1, 2], 'float32'))).toThrow(/uint8 tensor for mask/);
      expect(() => neighbourTable(s.grid, tensor([0, 2, 0], [1, 3], 'int32'), { kernel: 3 })).toThrow(/sites inside \[B, H, W\] = \[1, 2, 3\] for outCoords but received \(0, 2, 0\)/);
      expect(() => neighbourTable(s.grid, tensor([0, 0, 0, 0, 0, 0], [2, 3], 'int32'), { kernel: 1 })).toThrow(/distinct sites for outCoords/);
      expect(() => neighbourTable(s.grid, s.coords, { kernel: 3, padding: 3 })).toThrow(/for padding/);
      expect(() => neighbourTable(s.grid, s.coords, { kernel: 0 })).toThrow(/for kernel/);
      expect(() => native().neighbourTable(tensor([-3, 0], [1, 1, 2], 'int32').native, s.coords.native, 1, 1, 0)).toThrow(/for grid but received -3/);
      const x = rand([4, 2], 'float32', false);
      expect(() => toDense(x, s.coords, 1, 1, 3, null)).toThrow(/sites inside \[B, H, W\] = \[1, 1, 3\] for coords/);
      expect(() => toDense(x, tensor([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1], [4, 3], 'int32'), 1, 2, 3, null)).toThrow(/distinct sites for coords/);
      expect(() => toDense(x, s.coords.detach(), 1, 2, 3, rand([3], 'float32'))).toThrow(/Expected shape \[2\] for fill/);
      expect(() => toDense(rand([3, 2], 'float32'), s.coords, 1, 2, 3, null)).toThrow(/Expected shape \[3, 3\] .* for coords/);
      expect(() => toSparse(rand([1, 2, 2, 2], 'float32'), s.coords)).toThrow(/for coords but received \(0, 1, 2\) at row 3/);
    });
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Through the native API: sites and tables exactly equal to the CPU's (their
// order defines every sparse tensor's rows); float32 on cuda against float64 on
// the CPU; bfloat16 by the bf16 rule against a naive bf16 version: the float64
// CPU op on bf16-rounded inputs, its output rounded to bf16. Masks 0%, 60% and
// 100% masked, odd sizes, strides 1 and 2, backward too; the device-side checks
// must throw the CPU's messages.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { check, i32, inp, ints, masks, n, rand, sparseMap, TOL32 } = cudaSparse;
  type Dev = cudaSparse.Dev;

  describeCuda('sparse sites and rulebook', () => {
    it('activeSites gives the CPU rows in the CPU order, across many lines and wide rows', () => {
      for (const [B, H, W] of [[2, 7, 5], [3, 700, 5], [1, 3, 100], [2, 33, 64], [1, 1, 1], [2, 0, 3]] as const)
        for (const ratio of [0, 0.4, 1]) {
          const mask = Array.from({ length: B * H * W }, () => (rng.uniform() < ratio ? 0 : 1));
          const c = n().activeSites(put(mask, [B, H, W], 'uint8', 'cpu'));
          const d = n().activeSites(put(mask, [B, H, W], 'uint8', 'cuda'));
          expect(d.coords.device).toBe('cuda');
          expect(d.coords.shape).toEqual(c.coords.shape);
          expect(ints(d.coords), `coords [${B}, ${H}, ${W}] ${ratio}`).toEqual(ints(c.coords));
          expect(ints(d.grid), `grid [${B}, ${H}, ${W}] ${ratio}`).toEqual(ints(c.grid));
        }
    });

    it('neighbourTable equals the CPU table (k 1, 3, 7; stride 1 and 2)', () => {
      for (const k of [1, 3, 7])
        for (const stride of [1, 2])
          for (const ratio of [0, 0.6, 1]) {
            const m = masks(2, 13, 11, ratio);
            const fine = n().activeSites(put(m.fine, [2, 13, 11], 'uint8', 'cuda'));
            const out = stride === 1 ? fine : n().activeSites(put(m.coarse, [2, m.Hc, m.Wc], 'uint8', 'cuda'));
            const d = n().neighbourTable(fine.grid, out.coords, k, stride, (k - 1) >> 1);
            const c = n().neighbourTable(fine.grid.to('cpu'), out.coords.to('cpu'), k, stride, (k - 1) >> 1);
            expect(d.device).toBe('cuda');
            expect(d.shape).toEqual(c.shape);
            expect(ints(d), `k${k} s${stride} ${ratio}`).toEqual(ints(c));
          }
    });

    it('throws the CPU messages for bad masks, grids, sites, tables and args', () => {
      const same = (f: (device: 'cpu' | 'cuda') => unknown) => {
        let cpu = '';
        try {
          f('cpu');
        } catch (e) {
          cpu = (e as Error).message;
        }
        expect(cpu).not.toBe('');
        expect(() => f('cuda')).toThrow(cpu);
      };
      same((d) => n().activeSites(put([0, 1, 1, 0, 3, 1, 2, 0], [1, 2, 4], 'uint8', d)));
      same((d) => n().neighbourTable(i32([0, -1, 1, -3, 2, -2], [1, 2, 3], d), i32([0, 0, 0], [1, 3], d), 3, 1, 1));
      same((d) => n().neighbourTable(i32([0, 1, 2, 3], [1, 2, 2], d), i32([0, 0, 0, 0, 1, 1, 0, 5, 0], [3, 3], d), 3, 1, 1));
      same((d) => n().neighbourTable(i32([0, 1, 2, 3], [1, 2, 2], d), i32([0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1], [4, 3], d), 3, 1, 1));
      same((d) => n().toSparse(put(rand(8), [1, 2, 2, 2], 'float32', d), i32([0, 0, 0, 0, 2, 0], [2, 3], d)));
      const x = (d: 'cpu' | 'cuda') => put(rand(6), [3, 2], 'float32', d);
      const w = (d: 'cpu' | 'cuda') => put(rand(4), [2, 2, 1, 1], 'float32', d);
      same((d) => n().sparseConv(x(d), w(d), null, i32([0, 2, 3, -1], [4, 1], d)));
      // Each (input row, offset) pair at most once: row 1 twice in offset 0.
      same((d) => n().sparseConvBackward(put(rand(6), [3, 2], 'float32', d), x(d), w(d), i32([1, 0, 1], [3, 1], d), true, false, false));
      same((d) => n().sparseMaxPoolBackward(put(rand(2), [1, 2], 'float32', d), i32([0, 1], [1, 2], d), i32([0, 2], [1, 2], d), 2));
    });
  });

  describeCuda('sparse conversions', () => {
    for (const dt of ['float32', 'bfloat16'] as Dev[])
      it(`toDense (with and without fill), toSparse, toDenseFillGrad (${dt}; masked 0% / 60% / 100%)`, () => {
        for (const ratio of [0, 0.6, 1]) {
          const [B, H, W, C] = [2, 9, 7, 5];
          const map = sparseMap(B, H, W, ratio, 3, 1);
          const coords = (d: NativeTensor | null) => (d?.device === 'cuda' ? map.coordsD : map.coords);
          const rows = inp(rand(map.N * C), [map.N, C]);
          const fill = inp(rand(C), [C]);
          const dense = inp(rand(B * C * H * W), [B, C, H, W]);
          check(`toDense ${ratio}`, dt, [rows, fill], ([x, f]) => [n().toDense(x!, coords(x), B, H, W, f), n().toDense(x!, coords(x), B, H, W, null)]);
          check(`toSparse ${ratio}`, dt, [dense], ([d]) => [n().toSparse(d!, coords(d))]);
          check(`toDenseFillGrad ${ratio}`, dt, [dense], ([d]) => [n().toDenseFillGrad(d!, coords(d))], TOL32);
        }
      });
  });
}
