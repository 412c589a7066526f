/**
 * The ops of ASA fine-tuning (adversarial self-attention), with autograd:
 *
 *   asaMask      the adversary's scores S [B, L, L] → the attention bias
 *                (1 − M)·(−1e4) with M = 1[S > 0] (padding keys never kept),
 *                and each real query's kept count; the backward is
 *                straight-through, ∂M/∂S := σ(S)(1 − σ(S)).
 *   symKl        KL(p‖q) + KL(q‖p) of two class softmaxes, the batch mean.
 *   gradReverse  identity forward, −g backward: puts the adversary on the
 *                ascending side of a loss the model descends. A composite of
 *                existing native calls (a view, and scale by −1).
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { record, type Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { checkDtype, checkFloat, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/** The bias a masked (query, key) pair gets is −ASA_MASK_VALUE: the −10000 of BERT's extended attention mask, as the official ASA code uses. */
export const ASA_MASK_VALUE = 1e4;

export interface AsaMaskResult {
  /** [B, L, L]: 0 where the pair is kept, −maskValue where masked; the fused attention's `bias`. */
  bias: Tensor;
  /** [B, L]: kept keys per real query (0 on padding queries); its sum is ΣM over the real pairs. */
  kept: Tensor;
}

/**
 * The adversarial mask of scores [B, L, L] as an attention bias. keyPadding:
 * uint8 [B, L], 1 = padding (such keys are always masked and get no gradient;
 * padding queries count no kept pairs).
 */
export function asaMask(scores: Tensor, keyPadding: Tensor | null = null, maskValue = ASA_MASK_VALUE): AsaMaskResult {
  checkFloat(scores, 'scores');
  checkRank(scores, 3, 3, 'scores');
  const [B, L, L2] = scores.shape as [number, number, number];
  if (L !== L2) throw expected('square scores [B, L, L]', 'scores', scores, 'E_SHAPE');
  if (keyPadding) {
    checkTensor(keyPadding, 'keyPadding');
    checkDtype(keyPadding, 'uint8', 'keyPadding');
    checkShape(keyPadding, [B, L], 'keyPadding');
  }
  checkNumber(maskValue, 'maskValue', Number.MIN_VALUE);
  const r = native().asaMask(scores.native, keyPadding?.native ?? null, maskValue);
  const ss = scores.share();
  const sk = keyPadding ? keyPadding.share() : null;
  const saved = sk ? [ss, sk] : [ss];
  const [bias, kept] = record(
    'asaMask',
    [r.bias, r.kept],
    [scores],
    ([gb, gk]) => [native().asaMaskBackward(gb ?? null, gk ?? null, ss, sk, maskValue)],
    saved,
  ) as [Tensor, Tensor];
  return { bias, kept };
}

/** KL(softmax(a)‖softmax(b)) + KL(softmax(b)‖softmax(a)), summed over the classes and averaged over the N rows of a, b [N, C]: a 0-d tensor. */
export function symKl(a: Tensor, b: Tensor): Tensor {
  checkFloat(a, 'a');
  checkRank(a, 2, 2, 'a');
  checkFloat(b, 'b');
  checkSameDtype(a, b, 'b');
  checkShape(b, a.shape, 'b');
  if (a.shape[1] === 0) throw expected('logits with at least one class', 'a', a, 'E_SHAPE');
  const sa = a.share();
  const sb = b.share();
  return record(
    'symKl',
    [native().symKl(a.native, b.native)],
    [a, b],
    ([g]) => native().symKlBackward(g!, sa, sb, a.requiresGrad, b.requiresGrad),
    [sa, sb],
  )[0]!;
}

/** Identity in the forward; the backward passes −λ·g (λ = 1: a gradient-reversal layer). */
export function gradReverse(x: Tensor, lambda = 1): Tensor {
  checkFloat(x, 'input');
  checkNumber(lambda, 'lambda', 0);
  const view: NativeTensor = x.native.reshape(x.shape);
  return record('gradReverse', [view], [x], ([g]) => [native().scale(g!, -lambda)])[0]!;
}
