/** Softmax over the last dimension, with autograd. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkRank } from '../validate.js';

/** Softmax over the last dim. Fully −∞ rows give zeros. */
export function softmax(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  const y = native().softmax(x.native);
  const sy = y.reshape(y.shape);
  return record('softmax', [y], [x], ([g]) => [native().softmaxBackward(g!, sy)], [sy])[0]!;
}
