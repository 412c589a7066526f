/**
 * The pgd family (pgdRandomStart, pgdStep): per-example L2 norms against
 * plain float64 TypeScript, the padding rows left at 0, determinism in
 * (seed, step), bad segments as errors; and the CUDA kernels against the CPU.
 * Neither op has a gradient (they update δ between passes); the gradient they
 * consume, ∂loss/∂δ through the model, is checked in test/pgd.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { fromTypedArray, pgdRandomStart, pgdStep, tensor, type Tensor } from '../../src/index.js';
import { describeCuda, get } from '../helpers/cuda-harness.js';
import { check, cpu64, dev, DTYPES, ints, native, quantize, values } from '../helpers/cuda-ops.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const seg = (starts: number[], lengths: number[]) => ({
  starts: fromTypedArray(Int32Array.from(starts), [starts.length]),
  lengths: fromTypedArray(Int32Array.from(lengths), [lengths.length]),
});

/** The L2 norm of rows [s, s + n) of a flat [R, D] array. */
function norm(v: ArrayLike<number>, D: number, s: number, n: number): number {
  let a = 0;
  for (let i = s * D; i < (s + n) * D; i++) a += v[i]! * v[i]!;
  return Math.sqrt(a);
}

/** The plain float64 step: per example Π_ε(δ + α·g/‖g‖); rows outside every example 0. */
function stepRef(d: number[], g: number[], D: number, starts: number[], lengths: number[], alpha: number, eps: number): number[] {
  const out = new Array<number>(d.length).fill(0);
  starts.forEach((s, b) => {
    const n = lengths[b]!;
    const gn = norm(g, D, s, n);
    const a = gn > 0 ? alpha / gn : 0;
    const v: number[] = [];
    for (let i = s * D; i < (s + n) * D; i++) v.push(d[i]! + a * g[i]!);
    const vn = Math.sqrt(v.reduce((x, y) => x + y * y, 0));
    const shrink = vn > eps ? eps / vn : 1;
    v.forEach((x, k) => (out[s * D + k] = x * shrink));
  });
  return out;
}

