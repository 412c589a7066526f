/** Inverted dropout with a counter-based mask, with autograd. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkInt, checkNumber } from '../validate.js';
import { reshape } from './elementwise.js';

export interface DropoutOptions {
  p: number;
  /** Seed of the counter-based RNG; with `step` it fixes the mask exactly. */
  seed: number;
  /** A distinct counter per call site and step (e.g. step * layers + layer). */
  step: number;
  training?: boolean;
}

/** Inverted dropout. The mask is regenerated in backward from (seed, step), never stored. */
export function dropout(x: Tensor, opts: DropoutOptions): Tensor {
  checkFloat(x, 'input');
  checkNumber(opts.p, 'p', 0, 1);
  checkInt(opts.seed, 'seed');
  checkInt(opts.step, 'step');
  if (opts.training === false || opts.p === 0) return reshape(x, x.shape);
  const { p, seed, step } = opts;
  return record('dropout', [native().dropout(x.native, p, seed, step)], [x], ([g]) => [native().dropout(g!, p, seed, step)])[0]!;
}
