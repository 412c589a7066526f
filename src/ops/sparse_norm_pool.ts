/** Batch norm and max pooling over the active rows of a sparse map (sparse_rulebook.ts), as SparK's encoder uses them. */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkNumber, checkRank, checkTensor } from '../validate.js';
import { checkVector } from './sparse_rulebook.js';

export interface SparseBatchNormOptions {
  /** Batch statistics (and a running-statistics update) when true; the running ones when false. */
  training: boolean;
  /** Default 0.1 (PyTorch). */
  momentum?: number;
  /** Default 1e-5 (PyTorch). */
  eps?: number;
}

/**
 * BatchNorm over the active rows only, x [N, C] (SparK's sparse BN). PyTorch's
 * semantics otherwise: the biased variance normalises, the unbiased one enters
 * the running update (in place), eval normalises with the running statistics
 * (the batch's when they are null). weight and bias may be null (1 and 0).
 * N = 0 gives an empty output and leaves the running statistics alone; N = 1
 * in training is an error, as in PyTorch. Differentiable in x, weight, bias.
 */
export function sparseBatchNorm(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: SparseBatchNormOptions,
): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  const C = x.shape[1]!;
  checkVector(x, weight, C, 'weight');
  checkVector(x, bias, C, 'bias');
  checkVector(x, runningMean, C, 'runningMean');
  checkVector(x, runningVar, C, 'runningVar');
  if (!runningMean !== !runningVar) {
    throw expected('both running statistics or neither', runningMean ? 'runningVar' : 'runningMean', null);
  }
  if (typeof opts?.training !== 'boolean') throw expected('a boolean', 'training', opts?.training);
  const momentum = opts.momentum ?? 0.1;
  checkNumber(momentum, 'momentum', 0, 1);
  const eps = opts.eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) throw expected('a positive number', 'eps', eps);
  const w = weight ?? null;
  const b = bias ?? null;
  const [y, mean, rstd] = native().sparseBatchNorm(
    x.native, w?.native ?? null, b?.native ?? null, runningMean?.native ?? null, runningVar?.native ?? null,
    opts.training, momentum, eps,
  );
  const batchStats = opts.training || !runningMean;
  const sx = x.share();
  const sw = w ? w.share() : null;
  return record(
    'sparseBatchNorm',
    [y],
    [x, w, b],
    ([g]) => native().sparseBatchNormBackward(
      g!, sx, sw, mean, rstd, batchStats, x.requiresGrad, w?.requiresGrad ?? false, b?.requiresGrad ?? false,
    ),
    sw ? [sx, sw, mean, rstd] : [sx, mean, rstd],
  )[0]!;
}

/**
 * Max over each output's existing neighbours, x [N, C], nbr [M, K2] → [M, C];
 * 0 where an output has none. The gradient goes to the first maximum (in
 * offset order). SparK's masked-dense max pool also sees the masked zeros, so
 * the two agree where the maximum is ≥ 0 (after ReLU, as in ResNet's stem).
 */
export function sparseMaxPool(x: Tensor, nbr: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  checkTensor(nbr, 'nbr');
  checkDtype(nbr, 'int32', 'nbr');
  checkRank(nbr, 2, 2, 'nbr');
  const [y, arg] = native().sparseMaxPool(x.native, nbr.native);
  const sn = nbr.share();
  const N = x.shape[0]!;
  return record('sparseMaxPool', [y], [x], ([g]) => [native().sparseMaxPoolBackward(g!, sn, arg, N)], [sn, arg])[0]!;
}
