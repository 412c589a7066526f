/**
 * SparK-style masks and sparse maps, and the row ↔ dense conversions of the
 * references, shared by the sparse families' CPU cases (sparse_rulebook,
 * sparse_conv, sparse_norm_pool).
 */
import { activeSites } from '../../src/ops/sparse_rulebook.js';
import { Rng, tensor, type DType, type Tensor } from '../../src/index.js';
import { tolFor, type Tol } from './tolerance.js';

export const rng = new Rng(4242);

// float32 kernels sum up to k²·Cin = 245 products (and dW over every row) in another order than the reference.
export const tolOf = (dtype: DType): Tol => (dtype === 'float64' ? tolFor('float64') : { atol: 2e-4, rtol: 2e-4 });

export function rand(shape: number[], dtype: DType, requiresGrad = true, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
  t.requiresGrad = requiresGrad;
  return t;
}

export interface Masks {
  /** uint8 [B, H, W], 1 = active. */
  fine: Uint8Array;
  /** uint8 [B, Hc, Wc] with Hc = ⌈H/f⌉: the coarse mask fine was upsampled from. */
  coarse: Uint8Array;
  Hc: number;
  Wc: number;
}

/** SparK's masks: per image, round(ratio·L) coarse cells masked at random, upsampled by nearest repetition (×f). */
export function sparkMasks(B: number, H: number, W: number, ratio: number, f = 2, r: Rng = rng): Masks {
  const Hc = Math.ceil(H / f);
  const Wc = Math.ceil(W / f);
  const L = Hc * Wc;
  const coarse = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const masked = Math.round(ratio * L);
    for (let i = masked; i < L; i++) coarse[b * L + order[i]!] = 1;
  }
  const fine = new Uint8Array(B * H * W);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) fine[(b * H + y) * W + x] = coarse[b * L + Math.floor(y / f) * Wc + Math.floor(x / f)]!;
  return { fine, coarse, Hc, Wc };
}

/** rows [N, C] at coords → dense [B, C, H, W] (zeros elsewhere), and back. */
export function scatterRows(rows: ArrayLike<number>, coords: Int32Array, B: number, C: number, H: number, W: number): Float64Array {
  const d = new Float64Array(B * C * H * W);
  for (let n = 0; n < coords.length / 3; n++)
    for (let c = 0; c < C; c++) d[((coords[3 * n]! * C + c) * H + coords[3 * n + 1]!) * W + coords[3 * n + 2]!] = rows[n * C + c]!;
  return d;
}

export function gatherRows(d: ArrayLike<number>, coords: Int32Array, C: number, H: number, W: number): Float64Array {
  const rows = new Float64Array((coords.length / 3) * C);
  for (let n = 0; n < coords.length / 3; n++)
    for (let c = 0; c < C; c++) rows[n * C + c] = d[((coords[3 * n]! * C + c) * H + coords[3 * n + 1]!) * W + coords[3 * n + 2]!]!;
  return rows;
}

/** A small float64 SparK map: sites, and (for stride 2) the coarse sites. */
export function smallMap(B: number, H: number, W: number, ratio: number) {
  const m = sparkMasks(B, H, W, ratio);
  return {
    fine: activeSites(tensor(m.fine, [B, H, W], 'uint8')),
    coarse: activeSites(tensor(m.coarse, [B, m.Hc, m.Wc], 'uint8')),
  };
}
