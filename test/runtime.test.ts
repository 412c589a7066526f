/** The thread pool is configurable, reported, and results do not depend on its size. */
import { afterAll, describe, expect, it } from 'vitest';
import { attention, backward, layerNorm, matmul, mul, Rng, runtimeInfo, setNumThreads, sum, tensor } from '../src/index.js';
import { native } from '../src/native/loader.js';
import { matmulRef } from './helpers/reference.js';

const cores = runtimeInfo().threads;
afterAll(() => setNumThreads(cores));

describe('runtime', () => {
  it('resizing the pool between calls, 1,500 times, never loses or cuts short a call: every product equals the first', () => {
    // A worker started by a resize once took the previous call's generation for new work; its extra
    // bookkeeping could end a later call's wait early or never (a CI run hung in a conv test). Each resize here
    // is followed at once by pooled products, when a new worker is still starting.
    const a = native().fromTypedArray(Float32Array.from({ length: 128 * 96 }, (_, i) => ((i * 7) % 13) - 6), [128, 96]);
    const b = native().fromTypedArray(Float32Array.from({ length: 96 * 112 }, (_, i) => ((i * 5) % 11) - 5), [96, 112]);
    const first = native().matmul(a, b, false, false, 'builtin');
    const want = Array.from(first.read());
    first.dispose();
    let same = 0;
    for (let i = 0; i < 1500; i++) {
      setNumThreads(2 + (i % 2));
      const c = native().matmul(a, b, false, false, 'builtin');
      const got = c.read();
      c.dispose();
      if (got.every((x, k) => x === want[k])) same++;
    }
    expect(same).toBe(1500);
    a.dispose();
    b.dispose();
  }, 60_000);
  it('reports backend, BLAS and thread counts, and follows setNumThreads', () => {
    const info = runtimeInfo();
    expect(info.backend).toBe('cpu');
    expect(info.addon).toMatch(/cloze_cpu\.node$/);
    expect(info.blasCore.length).toBeGreaterThan(0);
    setNumThreads(1);
    expect(runtimeInfo().threads).toBe(1);
    expect(runtimeInfo().blasThreads).toBe(1);
    setNumThreads(3);
    expect(runtimeInfo().threads).toBe(3);
    // GEMMs run on the pool, so the BLAS follows it.
    expect(runtimeInfo().blasThreads).toBe(3);
  });

  it('splits a GEMM over the pool bit-identically with 1, 2 and 3 threads, and matches a float64 product', () => {
    // Large enough to be cut into blocks (over 2^21 multiply-adds), odd sizes, both split directions and transposes.
    const rng = new Rng(9);
    const r = (shape: number[]) => tensor(Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.normal()), shape);
    for (const [m, k, n] of [[1037, 61, 45], [45, 61, 1037]] as const) {
      const a = r([m, k]);
      const b = r([n, k]);
      const at = r([k, m]);
      const bt = r([k, n]);
      const run = () => [
        matmul(a, b, { transB: true }).toArray(),
        matmul(b, a, { transB: true }).toArray(),
        matmul(at, bt, { transA: true }).toArray(),
      ];
      setNumThreads(1);
      const one = run();
      for (const t of [2, 3]) {
        setNumThreads(t);
        const got = run();
        expect(Array.from(got[0]!)).toEqual(Array.from(one[0]!));
        expect(Array.from(got[1]!)).toEqual(Array.from(one[1]!));
        expect(Array.from(got[2]!)).toEqual(Array.from(one[2]!));
      }
      // Every block lands where it belongs: against a float64 sum in TypeScript.
      const av = a.toArray(), bv = b.toArray(), c = one[0]!;
      let worst = 0;
      for (let i = 0; i < m; i += 7) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += av[i * k + q]! * bv[j * k + q]!;
          worst = Math.max(worst, Math.abs(s - c[i * n + j]!));
        }
      }
      const atv = at.toArray(), btv = bt.toArray(), c2 = one[2]!;
      for (let i = 0; i < m; i += 7) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += atv[q * m + i]! * btv[q * n + j]!;
          worst = Math.max(worst, Math.abs(s - c2[i * n + j]!));
        }
      }
      expect(worst).toBeLessThan(1e-4);
    }
  });

  it('the built-in GEMM (packed panels, k slices of 256) is bit-identical with 1, 2 and 3 threads, every transpose, float32 and float64', () => {
    // The block shape follows the thread count (blocks halve until each thread has about 4), so these shapes get
    // different blockings at 1, 2 and 3 threads. K = 300 and 517 cross the 256-wide k slices; N = 61 (float32:
    // strips of 32, 16 and 13 columns) and 1024 (a 4 KiB row stride) cover every strip kind and a power-of-two stride.
    const rng = new Rng(11);
    for (const dtype of ['float32', 'float64'] as const)
      for (const [M, N, K] of [[70, 61, 300], [130, 1024, 517], [1, 61, 3]] as const)
        for (const ta of [false, true])
          for (const tb of [false, true]) {
            const av = Array.from({ length: M * K }, () => rng.normal());
            const bv = Array.from({ length: K * N }, () => rng.normal());
            const mk = (v: number[], shape: number[]) =>
              native().fromTypedArray(dtype === 'float32' ? Float32Array.from(v) : Float64Array.from(v), shape);
            const A = mk(av, ta ? [K, M] : [M, K]);
            const B = mk(bv, tb ? [N, K] : [K, N]);
            const runs = [1, 2, 3].map((t) => {
              setNumThreads(t);
              const c = native().matmul(A, B, ta, tb, 'builtin');
              const out = Array.from(c.read() as Float32Array | Float64Array);
              c.dispose();
              return out;
            });
            expect(runs[1]).toEqual(runs[0]);
            expect(runs[2]).toEqual(runs[0]);
            // Operands rounded to the dtype, summed in float64: every block and strip lands where it belongs.
            const ref = matmulRef(Array.from(A.read() as Float32Array | Float64Array), Array.from(B.read() as Float32Array | Float64Array), M, N, K, ta, tb);
            const eps = dtype === 'float32' ? 1.2e-7 : 2.2e-16;
            let worst = 0;
            for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(runs[0]![i]! - ref[i]!) / (4 * K * eps * (1 + Math.abs(ref[i]!))));
            expect(worst, `${dtype} ${M}×${N}×${K} transA=${ta} transB=${tb}`).toBeLessThan(1);
            A.dispose();
            B.dispose();
          }
  });

  it('gives bit-identical results with 1 and 3 threads', () => {
    const rng = new Rng(4);
    const r = (shape: number[]) => tensor(Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.normal()), shape);
    const q = r([3, 70, 2, 16]);
    const k = r([3, 70, 2, 16]);
    const v = r([3, 70, 2, 16]);
    const x = r([300, 40]);
    const w = r([40]);
    w.requiresGrad = true;
    const gy = r([300, 40]);
    const run = () => {
      w.grad = null;
      const y = layerNorm(x, w, null);
      backward(sum(mul(y, gy)));
      return [attention(q, k, v).out.toArray(), y.toArray(), w.grad!.toArray()];
    };
    setNumThreads(1);
    const one = run();
    setNumThreads(3);
    const three = run();
    expect(Array.from(three[0]!)).toEqual(Array.from(one[0]!));
    expect(Array.from(three[1]!)).toEqual(Array.from(one[1]!));
    expect(Array.from(three[2]!)).toEqual(Array.from(one[2]!));
    expect(() => setNumThreads(0)).toThrow('Expected an integer in [1, 1024] for threads but received 0');
  });
});
