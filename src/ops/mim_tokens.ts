/**
 * Token bookkeeping for masked image modeling (the README's image pre-training section): MAE's random
 * masking (noise → argsort → keep / restore / mask), one gather-or-token
 * kernel that serves MAE's encoder gather and decoder unshuffle, SimMIM's
 * mask-token replacement and CLS prepending, MAE's patch order, and the mean
 * over tokens that feeds the linear probe.
 *
 * Shape letters: B batch, L = (H/p)(W/p) tokens, D width, Ls / Lo tokens in /
 * out of assembleTokens, T learned tokens. Mask rule: 1 = removed.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, Tensor, type Device } from '../tensor.js';
import {
  checkDtype, checkFloat, checkInt, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor,
} from '../validate.js';

export interface TokenMask {
  /** int32 [B, keep]: the kept token positions, lowest score first. */
  idsKeep: Tensor;
  /** int32 [B, L]: rank of each token in the shuffle (the inverse permutation of argsort(scores)). */
  idsRestore: Tensor;
  /** uint8 [B, L] in original order: 1 = removed (not among the `keep` lowest scores). */
  mask: Tensor;
}

/**
 * MAE's random masking given per-token scores [B, L] (float32 or float64): per
 * row, the `keep` lowest scores survive. The sort is stable (ties go to the
 * lower index), so the result is fixed by the scores. NaN is an error.
 */
export function maskFromScores(scores: Tensor, keep: number): TokenMask {
  checkFloat(scores, 'scores');
  checkRank(scores, 2, 2, 'scores');
  checkInt(keep, 'keep', 0, scores.shape[1]!);
  const r = native().maskFromScores(scores.native, keep);
  return { idsKeep: new Tensor(r.idsKeep), idsRestore: new Tensor(r.idsRestore), mask: new Tensor(r.mask) };
}

/**
 * float32 noise uniform in [low, high), a pure function of (seed, step, element
 * index) whatever the thread count. It uses the same Philox stream as dropout
 * and mlmMask, so give each call site its own step (or seed). `device` picks
 * where the tensor is made; the values are the same bits on every device.
 */
export function uniformNoise(
  shape: readonly number[], seed: number, step: number, low = 0, high = 1, device: Device = 'cpu',
): Tensor {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0 || d >= 2 ** 31)) {
    throw expected('an array of non-negative integers below 2^31', 'shape', shape, 'E_SHAPE');
  }
  checkInt(seed, 'seed');
  checkInt(step, 'step');
  checkNumber(low, 'low');
  checkNumber(high, 'high');
  if (!(high > low)) throw expected(`a number above low (${low})`, 'high', high);
  return new Tensor(native().uniformNoise(shape, seed, step, low, high, device));
}

/**
 * out[b, j] = x[b, index[b, j]] where the index is ≥ 0, tokens[−1 − index[b, j]]
 * where it is negative. x: [B, Ls, D]; index: int32 [B, Lo] in [−T, Ls);
 * tokens: [T, D] of x's dtype, or null when no index is negative. Returns
 * [B, Lo, D]. Differentiable in x and tokens; repeated indices add their
 * gradients, in an order that does not depend on the thread count.
 *
 * Uses: the kept tokens (index = idsKeep, tokens = null); MAE's decoder input
 * (index = restoreIndex(idsRestore, keep, cls), tokens = the mask token);
 * SimMIM's replacement (index[b, j] = mask ? −1 : j); a CLS token in front
 * (index rows [−1, 0, 1, …]).
 */
export function assembleTokens(x: Tensor, index: Tensor, tokens: Tensor | null): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 3, 3, 'input');
  const [B, Ls, D] = x.shape as [number, number, number];
  checkTensor(index, 'index');
  checkDtype(index, 'int32', 'index');
  checkRank(index, 2, 2, 'index');
  if (index.shape[0] !== B) throw expected(`shape [${B}, Lo] (the batch of the input)`, 'index', index, 'E_SHAPE');
  let T = 0;
  if (tokens !== null && tokens !== undefined) {
    checkTensor(tokens, 'tokens');
    checkSameDtype(x, tokens, 'tokens');
    checkRank(tokens, 2, 2, 'tokens');
    if (tokens.shape[1] !== D) throw expected(`shape [T, ${D}] (the width of the input)`, 'tokens', tokens, 'E_SHAPE');
    T = tokens.shape[0]!;
  }
  const out = native().assembleTokens(x.native, index.native, tokens?.native ?? null);
  const si = index.share();
  const needTokens = tokens?.requiresGrad ?? false;
  return record(
    'assembleTokens',
    [out],
    [x, tokens ?? null],
    ([g]) => native().assembleTokensBackward(g!, si, Ls, T, x.requiresGrad, needTokens),
    [si],
  )[0]!;
}

