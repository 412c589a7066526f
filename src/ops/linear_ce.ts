/**
 * Fused linear + cross-entropy, the last step of the MLM head: the mean
 * cross-entropy of logits = h·Wᵀ + b against targets, computed in vocabulary
 * chunks so the [M, V] logits are never stored. Only the per-row log-sum-exp
 * is kept for backward, which recomputes each chunk's logits. A leaf operand
 * that already has a .grad (a Parameter whose gradient is a view of AdamW's
 * flat buffer; the tied decoder's also receives the embedding's gradient) gets
 * its gradient added into that buffer by the kernel itself, chunk by chunk, so
 * no [V, D] gradient tensor is ever allocated.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { record, Tensor } from '../tensor.js';
import { hostTargets } from './count-targets.js';
import { checkDtype, checkHeadOperands, checkInt, checkNumber, checkShape, checkTensor } from '../validate.js';

export interface LinearCrossEntropyOptions {
  /** Vocabulary rows per chunk (default 4096); the scratch is [M, chunkSize]. */
  chunkSize?: number;
  /** Targets equal to this are skipped (default −100, as in PyTorch and HF). */
  ignoreIndex?: number;
  /**
   * Divide the summed cross-entropy by this instead of the count of non-ignored rows (default). A
   * data-parallel rank passes the global batch's count, so that its gradient is exactly its share of
   * the single-process mean's: every row's gradient is then g/normalizer on every rank, as in one process.
   */
  normalizer?: number;
}

/**
 * Mean cross-entropy of `h·weightᵀ + bias` over the non-ignored rows; 0 when all are ignored.
 * h: [M, D] float; weight: [V, D] (the tied embedding); bias: [V] or null; targets: int32 [M].
 */
export function linearCrossEntropy(
  h: Tensor, weight: Tensor, bias: Tensor | null, targets: Tensor, opts: LinearCrossEntropyOptions = {},
): Tensor {
  const { M } = checkHeadOperands(h, weight, bias);
  checkTensor(targets, 'targets');
  checkDtype(targets, 'int32', 'targets');
  checkShape(targets, [M], 'targets');
  const chunk = opts.chunkSize ?? 4096;
  checkInt(chunk, 'chunkSize', 1);
  const ignore = opts.ignoreIndex ?? -100;
  checkInt(ignore, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  // A count of rows (the global batch's, for a data-parallel rank): the backward takes it as an integer.
  if (opts.normalizer !== undefined) checkInt(opts.normalizer, 'normalizer', 1, 2 ** 40);
  // Host targets for a cuda head go up counted and checked (hostTargets).
  const { uploaded, count: hostCount } = hostTargets(targets, h.device, weight.shape[0]!, ignore, 'linearCrossEntropy', true);
  const tNative = uploaded ?? targets.native;
  let r: ReturnType<ReturnType<typeof native>['linearCrossEntropy']>;
  try {
    r = hostCount === undefined
      ? native().linearCrossEntropy(h.native, weight.native, bias?.native ?? null, tNative, ignore, chunk)
      : native().linearCrossEntropy(h.native, weight.native, bias?.native ?? null, tNative, ignore, chunk, hostCount);
  } catch (e) {
    uploaded?.dispose();
    throw e;
  }
  if (opts.normalizer !== undefined && opts.normalizer < r.count) {
    r.loss.dispose();
    r.lse.dispose();
    uploaded?.dispose();
    throw expected(`a normalizer of at least ${r.count} (the targets' non-ignored rows)`, 'normalizer', opts.normalizer, 'E_VALUE');
  }
  if (opts.normalizer !== undefined && opts.normalizer !== r.count) {
    // The forward's mean over `count` rows, rescaled to the sum over `normalizer` (0 when no row counts).
    const loss = native().scale(r.loss, r.count / opts.normalizer);
    r.loss.dispose();
    r.loss = loss;
  }
  const sh = h.share();
  const sw = weight.share();
  const sb = bias ? bias.share() : null;
  const st = uploaded ?? targets.share();
  const count = opts.normalizer ?? r.count;
  const operands = sb ? [sh, sw, sb] : [sh, sw];
  return record(
    'linearCrossEntropy',
    [r.loss],
    [h, weight, bias],
    ([g]) =>
      native().linearCrossEntropyBackward(
        // The loss's gradient as a tensor: on cuda the kernel reads it there (reading it here would wait for the device).
        g!, sh, sw, sb, st, r.lse, ignore, count, chunk,
        h.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false,
        gradBuffer(h, operands), gradBuffer(weight, operands), bias ? gradBuffer(bias, operands) : null,
      ),
    sb ? [sh, sw, sb, st, r.lse] : [sh, sw, st, r.lse],
  )[0]!;
}

/**
 * The buffer a leaf's gradient can be added into in place: its live .grad when
 * it has the leaf's shape, dtype and device. backward() would add the returned
 * gradient into that same .grad (autograd/backward.ts, depositLeafGrad), so
 * the kernel doing it directly is the same sum without the temporary. Null for
 * a non-leaf (its gradient flows on), a leaf without a .grad yet, or a .grad
 * sharing storage with an operand the kernel reads while it writes.
 */
function gradBuffer(t: Tensor, operands: NativeTensor[]): NativeTensor | null {
  if (!t.requiresGrad || t.gradFn !== null) return null;
  const g = t.grad;
  if (!g || g.disposed || g.dtype !== t.dtype || g.device !== t.device || g.shape.join() !== t.shape.join()) return null;
  if (operands.some((o) => o.sharesStorage(g.native))) return null;
  return g.native;
}

export interface LinearSampleOptions {
  /** Philox key of the draws. */
  seed: number;
  /** Counter of the draws (the training step or micro-batch index): a sample is a pure function of (seed, step, row). */
  step: number;
  /** Vocabulary rows per chunk (default 4096); the scratch is [M, chunkSize]. */
  chunkSize?: number;
  /** Softmax temperature (default 1). */
  temperature?: number;
  /**
   * Row m draws as row m + rowOffset (default 0): a data-parallel rank whose rows follow rowOffset rows on lower
   * ranks draws what one process holding every row would.
   */
  rowOffset?: number;
}

/**
 * One token id per row drawn from softmax((h·weightᵀ + bias) / temperature),
 * fused into the same vocabulary-chunked pass as linearCrossEntropy: each
 * chunk's logits get Gumbel noise from the Philox stream keyed on (seed,
 * step, row, column) and only the running maximum per row is kept, so the
 * [M, V] logits are never stored. ELECTRA's generator samples its
 * replacements with it. No gradient (a stop-gradient sample): int32 [M].
 */
export function linearSample(h: Tensor, weight: Tensor, bias: Tensor | null, opts: LinearSampleOptions): Tensor {
  checkHeadOperands(h, weight, bias);
  checkInt(opts.seed, 'seed', 0, 2 ** 53);
  checkInt(opts.step, 'step', 0, 2 ** 53);
  const chunk = opts.chunkSize ?? 4096;
  checkInt(chunk, 'chunkSize', 1);
  const temperature = opts.temperature ?? 1;
  checkNumber(temperature, 'temperature', Number.MIN_VALUE, Number.MAX_VALUE);
  const rowOffset = opts.rowOffset ?? 0;
  checkInt(rowOffset, 'rowOffset', 0, 2 ** 31 - 1);
  return new Tensor(native().linearSample(h.native, weight.native, bias?.native ?? null, opts.seed, opts.step, chunk, temperature, rowOffset));
}
