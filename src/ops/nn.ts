/** LayerNorm, softmax, cross-entropy and embedding with autograd. */
import { native } from '../native/loader.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/** LayerNorm over the last dim, fused forward and backward; weight/bias optional. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  checkNumber(eps, 'eps', Number.MIN_VALUE);
  const C = x.shape[x.shape.length - 1]!;
  for (const [t, n] of [[weight, 'weight'], [bias, 'bias']] as const) {
    if (t) {
      checkSameDtype(x, t, n);
      checkShape(t, [C], n);
    }
  }
  const [y, mean, rstd] = native().layerNorm(x.native, weight?.native ?? null, bias?.native ?? null, eps);
  const sx = x.share();
  const sw = weight ? weight.share() : null;
  return record(
    'layerNorm',
    [y],
    [x, weight, bias],
    ([g]) => native().layerNormBackward(g!, sx, sw, mean, rstd, x.requiresGrad, weight?.requiresGrad ?? false, bias?.requiresGrad ?? false),
    sw ? [sx, sw, mean, rstd] : [sx, mean, rstd],
  )[0]!;
}

/** Softmax over the last dim. Fully −∞ rows give zeros. */
export function softmax(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  const y = native().softmax(x.native);
  const sy = y.reshape(y.shape);
  return record('softmax', [y], [x], ([g]) => [native().softmaxBackward(g!, sy)], [sy])[0]!;
}

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
  const r = native().crossEntropy(logits.native, targets.native, rows?.native ?? null, ignore);
  const sl = logits.share();
  const st = targets.share();
  const sr = rows ? rows.share() : null;
  const count = r.count;
  return record(
    'crossEntropy',
    [r.loss],
    [logits],
    ([g]) => [native().crossEntropyBackward(g!.read()[0]!, sl, st, sr, r.lse, ignore, count)],
    sr ? [sl, st, sr, r.lse] : [sl, st, r.lse],
  )[0]!;
}

/** int32 index of the largest value along the last dim (first on ties). Not differentiable. */
export function argmax(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  return new Tensor(native().argmaxRows(x.native));
}

/** Gathers rows of table [V, D] at int32 ids [...]: [..., D]. Backward scatter-adds. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  checkFloat(table, 'table');
  checkRank(table, 2, 2, 'table');
  checkTensor(ids, 'ids');
  checkDtype(ids, 'int32', 'ids');
  const V = table.shape[0]!;
  const sid = ids.share();
  return record(
    'embedding',
    [native().embedding(table.native, ids.native)],
    [table],
    ([g]) => [native().embeddingBackward(g!, sid, V)],
    [sid],
  )[0]!;
}