// A padded batch of 3 sequences × 5 positions, D = 7: 5, 3 and 1 real tokens.
const R = 15;
const D = 7;
const starts = [0, 5, 10];
const lengths = [5, 3, 1];

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`pgdRandomStart ${dtype}`, () => {
    const like = tensor(new Array(R * D).fill(0), [3, 5, D], dtype);
    it('has L2 norm ε per example and 0 on the padding rows', () => {
      const d = pgdRandomStart(like, seg(starts, lengths), { eps: 0.7, seed: 3, step: 9 });
      expect(d.shape).toEqual([3, 5, D]);
      const v = d.toArray();
      starts.forEach((s, b) => assertClose([norm(v, D, s, lengths[b]!)], [0.7], tol, `‖δ_${b}‖`));
      for (const [s, n] of [[8, 2], [11, 4]] as const) expect(norm(v, D, s, n)).toBe(0);
    });
    it('points along a uniform draw in [−1, 1)', () => {
      // One example of n values: ‖u‖ ≈ √(n/3) for u ~ U[−1, 1), so δ·√(n/3)/ε should look uniform.
      const n = 6000;
      const d = pgdRandomStart(tensor(new Array(n).fill(0), [n, 1], dtype), seg([0], [n]), { eps: 2, seed: 1, step: 0 }).toArray();
      const u = Array.from(d, (x) => (x * Math.sqrt(n / 3)) / 2);
      expect(Math.max(...u.map(Math.abs))).toBeLessThan(1.03);
      expect(Math.abs(u.reduce((a, b) => a + b, 0) / n)).toBeLessThan(0.03);
      expect(Math.abs(u.filter((x) => Math.abs(x) < 0.5).length / n - 0.5)).toBeLessThan(0.03);
    });
    it('is a pure function of (seed, step)', () => {
      const a = pgdRandomStart(like, seg(starts, lengths), { eps: 1, seed: 3, step: 9 }).toArray();
      const b = pgdRandomStart(like, seg(starts, lengths), { eps: 1, seed: 3, step: 9 }).toArray();
      const c = pgdRandomStart(like, seg(starts, lengths), { eps: 1, seed: 3, step: 10 }).toArray();
      const e = pgdRandomStart(like, seg(starts, lengths), { eps: 1, seed: 4, step: 9 }).toArray();
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(c));
      expect(Array.from(a)).not.toEqual(Array.from(e));
    });
    it("with rowOffset, a slice of a packed batch draws the global batch's rows (data-parallel ranks), bit for bit", () => {
      // Packed: 3 sequences of 5, 3 and 1 rows; a rank holding the last two starts at global row 5.
      const whole = pgdRandomStart(tensor(new Array(9 * D).fill(0), [9, D], dtype), seg([0, 5, 8], [5, 3, 1]), { eps: 0.7, seed: 3, step: 9 }).toArray();
      const part = pgdRandomStart(tensor(new Array(4 * D).fill(0), [4, D], dtype), seg([0, 3], [3, 1]), { eps: 0.7, seed: 3, step: 9, rowOffset: 5 }).toArray();
      expect(Array.from(part)).toEqual(Array.from(whole.slice(5 * D)));
      const unshifted = pgdRandomStart(tensor(new Array(4 * D).fill(0), [4, D], dtype), seg([0, 3], [3, 1]), { eps: 0.7, seed: 3, step: 9 }).toArray();
      expect(Array.from(unshifted)).not.toEqual(Array.from(whole.slice(5 * D)));
    });
  });

  describe(`pgdStep ${dtype}`, () => {
    it('matches Π_ε(δ + α·g/‖g‖) per example, outside and inside the ball', () => {
      const d = values(R * D, 1, 0.1);
      const g = values(R * D, 2);
      for (const [alpha, eps] of [[1.5, 1], [0.01, 5]] as const) {
        const got = pgdStep(tensor(d, [R, D], dtype), tensor(g, [R, D], dtype), seg(starts, lengths), { alpha, eps }).toArray();
        assertClose(got, stepRef(quantize(d, 'float32'), quantize(g, 'float32'), D, starts, lengths, alpha, eps), dtype === 'float32' ? tol : { atol: 1e-7, rtol: 1e-6 }, `α ${alpha} ε ${eps}`);
        // α = 1.5 > ε = 1 leaves every example on the sphere; the small step stays inside.
        starts.forEach((s, b) => {
          const n = norm(got, D, s, lengths[b]!);
          if (alpha > eps) assertClose([n], [eps], tol, `‖δ'_${b}‖`);
          else expect(n).toBeLessThan(eps);
        });
      }
    });
    it('takes no step where the gradient is 0 (only the projection)', () => {
      const d = values(R * D, 3, 2);
      const got = pgdStep(tensor(d, [R, D], dtype), tensor(new Array(R * D).fill(0), [R, D], dtype), seg(starts, lengths), { alpha: 1, eps: 1 }).toArray();
      assertClose(got, stepRef(d, new Array(R * D).fill(0), D, starts, lengths, 1, 1), { atol: 1e-6, rtol: 1e-5 }, 'projection');
    });
  });
}

