/**
 * Elementwise ops, reductions, activations and reshape, with autograd; and the
 * two native-handle helpers the tape itself runs on gradients: axpyInPlace
 * (accumulation) and sumRows (biasAdd's bias gradient).
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { record, type Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { ELEMENTWISE_FAMILY } from '../profile/families.js';
import { profileSpan } from '../profile/state.js';
import { checkFloat, checkNumber, checkRank, checkSameDtype, checkShape } from '../validate.js';

function sameShape(a: Tensor, b: Tensor, name: string): void {
  checkSameDtype(a, b, name);
  checkShape(b, a.shape, name);
}

export function add(a: Tensor, b: Tensor): Tensor {
  checkFloat(a, 'a');
  checkFloat(b, 'b');
  sameShape(a, b, 'b');
  // d(a+b) is the incoming gradient for both; the second gets its own handle.
  // the two copies are native work the profile should see (two reads and two writes of g)
  return record('add', [native().add(a.native, b.native)], [a, b], ([g]) =>
    profileSpan(ELEMENTWISE_FAMILY, 4 * g!.nbytes, () => [g!.clone(), g!.clone()]),
  )[0]!;
}

export function mul(a: Tensor, b: Tensor): Tensor {
  checkFloat(a, 'a');
  checkFloat(b, 'b');
  sameShape(a, b, 'b');
  const sa = a.share();
  const sb = b.share();
  return record(
    'mul',
    [native().mul(a.native, b.native)],
    [a, b],
    ([g]) => native().mulBackward(g!, sa, sb, a.requiresGrad, b.requiresGrad),
    [sa, sb],
  )[0]!;
}

export function scale(x: Tensor, factor: number): Tensor {
  checkFloat(x, 'input');
  checkNumber(factor, 'factor');
  return record('scale', [native().scale(x.native, factor)], [x], ([g]) => [native().scale(g!, factor)])[0]!;
}

/** x [..., N] + b [N] */
export function biasAdd(x: Tensor, b: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  checkSameDtype(x, b, 'bias');
  checkShape(b, [x.shape[x.shape.length - 1]!], 'bias');
  return record('biasAdd', [native().biasAdd(x.native, b.native)], [x, b], ([g]) => [
    x.requiresGrad ? g!.clone() : null,
    b.requiresGrad ? sumRows(g!) : null,
  ])[0]!;
}

export function sum(x: Tensor): Tensor {
  checkFloat(x, 'input');
  const shape = x.shape;
  return record('sum', [native().sum(x.native)], [x], ([g]) => [native().reduceBackward(g!, shape, 1)])[0]!;
}

export function mean(x: Tensor): Tensor {
  checkFloat(x, 'input');
  if (x.size === 0) throw expected('a non-empty tensor', 'input', x, 'E_SHAPE');
  const shape = x.shape;
  const n = x.size;
  return record('mean', [native().mean(x.native)], [x], ([g]) => [native().reduceBackward(g!, shape, 1 / n)])[0]!;
}

/** GELU with the exact erf form (as in BERT and ViT). */
export function gelu(x: Tensor): Tensor {
  checkFloat(x, 'input');
  const sx = x.share();
  return record('gelu', [native().gelu(x.native)], [x], ([g]) => [native().geluBackward(g!, sx)], [sx])[0]!;
}

export function relu(x: Tensor): Tensor {
  checkFloat(x, 'input');
  const sx = x.share();
  return record('relu', [native().relu(x.native)], [x], ([g]) => [native().reluBackward(g!, sx)], [sx])[0]!;
}

/** min(max(x, 0), 6): SparK's decoder activation (torch's ReLU6; the gradient passes only strictly inside (0, 6)). */
export function relu6(x: Tensor): Tensor {
  checkFloat(x, 'input');
  const sx = x.share();
  return record('relu6', [native().relu6(x.native)], [x], ([g]) => [native().relu6Backward(g!, sx)], [sx])[0]!;
}

/** tanh (BERT's pooler activation). */
export function tanh(x: Tensor): Tensor {
  checkFloat(x, 'input');
  const sx = x.share();
  return record('tanh', [native().tanh(x.native)], [x], ([g]) => [native().tanhBackward(g!, sx)], [sx])[0]!;
}

/** A view with a new shape (same element count); -1 infers one dimension. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const n = x.size;
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const inferred = shape.filter((d) => d === -1).length;
  if (inferred > 1 || (inferred === 1 && (known === 0 || n % known !== 0))) {
    throw expected(`a shape with ${n} elements`, 'shape', [...shape], 'E_SHAPE');
  }
  const full = shape.map((d) => (d === -1 ? n / known : d));
  if (full.reduce((a, b) => a * b, 1) !== n) throw expected(`a shape with ${n} elements`, 'shape', [...shape], 'E_SHAPE');
  const orig = x.shape;
  return record('reshape', [x.native.reshape(full)], [x], ([g]) => [g!.reshape(orig)])[0]!;
}

/** dst ← dst + alpha·src, in place, on native handles (same dtype, shape and device): how the tape accumulates gradients. */
export function axpyInPlace(dst: NativeTensor, src: NativeTensor, alpha: number): void {
  native().axpyInPlace(dst, src, alpha);
}

/** x [..., N] → its sum over every leading dimension, [N], on a native handle: biasAdd's bias gradient. */
export function sumRows(x: NativeTensor): NativeTensor {
  return native().sumRows(x);
}
