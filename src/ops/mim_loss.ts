/**
 * Losses of masked image modeling, fused in native code. In every mask 1 =
 * masked (removed), 0 = visible.
 * - maskedPatchLoss: MAE (mse, normPix) and SimMIM (l1) reconstruction loss.
 * - maskedCosine: MTO's data-singularity measure (our definition, the README's image pre-training section).
 * - rankingLoss: HPM's pairwise ranking BCE on predicted per-patch losses.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

export type PatchLossKind = 'mse' | 'l1';

export interface MaskedPatchLossOptions {
  /** 'mse' (MAE, the default) or 'l1' (SimMIM). */
  kind?: PatchLossKind;
  /**
   * Normalise each target patch to (t − mean)/sqrt(var + eps) first (MAE's norm_pix_loss; default false).
   * var is the unbiased variance, as MAE's `target.var(dim=-1)`, so P must be at least 2.
   */
  normPix?: boolean;
  /** Added to the variance under normPix (default 1e-6, as MAE). */
  eps?: number;
}

export interface MaskedPatchLossResult {
  /** Scalar: the per-patch loss averaged over the masked patches (0 when none is masked). */
  loss: Tensor;
  /** [B, L]: the loss of every patch, masked or not; detached (HPM's ranking target). */
  perPatch: Tensor;
}

function checkEps(eps: unknown): asserts eps is number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) throw expected('a finite number > 0', 'eps', eps);
}

/** mask: uint8 [B, L], checked against a float tensor's leading dims. */
function checkMask(mask: Tensor, B: number, L: number): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkShape(mask, [B, L], 'mask');
}

/**
 * [B, L, P] pred and target, uint8 [B, L] mask → the mean over masked patches of
 * mean_P (pred − t̂)² (mse) or mean_P |pred − t̂| (l1), t̂ the (optionally normalised) target.
 * Differentiable w.r.t. pred and, when it requires grad, target (through the normalisation).
 */
export function maskedPatchLoss(
  pred: Tensor, target: Tensor, mask: Tensor, opts: MaskedPatchLossOptions = {},
): MaskedPatchLossResult {
  checkFloat(pred, 'pred');
  checkRank(pred, 3, 3, 'pred');
  checkTensor(target, 'target');
  checkSameDtype(pred, target, 'target');
  checkShape(target, pred.shape, 'target');
  const [B, L, P] = pred.shape as [number, number, number];
  checkMask(mask, B, L);
  const kind = opts.kind ?? 'mse';
  if (kind !== 'mse' && kind !== 'l1') throw expected("'mse' or 'l1'", 'kind', kind);
  const normPix = opts.normPix ?? false;
  if (typeof normPix !== 'boolean') throw expected('a boolean', 'normPix', normPix);
  const eps = opts.eps ?? 1e-6;
  checkEps(eps);
  if (P < (normPix ? 2 : 1)) {
    const what = normPix ? 'at least 2 pixels per patch with normPix (the variance is unbiased)' : 'a non-empty last dimension';
    throw expected(what, 'pred', pred, 'E_SHAPE');
  }
  const o = { kind, normPix, eps };
  const r = native().maskedPatchLoss(pred.native, target.native, mask.native, o);
  const perPatch = new Tensor(r.perPatch);
  const sp = pred.share();
  const st = target.share();
  const sm = mask.share();
  const [loss] = record(
    'maskedPatchLoss',
    [r.loss],
    [pred, target],
    ([g]) => native().maskedPatchLossBackward(g!.read()[0]!, sp, st, sm, o, pred.requiresGrad, target.requiresGrad),
    [sp, st, sm],
  );
  return { loss: loss!, perPatch };
}

/**
 * MTO's data-singularity measure (ours): x [B, L, D], uint8 mask [B, L] → the mean, over
 * the images with at least one masked and one visible token, of the mean cosine similarity
 * between their masked and visible tokens, (mean_masked x̂)·(mean_visible x̂) with
 * x̂ = x / max(‖x‖₂, eps). 0 when no image has both. Differentiable w.r.t. x.
 */
export function maskedCosine(x: Tensor, mask: Tensor, eps = 1e-8): Tensor {
  checkFloat(x, 'x');
  checkRank(x, 3, 3, 'x');
  const [B, L, D] = x.shape as [number, number, number];
  if (D === 0) throw expected('a non-empty last dimension', 'x', x, 'E_SHAPE');
  checkMask(mask, B, L);
  checkEps(eps);
  const r = native().maskedCosine(x.native, mask.native, eps);
  const sx = x.share();
  const sm = mask.share();
  return record(
    'maskedCosine',
    [r.loss],
    [x],
    ([g]) => [native().maskedCosineBackward(g!.read()[0]!, sx, sm, eps)],
    [sx, sm],
  )[0]!;
}

/**
 * HPM's loss-prediction objective: pred, target [B, L], uint8 mask [B, L] → the mean over
 * every image's masked pairs i < j of BCE-with-logits(pred_j − pred_i, y), y = 1 when
 * target_j > target_i, 0 when less. A tied pair has no label and, as in HPM's official loss
 * (labels_valid = positive + negative), is left out of both the sum and the count; 0 when
 * no image has an untied masked pair.
 * Differentiable w.r.t. pred only: target is the detached per-patch loss, a constant here
 * even if it requires grad. `out.count`, when given, receives the number of untied pairs.
 */
export function rankingLoss(pred: Tensor, target: Tensor, mask: Tensor, out?: { count: number }): Tensor {
  checkFloat(pred, 'pred');
  checkRank(pred, 2, 2, 'pred');
  checkTensor(target, 'target');
  checkSameDtype(pred, target, 'target');
  checkShape(target, pred.shape, 'target');
  const [B, L] = pred.shape as [number, number];
  checkMask(mask, B, L);
  const r = native().rankingLoss(pred.native, target.native, mask.native);
  // The untied pairs the mean is over: a data-parallel rank's share of the global mean needs them.
  if (out) out.count = r.count;
  const sp = pred.share();
  const st = target.share();
  const sm = mask.share();
  return record(
    'rankingLoss',
    [r.loss],
    [pred],
    ([g]) => [native().rankingLossBackward(g!.read()[0]!, sp, st, sm)],
    [sp, st, sm],
  )[0]!;
}
