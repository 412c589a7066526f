/**
 * dropout: the kept fraction and scale, determinism in (seed, step), p = 0, 1
 * and eval mode; the gradient by finite differences (float64); and the CUDA
 * kernel's mask against the CPU's, bit for bit; and the element offset that
 * lets a data-parallel rank draw its slice of the global batch's mask; the
 * mask against an independent BigInt Philox, element by element. dropoutAdd (residual + dropout(x) in one pass)
 * against the chain add(residual, dropout(x)), bit for bit, on both backends.
 */
import { describe, expect, it } from 'vitest';
import { add, backward, dropout, mul, scope, setNumThreads, runtimeInfo, sum, tensor, type DType } from '../../src/index.js';
import { dropoutAdd } from '../../src/ops/dropout.js';
import { describeCuda, get, itOnDevice, put } from '../helpers/cuda-harness.js';
import { bf, dev, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf } from '../helpers/op-inputs.js';
import { philoxRef } from '../helpers/philox-ref.js';

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
  it('with an offset, a slice draws exactly the slice of the full call (offsets on and off the 4-lane Philox blocks)', () => {
    const n = 1003;
    const full = Array.from({ length: n }, (_, i) => 1 + (i % 17) / 8);
    const whole = dropout(tensor(full, [n], 'float32'), { p: 0.4, seed: 9, step: 2 }).toArray();
    for (const [off, len] of [[0, 5], [1, 1], [3, 10], [4, 400], [6, 997], [501, 502], [1002, 1]] as const) {
      const part = dropout(tensor(full.slice(off, off + len), [len], 'float32'), { p: 0.4, seed: 9, step: 2, offset: off }).toArray();
      expect(Array.from(part)).toEqual(Array.from(whole.slice(off, off + len)));
    }
  });
  it('draws lane g%4 of Philox block g/4 for global element g (an independent BigInt Philox), float32 and float64', () => {
    // Sizes and offsets that start and end inside the kernel's 64-element groups and its 4-lane blocks.
    const p = 0.3;
    for (const dtype of ['float32', 'float64'] as const)
      for (const [n, offset, seed, step] of [[1003, 0, 7, 3], [131, 61, 2 ** 40 + 5, 2 ** 33 + 1], [5, 2 ** 35 + 3, 11, 0]] as const) {
        const xs = Array.from({ length: n }, (_, i) => 1 + (i % 13) / 4);
        const got = dropout(tensor(xs, [n], dtype), { p, seed, step, offset }).toArray();
        const drop = Math.fround(p);
        const keep = dtype === 'float32' ? Math.fround(1 / (1 - p)) : 1 / (1 - p);
        const want = xs.map((x, i) => {
          const g = BigInt(offset) + BigInt(i);
          const lane = philoxRef(BigInt(seed), BigInt(step), g / 4n)[Number(g % 4n)]!;
          const u = (lane >>> 8) / 16777216;
          const kept = dtype === 'float32' ? Math.fround(Math.fround(x) * keep) : x * keep;
          return u >= drop ? kept : 0;
        });
        expect(Array.from(got)).toEqual(want);
      }
  });
  it('refuses a negative or fractional offset, naming it', () => {
    expect(() => dropout(tensor([1, 2]), { p: 0.5, seed: 1, step: 0, offset: -4 })).toThrow(/offset/);
    expect(() => dropout(tensor([1, 2]), { p: 0.5, seed: 1, step: 0, offset: 1.5 })).toThrow(/offset/);
  });
});

describe('dropoutAdd: residual + dropout(x) in one pass', () => {
  const chain = (x: number[], r: number[], dtype: DType, p: number, offset = 0): number[] =>
    scope(() => Array.from(add(tensor(r, [r.length], dtype), dropout(tensor(x, [x.length], dtype), { p, seed: 9, step: 3, offset })).toArray()));
  const fused = (x: number[], r: number[], dtype: DType, p: number, offset = 0): number[] =>
    scope(() => Array.from(dropoutAdd(tensor(x, [x.length], dtype), tensor(r, [r.length], dtype), { p, seed: 9, step: 3, offset }).toArray()));
  it('equals add(residual, dropout(x)) bit for bit: float32 and float64, odd sizes, 0%, 30% and 100% dropped, offsets', () => {
    for (const dtype of ['float32', 'float64'] as DType[])
      for (const n of [1, 5, 63, 64, 65, 301, 4099])
        for (const p of [0, 0.3, 1])
          for (const offset of [0, 3, 64]) {
            const x = values(n, n + 1, 3), r = values(n, n + 2, 3);
            expect(fused(x, r, dtype, p, offset), `${dtype} n=${n} p=${p} offset=${offset}`).toEqual(chain(x, r, dtype, p, offset));
          }
  });
  it('gives the same bits on 1 and 2 threads', () => {
    const t0 = runtimeInfo().threads;
    const x = values(100_000, 3, 3), r = values(100_000, 4, 3);
    try {
      setNumThreads(1);
      const one = fused(x, r, 'float32', 0.1);
      setNumThreads(2);
      expect(fused(x, r, 'float32', 0.1)).toEqual(one);
    } finally {
      setNumThreads(t0);
    }
  });
  it('gradients: dropout of the gradient for x, the gradient itself for residual (as the chain)', () => {
    const x = values(37, 5, 3), r = values(37, 6, 3), w = values(37, 7, 3);
    const grads = (f: boolean): number[][] =>
      scope(() => {
        const xt = tensor(x, [37], 'float64'), rt = tensor(r, [37], 'float64');
        xt.requiresGrad = true;
        rt.requiresGrad = true;
        const y = f ? dropoutAdd(xt, rt, { p: 0.3, seed: 9, step: 3 }) : add(rt, dropout(xt, { p: 0.3, seed: 9, step: 3 }));
        backward(sum(mul(y, tensor(w, [37], 'float64'))));
        return [Array.from(xt.grad!.toArray()), Array.from(rt.grad!.toArray())];
      });
    expect(grads(true)).toEqual(grads(false));
  });
  it('refuses a residual of another shape or dtype, naming it', () => {
    const x = tensor([1, 2, 3], [3]);
    expect(() => dropoutAdd(x, tensor([1, 2], [2]), { p: 0.1, seed: 1, step: 0 })).toThrow(/residual/);
    expect(() => dropoutAdd(x, tensor([1, 2, 3], [3], 'float64'), { p: 0.1, seed: 1, step: 0 })).toThrow(/residual/);
    expect(() => native().dropoutAdd(x.native, tensor([1, 2], [2]).native, 0.1, 1, 0)).toThrow(/Expected shape \[3\] for residual/);
  });
});

