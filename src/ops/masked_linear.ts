/**
 * Weight-mask tuning ("Masking as an Efficient Alternative to Finetuning"):
 * a frozen linear layer whose weights are gated by learned real-valued
 * scores, y = x·(W ⊙ 1[scores > τ])ᵀ + b. The hard threshold has no useful
 * derivative, so the backward is straight-through: scores receive the
 * gradient the masked weight would, times W. W and b never get a gradient.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { needsGrad, record, Tensor, tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

/** x [..., I], w [O, I] and bias [O] or null, all of x's float dtype. */
function checkOperands(x: Tensor, w: Tensor, bias: Tensor | null): void {
  checkFloat(x, 'input');
  checkRank(x, 1, 8, 'input');
  checkFloat(w, 'weight');
  checkSameDtype(x, w, 'weight');
  checkRank(w, 2, 2, 'weight');
  const I = x.shape[x.shape.length - 1]!;
  if (w.shape[1] !== I) throw expected(`a weight of shape [O, ${I}] (the input's last dimension)`, 'weight', w, 'E_SHAPE');
  if (bias !== null) {
    checkTensor(bias, 'bias');
    checkSameDtype(x, bias, 'bias');
    checkShape(bias, [w.shape[0]!], 'bias');
  }
}

function checkScores(scores: unknown, threshold: unknown): asserts scores is Tensor {
  checkFloat(scores, 'scores');
  checkNumber(threshold, 'threshold');
}

/**
 * y [..., O] = x [..., I]·(w ⊙ 1[scores > threshold])ᵀ + bias, w and scores
 * [O, I], bias [O] or null, all of x's dtype and device. Recorded on the tape
 * with gradients to x (dy·W_eff) and scores ((dyᵀ·x) ⊙ w) only: w and bias
 * are frozen even when they require grad. The tape keeps x, w and scores, not
 * the masked weight; each pass rebuilds it in scratch the size of w.
 */
export function maskedLinear(x: Tensor, w: Tensor, scores: Tensor, bias: Tensor | null, threshold: number): Tensor {
  checkOperands(x, w, bias);
  checkScores(scores, threshold);
  checkSameDtype(x, scores, 'scores');
  checkShape(scores, w.shape, 'scores');
  const out = native().maskedLinear(x.native, w.native, scores.native, bias?.native ?? null, threshold);
  const sx = x.share();
  const sw = w.share();
  const ss = scores.share();
  return record(
    'maskedLinear',
    [out],
    [x, scores],
    ([g]) => native().maskedLinearBackward(g!, sx, sw, ss, threshold, x.requiresGrad, scores.requiresGrad),
    [sx, sw, ss],
  )[0]!;
}

/**
 * Serving a task over a shared frozen weight: y = x·(w ⊙ bits)ᵀ + bias with
 * the mask as packed bits, uint8 [ceil(O·I/8)], weight i of w's row-major
 * order kept iff (bits[i >> 3] >> (i & 7)) & 1. The masked weight is built
 * per call in scratch and freed. Inference only: it has no gradient, so it
 * refuses an input that requires one rather than cut the tape silently.
 */
export function maskedLinearPacked(x: Tensor, w: Tensor, bits: Tensor, bias: Tensor | null): Tensor {
  checkOperands(x, w, bias);
  checkTensor(bits, 'bits');
  checkDtype(bits, 'uint8', 'bits');
  checkShape(bits, [Math.ceil(w.size / 8)], 'bits');
  if (needsGrad(x)) throw expected('an input that needs no gradient (maskedLinearPacked is for inference: run it under noGrad)', 'input', x);
  return new Tensor(native().maskedLinearPacked(x.native, w.native, bits.native, bias?.native ?? null));
}

/**
 * The mask itself, 1[scores > threshold], as 0/1 in scores' float dtype on
 * scores' device (so mul(w, mask) is the masked weight). Computed on the host:
 * for export and tests, not for the training step.
 */
export function weightMask(scores: Tensor, threshold: number): Tensor {
  checkScores(scores, threshold);
  const s = scores.toArray();
  return tensor(Array.from(s, (v) => (v > threshold ? 1 : 0)), scores.shape, scores.dtype, scores.device);
}

/** The fraction of weights the mask zeroes (scores ≤ threshold); 0 for no weights. Host-side, like weightMask. */
export function maskedFraction(scores: Tensor, threshold: number): number {
  checkScores(scores, threshold);
  const s = scores.toArray();
  let zeroed = 0;
  for (const v of s) if (!(v > threshold)) zeroed++;
  return s.length === 0 ? 0 : zeroed / s.length;
}
