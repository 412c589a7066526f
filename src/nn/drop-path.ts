/**
 * Drop path (stochastic depth, timm's DropPath, which MAE's fine-tuning uses on
 * every block's residual branches): in training each sample's whole branch
 * output is zeroed with probability p and otherwise scaled by 1/(1 − p), so
 * its expectation is the branch itself; in eval it is the identity.
 */
import { mul } from '../ops/elementwise.js';
import type { Rng } from '../rng.js';
import { tensor, type Tensor } from '../tensor.js';
import { checkNumber } from '../validate.js';

/** x [B, ...]: one keep/drop draw per sample (row of the first dim), from `rng`. */
export function dropPath(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  checkNumber(p, 'dropPath', 0, 0.99);
  if (!training || p === 0) return x;
  const B = x.shape[0]!;
  const per = x.size / B;
  const keep = 1 - p;
  const mask = new Float32Array(x.size);
  for (let b = 0; b < B; b++) if (rng.uniform() < keep) mask.fill(1 / keep, b * per, (b + 1) * per);
  // The mask is a constant (no gradient): d out / d x = mask, as in timm.
  return mul(x, tensor(mask, x.shape, x.dtype, x.device));
}
