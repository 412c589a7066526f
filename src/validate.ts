/** Argument checks at the TypeScript boundary, all in the one wording of errors.ts. */
import { expected } from './errors.js';
import { Tensor, type DType } from './tensor.js';

const article = (word: string): string => (/^[aeio]/.test(word) ? 'an' : 'a');

export function checkTensor(t: unknown, name: string): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw expected('a Tensor', name, t);
  if (t.disposed) throw expected('a live tensor', name, 'a disposed tensor');
}

/**
 * A float tensor the backend has kernels for: float32 or float64 on the CPU,
 * float32 or bfloat16 on CUDA (the native ArgReader::want_float rule, so that
 * a bf16 run on cuda is not refused here before the kernel that handles it).
 */
export function checkFloat(t: unknown, name: string): asserts t is Tensor {
  checkTensor(t, name);
  if (t.device === 'cuda') {
    if (t.dtype !== 'float32' && t.dtype !== 'bfloat16') throw expected('a float32 or bfloat16 tensor (on cuda)', name, t, 'E_DTYPE');
  } else if (t.dtype !== 'float32' && t.dtype !== 'float64') {
    throw expected('a float32 or float64 tensor', name, t, 'E_DTYPE');
  }
}

export function checkDtype(t: Tensor, dtype: DType, name: string): void {
  if (t.dtype !== dtype) throw expected(`${article(dtype)} ${dtype} tensor`, name, t, 'E_DTYPE');
}

export function checkSameDtype(ref: Tensor, t: Tensor, name: string): void {
  if (t.dtype !== ref.dtype) throw expected(`${article(ref.dtype)} ${ref.dtype} tensor`, name, t, 'E_DTYPE');
}

export function checkShape(t: Tensor, shape: readonly number[], name: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw expected(`shape [${shape.join(', ')}]`, name, t, 'E_SHAPE');
  }
}

export function checkRank(t: Tensor, lo: number, hi: number, name: string): void {
  if (t.shape.length < lo || t.shape.length > hi) {
    throw expected(lo === hi ? `a ${lo}-D tensor` : `a ${lo}-D to ${hi}-D tensor`, name, t, 'E_SHAPE');
  }
}

export function checkNumber(v: unknown, name: string, lo = -Infinity, hi = Infinity): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    const range = lo === -Infinity && hi === Infinity ? 'a finite number' : `a number in [${lo}, ${hi}]`;
    throw expected(range, name, v);
  }
}

export function checkInt(v: unknown, name: string, lo = 0, hi = Number.MAX_SAFE_INTEGER): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw expected(lo === 1 && hi === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer in [${lo}, ${hi}]`, name, v);
  }
}

/**
 * The operands of an output head over a vocabulary: h [M, D] float, weight
 * [V, D] of h's dtype (the tied decoder), bias [V] or null. Returns M, D, V.
 */
export function checkHeadOperands(h: Tensor, weight: Tensor, bias: Tensor | null): { M: number; D: number; V: number } {
  checkFloat(h, 'input');
  checkRank(h, 2, 2, 'input');
  checkTensor(weight, 'weight');
  checkSameDtype(h, weight, 'weight');
  checkRank(weight, 2, 2, 'weight');
  const [M, D] = h.shape as [number, number];
  const V = weight.shape[0]!;
  checkShape(weight, [V, D], 'weight');
  if (bias) {
    checkTensor(bias, 'bias');
    checkSameDtype(h, bias, 'bias');
    checkShape(bias, [V], 'bias');
  }
  return { M, D, V };
}
