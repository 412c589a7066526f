/**
 * Random inputs of the per-family op tests: uniform tensors for forward values
 * against float64 references (rand, vals), and float64 leaves for gradcheck
 * (leaf). Each generator is seeded, so every run sees the same inputs.
 */
import { Rng, tensor, type DType, type Tensor } from '../../src/index.js';
import { randLeaf } from './gradcheck.js';

const rng = new Rng(99);
export function rand(shape: number[], dtype: DType, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
}

/** The values a float32 tensor actually holds, for references computed in float64. */
export const vals = (t: Tensor): number[] => Array.from(t.toArray());

const leafRng = new Rng(7);
export const leaf = (...shape: number[]): Tensor => randLeaf(shape, leafRng);
