/** Cross-entropy over selected rows (with autograd) and the row-wise argmax. */
import { native } from '../native/loader.js';
import { hostTargets } from './count-targets.js';
import { record, tensor, Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { add, scale } from './elementwise.js';
import { embedding } from './embedding.js';
import { checkDtype, checkFloat, checkInt, checkRank, checkShape, checkTensor } from '../validate.js';

export interface CrossEntropyOptions {
  /** int32 [M]: which rows of the logits to score; default all rows. */
  rows?: Tensor | null;
  /** Targets equal to this are skipped (default −100, as in PyTorch and HF). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy over the selected, non-ignored rows of logits [N, V].
 * targets: int32 [M], one per selected row.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkFloat(logits, 'logits');
  checkRank(logits, 2, 2, 'logits');
  checkTensor(targets, 'targets');
  checkDtype(targets, 'int32', 'targets');
  const rows = opts.rows ?? null;
  if (rows) {
    checkTensor(rows, 'rows');
    checkDtype(rows, 'int32', 'rows');
    checkShape(rows, targets.shape, 'rows');
  }
  const ignore = opts.ignoreIndex ?? -100;
  checkInt(ignore, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  // Host targets for cuda logits go up counted (hostTargets); with rows the op copies both back to check them
  // anyway, so the targets only go up.
  if (logits.shape[1] === 0) throw expected('logits with at least one class', 'logits', logits, 'E_SHAPE');
  const { uploaded, count: hostCount } = hostTargets(targets, logits.device, logits.shape[1]!, ignore, 'crossEntropy', !rows);
  const tNative = uploaded ?? targets.native;
  let r: ReturnType<ReturnType<typeof native>['crossEntropy']>;
  try {
    r = hostCount === undefined
      ? native().crossEntropy(logits.native, tNative, rows?.native ?? null, ignore)
      : native().crossEntropy(logits.native, tNative, null, ignore, hostCount);
  } catch (e) {
    uploaded?.dispose();
    throw e;
  }
  const sl = logits.share();
  const st = uploaded ?? targets.share();
  const sr = rows ? rows.share() : null;
  const count = r.count;
  return record(
    'crossEntropy',
    [r.loss],
    [logits],
    // The loss's gradient as a tensor: on cuda the kernel reads it there (reading it here would wait for the device).
    ([g]) => [native().crossEntropyBackward(g!, sl, st, sr, r.lse, ignore, count)],
    sr ? [sl, st, sr, r.lse] : [sl, st, r.lse],
  )[0]!;
}

/** int32 index of the largest value along the last dim (first on ties). Not differentiable. */
export function argmax(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  return new Tensor(native().argmaxRows(x.native));
}

/**
 * Label-smoothed cross-entropy (timm's LabelSmoothingCrossEntropy, MAE's
 * fine-tuning loss): (1 − ε)·CE(logits, y) + ε·mean_k(−log softmax_k), the
 * mean over rows. The second term is a plain cross-entropy over every (row,
 * class) pair, so it runs on the same kernel over the rows repeated K times
 * (an embedding gather, whose scatter-add backward sums the K copies).
 */
export function labelSmoothingCrossEntropy(logits: Tensor, targets: Tensor, smoothing: number): Tensor {
  checkFloat(logits, 'logits');
  checkRank(logits, 2, 2, 'logits');
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing < 1)) throw expected('a number in [0, 1)', 'smoothing', smoothing);
  const nll = crossEntropy(logits, targets);
  if (smoothing === 0) return nll;
  const [N, K] = logits.shape as [number, number];
  const rows = new Int32Array(N * K);
  const all = new Int32Array(N * K);
  for (let i = 0; i < N; i++)
    for (let k = 0; k < K; k++) {
      rows[i * K + k] = i;
      all[i * K + k] = k;
    }
  const repeated = embedding(logits, tensor(rows, [N * K], 'int32', logits.device));
  const uniform = crossEntropy(repeated, tensor(all, [N * K], 'int32', logits.device));
  return add(scale(nll, 1 - smoothing), scale(uniform, smoothing));
}