describe('pgd: bad input', () => {
  const x = tensor(new Array(R * D).fill(0), [R, D]);
  const bad = (s: number[], l: number[]) => () => pgdRandomStart(x, seg(s, l), { eps: 1, seed: 0, step: 0 });
  it('rejects overlapping, out-of-order and out-of-range examples, and negative lengths', () => {
    expect(bad([0, 4], [5, 3])).toThrow(/not overlapping.*example 1 at rows \[4, 7\)/);
    expect(bad([5, 0], [3, 3])).toThrow(/in order/);
    expect(bad([10], [6])).toThrow(/within the 15 rows/);
    expect(bad([0], [-1])).toThrow(/non-negative row counts/);
  });
  it('rejects a bad radius, step size, gradient or segment tensors', () => {
    const s = seg(starts, lengths);
    expect(() => pgdRandomStart(x, s, { eps: 0, seed: 0, step: 0 })).toThrow(/eps/);
    expect(() => pgdStep(x, x, s, { alpha: -1, eps: 1 })).toThrow(/alpha/);
    expect(() => pgdStep(x, tensor(new Array(R * D).fill(0), [R, D], 'float64'), s, { alpha: 1, eps: 1 })).toThrow(/grad/);
    expect(() => pgdStep(x, tensor([0], [1, 1]), s, { alpha: 1, eps: 1 })).toThrow(/grad/);
    const floatStarts: Tensor = tensor([0, 5, 10], [3]);
    expect(() => pgdStep(x, x, { starts: floatStarts, lengths: s.lengths }, { alpha: 1, eps: 1 })).toThrow(/starts/);
    expect(() => pgdStep(x, x, { starts: s.starts, lengths: fromTypedArray(Int32Array.from([1, 1]), [2]) }, { alpha: 1, eps: 1 })).toThrow(/lengths/);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Odd sizes, and an example longer than a block's 256 threads.

describeCuda('pgd', () => {
  const Dc = 37;
  const startsC = [0, 9, 20];
  const lengthsC = [9, 2, 11];
  const Rc = 31;
  const s = (device: 'cpu' | 'cuda') => [ints(startsC, [3], device), ints(lengthsC, [3], device)] as const;

  it("pgdRandomStart draws the CPU's numbers, scaled to norm ε", () => {
    const [cs, cl] = s('cpu');
    const ref = get(native().pgdRandomStart(cpu64(new Array(Rc * Dc).fill(0), [Rc, Dc]), cs, cl, 0.9, 77, 5));
    for (const dtype of DTYPES) {
      const [ds, dl] = s('cuda');
      const got = native().pgdRandomStart(dev(new Array(Rc * Dc).fill(0), [Rc, Dc], dtype), ds, dl, 0.9, 77, 5);
      // The float64 CPU reference scales the same uniforms (exact in float32); bf16 stores them rounded first.
      check(`pgdRandomStart [${Rc}, ${Dc}]`, dtype, got, ref, undefined, { atol: 1e-6, rtol: 1e-5 });
      // At a row offset (a data-parallel rank's rows of a global batch): the CPU's draws at that offset.
      const refOff = get(native().pgdRandomStart(cpu64(new Array(Rc * Dc).fill(0), [Rc, Dc]), cs, cl, 0.9, 77, 5, 13));
      const gotOff = native().pgdRandomStart(dev(new Array(Rc * Dc).fill(0), [Rc, Dc], dtype), ds, dl, 0.9, 77, 5, 13);
      check(`pgdRandomStart [${Rc}, ${Dc}] rowOffset 13`, dtype, gotOff, refOff, undefined, { atol: 1e-6, rtol: 1e-5 });
    }
  });

  it('pgdStep matches the float64 CPU step', () => {
    const d = values(Rc * Dc, 5, 0.05);
    const g = values(Rc * Dc, 6);
    for (const dtype of DTYPES) {
      const dq = quantize(d, dtype);
      const gq = quantize(g, dtype);
      const [cs, cl] = s('cpu');
      const [ds, dl] = s('cuda');
      const ref = native().pgdStep(cpu64(dq, [Rc, Dc]), cpu64(gq, [Rc, Dc]), cs, cl, 1.5, 1);
      check(`pgdStep [${Rc}, ${Dc}]`, dtype, native().pgdStep(dev(dq, [Rc, Dc], dtype), dev(gq, [Rc, Dc], dtype), ds, dl, 1.5, 1), ref);
    }
  });
});
