/**
 * imageBatch: the native fused gather → crop → bilinear resize → flip →
 * normalise pass (native/src/ops/image_aug.h has the exact sampling rule),
 * which data/images/augment.ts's ImageBatcher runs for every batch.
 * A data op: its output is a fresh leaf with no gradient.
 */
import { native } from '../native/loader.js';
import { Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/** The largest output side the native op accepts. */
export const MAX_OUT_SIDE = 1 << 15;

/**
 * images: uint8 [N, C, H, W]; indices: int32 [B] in [0, N); boxes: float [B, 4] = (y0, x0, h, w) in source
 * pixels, h, w > 0; flip: uint8 [B] of 0/1; mean, std: [C] of boxes' dtype (std > 0).
 * Returns [B, C, outH, outW] of boxes' dtype.
 */
export function imageBatch(
  images: Tensor, indices: Tensor, boxes: Tensor, flip: Tensor, mean: Tensor, std: Tensor, outH: number, outW: number,
): Tensor {
  checkTensor(images, 'images');
  checkDtype(images, 'uint8', 'images');
  checkRank(images, 4, 4, 'images');
  const C = images.shape[1]!;
  checkTensor(indices, 'indices');
  checkDtype(indices, 'int32', 'indices');
  checkRank(indices, 1, 1, 'indices');
  const B = indices.shape[0]!;
  checkFloat(boxes, 'boxes');
  checkShape(boxes, [B, 4], 'boxes');
  checkTensor(flip, 'flip');
  checkDtype(flip, 'uint8', 'flip');
  checkShape(flip, [B], 'flip');
  checkTensor(mean, 'mean');
  checkSameDtype(boxes, mean, 'mean');
  checkShape(mean, [C], 'mean');
  checkTensor(std, 'std');
  checkSameDtype(boxes, std, 'std');
  checkShape(std, [C], 'std');
  checkInt(outH, 'outH', 1, MAX_OUT_SIDE);
  checkInt(outW, 'outW', 1, MAX_OUT_SIDE);
  // Index, box and std values are checked natively, where the data already is.
  return new Tensor(native().imageBatch(images.native, indices.native, boxes.native, flip.native, mean.native, std.native, outH, outW));
}
