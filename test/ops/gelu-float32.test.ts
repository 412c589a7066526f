/**
 * float32 GELU and GeGLU run a vectorised Φ (Numerical Recipes' erfc fit, not libm's erff):
 * values and derivatives against float64 over [−12, 12], tails included, relative to Φ's
 * own size so that the far negative tail is checked too; and bit-identical results with 1
 * and 3 threads at a size whose task ranges end inside a vector.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backward, gelu, geglu, runtimeInfo, setNumThreads, sum, tensor } from '../../src/index.js';
import { erfcRef } from '../helpers/reference.js';

const cores = runtimeInfo().threads;
afterAll(() => setNumThreads(cores));

const Phi = (x: number) => 0.5 * erfcRef(-x / Math.SQRT2);
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const N = 2001;
const xs = Float32Array.from({ length: N }, (_, i) => -12 + (24 * i) / (N - 1));

/**
 * Worst |got − ref| / ((|ref| + floor) · bound(x)) over the points: at most 1 passes. The bound
 * is 2e-6 relative, plus 1.5e-7·x² in the negative tail: there Φ = t·exp(−x²/2 + P(t))/2, and
 * float32's rounding of an exponent of size x²/2 is a relative error of about 6e-8·x²/2 in Φ
 * (measured 1.1e-5 at x = −12, where Φ is 1e-33; libm's erff gave 0 there).
 */
function worstRel(got: ArrayLike<number>, ref: (i: number) => number, floor: number): number {
  let w = 0;
  for (let i = 0; i < N; i++) {
    const x = xs[i]!;
    const bound = 2e-6 + (x < 0 ? 1.5e-7 * x * x : 0);
    w = Math.max(w, Math.abs(got[i]! - ref(i)) / ((Math.abs(ref(i)) + floor) * bound));
  }
  return w;
}

describe('float32 GELU against float64', () => {
  it('gelu and its gradient hold 2e-6 relative error over [−12, 12] (more in the far negative tail, as float32 must)', () => {
    const x = tensor(xs, [N], 'float32');
    x.requiresGrad = true;
    const y = gelu(x);
    backward(sum(y));
    // The floor 1e-30 keeps the test relative even where Φ is ~1e-33 (x = −12).
    expect(worstRel(y.toArray(), (i) => xs[i]! * Phi(xs[i]!), 1e-30)).toBeLessThanOrEqual(1);
    // dGELU = Φ + xφ crosses zero near x = −0.75, where relative error is meaningless: an absolute floor of 0.05·2e-6 there.
    expect(worstRel(x.grad!.toArray(), (i) => Phi(xs[i]!) + xs[i]! * phi(xs[i]!), 0.05)).toBeLessThanOrEqual(1);
  });

  it('geglu and its gradients hold the same bound', () => {
    // Rows of [a | b] with b = 1.5: out = a·Φ(a)·1.5; inner 2001 ends in a partial vector.
    const xb = new Float32Array(2 * N);
    xb.set(xs, 0);
    xb.fill(1.5, N);
    const x = tensor(xb, [1, 2 * N], 'float32');
    x.requiresGrad = true;
    const y = geglu(x);
    backward(sum(y));
    expect(worstRel(y.toArray(), (i) => 1.5 * xs[i]! * Phi(xs[i]!), 1e-30)).toBeLessThanOrEqual(1);
    const g = x.grad!.toArray();
    expect(worstRel(g, (i) => 1.5 * (Phi(xs[i]!) + xs[i]! * phi(xs[i]!)), 0.05)).toBeLessThanOrEqual(1);
    expect(worstRel(g.subarray(N), (i) => xs[i]! * Phi(xs[i]!), 1e-30)).toBeLessThanOrEqual(1);
  });

  it('is bit-identical with 1 and 3 threads (task ranges that end inside a vector)', () => {
    const n = 3 * 70_001; // over the op's grain, so the work is split, and odd
    const big = tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 6), [n], 'float32');
    const run = () => {
      const x = big.detach();
      x.requiresGrad = true;
      const y = gelu(x);
      backward(sum(y));
      return [Array.from(y.toArray()), Array.from(x.grad!.toArray())];
    };
    setNumThreads(1);
    const one = run();
    setNumThreads(3);
    const three = run();
    expect(three[0]).toEqual(one[0]);
    expect(three[1]).toEqual(one[1]);
  });
});
