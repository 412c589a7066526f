/**
 * Exponential moving average of weights, for EMA teachers (HPM's loss predictor):
 * teacher ← decay·teacher + (1 − decay)·student, in place, one native pass per tensor.
 */
import { expected } from '../errors.js';
import { emaUpdate as emaUpdateNative } from '../ops/optim.js';
import type { Tensor } from '../tensor.js';
import { checkFloat, checkNumber, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/**
 * dst[i] ← decay·dst[i] + (1 − decay)·src[i] for every i, in place; decay in [0, 1]
 * (1 keeps dst, 0 copies src). Every argument is checked before any tensor is written.
 */
export function emaUpdate(dst: readonly Tensor[], src: readonly Tensor[], decay: number): void {
  update(dst, src, decay, 'dst', 'src');
}

// Errors name the arguments as the caller knows them (dst/src or params/studentParams).
function update(dst: readonly Tensor[], src: readonly Tensor[], decay: number, dstName: string, srcName: string): void {
  if (!Array.isArray(dst)) throw expected('an array of tensors', dstName, dst);
  if (!Array.isArray(src)) throw expected('an array of tensors', srcName, src);
  if (src.length !== dst.length) {
    throw expected(`${dst.length} tensors (one per ${dstName} tensor)`, srcName, src.length, 'E_SHAPE');
  }
  checkNumber(decay, 'decay', 0, 1);
  dst.forEach((d, i) => {
    checkFloat(d, `${dstName}[${i}]`);
    checkTensor(src[i], `${srcName}[${i}]`);
    checkSameDtype(d, src[i]!, `${srcName}[${i}]`);
    checkShape(src[i]!, d.shape, `${srcName}[${i}]`);
  });
  for (let i = 0; i < dst.length; i++) emaUpdateNative(dst[i]!.native, src[i]!.native, decay);
}

/** A teacher whose tensors track a student's by EMA; it holds them, it does not copy them. */
export class EmaTeacher {
  readonly params: readonly Tensor[];

  /** params: the teacher's tensors, in the order the student's will be given to update(). */
  constructor(params: readonly Tensor[]) {
    if (!Array.isArray(params)) throw expected('an array of tensors', 'params', params);
    params.forEach((p, i) => checkFloat(p, `params[${i}]`));
    this.params = [...params];
  }

  /** teacher ← decay·teacher + (1 − decay)·student, tensor by tensor. */
  update(studentParams: readonly Tensor[], decay: number): void {
    update(this.params, studentParams, decay, 'params', 'studentParams');
  }
}
