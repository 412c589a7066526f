/**
 * Sparse maps and the checker of the CUDA sparse families' cases
 * (sparse_rulebook, sparse_conv, sparse_norm_pool): sites and tables built on
 * the CPU and copied to the device, and every output of an op on cuda checked
 * against the float64 CPU run by the dtype's rule.
 */
import { expect } from 'vitest';
import { Rng } from '../../src/rng.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { assertBf16, get, put, roundBf16 } from './cuda-harness.js';
import { assertClose, tolFor, type Tol } from './tolerance.js';

type Arr = ArrayLike<number>;
export type Dev = 'float32' | 'bfloat16';
export const rng = new Rng(97);
export const n = () => native();
export const f64 = (v: Arr, shape: number[]): NativeTensor => put(v, shape, 'float64', 'cpu');
export const i32 = (v: Arr, shape: number[], device: 'cpu' | 'cuda' = 'cpu'): NativeTensor => put(v, shape, 'int32', device);
export const rand = (len: number, lo = -1, hi = 1): number[] => Array.from({ length: len }, () => lo + (hi - lo) * rng.uniform());
export const ints = (t: NativeTensor): number[] => Array.from(t.read());
// Loosened for ops that sum many terms (k²·Cin products, dW, db, batch
// statistics and the fill gradient over every row) in another order than the
// float64 reference, as the CPU cases allow; data movement and max pool
// keep float32's default.
export const TOL32: Tol = { atol: 2e-4, rtol: 2e-4 };

/** SparK-style masks (1 = active): round(ratio·L) coarse cells masked per image, upsampled ×2. */
export function masks(B: number, H: number, W: number, ratio: number) {
  const Hc = Math.ceil(H / 2), Wc = Math.ceil(W / 2), L = Hc * Wc;
  const coarse = new Array<number>(B * L).fill(0);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let i = Math.round(ratio * L); i < L; i++) coarse[b * L + order[i]!] = 1;
  }
  const fine = new Array<number>(B * H * W).fill(0);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) fine[(b * H + y) * W + x] = coarse[b * L + (y >> 1) * Wc + (x >> 1)]!;
  return { fine, coarse, Hc, Wc };
}

interface Map {
  N: number; M: number; K2: number;
  coords: NativeTensor; nbr: NativeTensor; nbrD: NativeTensor; coordsD: NativeTensor;
}

/** Sites and a table on the CPU, and their copies on the device. */
export function sparseMap(B: number, H: number, W: number, ratio: number, k: number, stride: number): Map {
  const m = masks(B, H, W, ratio);
  const fine = n().activeSites(put(m.fine, [B, H, W], 'uint8', 'cpu'));
  const out = stride === 1 ? fine : n().activeSites(put(m.coarse, [B, m.Hc, m.Wc], 'uint8', 'cpu'));
  const nbr = n().neighbourTable(fine.grid, out.coords, k, stride, (k - 1) >> 1);
  return {
    N: fine.coords.shape[0]!, M: out.coords.shape[0]!, K2: k * k,
    coords: fine.coords, nbr, nbrD: nbr.to('cuda'), coordsD: fine.coords.to('cuda'),
  };
}

/** Float inputs for one check: the float64 CPU tensor, the device one, and the float64 of its rounded values. */
export interface In { v: number[]; shape: number[] }
export const inp = (v: number[], shape: number[]): In => ({ v, shape });
const onCpu = (a: In | null, round: boolean): NativeTensor | null => (a ? f64(round ? roundBf16(a.v) : a.v, a.shape) : null);
const onDev = (a: In | null, dt: Dev): NativeTensor | null => (a ? put(a.v, a.shape, dt, 'cuda') : null);

/**
 * Runs `op` on the CPU in float64 and on cuda in dt, and checks every float
 * output (null outputs must match). Integer outputs (arg) must be equal.
 */
export function check(label: string, dt: Dev, ins: Array<In | null>, op: (t: Array<NativeTensor | null>) => Array<NativeTensor | null>, tol: Tol = tolFor('float32')): void {
  const ref = op(ins.map((a) => onCpu(a, false)));
  const got = op(ins.map((a) => onDev(a, dt)));
  const naive = dt === 'bfloat16' ? op(ins.map((a) => onCpu(a, true))) : null;
  expect(got.length).toBe(ref.length);
  ref.forEach((r, i) => {
    const g = got[i]!;
    const what = `${label} ${dt} output ${i}`;
    if (r === null) return expect(g, what).toBeNull();
    expect(g.device, what).toBe('cuda');
    expect(g.shape, what).toEqual(r.shape);
    if (r.dtype === 'int32') {
      expect(g.dtype, what).toBe('int32');
      if (dt === 'float32') expect(ints(g), what).toEqual(ints(r));
      return;
    }
    expect(g.dtype, what).toBe(dt);
    if (dt === 'float32') assertClose(get(g), get(r), tol, what);
    else assertBf16(what, get(g), get(r), roundBf16(get(naive![i]!)));
  });
}
