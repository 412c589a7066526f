/**
 * BatchNorm2d over NCHW maps with PyTorch's running statistics, optionally
 * restricted to the active positions of a mask (SparK's masked-dense BN).
 * Masks here are *active* masks (1 = visible, kept), as in SparK's code,
 * where the project's masking convention (1 = removed) would multiply the
 * wrong half: invert a removal mask before passing it.
 */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkNumber, checkShape, checkTensor } from '../validate.js';
import { checkChannelVector, checkImage } from './conv.js';

export interface BatchNorm2dOptions {
  /** Batch statistics (and running-buffer updates) when true; the running statistics when false. */
  training: boolean;
  /** Running-buffer update: r ← (1 − momentum)·r + momentum·batch (default 0.1, as PyTorch). */
  momentum?: number;
  eps?: number;
  /**
   * uint8 [B, H, W], 1 = active: statistics over active positions only and exactly 0 output elsewhere
   * (SparK's masked-dense SparseBatchNorm). With no active position at all the outputs are 0 and the
   * running buffers are left unchanged; with exactly one the running variance is left unchanged (ours).
   */
  mask?: Tensor | null;
}

/**
 * BatchNorm2d over x [B, C, H, W]: normalises with the biased batch variance and moves runningVar
 * towards the unbiased one, as PyTorch. weight, bias: [C] or null; runningMean, runningVar: [C],
 * updated in place in training (they may be null there, as with track_running_stats = false).
 */
export function batchNorm2d(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: BatchNorm2dOptions,
): Tensor {
  checkImage(x, 'input');
  const C = x.shape[1]!;
  checkChannelVector(weight, x, C, 'weight');
  checkChannelVector(bias, x, C, 'bias');
  checkChannelVector(runningMean, x, C, 'runningMean');
  checkChannelVector(runningVar, x, C, 'runningVar');
  if (typeof opts?.training !== 'boolean') throw expected('a boolean', 'training', opts?.training);
  const { training, momentum = 0.1, eps = 1e-5 } = opts;
  checkNumber(momentum, 'momentum', 0, 1);
  checkNumber(eps, 'eps', Number.MIN_VALUE);
  if (!runningMean !== !runningVar) {
    throw expected('runningMean and runningVar both given or both null', runningMean ? 'runningVar' : 'runningMean', null);
  }
  if (!training && !runningMean) throw expected('running statistics in eval mode', 'runningMean', null);
  const mask = opts.mask ?? null;
  if (mask) checkMask(mask, x);
  const [y, mean, rstd] = native().batchNorm2d(
    x.native, weight?.native ?? null, bias?.native ?? null, runningMean?.native ?? null, runningVar?.native ?? null,
    mask?.native ?? null, training, momentum, eps,
  );
  const sx = x.share();
  const sw = weight ? weight.share() : null;
  const sm = mask ? mask.share() : null;
  const saved = [sx, mean, rstd, ...(sw ? [sw] : []), ...(sm ? [sm] : [])];
  return record(
    'batchNorm2d',
    [y],
    [x, weight, bias],
    ([g]) =>
      native().batchNorm2dBackward(
        g!, sx, sw, mean, rstd, sm, training, x.requiresGrad, weight?.requiresGrad ?? false, bias?.requiresGrad ?? false,
      ),
    saved,
  )[0]!;
}

/** Active mask uint8 [B, H, W] matching x [B, C, H, W]. */
function checkMask(mask: Tensor, x: Tensor): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkShape(mask, [x.shape[0]!, x.shape[2]!, x.shape[3]!], 'mask');
}
