import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** SparK's sparse sites, rulebook and dense conversions (native/src/binding/bind_sparse_rulebook.cc). */
export interface SparseRulebookNative {
  /** mask uint8 [B, H, W] (1 = active) → coords int32 [N, 3] of (b, y, x), grid int32 [B, H, W] of rows or −1. */
  activeSites(mask: N): { coords: N; grid: N };
  /** nbr[m, dy·k + dx] = grid[b, yo·stride + dy − padding, xo·stride + dx − padding] or −1. */
  neighbourTable(grid: N, outCoords: N, kernel: number, stride: number, padding: number): N;
  /** x [N, C] at coords → [B, C, H, W], inactive sites fill[c] (or 0). */
  toDense(x: N, coords: N, B: number, H: number, W: number, fill: Maybe): N;
  /** dense [B, C, H, W] → its rows at coords, [N, C]. */
  toSparse(dense: N, coords: N): N;
  /** grad [B, C, H, W] → Σ over the sites not in coords, per channel: [C]. */
  toDenseFillGrad(grad: N, coords: N): N;
}
