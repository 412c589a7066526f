/** Native tensor lifetime: dispose, views, zero-copy I/O, scopes, and the tape freeing what it saved. */
import { describe, expect, it } from 'vitest';
import {
  backward, cachedBytes, fromTypedArray, gelu, keep, liveBytes, mul, noGrad, ones, releaseCache, scope, setCacheLimit, sum,
  tensor, zeros, layerNorm, Parameter,
} from '../src/index.js';

describe('native tensors', () => {
  it('dispose() frees native bytes at once', () => {
    const before = liveBytes();
    const t = zeros([1000], 'float32');
    expect(liveBytes() - before).toBe(4000);
    t.dispose();
    expect(liveBytes()).toBe(before);
    expect(t.disposed).toBe(true);
    expect(() => t.toArray()).toThrow(/used after dispose/);
  });

  it('fromTypedArray copies an ArrayBuffer (wraps a SharedArrayBuffer), and data() is a live view', () => {
    // A copy: the array's buffer could be transferred or shrunk under the tensor (issue 14; test/boundary.test.ts).
    const arr = new Float32Array([1, 2, 3, 4]);
    const t = fromTypedArray(arr, [2, 2]);
    arr[0] = 10;
    expect(t.toArray()[0]).toBe(1);
    const view = t.data();
    view[3] = -1;
    expect(t.toArray()[3]).toBe(-1);
    expect(arr[3]).toBe(4);
    // A SharedArrayBuffer can be neither detached nor shrunk: wrapped without copying.
    const shared = new Float32Array(new SharedArrayBuffer(16)).fill(1);
    const s = fromTypedArray(shared, [2, 2]);
    shared[0] = 10;
    expect(s.toArray()[0]).toBe(10);
    s.data()[3] = -1;
    expect(shared[3]).toBe(-1);
    expect(t.shape).toEqual([2, 2]);
    expect(t.dtype).toBe('float32');
  });

  it('a view keeps storage alive after the source handle is disposed', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [6], 'float64');
    const v = t.native.view(2, [2, 2]);
    t.dispose();
    expect(Array.from(v.read())).toEqual([3, 4, 5, 6]);
    v.dispose();
  });

  it('supports the four dtypes and casts between them', () => {
    for (const dtype of ['float32', 'float64', 'int32', 'uint8'] as const) {
      const t = tensor([1, 2, 250], [3], dtype);
      expect(t.dtype).toBe(dtype);
      expect(Array.from(t.toArray())).toEqual([1, 2, 250]);
    }
    const f = tensor([1.7, -2.2], [2], 'float32');
    expect(Array.from(f.native.cast('int32').read())).toEqual([1, -2]);
  });
});

describe('large-block cache', () => {
  it('keeps freed blocks of 128 KiB and more for reuse, zero-filled again, and releases them on request', () => {
    releaseCache();
    const n = (2 << 20) / 4;
    const a = zeros([n]);
    a.native.fill(7);
    const live = liveBytes();
    a.dispose();
    expect(liveBytes()).toBe(live - 4 * n);
    expect(cachedBytes()).toBe(4 * n);
    const b = zeros([n]); // takes the cached block
    expect(cachedBytes()).toBe(0);
    const v = b.toArray();
    expect(v.every((x) => x === 0)).toBe(true);
    b.dispose();
    releaseCache();
    expect(cachedBytes()).toBe(0);
    // Small blocks never enter the cache (the smallest cached is 128 KiB), and a zero limit turns it off.
    zeros([100]).dispose();
    zeros([(128 << 10) / 4 - 1]).dispose();
    expect(cachedBytes()).toBe(0);
    zeros([(128 << 10) / 4]).dispose();
    expect(cachedBytes()).toBe(128 << 10);
    releaseCache();
    setCacheLimit(0);
    zeros([n]).dispose();
    expect(cachedBytes()).toBe(0);
    setCacheLimit(1 << 30);
    expect(() => setCacheLimit(-1)).toThrow('Expected an integer in [0, 1125899906842624] for bytes but received -1');
  });
});

describe('scope', () => {
  it('disposes intermediates and keeps what is returned or kept', () => {
    const before = liveBytes();
    let kept!: ReturnType<typeof zeros>;
    const out = scope(() => {
      const a = ones([10]);
      const b = mul(a, a);
      kept = keep(zeros([3]));
      return { b };
    });
    expect(out.b.disposed).toBe(false);
    expect(kept.disposed).toBe(false);
    expect(liveBytes() - before).toBe(40 + 12);
    out.b.dispose();
    kept.dispose();
    expect(liveBytes()).toBe(before);
  });

  it('disposes everything when the callback throws', () => {
    const before = liveBytes();
    expect(() =>
      scope(() => {
        ones([100]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(liveBytes()).toBe(before);
  });
});

describe('autograd tape', () => {
  it('frees saved activations after backward even when the user disposed the inputs', () => {
    const w = Parameter.from(tensor([0.5, -1, 2, 0.1], [4], 'float64'));
    const before = liveBytes();
    scope(() => {
      const h = gelu(mul(w, w));
      const y = layerNorm(h, null, null, 1e-5);
      const loss = sum(mul(y, h));
      h.dispose(); // the tape holds its own handles
      backward(loss);
    });
    // What remains is only w's gradient.
    expect(liveBytes() - before).toBe(4 * 8);
    expect(w.grad).not.toBeNull();
    expect(() => {
      const loss = sum(w);
      backward(loss);
      backward(loss);
    }).toThrow(/a second time/);
    w.dispose();
  });

  it('records nothing under noGrad', () => {
    const w = Parameter.from(ones([3]));
    const y = noGrad(() => mul(w, w));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const z = mul(w, w);
    expect(z.requiresGrad).toBe(true);
    expect(z.gradFn?.name).toBe('mul');
  });
});
