import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/**
 * Native sparse-map ops for SparK (native/src/binding/bind_sparse.cc). Rows are
 * channels-last [N, C], one per active site; nbr is the neighbour table int32
 * [M, k²] of rows or −1. Backward results are null where not asked for.
 */
export interface SparseNative {
  /** mask uint8 [B, H, W] (1 = active) → coords int32 [N, 3] of (b, y, x), grid int32 [B, H, W] of rows or −1. */
  activeSites(mask: N): { coords: N; grid: N };
  /** nbr[m, dy·k + dx] = grid[b, yo·stride + dy − padding, xo·stride + dx − padding] or −1. */
  neighbourTable(grid: N, outCoords: N, kernel: number, stride: number, padding: number): N;
  /** x [N, Cin], weight [Cout, Cin, k, k], nbr [M, k²] → [M, Cout]. */
  sparseConv(x: N, weight: N, bias: Maybe, nbr: N): N;
  sparseConvBackward(
    grad: N, x: N, weight: N, nbr: N, needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** x [N, C], weight [C, 1, k, k], nbr [M, k²] → [M, C]. */
  sparseDepthwiseConv(x: N, weight: N, bias: Maybe, nbr: N): N;
  sparseDepthwiseConvBackward(
    grad: N, x: N, weight: N, nbr: N, needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** x [N, C] → [y, mean [C], rstd [C]] (the statistics used); updates the running statistics when training. */
  sparseBatchNorm(
    x: N, weight: Maybe, bias: Maybe, runningMean: Maybe, runningVar: Maybe, training: boolean, momentum: number, eps: number,
  ): [N, N, N];
  /** batchStats: the forward normalised with the batch's statistics, so their gradient is included. */
  sparseBatchNormBackward(
    grad: N, x: N, weight: Maybe, mean: N, rstd: N, batchStats: boolean, needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** x [N, C], nbr [M, K2] → [y [M, C], arg int32 [M, C]: offset of the first max, −1 where no neighbour]. */
  sparseMaxPool(x: N, nbr: N): [N, N];
  sparseMaxPoolBackward(grad: N, nbr: N, arg: N, rows: number): N;
  /** x [N, C] at coords → [B, C, H, W], inactive sites fill[c] (or 0). */
  toDense(x: N, coords: N, B: number, H: number, W: number, fill: Maybe): N;
  /** dense [B, C, H, W] → its rows at coords, [N, C]. */
  toSparse(dense: N, coords: N): N;
  /** grad [B, C, H, W] → Σ over the sites not in coords, per channel: [C]. */
  toDenseFillGrad(grad: N, coords: N): N;
}
