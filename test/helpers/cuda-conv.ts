/**
 * The CUDA runner of the dense conv families (conv, batchnorm, pool): an op on
 * cuda, in float64 on the CPU, and (bfloat16) in float64 on bf16-rounded
 * inputs; every output checked by the dtype's rule.
 */
import { expect } from 'vitest';
import { Rng } from '../../src/index.js';
import type { Device, DType, NativeTensor } from '../../src/native/types.js';
import { assertBf16, get, put, roundBf16 } from './cuda-harness.js';
import { assertClose, tolFor, type Tol } from './tolerance.js';

export type Shape4 = [number, number, number, number];
export type Mk = (values: ArrayLike<number>, shape: readonly number[]) => NativeTensor;
export type Out = NativeTensor | null;

export const rng = new Rng(4242);
export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
export const rand = (n: number): number[] => Array.from({ length: n }, () => rng.uniform() * 2 - 1);
export const DTYPES: DType[] = ['float32', 'bfloat16'];

/** Tensors for one run: on `device` in `dtype`, values rounded to bfloat16 first when `round`. */
export const mkFor = (dtype: DType, device: Device, round: boolean): Mk => (v, s) => put(round ? roundBf16(v) : v, s, dtype, device);

export interface Runs {
  got: Array<Float64Array | null>;
  ref: Array<Float64Array | null>;
  naive: Array<Float64Array | null>;
  /** The float64 CPU outputs on bf16-rounded inputs, unrounded (for exact integer outputs). */
  rounded: Array<Float64Array | null>;
}

/** Runs `op` on cuda in dtype, in float64 on the CPU, and (bfloat16) on bf16-rounded inputs in float64. */
export function runs(dtype: DType, op: (mk: Mk) => Out[]): Runs {
  const read = (ts: Out[]) => ts.map((t) => (t ? get(t) : null));
  const got = read(op(mkFor(dtype, 'cuda', false)));
  const ref = read(op(mkFor('float64', 'cpu', false)));
  const rounded = dtype === 'bfloat16' ? read(op(mkFor('float64', 'cpu', true))) : ref;
  const naive = rounded.map((a) => (a && dtype === 'bfloat16' ? roundBf16(a) : a));
  return { got, ref, naive, rounded };
}

/** Every output by the dtype's rule; tols[i] replaces float32's default tolerance for output i. */
export function expectRuns(label: string, dtype: DType, r: Runs, tols: Array<Tol | undefined> = []): void {
  r.ref.forEach((ref, i) => {
    if (!ref) {
      expect(r.got[i], `${label}[${i}]`).toBeNull();
      return;
    }
    const got = r.got[i]!;
    expect(got.length, `${label}[${i}] length`).toBe(ref.length);
    if (dtype === 'float32') assertClose(got, ref, tols[i] ?? tolFor('float32'), `${label}[${i}]`);
    else assertBf16(`${label}[${i}]`, got, ref, r.naive[i]!);
  });
}

/**
 * float32 sums of `terms` terms of magnitude ≈ 1, in an order other than the
 * CPU's (GEMM tiles, block trees): the absolute error grows with the number of
 * terms, so atol does too (the GEMM tests' rule); rtol stays float32's.
 */
export function tolSum(terms: number): Tol {
  return { atol: 4 * Math.max(terms, 1) * 1.2e-7, rtol: tolFor('float32').rtol };
}

/** A fixed dy per shape, the same values for every run of one check. */
const dyCache = new Map<string, number[]>();
export function dyFor(shape: readonly number[]): number[] {
  const key = shape.join('x');
  if (!dyCache.has(key)) dyCache.set(key, rand(numel(shape)));
  return dyCache.get(key)!;
}