/**
 * MAE's decoder index for assembleTokens from idsRestore int32 [B, L]: entry j
 * is idsRestore[b, j] when that token was kept (< keep), else −1 (the mask
 * token). With cls, the result is [B, 1 + L]: entry 0 is 0 (the CLS row of an
 * encoder output with 1 + keep tokens) and entry 1 + j is 1 + idsRestore[b, j]
 * or −1.
 */
export function restoreIndex(idsRestore: Tensor, keep: number, cls: boolean): Tensor {
  checkTensor(idsRestore, 'idsRestore');
  checkDtype(idsRestore, 'int32', 'idsRestore');
  checkRank(idsRestore, 2, 2, 'idsRestore');
  checkInt(keep, 'keep', 0, idsRestore.shape[1]!);
  if (typeof cls !== 'boolean') throw expected('a boolean', 'cls', cls);
  return new Tensor(native().restoreIndex(idsRestore.native, keep, cls));
}

function checkPatchSize(patchSize: number, H: number, W: number, sides: string): void {
  checkInt(patchSize, 'patchSize', 1, 2 ** 31 - 1);
  if (H % patchSize !== 0 || W % patchSize !== 0) {
    throw expected(`a patch size that divides the image sides ${sides}`, 'patchSize', patchSize, 'E_SHAPE');
  }
}

/**
 * images [B, C, H, W] → patches [B, (H/p)(W/p), p·p·C] in MAE's order: tokens
 * row-major over the patch grid, each patch's pixels ordered (py, px, c), as
 * einsum('nchpwq->nhwpqc'). H and W must be multiples of p. Differentiable.
 */
export function patchify(images: Tensor, patchSize: number): Tensor {
  checkFloat(images, 'images');
  checkRank(images, 4, 4, 'images');
  const [, C, H, W] = images.shape as [number, number, number, number];
  checkPatchSize(patchSize, H, W, `H = ${H} and W = ${W}`);
  return record('patchify', [native().patchify(images.native, patchSize)], [images], ([g]) => [
    native().unpatchify(g!, patchSize, C, H, W),
  ])[0]!;
}

/** The inverse of patchify: patches [B, (H/p)(W/p), p·p·C] → images [B, C, H, W]. Differentiable. */
export function unpatchify(patches: Tensor, patchSize: number, C: number, H: number, W: number): Tensor {
  checkFloat(patches, 'patches');
  checkRank(patches, 3, 3, 'patches');
  checkInt(C, 'channels', 1, 2 ** 31 - 1);
  checkInt(H, 'height', 0, 2 ** 31 - 1);
  checkInt(W, 'width', 0, 2 ** 31 - 1);
  checkPatchSize(patchSize, H, W, `height = ${H} and width = ${W}`);
  const B = patches.shape[0]!;
  checkShape(patches, [B, (H / patchSize) * (W / patchSize), patchSize * patchSize * C], 'patches');
  return record('unpatchify', [native().unpatchify(patches.native, patchSize, C, H, W)], [patches], ([g]) => [
    native().patchify(g!, patchSize),
  ])[0]!;
}

/** Mean over tokens: x [B, L, D] → [B, D] (global average pooling for the linear probe). Differentiable. */
export function tokenMean(x: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 3, 3, 'input');
  const L = x.shape[1]!;
  if (L === 0) throw expected('at least one token (L > 0)', 'input', x, 'E_SHAPE');
  return record('tokenMean', [native().tokenMean(x.native)], [x], ([g]) => [native().tokenMeanBackward(g!, L)])[0]!;
}
