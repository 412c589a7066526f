/**
 * MVP's label-word scoring (model tuning via prompts): a class's score is the
 * MLM logit of its verbalizer words at the [MASK] position, max-pooled over
 * the class's words and mean-pooled over the templates.
 *
 * labelWordLogits scores only the K label words, a [M, D] × [D, K] product
 * against the K gathered decoder rows, so the [M, V] logits never exist;
 * verbalizerPool turns the [B, T, K] word scores into [B, C] class scores.
 */
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkHeadOperands, checkInt, checkRank, checkShape, checkTensor } from '../validate.js';

/**
 * `h·weight[words]ᵀ + bias[words]`: [M, K], the columns `words` of the full
 * logits `linear(h, weight, bias)` without forming them.
 * h: [M, D] float; weight: [V, D] (the tied decoder); bias: [V] or null;
 * words: int32 [K], K ≥ 1, each in [0, V) (a word may repeat: its gradient
 * rows add up). The gradient of weight and bias is dense ([V, D], [V]) and
 * zero off the word rows.
 */
export function labelWordLogits(h: Tensor, weight: Tensor, bias: Tensor | null, words: Tensor): Tensor {
  checkHeadOperands(h, weight, bias);
  checkTensor(words, 'words');
  checkDtype(words, 'int32', 'words');
  checkRank(words, 1, 1, 'words');
  // Word ids in [0, V), K ≥ 1 and the output's size are checked by the binding.
  const out = native().labelWordLogits(h.native, weight.native, bias?.native ?? null, words.native);
  const sh = h.share();
  const sw = weight.share();
  const sk = words.share();
  return record(
    'labelWordLogits',
    [out],
    [h, weight, bias],
    ([g]) => native().labelWordLogitsBackward(g!, sh, sw, sk, h.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false),
    [sh, sw, sk],
  )[0]!;
}

/**
 * MVP's pooling of label-word scores into class scores: [B, C] with
 * out[b, c] = mean over t of max over {k : classOf[k] = c} of scores[b, t, k].
 * scores: [B, T, K] float (T templates, K words); classOf: int32 [K] in
 * [0, numClasses), every class with at least one word. The gradient goes to
 * each max's word (the first of equal scores), divided by T.
 */
export function verbalizerPool(scores: Tensor, classOf: Tensor, numClasses: number): Tensor {
  checkFloat(scores, 'scores');
  checkRank(scores, 3, 3, 'scores');
  checkTensor(classOf, 'classOf');
  checkDtype(classOf, 'int32', 'classOf');
  checkShape(classOf, [scores.shape[2]!], 'classOf');
  checkInt(numClasses, 'numClasses', 1);
  // Class ids in [0, C) and every class having a word are checked by the binding.
  const out = native().verbalizerPool(scores.native, classOf.native, numClasses);
  const ss = scores.share();
  const sc = classOf.share();
  return record(
    'verbalizerPool',
    [out],
    [scores],
    ([g]) => [native().verbalizerPoolBackward(g!, ss, sc, numClasses)],
    [ss, sc],
  )[0]!;
}
