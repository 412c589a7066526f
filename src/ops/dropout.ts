/** Inverted dropout with a counter-based mask, with autograd. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkInt, checkNumber, checkSameDtype, checkShape } from '../validate.js';
import { add, reshape } from './elementwise.js';

export interface DropoutOptions {
  p: number;
  /** Seed of the counter-based RNG; with `step` it fixes the mask exactly. */
  seed: number;
  /** A distinct counter per call site and step (e.g. step * layers + layer). */
  step: number;
  training?: boolean;
  /**
   * x is elements [offset, offset + numel) of a larger tensor (default 0): the mask is that slice of
   * the larger tensor's. A data-parallel rank holding rows [r·b, (r+1)·b) of the global batch passes
   * r·b·(elements per row), and so drops exactly what one process with the whole batch would.
   */
  offset?: number;
}

/** Inverted dropout. The mask is regenerated in backward from (seed, step), never stored. */
export function dropout(x: Tensor, opts: DropoutOptions): Tensor {
  checkFloat(x, 'input');
  checkNumber(opts.p, 'p', 0, 1);
  checkInt(opts.seed, 'seed');
  checkInt(opts.step, 'step');
  const offset = opts.offset ?? 0;
  checkInt(offset, 'offset');
  if (opts.training === false || opts.p === 0) return reshape(x, x.shape);
  const { p, seed, step } = opts;
  return record('dropout', [native().dropout(x.native, p, seed, step, offset)], [x], ([g]) => [native().dropout(g!, p, seed, step, offset)])[0]!;
}

/**
 * add(residual, dropout(x, opts)) in one pass (the residual connection after a sublayer): the same bits, one read
 * of x and residual and one write instead of dropout's write and the add's reads. Backward: dropout on the gradient
 * for x, the gradient itself for residual.
 */
export function dropoutAdd(x: Tensor, residual: Tensor, opts: DropoutOptions): Tensor {
  checkFloat(x, 'input');
  checkFloat(residual, 'residual');
  checkSameDtype(x, residual, 'residual');
  checkShape(residual, x.shape, 'residual');
  checkNumber(opts.p, 'p', 0, 1);
  checkInt(opts.seed, 'seed');
  checkInt(opts.step, 'step');
  const offset = opts.offset ?? 0;
  checkInt(offset, 'offset');
  if (opts.training === false || opts.p === 0) return add(residual, x);
  const { p, seed, step } = opts;
  return record('dropoutAdd', [native().dropoutAdd(x.native, residual.native, p, seed, step, offset)], [x, residual], ([g]) => [
    x.requiresGrad ? native().dropout(g!, p, seed, step, offset) : null,
    residual.requiresGrad ? g!.reshape(g!.shape) : null,
  ])[0]!;
}
