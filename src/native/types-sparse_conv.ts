import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/**
 * Native sparse convolution for SparK (native/src/binding/bind_sparse_conv.cc).
 * Rows are channels-last [N, C], one per active site; nbr is the neighbour
 * table int32 [M, k²] of rows or −1. Backward results are null where not asked for.
 */
export interface SparseConvNative {
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
}
