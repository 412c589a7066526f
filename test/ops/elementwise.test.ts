/**
 * The elementwise family (add, mul, scale, axpyInPlace, biasAdd, sumRows, sum,
 * mean, gelu, relu, relu6, tanh; reshape): forward values against plain float64 TypeScript
 * references in float32 and float64, finite-difference gradients in float64,
 * and the CUDA kernels against the CPU backend.
 */
import { describe, expect, it } from 'vitest';
import { add, backward, biasAdd, gelu, mean, mul, relu, relu6, reshape, scale, sum, tanh, tensor, zeros } from '../../src/index.js';
import { describeCuda, get } from '../helpers/cuda-harness.js';
import type { NativeTensor } from '../../src/native/types.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, native, quantize, values, type DevType } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand, vals } from '../helpers/op-inputs.js';
import { gelu as geluRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('gelu uses the exact erf form; relu and relu6 clamp; tanh saturates', () => {
      const x = rand([257], dtype, -4, 4);
      const wide = rand([257], dtype, -10, 10);
      assertClose(relu6(wide).toArray(), vals(wide).map((v) => Math.min(Math.max(v, 0), 6)), tol, 'relu6');
      assertClose(gelu(x).toArray(), vals(x).map(geluRef), tol, 'gelu');
      assertClose(relu(x).toArray(), vals(x).map((v) => Math.max(v, 0)), tol, 'relu');
      assertClose(tanh(x).toArray(), vals(x).map(Math.tanh), tol, 'tanh');
      // Far in the tails tanh is ±1 exactly, and its gradient 0, never NaN.
      const big = tensor([-60, -20, 20, 60], [4], dtype);
      expect(Array.from(tanh(big).toArray())).toEqual([-1, -1, 1, 1]);
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

describe('gradcheck: elementwise and reductions', () => {
  it('add, mul (including x·x), scale', () => {
    gradcheck(([a, b]) => add(a!, b!), [leaf(3, 4), leaf(3, 4)]);
    gradcheck(([a, b]) => mul(a!, b!), [leaf(3, 4), leaf(3, 4)]);
    gradcheck(([a]) => mul(a!, a!), [leaf(5)]);
    gradcheck(([a]) => scale(a!, -2.5), [leaf(2, 3)]);
  });
  it('biasAdd', () => gradcheck(([x, b]) => biasAdd(x!, b!), [leaf(2, 3, 4), leaf(4)]));
  it('sum and mean', () => {
    gradcheck(([x]) => sum(x!), [leaf(3, 5)]);
    gradcheck(([x]) => mean(x!), [leaf(3, 5)]);
  });
  it('gelu and relu', () => {
    gradcheck(([x]) => gelu(x!), [leaf(4, 5)]);
    // Keep relu inputs away from the kink at 0, where the derivative does not exist.
    const x = tensor([-0.9, -0.4, -0.1, 0.2, 0.5, 0.8], [6], 'float64');
    x.requiresGrad = true;
    gradcheck(([x]) => relu(x!), [x]);
  });
  it('relu6', () => {
    // Away from both kinks (0 and 6), on both flat sides and the slope.
    const x = tensor([-3, -0.4, 0.2, 2.5, 5.7, 6.3, 9], [7], 'float64');
    x.requiresGrad = true;
    gradcheck(([x]) => relu6(x!), [x]);
  });
  it('relu6 passes no gradient at the kinks 0 and 6 (torch hardtanh: only strictly inside)', () => {
    const x = tensor([0, 6, 3], [3], 'float64');
    x.requiresGrad = true;
    backward(sum(relu6(x)));
    expect(Array.from(x.grad!.toArray())).toEqual([0, 0, 1]);
  });
  it('tanh', () => gradcheck(([x]) => tanh(x!), [leaf(4, 5)]));
  it('reshape', () => gradcheck(([x]) => mul(reshape(x!, [3, -1]), reshape(x!, [3, 4])), [leaf(2, 6)]));
});

describe('bad input: the elementwise family names the argument and what it expected', () => {
  it('mul, scale and biasAdd: shapes, dtypes and the factor', () => {
    expect(() => mul(zeros([2, 3]), zeros([3, 2]))).toThrow('Expected shape [2, 3] for b but received float32 tensor [3, 2]');
    expect(() => mul(zeros([2]), zeros([2], 'float64'))).toThrow('Expected a float32 tensor for b but received float64 tensor [2]');
    expect(() => mul(zeros([2], 'int32'), zeros([2], 'int32'))).toThrow('Expected a float32 or float64 tensor for a but received int32 tensor [2]');
    expect(() => mul(zeros([2]), [1, 2] as never)).toThrow('Expected a Tensor for b but received [1, 2]');
    expect(() => scale(zeros([2]), Number.NaN)).toThrow('Expected a finite number for factor but received NaN');
    expect(() => scale(zeros([2]), '2' as never)).toThrow("Expected a finite number for factor but received '2'");
    expect(() => biasAdd(zeros([2, 3]), zeros([2]))).toThrow('Expected shape [3] for bias but received float32 tensor [2]');
    expect(() => biasAdd(zeros([2, 3]), zeros([3], 'float64'))).toThrow('Expected a float32 tensor for bias but received float64 tensor [3]');
    expect(() => biasAdd(zeros([]), zeros([1]))).toThrow('Expected a 1-D to 8-D tensor for input but received float32 tensor []');
  });

  it('sum, mean and the activations: integer tensors, and the mean of nothing', () => {
    expect(() => sum(zeros([2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
    expect(() => mean(zeros([0]))).toThrow('Expected a non-empty tensor for input but received float32 tensor [0]');
    expect(() => relu(zeros([2], 'uint8'))).toThrow('Expected a float32 or float64 tensor for input but received uint8 tensor [2]');
    expect(() => relu6(zeros([2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
    expect(() => tanh(zeros([2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
  });

  it('the native entries check on their own, naming the op and the error code', () => {
    const err = (f: () => unknown): { code: string; message: string } => {
      try {
        f();
      } catch (e) {
        return e as { code: string; message: string };
      }
      throw new Error('expected an error');
    };
    const n = native();
    expect(err(() => n.mul(zeros([2, 3]).native, zeros([3, 2]).native))).toMatchObject({
      code: 'E_SHAPE', message: 'mul: Expected shape [2, 3] for b but received float32 tensor [3, 2]',
    });
    expect(err(() => n.mulBackward(zeros([2]).native, zeros([3]).native, zeros([2]).native, true, true))).toMatchObject({
      code: 'E_SHAPE', message: 'mulBackward: Expected shape [3] for b but received float32 tensor [2]',
    });
    expect(err(() => n.biasAdd(zeros([2, 3]).native, zeros([2]).native))).toMatchObject({
      code: 'E_SHAPE', message: 'biasAdd: Expected shape [3] for bias but received float32 tensor [2]',
    });
    expect(err(() => n.sum(zeros([2], 'int32').native))).toMatchObject({
      code: 'E_DTYPE', message: 'sum: Expected a float32 or float64 tensor for input but received int32 tensor [2]',
    });
    expect(err(() => n.tanh(zeros([2], 'int32').native))).toMatchObject({
      code: 'E_DTYPE', message: 'tanh: Expected a float32 or float64 tensor for input but received int32 tensor [2]',
    });
    expect(err(() => n.scale(zeros([2]).native, Number.POSITIVE_INFINITY))).toMatchObject({
      code: 'E_VALUE', message: 'scale: Expected a finite number for factor but received inf',
    });
    expect(err(() => n.reduceBackward(zeros([]).native, [2, -1], 1))).toMatchObject({
      code: 'E_SHAPE', message: 'reduceBackward: Expected an array of non-negative integers below 2^31 for shape but received element -1',
    });
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Odd sizes throughout, so every grid-stride tail is exercised. The kernels move
// 16-byte packs (4 float32 or 8 bfloat16 elements) where every pointer is 16-byte
// aligned, then the last n mod 4 or 8 elements one by one: sizes below one pack,
// of whole packs only (296 = 8·37) and of packs and a tail (301 = 8·37 + 5).

const SIZES = [1, 7, 296, 301, 1023, 4099];

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
      // C a multiple of 8 takes the pack path (the bias is whole packs too), in either dtype.
      for (const [R, C] of [[1, 5], [300, 7], [2000, 129], [0, 5], [37, 8], [5, 24], [3, 12], [41, 768]] as const) {
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

  it('gelu, relu, relu6, tanh and their backwards match the CPU (exact erf GELU)', () => {
    for (const dtype of DTYPES)
      for (const n of SIZES) {
        const x = quantize(values(n, 20 + n, 4), dtype);
        if (n > 1) x[1] = 0;  // relu's kink: the gradient is 0 at 0, as on the CPU
        if (n > 2) x[2] = 6;  // relu6's upper kink: 0 there too
        if (n > 3) x[3] = 7.5;  // relu6's flat top
        const g = quantize(values(n, 30 + n), dtype);
        for (const [name, f, fb] of [['gelu', 'gelu', 'geluBackward'], ['relu', 'relu', 'reluBackward'], ['relu6', 'relu6', 'relu6Backward'], ['tanh', 'tanh', 'tanhBackward']] as const) {
          check(`${name} [${n}]`, dtype, native()[f](dev(x, [n], dtype)), native()[f](cpu64(x, [n])));
          check(`${name}Backward [${n}]`, dtype, native()[fb](dev(g, [n], dtype), dev(x, [n], dtype)),
            native()[fb](cpu64(g, [n]), cpu64(x, [n])));
        }
      }
  });

  // A view one element into its storage (as AdamW's flat buffer hands out) is not 16-byte aligned: the
  // kernels then go element by element. Each case puts one operand, or the in-place output, off alignment.
  it('unaligned views (one element in) match the CPU: add, mul, mulBackward, scale, axpyInPlace, biasAdd, activations', () => {
    const n = 8 * 37 + 5;
    const off = (v: number[], shape: readonly number[], dtype: DevType): NativeTensor =>
      dev([0, ...v], [v.length + 1], dtype).view(1, shape);
    for (const dtype of DTYPES) {
      const a = quantize(values(n, 61, 2), dtype);
      const b = quantize(values(n, 62, 3), dtype);
      const g = quantize(values(n, 63), dtype);
      check('add a unaligned', dtype, native().add(off(a, [n], dtype), dev(b, [n], dtype)), native().add(cpu64(a, [n]), cpu64(b, [n])));
      check('mul b unaligned', dtype, native().mul(dev(a, [n], dtype), off(b, [n], dtype)), native().mul(cpu64(a, [n]), cpu64(b, [n])));
      const d = native().mulBackward(off(g, [n], dtype), dev(a, [n], dtype), dev(b, [n], dtype), true, true);
      const c = native().mulBackward(cpu64(g, [n]), cpu64(a, [n]), cpu64(b, [n]), true, true);
      check('mulBackward g unaligned da', dtype, d[0]!, c[0]!);
      check('mulBackward g unaligned db', dtype, d[1]!, c[1]!);
      check('scale unaligned', dtype, native().scale(off(a, [n], dtype), -0.37), native().scale(cpu64(a, [n]), -0.37));
      // In place into an unaligned view, and from one into an aligned tensor.
      const dd = off(b, [n], dtype);
      const dc = cpu64(b, [n]);
      native().axpyInPlace(dd, dev(a, [n], dtype), 0.5);
      native().axpyInPlace(dc, cpu64(a, [n]), 0.5);
      check('axpyInPlace out unaligned', dtype, dd, dc);
      const ad = dev(b, [n], dtype);
      native().axpyInPlace(ad, off(a, [n], dtype), 0.5);
      check('axpyInPlace a unaligned', dtype, ad, dc);
      const [R, C] = [9, 16];
      const x = a.slice(0, R * C);
      const bias = b.slice(0, C);
      const ref = native().biasAdd(cpu64(x, [R, C]), cpu64(bias, [C]));
      check('biasAdd x unaligned', dtype, native().biasAdd(off(x, [R, C], dtype), dev(bias, [C], dtype)), ref);
      check('biasAdd bias unaligned', dtype, native().biasAdd(dev(x, [R, C], dtype), off(bias, [C], dtype)), ref);
      for (const [f, fb] of [['gelu', 'geluBackward'], ['relu', 'reluBackward'], ['relu6', 'relu6Backward'], ['tanh', 'tanhBackward']] as const) {
        check(`${f} unaligned`, dtype, native()[f](off(a, [n], dtype)), native()[f](cpu64(a, [n])));
        check(`${fb} unaligned`, dtype, native()[fb](dev(g, [n], dtype), off(a, [n], dtype)), native()[fb](cpu64(g, [n]), cpu64(a, [n])));
      }
    }
  });
});
