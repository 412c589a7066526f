// CUDA elementwise ops, reductions, activations, dropout, GeGLU and layout
// changes against the CPU backend (float64 reference; float32 and bfloat16 on
// the device). Odd sizes throughout, so every grid-stride tail is exercised.
import { expect, it } from 'vitest';
import { tolFor } from '../helpers/tolerance.js';
import { describeCuda, get, put } from './harness.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, native, quantize, values } from './ops-helpers.js';

const SIZES = [1, 7, 1023, 4099];

describeCuda('elementwise', () => {
  it('add, mul, scale and axpyInPlace match the CPU', () => {
    for (const dtype of DTYPES)
      for (const n of SIZES) {
        const a = quantize(values(n, 1, 2), dtype);
        const b = quantize(values(n, 2, 3), dtype);
        const l = `[${n}]`;
        check(`add ${l}`, dtype, native().add(dev(a, [n], dtype), dev(b, [n], dtype)), native().add(cpu64(a, [n]), cpu64(b, [n])));
        check(`mul ${l}`, dtype, native().mul(dev(a, [n], dtype), dev(b, [n], dtype)), native().mul(cpu64(a, [n]), cpu64(b, [n])));
        check(`scale ${l}`, dtype, native().scale(dev(a, [n], dtype), -0.37), native().scale(cpu64(a, [n]), -0.37));
        const dd = dev(a, [n], dtype);
        const dc = cpu64(a, [n]);
        native().axpyInPlace(dd, dev(b, [n], dtype), 0.5);
        native().axpyInPlace(dc, cpu64(b, [n]), 0.5);
        check(`axpyInPlace ${l}`, dtype, dd, dc);
      }
  });

  it('mulBackward gives only the gradients asked for', () => {
    for (const dtype of DTYPES) {
      const n = 1023;
      const [g, a, b] = [3, 4, 5].map((s) => quantize(values(n, s), dtype));
      const d = native().mulBackward(dev(g!, [n], dtype), dev(a!, [n], dtype), dev(b!, [n], dtype), true, true);
      const c = native().mulBackward(cpu64(g!, [n]), cpu64(a!, [n]), cpu64(b!, [n]), true, true);
      check('mulBackward da', dtype, d[0]!, c[0]!);
      check('mulBackward db', dtype, d[1]!, c[1]!);
      const only = native().mulBackward(dev(g!, [n], dtype), dev(a!, [n], dtype), dev(b!, [n], dtype), false, true);
      expect(only[0]).toBeNull();
      check('mulBackward db only', dtype, only[1]!, c[1]!);
    }
  });

  it('biasAdd and sumRows match the CPU, including odd widths and zero rows', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[1, 5], [300, 7], [2000, 129], [0, 5]] as const) {
        const x = quantize(values(R * C, R + C, 1.5), dtype);
        const b = quantize(values(C, 9), dtype);
        check(`biasAdd [${R}, ${C}]`, dtype, native().biasAdd(dev(x, [R, C], dtype), dev(b, [C], dtype)),
          native().biasAdd(cpu64(x, [R, C]), cpu64(b, [C])));
        // fp32 accumulation over R rows: the absolute error grows with R where a column sums to near zero.
        const tol = { atol: 2e-6 * Math.max(1, R), rtol: tolFor('float32').rtol };
        const naive = Array.from({ length: C }, (_, c) => bfSum(Array.from({ length: R }, (_, r) => x[r * C + c]!)));
        check(`sumRows [${R}, ${C}]`, dtype, native().sumRows(dev(x, [R, C], dtype)), native().sumRows(cpu64(x, [R, C])), naive, tol);
      }
  });

  it('sumRows, sum and mean are bitwise repeatable', () => {
    for (const dtype of DTYPES) {
      const x = dev(quantize(values(3001 * 33, 11), dtype), [3001, 33], dtype);
      expect(Array.from(get(native().sumRows(x)))).toEqual(Array.from(get(native().sumRows(x))));
      expect(get(native().sum(x))[0]).toBe(get(native().sum(x))[0]);
      expect(get(native().mean(x))[0]).toBe(get(native().mean(x))[0]);
    }
  });

  it('sum and mean match the CPU over sizes past one partial per block', () => {
    for (const dtype of DTYPES)
      for (const n of [1, 1000, 300001]) {
        const x = quantize(values(n, n, 1, 0.25), dtype);
        const s = native().sum(dev(x, [n], dtype));
        expect(s.shape).toEqual([]);
        expect(s.dtype).toBe(dtype);
        expect(s.device).toBe('cuda');
        // fp32 output of an fp64 sum: one rounding; atol for the cancellation in the centred part.
        const tol = { atol: 1e-5, rtol: 2e-6 };
        const naiveSum = bfSum(x);
        check(`sum [${n}]`, dtype, s, native().sum(cpu64(x, [n])), [naiveSum], tol);
        check(`mean [${n}]`, dtype, native().mean(dev(x, [n], dtype)), native().mean(cpu64(x, [n])), [bf(naiveSum / n)], tol);
      }
    expect(get(native().sum(dev([], [0], 'float32')))[0]).toBe(0);
  });

  it('reduceBackward fills from a device scalar', () => {
    for (const dtype of DTYPES) {
      const g = dev([bf(1.5)], [], dtype);
      const out = native().reduceBackward(g, [3, 5], 0.25);
      expect(out.device).toBe('cuda');
      expect(out.shape).toEqual([3, 5]);
      expect(Array.from(get(out))).toEqual(new Array(15).fill(0.375));
      expect(native().reduceBackward(g, [0], 2).shape).toEqual([0]);
    }
  });

  it('gelu, relu and their backwards match the CPU (exact erf GELU)', () => {
    for (const dtype of DTYPES)
      for (const n of SIZES) {
        const x = quantize(values(n, 20 + n, 4), dtype);
        if (n > 1) x[1] = 0;  // relu's kink: the gradient is 0 at 0, as on the CPU
        const g = quantize(values(n, 30 + n), dtype);
        for (const [name, f, fb] of [['gelu', 'gelu', 'geluBackward'], ['relu', 'relu', 'reluBackward']] as const) {
          check(`${name} [${n}]`, dtype, native()[f](dev(x, [n], dtype)), native()[f](cpu64(x, [n])));
          check(`${name}Backward [${n}]`, dtype, native()[fb](dev(g, [n], dtype), dev(x, [n], dtype)),
            native()[fb](cpu64(g, [n]), cpu64(x, [n])));
        }
      }
  });

  it("dropout draws the CPU's mask bit for bit (0%, 30% and 100% dropped)", () => {
    for (const n of [1, 5, 4099])
      for (const p of [0, 0.3, 1]) {
        const x = quantize(values(n, 40 + n, 2), 'bfloat16');  // exact in both dtypes
        const seed = 2 ** 40 + 3;
        const cpu = get(native().dropout(put(x, [n], 'float32', 'cpu'), p, seed, 7));
        const d32 = get(native().dropout(dev(x, [n], 'float32'), p, seed, 7));
        expect(Array.from(d32)).toEqual(Array.from(cpu));
        // bf16: the same mask and the same fp32 product, rounded once.
        const d16 = get(native().dropout(dev(x, [n], 'bfloat16'), p, seed, 7));
        expect(Array.from(d16)).toEqual(Array.from(cpu, bf));
        if (p === 1) expect(Array.from(d32).every((v) => v === 0)).toBe(true);
        if (p === 0) expect(Array.from(d32)).toEqual(x);
      }
  });

  it('geglu and gegluBackward match the CPU', () => {
    for (const dtype of DTYPES)
      for (const [R, I] of [[1, 1], [3, 5], [17, 64]] as const) {
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

  it('toChannelsLast and toChannelsFirst permute exactly', () => {
    for (const dtype of DTYPES)
      for (const [B, C, H, W] of [[2, 3, 5, 7], [1, 33, 4, 9], [3, 64, 1, 1], [1, 1, 40, 37]] as const) {
        const x = quantize(values(B * C * H * W, B + C + H + W), dtype);
        const last = native().toChannelsLast(dev(x, [B, C, H, W], dtype));
        expect(last.shape).toEqual([B, H, W, C]);
        expect(Array.from(get(last))).toEqual(Array.from(get(native().toChannelsLast(cpu64(x, [B, C, H, W])))));
        expect(Array.from(get(native().toChannelsFirst(last)))).toEqual(x);
      }
  });
});

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
