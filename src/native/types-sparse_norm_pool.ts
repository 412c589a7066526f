import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Batch norm and max pooling over the active rows of a sparse map (native/src/binding/bind_sparse_norm_pool.cc). */
export interface SparseNormPoolNative {
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
}
