/** Deterministic random inputs and the layout change between the two attention layouts. */
import { Tensor, zeros } from '../../src/index.js';

/** Uniform in [-1, 1), from a 32-bit xorshift; the same seed gives the same data. */
export function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = x / 2 ** 31 - 1;
  }
  return a;
}

/** A float32 tensor in native (liveBytes-counted) memory holding a copy of values. */
export function tensorFrom(values: Float32Array, shape: readonly number[], requiresGrad = false): Tensor {
  const t = zeros(shape, 'float32');
  t.native.write(values);
  t.requiresGrad = requiresGrad;
  return t;
}

/** [B, H, L, Dh] → [B, L, H, Dh] */
export function bhldToBlhd(x: Float32Array, B: number, H: number, L: number, Dh: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let l = 0; l < L; l++) {
        const src = ((b * H + h) * L + l) * Dh;
        const dst = ((b * L + l) * H + h) * Dh;
        y.set(x.subarray(src, src + Dh), dst);
      }
  return y;
}

/** max |a − b| and max |b|, for a quick agreement check between implementations. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { diff, scale };
}
