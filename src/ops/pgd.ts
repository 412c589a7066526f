/**
 * L2 PGD on embeddings: the random start and the projected ascent step, with
 * every norm taken per example. Neither is recorded on the tape: they update
 * the perturbation between passes, as an optimizer step updates weights.
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/** Which rows of the flattened [R, D] perturbation each example owns: rows [starts[b], starts[b] + lengths[b]). */
export interface PgdSegments {
  /** int32 [B]. */
  starts: Tensor;
  /** int32 [B]. */
  lengths: Tensor;
}

function checkSegments(seg: PgdSegments): void {
  checkTensor(seg.starts, 'starts');
  checkDtype(seg.starts, 'int32', 'starts');
  checkRank(seg.starts, 1, 1, 'starts');
  checkTensor(seg.lengths, 'lengths');
  checkDtype(seg.lengths, 'int32', 'lengths');
  checkShape(seg.lengths, seg.starts.shape, 'lengths');
}

/** x [..., D] as a native [R, D] view. */
function rows(x: Tensor): { r: number; d: number } {
  const d = x.shape[x.shape.length - 1]!;
  return { r: d === 0 ? 0 : x.size / d, d };
}

/** A tensor of `shape` on the kernel's [R, D] output (the flat handle released). */
function shaped(out: NativeTensor, shape: readonly number[]): Tensor {
  const h = out.reshape(shape);
  out.dispose();
  return new Tensor(h);
}

export interface PgdStartOptions {
  /** The radius ε: every example's start has L2 norm exactly ε. */
  eps: number;
  /** Philox key; with `step` it fixes the draw exactly (as dropout's mask). */
  seed: number;
  /** A distinct counter per call (the training step). */
  step: number;
  /**
   * Rows of a global batch before `like`'s (data parallel: the rows of the lower ranks), so that the draws are those
   * one process makes for these rows of the global batch. Default 0.
   */
  rowOffset?: number;
}

/**
 * The random start: u ~ U[−1, 1) on each example's rows, scaled to L2 norm ε
 * per example; 0 on rows no example owns. Shaped, typed and placed like `like`
 * ([..., D]), whose values are not read.
 */
export function pgdRandomStart(like: Tensor, seg: PgdSegments, opts: PgdStartOptions): Tensor {
  checkFloat(like, 'like');
  checkRank(like, 2, 8, 'like');
  checkSegments(seg);
  checkNumber(opts.eps, 'eps', Number.MIN_VALUE);
  checkInt(opts.seed, 'seed', 0, 2 ** 53);
  checkInt(opts.step, 'step', 0, 2 ** 53);
  checkInt(opts.rowOffset ?? 0, 'rowOffset', 0, 2 ** 40);
  const { r, d } = rows(like);
  const flat = like.native.reshape([r, d]);
  try {
    const out = native().pgdRandomStart(flat, seg.starts.to(like.device).native, seg.lengths.to(like.device).native, opts.eps, opts.seed, opts.step, opts.rowOffset ?? 0);
    return shaped(out, like.shape);
  } finally {
    flat.dispose();
  }
}

export interface PgdStepOptions {
  /** Step size α of the normalised ascent step. */
  alpha: number;
  /** The radius ε of the ball the result is projected onto. */
  eps: number;
}

/**
 * One projected L2 ascent step per example: Π_ε(δ + α·g/‖g‖), with
 * Π_ε(x) = x·ε/max(‖x‖, ε). An example whose gradient is 0 is only projected.
 */
export function pgdStep(delta: Tensor, grad: Tensor, seg: PgdSegments, opts: PgdStepOptions): Tensor {
  checkFloat(delta, 'delta');
  checkRank(delta, 2, 8, 'delta');
  checkTensor(grad, 'grad');
  checkSameDtype(delta, grad, 'grad');
  checkShape(grad, delta.shape, 'grad');
  checkSegments(seg);
  checkNumber(opts.alpha, 'alpha', 0);
  checkNumber(opts.eps, 'eps', Number.MIN_VALUE);
  const { r, d } = rows(delta);
  const fd = delta.native.reshape([r, d]);
  const fg = grad.native.reshape([r, d]);
  try {
    const out = native().pgdStep(fd, fg, seg.starts.to(delta.device).native, seg.lengths.to(delta.device).native, opts.alpha, opts.eps);
    return shaped(out, delta.shape);
  } finally {
    fd.dispose();
    fg.dispose();
  }
}
