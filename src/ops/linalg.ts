/** matmul and linear with autograd. */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkRank, checkSameDtype } from '../validate.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** [..., M, N] = op(a)·op(b). A 2-D b is shared across a's batch dims. */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  checkFloat(a, 'a');
  checkFloat(b, 'b');
  checkSameDtype(a, b, 'b');
  checkRank(a, 2, 8, 'a');
  checkRank(b, 2, 8, 'b');
  const ta = opts.transA ?? false;
  const tb = opts.transB ?? false;
  const out = native().matmul(a.native, b.native, ta, tb);
  const sa = a.share();
  const sb = b.share();
  return record('matmul', [out], [a, b], ([g]) => native().matmulBackward(g!, sa, sb, ta, tb, a.requiresGrad, b.requiresGrad), [sa, sb])[0]!;
}

/** y = x·wᵀ + bias, x [..., K], w [N, K], bias [N]. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  checkFloat(x, 'input');
  checkFloat(w, 'weight');
  checkSameDtype(x, w, 'weight');
  checkRank(w, 2, 2, 'weight');
  if (bias) checkSameDtype(x, bias, 'bias');
  const out = native().linear(x.native, w.native, bias?.native ?? null);
  const sx = x.share();
  const sw = w.share();
  return record(
    'linear',
    [out],
    [x, w, bias],
    ([g]) => native().linearBackward(g!, sx, sw, x.requiresGrad, w.requiresGrad, bias?.requiresGrad ?? false),
    [sx, sw],
  )[0]!;
}
