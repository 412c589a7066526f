/**
 * Fused linear + cross-entropy, the last step of the MLM head: the mean
 * cross-entropy of logits = h·Wᵀ + b against targets, computed in vocabulary
 * chunks so the [M, V] logits are never stored. Only the per-row log-sum-exp
 * is kept for backward, which recomputes each chunk's logits.
 */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

export interface LinearCrossEntropyOptions {
  /** Vocabulary rows per chunk (default 4096); the scratch is [M, chunkSize]. */
  chunkSize?: number;
  /** Targets equal to this are skipped (default −100, as in PyTorch and HF). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy of `h·weightᵀ + bias` over the non-ignored rows; 0 when all are ignored.
 * h: [M, D] float; weight: [V, D] (the tied embedding); bias: [V] or null; targets: int32 [M].
 */
export function linearCrossEntropy(
  h: Tensor, weight: Tensor, bias: Tensor | null, targets: Tensor, opts: LinearCrossEntropyOptions = {},
): Tensor {
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
  checkTensor(targets, 'targets');
  checkDtype(targets, 'int32', 'targets');
  checkShape(targets, [M], 'targets');
  const chunk = opts.chunkSize ?? 4096;
  checkInt(chunk, 'chunkSize', 1);
  const ignore = opts.ignoreIndex ?? -100;
  checkInt(ignore, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  const r = native().linearCrossEntropy(h.native, weight.native, bias?.native ?? null, targets.native, ignore, chunk);
  const sh = h.share();
  const sw = weight.share();
  const sb = bias ? bias.share() : null;
  const st = targets.share();
  const count = r.count;
  return record(
    'linearCrossEntropy',
    [r.loss],
    [h, weight, bias],
    ([g]) =>
      native().linearCrossEntropyBackward(
        g!.read()[0]!, sh, sw, sb, st, r.lse, ignore, count, chunk,
        h.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false,
      ),
    sb ? [sh, sw, sb, st, r.lse] : [sh, sw, st, r.lse],
  )[0]!;
}
