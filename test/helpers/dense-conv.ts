/**
 * Inputs, tolerances and the forward/backward runner of the dense conv
 * families' CPU cases (conv, batchnorm, pool).
 */
import { backward, mul, Rng, scope, sum, tensor, type DType, type Tensor } from '../../src/index.js';
import type { Tol } from './tolerance.js';

export const rng = new Rng(77);

export type Shape4 = [number, number, number, number];
export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
export const f64 = (t: Tensor): Float64Array => Float64Array.from(t.toArray());

export function rand(shape: readonly number[], dtype: DType, grad = true): Tensor {
  const t = tensor(Array.from({ length: numel(shape) }, () => rng.uniform() * 2 - 1), shape, dtype);
  t.requiresGrad = grad;
  return t;
}

/** The K-term sum rule of the GEMM tests (test/ops/linalg.test.ts): error grows with the number of terms. */
export function tolSum(dtype: DType, terms: number): Tol {
  const eps = dtype === 'float32' ? 1.2e-7 : 2.2e-16;
  return { atol: 4 * Math.max(terms, 1) * eps, rtol: 16 * eps };
}

/** Runs sum(f(inputs) · dy), backward, and reads the output and every input gradient. */
export function forwardBackward(f: () => Tensor, dy: ArrayLike<number>, inputs: Array<Tensor | null>): { y: Float64Array; grads: Array<Float64Array | null> } {
  return scope(() => {
    for (const t of inputs) if (t) { t.grad?.dispose(); t.grad = null; }
    const y = f();
    backward(sum(mul(y, tensor(Array.from(dy), y.shape, y.dtype))));
    return { y: f64(y), grads: inputs.map((t) => (t?.grad ? f64(t.grad) : null)) };
  });
}

// ---- batchNorm2d ------------------------------------------------------------------------------

/** uint8 [B, H, W] with about `frac` of the positions masked (0), exactly none/all at 0 and 1. */
export function activeMask(B: number, H: number, W: number, frac: number): Tensor {
  const v = Array.from({ length: B * H * W }, () => (frac >= 1 ? 0 : frac <= 0 ? 1 : rng.uniform() < frac ? 0 : 1));
  return tensor(v, [B, H, W], 'uint8');
}
