/** GeGLU (MosaicBERT's FFN gate), with autograd. */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkRank } from '../validate.js';

/** GeGLU: x [..., 2I] → GELU(x[..., :I]) · x[..., I:], [..., I] (erf GELU; MosaicBERT's FFN gate). */
export function geglu(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  const C = x.shape[x.shape.length - 1]!;
  if (C === 0 || C % 2 !== 0) throw expected('a tensor whose last dimension is even and non-zero', 'input', x, 'E_SHAPE');
  const sx = x.share();
  return record('geglu', [native().geglu(x.native)], [x], ([g]) => [native().gegluBackward(g!, sx)], [sx])[0]!;
}
