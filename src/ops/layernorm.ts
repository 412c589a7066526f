/** LayerNorm over the last dimension, with autograd. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkNumber, checkRank, checkSameDtype, checkShape } from '../validate.js';

/** LayerNorm over the last dim, fused forward and backward; weight/bias optional. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  checkNumber(eps, 'eps', Number.MIN_VALUE);
  const C = x.shape[x.shape.length - 1]!;
  for (const [t, n] of [[weight, 'weight'], [bias, 'bias']] as const) {
    if (t) {
      checkSameDtype(x, t, n);
      checkShape(t, [C], n);
    }
  }
  const [y, mean, rstd] = native().layerNorm(x.native, weight?.native ?? null, bias?.native ?? null, eps);
  const sx = x.share();
  const sw = weight ? weight.share() : null;
  return record(
    'layerNorm',
    [y],
    [x, weight, bias],
    ([g]) => native().layerNormBackward(g!, sx, sw, mean, rstd, x.requiresGrad, weight?.requiresGrad ?? false, bias?.requiresGrad ?? false),
    sw ? [sx, sw, mean, rstd] : [sx, mean, rstd],
  )[0]!;
}
