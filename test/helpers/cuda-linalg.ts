/** Inputs and tolerances shared by the CUDA cases of the linalg and linear_ce families. */
import type { NativeTensor } from '../../src/native/types.js';
import { put } from './cuda-harness.js';
import { tolFor } from './tolerance.js';

// A dot product's float32 error scales with Σ|aᵢ·bᵢ| (up to a few 1e-6 here),
// not with |result|, so entries that cancel to near 0 need a larger atol.
export const F32 = { ...tolFor('float32'), atol: 2e-5 };

export function vals(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** [M, N] = op(A)·op(B) in float64; A stored [a0, a1], B stored [b0, b1]. */
export function mm(A: ArrayLike<number>, a1: number, B: ArrayLike<number>, b1: number, M: number, N: number, K: number, ta: boolean, tb: boolean): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[ta ? k * a1 + i : i * a1 + k]! * B[tb ? j * b1 + k : k * b1 + j]!;
      C[i * N + j] = s;
    }
  return C;
}

export function cpu64(v: ArrayLike<number>, shape: number[]): NativeTensor {
  return put(v, shape, 'float64', 'cpu');
}
