/**
 * Helpers for the CUDA cases of the elementwise, dropout, geglu, layernorm,
 * softmax, cross_entropy, embedding and layout families (test/ops/): the same
 * rounded inputs go to a float64 CPU reference and to the device, float32
 * results are held to the tolerance rule, bfloat16 results to the naive-bf16
 * rule (cuda-harness.ts).
 */
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { assertClose, tolFor, type Tol } from './tolerance.js';
import { assertBf16, bf16, get, put, roundBf16 } from './cuda-harness.js';

export type DevType = 'float32' | 'bfloat16';
export const DTYPES: readonly DevType[] = ['float32', 'bfloat16'];

/** n deterministic values in [offset − scale, offset + scale). */
export function values(n: number, seed: number, scale = 1, offset = 0): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(offset + scale * ((s / 4294967296) * 2 - 1));
  }
  return out;
}

/** The values as the device will hold them in dtype. */
export function quantize(v: readonly number[], dtype: DevType): number[] {
  return dtype === 'float32' ? v.map(Math.fround) : Array.from(roundBf16(v));
}

export const cpu64 = (v: readonly number[], shape: readonly number[]): NativeTensor => put(v, shape, 'float64', 'cpu');
export const dev = (v: readonly number[], shape: readonly number[], dtype: DevType): NativeTensor => put(v, shape, dtype, 'cuda');
export const ints = (v: readonly number[], shape: readonly number[], device: 'cpu' | 'cuda'): NativeTensor =>
  put(v, shape, 'int32', device);

/** Rounds like an op boundary of the naive bf16 pipeline. */
export const bf = bf16;
/** A naive op's fp32-accumulated sum, rounded to bf16 at its boundary. */
export function bfSum(v: readonly number[]): number {
  let s = 0;
  for (const x of v) s = Math.fround(s + x);
  return bf(s);
}

/**
 * float32 on cuda against the float64 reference at float32's tolerances (or
 * `tol`, loosened by the caller with a comment); bfloat16 against the
 * reference by the naive-bf16 rule, `naive` defaulting to the reference
 * rounded once (a single-op pipeline's only boundary).
 */
export function check(label: string, dtype: DevType, got: NativeTensor | ArrayLike<number>, ref: NativeTensor | ArrayLike<number>,
  naive?: ArrayLike<number>, tol: Tol = tolFor('float32')): void {
  const g = isTensor(got) ? get(got) : Float64Array.from(got);
  const r = isTensor(ref) ? get(ref) : Float64Array.from(ref);
  if (g.length !== r.length) throw new Error(`${label}: length ${g.length}, expected ${r.length}`);
  if (dtype === 'float32') assertClose(g, r, tol, `${label} (float32)`);
  else assertBf16(`${label} (bfloat16)`, g, r, naive ?? roundBf16(r));
}

function isTensor(x: unknown): x is NativeTensor {
  return typeof x === 'object' && x !== null && 'dtype' in x && 'read' in x;
}

export { native };
