/**
 * Pooling over NCHW maps (max, average, global average) and SparK's mask ops:
 * applyMask re-masks a dense map, upsampleMask brings a mask to a finer scale.
 * Masks here are *active* masks (1 = visible, kept), as in SparK's code,
 * where the project's masking convention (1 = removed) would multiply the
 * wrong half: invert a removal mask before passing it.
 */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkInt, checkRank, checkTensor } from '../validate.js';
import { checkImage } from './conv.js';

export interface Pool2dOptions {
  kernel: number;
  /** Default: the kernel. */
  stride?: number;
  /** At most kernel/2, as PyTorch; max pooling pads with −∞, average pooling with zeros. */
  padding?: number;
}

export interface AvgPool2dOptions extends Pool2dOptions {
  /** Divide by kernel² (true, PyTorch's default) or by the pixels inside the input. */
  countIncludePad?: boolean;
}

function poolOptions(x: Tensor, opts: Pool2dOptions): { kernel: number; stride: number; padding: number } {
  checkImage(x, 'input');
  const kernel = opts?.kernel;
  checkInt(kernel, 'kernel', 1, 2 ** 20);
  const { stride = kernel, padding = 0 } = opts;
  checkInt(stride, 'stride', 1, 2 ** 20);
  checkInt(padding, 'padding', 0, Math.floor(kernel / 2));
  const [, , H, W] = x.shape as [number, number, number, number];
  if (H + 2 * padding < kernel || W + 2 * padding < kernel) {
    throw expected(`an input no smaller than the kernel (${kernel}) after padding`, 'input', x, 'E_SHAPE');
  }
  return { kernel, stride, padding };
}

/** Max pooling over x [B, C, H, W]; the gradient goes to the first maximum of each window. */
export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const { kernel, stride, padding } = poolOptions(x, opts);
  const [y, argmax] = native().maxPool2d(x.native, kernel, stride, padding);
  const shape = x.shape;
  return record('maxPool2d', [y], [x], ([g]) => [native().maxPool2dBackward(g!, argmax, shape)], [argmax])[0]!;
}

export function avgPool2d(x: Tensor, opts: AvgPool2dOptions): Tensor {
  const { kernel, stride, padding } = poolOptions(x, opts);
  const include = opts.countIncludePad ?? true;
  if (typeof include !== 'boolean') throw expected('a boolean', 'countIncludePad', include);
  const shape = x.shape;
  return record('avgPool2d', [native().avgPool2d(x.native, kernel, stride, padding, include)], [x], ([g]) => [
    native().avgPool2dBackward(g!, shape, kernel, stride, padding, include),
  ])[0]!;
}

/** x [B, C, H, W] → mean over H·W, [B, C]. */
export function globalAvgPool(x: Tensor): Tensor {
  checkImage(x, 'input');
  const shape = x.shape;
  return record('globalAvgPool', [native().globalAvgPool(x.native)], [x], ([g]) => [
    native().globalAvgPoolBackward(g!, shape),
  ])[0]!;
}

function checkCoarseMask(mask: Tensor, x: Tensor): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkRank(mask, 3, 3, 'mask');
  const [B, , H, W] = x.shape as [number, number, number, number];
  const [mb, h, w] = mask.shape as [number, number, number];
  if (mb !== B || h < 1 || w < 1 || H % h !== 0 || W % w !== 0) {
    throw expected(`a mask [${B}, h, w] whose h and w divide the input's ${H} × ${W}`, 'mask', mask, 'E_SHAPE');
  }
}

/**
 * x [B, C, H, W] where the active mask [B, h, w], upsampled by nearest repetition (H/h × W/w), is 1,
 * and exactly 0 elsewhere: SparK's re-masking after each dense op. The gradient is masked the same way.
 */
export function applyMask(x: Tensor, mask: Tensor): Tensor {
  checkImage(x, 'input');
  checkCoarseMask(mask, x);
  const sm = mask.share();
  return record('applyMask', [native().applyMask(x.native, mask.native)], [x], ([g]) => [native().applyMask(g!, sm)], [
    sm,
  ])[0]!;
}

/** uint8 mask [B, h, w] → [B, h·factor, w·factor] by nearest repetition (not differentiable). */
export function upsampleMask(mask: Tensor, factor: number): Tensor {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkRank(mask, 3, 3, 'mask');
  checkInt(factor, 'factor', 1, 2 ** 20);
  return new Tensor(native().upsampleMask(mask.native, factor));
}
