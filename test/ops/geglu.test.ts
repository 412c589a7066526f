/** geglu: forward against a TypeScript reference at odd sizes, finite-difference backward, bad input; the CUDA kernels against the CPU. */
import { describe, expect, it } from 'vitest';
import { geglu, Rng, tensor, type DType } from '../../src/index.js';
import { describeCuda } from '../helpers/cuda-harness.js';
import { bf, check, cpu64, dev, DTYPES, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { erfcRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

// erf from the shared float64 reference (series below |x| = 3, continued fraction above).
const erf = (x: number): number => 1 - erfcRef(x);

function gegluRef(x: ArrayLike<number>, rows: number, inner: number): Float64Array {
  const out = new Float64Array(rows * inner);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < inner; i++) {
      const a = x[r * 2 * inner + i]!;
      const b = x[r * 2 * inner + inner + i]!;
      out[r * inner + i] = 0.5 * a * (1 + erf(a / Math.SQRT2)) * b;
    }
  return out;
}

describe('geglu', () => {
  const rng = new Rng(31);
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [lead, inner] of [[[1], 1], [[3, 5], 7], [[97], 59], [[2, 3], 1025]] as Array<[number[], number]>)
      it(`forward matches the reference: ${dtype} [${lead.join(', ')}, 2·${inner}]`, () => {
        const rows = lead.reduce((a, b) => a * b, 1);
        const vals = Array.from({ length: rows * 2 * inner }, () => (rng.uniform() * 2 - 1) * 4);
        const x = tensor(vals, [...lead, 2 * inner], dtype);
        const y = geglu(x);
        expect(y.shape).toEqual([...lead, inner]);
        // Compare with the reference on the values the kernel actually saw (float32-rounded).
        assertClose(y.toArray(), gegluRef(x.toArray(), rows, inner), tolFor(dtype), 'geglu');
      });

  it('backward matches finite differences (float64)', () => {
    gradcheck(([x]) => geglu(x!), [randLeaf([3, 2 * 5], rng)]);
    gradcheck(([x]) => geglu(x!), [randLeaf([2, 3, 2 * 7], rng)]);
  });

  it('rejects an odd last dimension and integer input', () => {
    expect(() => geglu(tensor([1, 2, 3], [1, 3]))).toThrow(/Expected a tensor whose last dimension is even and non-zero for input/);
    expect(() => geglu(tensor([1, 2], [1, 2], 'int32'))).toThrow(/for input/);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// The naive bf16 reference rounds GELU(a) and the product, two ops.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  // Abramowitz–Stegun 7.1.26 is too coarse for a reference; a series/continued
  // fraction pair gives erf to double precision for the naive GeGLU.
  function erf(x: number): number {
    const ax = Math.abs(x);
    if (ax < 2.5) {
      let term = ax, sum = ax;
      for (let k = 1; k < 60; k++) {
        term *= (-ax * ax) / k;
        sum += term / (2 * k + 1);
      }
      return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
    }
    // erfc continued fraction (Lentz) for the tail.
    let f = ax, C = ax, D = 0;
    for (let k = 1; k < 200; k++) {
      const a = k / 2;
      D = ax + a * D;
      D = D === 0 ? 1e-300 : 1 / D;
      C = ax + a / C;
      const delta = C * D;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
    return Math.sign(x) * (1 - erfc);
  }

  describeCuda('elementwise', () => {

    it('geglu and gegluBackward match the CPU', () => {
      for (const dtype of DTYPES)
        // I a multiple of 8 (or of 4 in float32) takes the 16-byte pack path; 12 packs in float32 only.
        for (const [R, I] of [[1, 1], [3, 5], [17, 64], [5, 8], [7, 12], [37, 40]] as const) {
          const x = quantize(values(R * 2 * I, R * I, 3), dtype);
          const g = quantize(values(R * I, R + I), dtype);
          // Naive bf16: GELU(a) is one op, the product another.
          const naive = Array.from({ length: R * I }, (_, k) => {
            const r = Math.floor(k / I), i = k % I;
            const a = x[r * 2 * I + i]!, b = x[r * 2 * I + I + i]!;
            return bf(bf(a * 0.5 * (1 + erf(a / Math.SQRT2))) * b);
          });
          check(`geglu [${R}, ${2 * I}]`, dtype, native().geglu(dev(x, [R, 2 * I], dtype)), native().geglu(cpu64(x, [R, 2 * I])), naive);
          check(`gegluBackward [${R}, ${2 * I}]`, dtype, native().gegluBackward(dev(g, [R, I], dtype), dev(x, [R, 2 * I], dtype)),
            native().gegluBackward(cpu64(g, [R, I]), cpu64(x, [R, 2 * I])));
        }
    });

    it('geglu and gegluBackward of unaligned views (one element into their storage) match the CPU', () => {
      const [R, I] = [5, 16];
      for (const dtype of DTYPES) {
        const x = quantize(values(R * 2 * I, 71, 3), dtype);
        const g = quantize(values(R * I, 72), dtype);
        const xv = dev([0, ...x], [R * 2 * I + 1], dtype).view(1, [R, 2 * I]);
        const gv = dev([0, ...g], [R * I + 1], dtype).view(1, [R, I]);
        const naive = Array.from({ length: R * I }, (_, k) => {
          const r = Math.floor(k / I), i = k % I;
          const a = x[r * 2 * I + i]!, b = x[r * 2 * I + I + i]!;
          return bf(bf(a * 0.5 * (1 + erf(a / Math.SQRT2))) * b);
        });
        check('geglu x unaligned', dtype, native().geglu(xv), native().geglu(cpu64(x, [R, 2 * I])), naive);
        const ref = native().gegluBackward(cpu64(g, [R, I]), cpu64(x, [R, 2 * I]));
        check('gegluBackward x unaligned', dtype, native().gegluBackward(dev(g, [R, I], dtype), xv), ref);
        check('gegluBackward grad unaligned', dtype, native().gegluBackward(gv, dev(x, [R, 2 * I], dtype)), ref);
      }
    });
  });
}
