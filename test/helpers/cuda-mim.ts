/** Inputs and checks shared by the CUDA cases of the mim_tokens, mim_loss and image_aug families. */
import { expect } from 'vitest';
import type { DType, NativeTensor } from '../../src/native/types.js';
import { get, put } from './cuda-harness.js';
import { assertClose, tolFor } from './tolerance.js';

export type N = NativeTensor;
export const F32 = tolFor('float32');

/** mulberry32: a small deterministic generator, so every run sees the same inputs. */
function gen(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const rnd = gen(20240611);
// float32 values, so a float32 input holds exactly what the float64 reference computes on.
export const uniform = (n: number, lo = -1, hi = 1): number[] => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * rnd()));
export const maskOf = (n: number, frac: number): number[] => Array.from({ length: n }, () => (rnd() < frac ? 1 : 0));

export const cpu = (v: ArrayLike<number>, shape: readonly number[], dt: DType = 'float64'): N => put(v, shape, dt, 'cpu');
export const dev = (v: ArrayLike<number>, shape: readonly number[], dt: DType): N => put(v, shape, dt, 'cuda');

/** got (cuda, float32) against ref (cpu, float64) by the float32 tolerances. */
export function close(label: string, got: N, ref: N): void {
  expect(got.device).toBe('cuda');
  expect(got.shape).toEqual(ref.shape);
  assertClose(get(got), get(ref), F32, label);
}

/**
 * A 0-d bfloat16 loss by the bf16 rule, with one bf16 ulp of slack: for a
 * single value the naive version can land on the nearer of two bf16 neighbours
 * by luck, which would make 2× its error a bound of zero.
 */
export function closeBf16Scalar(label: string, got: number, ref: number, naive: number): void {
  const bound = 2 * Math.abs(naive - ref) + 2 ** -8 * Math.abs(ref) + 1e-6;
  if (!(Math.abs(got - ref) <= bound)) throw new Error(`${label}: got ${got}, reference ${ref}, naive bf16 ${naive}`);
}

/** The error message a call throws (so CUDA and CPU messages can be compared). */
export function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
}
