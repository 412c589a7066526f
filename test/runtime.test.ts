/** The thread pool is configurable, reported, and results do not depend on its size. */
import { afterAll, describe, expect, it } from 'vitest';
import { attention, backward, layerNorm, mul, Rng, runtimeInfo, setNumThreads, sum, tensor } from '../src/index.js';

const cores = runtimeInfo().threads;
afterAll(() => setNumThreads(cores));

describe('runtime', () => {
  it('reports backend, BLAS and thread counts, and follows setNumThreads', () => {
    const info = runtimeInfo();
    expect(info.backend).toBe('cpu');
    expect(info.addon).toMatch(/cloze_cpu\.node$/);
    expect(info.blasCore.length).toBeGreaterThan(0);
    setNumThreads(1);
    expect(runtimeInfo().threads).toBe(1);
    if (info.blas === 'openblas') expect(runtimeInfo().blasThreads).toBe(1);
    setNumThreads(3);
    expect(runtimeInfo().threads).toBe(3);
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
