/** NCHW ↔ NHWC, for per-pixel LayerNorm and pointwise Linear on convolution maps (ConvNeXt). */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkRank } from '../validate.js';

/** [B, C, H, W] → [B, H, W, C]. */
export function toChannelsLast(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 4, 4, 'input');
  return record('toChannelsLast', [native().toChannelsLast(x.native)], [x], ([g]) => [native().toChannelsFirst(g!)])[0]!;
}

/** [B, H, W, C] → [B, C, H, W]. */
export function toChannelsFirst(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 4, 4, 'input');
  return record('toChannelsFirst', [native().toChannelsFirst(x.native)], [x], ([g]) => [native().toChannelsLast(g!)])[0]!;
}