describe('gradcheck: elementwise and reductions', () => {
  it('dropout: the mask is a function of (seed, step), so it differentiates like a fixed mask', () => {
    gradcheck(([x]) => dropout(x!, { p: 0.3, seed: 11, step: 4 }), [leaf(6, 7)]);
  });
  it('dropoutAdd: x through the fixed mask, residual straight through', () => {
    gradcheck(([x, r]) => dropoutAdd(x!, r!, { p: 0.3, seed: 11, step: 4 }), [leaf(6, 7), leaf(6, 7)]);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// The same Philox mask bits on both backends.

describeCuda('elementwise', () => {

  it("dropout draws the CPU's mask bit for bit (0%, 30% and 100% dropped)", () => {
    for (const n of [1, 5, 301, 4099])
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

  // An offset that is a multiple of 4 (with 16-byte-aligned tensors) takes the kernel's 8-elements-per-thread
  // path, whose last n mod 8 elements go one by one; other offsets the one-thread-per-Philox-block path.
  it("dropout with an element offset draws the CPU's slice (a data-parallel rank's rows)", () => {
    const n = 4099;
    const x = quantize(values(n, 7, 2), 'bfloat16');
    const cpu = get(native().dropout(put(x, [n], 'float32', 'cpu'), 0.3, 5, 1));
    for (const [off, len] of [[1, 7], [6, 2048], [2051, 2048], [0, 301], [4, 2047], [8, 301], [2052, 2045], [12, 5]] as const) {
      const d = get(native().dropout(dev(x.slice(off, off + len), [len], 'float32'), 0.3, 5, 1, off));
      expect(Array.from(d)).toEqual(Array.from(cpu.slice(off, off + len)));
      const d16 = get(native().dropout(dev(x.slice(off, off + len), [len], 'bfloat16'), 0.3, 5, 1, off));
      expect(Array.from(d16)).toEqual(Array.from(cpu.slice(off, off + len), bf));
    }
  });

  // dropoutAdd on the device against add(residual, dropout(x)) on the device (bf16: the dropped value rounded to
  // bf16 before the add, as the chain stores it), on both kernel paths (offset multiple of 4 or not).
  const dropoutAddChain = (dtype: 'float32' | 'bfloat16'): void => {
    for (const [n, off] of [[4099, 0], [301, 3], [5, 8], [1, 0]] as const)
      for (const p of [0, 0.3, 1]) {
        const x = dev(values(n, n + 9, 3), [n], dtype), r = dev(values(n, n + 10, 3), [n], dtype);
        const d = native().dropout(x, p, 77, 2, off);
        const want = get(native().add(r, d));
        const got = get(native().dropoutAdd(x, r, p, 77, 2, off));
        expect(Array.from(got), `${dtype} n=${n} offset=${off} p=${p}`).toEqual(Array.from(want));
      }
  };
  it('dropoutAdd equals the device chain add(residual, dropout(x)) bit for bit, float32', () => dropoutAddChain('float32'));
  // The pretend device's bfloat16 runs the fused op in float32 and rounds once, so only a GPU checks the rounding order.
  itOnDevice('dropoutAdd equals the device chain add(residual, dropout(x)) bit for bit, bfloat16', () => dropoutAddChain('bfloat16'));

  it("dropout of an unaligned view (one element into its storage) draws the CPU's mask", () => {
    const n = 4099;
    const x = quantize(values(n, 8, 2), 'bfloat16');
    const cpu = get(native().dropout(put(x, [n], 'float32', 'cpu'), 0.3, 5, 1));
    for (const dtype of ['float32', 'bfloat16'] as const)
      for (const [off, len] of [[0, 301], [4, 2047], [3, 100]] as const) {
        const v = dev([0, ...x.slice(off, off + len)], [len + 1], dtype).view(1, [len]);
        const d = get(native().dropout(v, 0.3, 5, 1, off));
        const want = cpu.slice(off, off + len);
        expect(Array.from(d)).toEqual(dtype === 'float32' ? Array.from(want) : Array.from(want, bf));
      }
  });
});
