/**
 * BatchNorm2d over NCHW maps with PyTorch's running statistics, optionally
 * restricted to the active positions of a mask (SparK's masked-dense BN).
 * Masks here are *active* masks (1 = visible, kept), as in SparK's code,
 * where the project's masking convention (1 = removed) would multiply the
 * wrong half: invert a removal mask before passing it.
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { expected } from '../errors.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkInt, checkNumber, checkShape, checkTensor } from '../validate.js';
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
  const { training, momentum, eps, mask } = checkBatchNorm2d(x, weight, bias, runningMean, runningVar, opts);
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

/** What synchronized BatchNorm needs of a communicator (src/distributed): the ranks' element-wise sum of numbers. */
export interface BatchNormSync {
  readonly size: number;
  sumNumbers(xs: readonly number[]): number[];
}

/**
 * Synchronized BatchNorm2d (PyTorch's SyncBatchNorm; SparK's SparseSyncBatchNorm2d with a mask): in training,
 * the statistics are those of the union of every rank's batch, so N data-parallel ranks at batch b compute what one
 * process computes at batch N·b. Forward: the ranks sum Σx and the active count, then Σ(x − mean)² (two passes, as
 * the local kernel), in float64; x is normalised with the global mean and biased variance, and the running buffers
 * move towards the global mean and unbiased variance. Backward: the ranks sum Σdy and Σdy·x̂ for dx's
 * mean terms; dweight and dbias stay this rank's (the gradient all-reduce sums them). Every rank must call it
 * at the same point of the step (it is a collective). In eval mode, or with one rank, it is batchNorm2d.
 * On cuda the sums are taken on the device and copied back for MPI: six waits for the stream per layer and step
 * (the forward's two sums, the backward's two, the running buffers' read), where PyTorch's SyncBatchNorm all-gathers
 * its statistics on the device. bfloat16 maps run the op in float32 between two casts (two more waits: the running
 * buffers written back).
 */
export function syncBatchNorm2d(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: BatchNorm2dOptions & { sync: BatchNormSync },
): Tensor {
  checkSync(opts.sync);
  if (!opts.training || opts.sync.size <= 1) return batchNorm2d(x, weight, bias, runningMean, runningVar, opts);
  // bfloat16 (a cuda run at --precision bf16): the same op in float32 between two casts, as autocast runs PyTorch's
  // SyncBatchNorm. The global statistics normalise through the kernel's eval path, which reads them in x's dtype;
  // bfloat16 statistics would cost the precision that the local kernel keeps in float32.
  if (x.dtype === 'bfloat16') return syncBatchNorm2dViaFloat32(x, weight, bias, runningMean, runningVar, opts);
  const { momentum, eps, mask } = checkBatchNorm2d(x, weight, bias, runningMean, runningVar, opts);
  const C = x.shape[1]!;
  const sync = opts.sync;
  const sums = (center: NativeTensor | null): number[] => {
    const local = native().batchNorm2dSums(x.native, mask?.native ?? null, center);
    try {
      return summed(sync, Array.from(local.read()));
    } finally {
      local.dispose();
    }
  };
  const first = sums(null);
  const n = first[C]!;
  // No active element on any rank: the single-process kernel's case (zero output, buffers unchanged).
  if (n === 0) return batchNorm2d(x, weight, bias, runningMean, runningVar, opts);
  const mean = Float64Array.from(first.slice(0, C), (v) => v / n);
  const center = native().fromTypedArray(mean, [C]) as NativeTensor;
  let second: number[];
  try {
    second = sums(center);
  } finally {
    center.dispose();
  }
  const variance = Float64Array.from(second.slice(0, C), (v) => v / n);
  // Normalising with given statistics is the kernel's eval path: (x − mean)·weight·rstd + bias at active sites.
  const stat = (v: Float64Array): NativeTensor => {
    const host = native().fromTypedArray(x.dtype === 'float64' ? v : Float32Array.from(v), [C]) as NativeTensor;
    if (x.device === 'cpu') return host;
    try {
      return host.to(x.device);
    } finally {
      host.dispose();
    }
  };
  const gm = stat(mean);
  const gv = stat(variance);
  let out: NativeTensor[];
  try {
    out = native().batchNorm2d(x.native, weight?.native ?? null, bias?.native ?? null, gm, gv, mask?.native ?? null, false, momentum, eps);
  } finally {
    gm.dispose();
    gv.dispose();
  }
  const [y, meanS, rstdS] = out as [NativeTensor, NativeTensor, NativeTensor];
  if (runningMean && runningVar) {
    // PyTorch's update, from the global statistics (the unbiased variance needs two or more elements, as the
    // kernel). Read and written back as copies (C numbers), so that it is the same on the CPU and on cuda.
    const rm = runningMean.native.read();
    const rv = runningVar.native.read();
    for (let c = 0; c < C; c++) {
      rm[c] = (1 - momentum) * rm[c]! + momentum * mean[c]!;
      if (n > 1) rv[c] = (1 - momentum) * rv[c]! + momentum * variance[c]! * n / (n - 1);
    }
    runningMean.native.write(rm);
    runningVar.native.write(rv);
  }
  const sx = x.share();
  const sw = weight ? weight.share() : null;
  const sm = mask ? mask.share() : null;
  const saved = [sx, meanS, rstdS, ...(sw ? [sw] : []), ...(sm ? [sm] : [])];
  return record(
    'syncBatchNorm2d',
    [y],
    [x, weight, bias],
    ([g]) => {
      // This rank's Σdy (dbias) and Σdy·x̂ (dweight), then the ranks' sums for dx.
      const [, dwOut, dbOut] = native().batchNorm2dBackward(g!, sx, sw, meanS, rstdS, sm, true, false, true, true);
      const dw = dwOut!;
      const db = dbOut!;
      const global = summed(sync, [...Array.from(db.read()), ...Array.from(dw.read()), 0]);
      global[2 * C] = n;
      const gt = native().fromTypedArray(Float64Array.from(global), [2 * C + 1]) as NativeTensor;
      let dx: NativeTensor | null = null;
      try {
        if (x.requiresGrad) [dx] = native().batchNorm2dBackward(g!, sx, sw, meanS, rstdS, sm, true, true, false, false, gt);
      } finally {
        gt.dispose();
      }
      const wantW = weight?.requiresGrad ?? false;
      const wantB = bias?.requiresGrad ?? false;
      if (!wantW) dw.dispose();
      if (!wantB) db.dispose();
      return [dx, wantW ? dw : null, wantB ? db : null];
    },
    saved,
  )[0]!;
}

function checkSync(sync: BatchNormSync): void {
  if (typeof sync !== 'object' || sync === null || typeof sync.sumNumbers !== 'function') {
    throw expected('an object with size and sumNumbers()', 'sync', sync, 'E_VALUE');
  }
  checkInt(sync.size, 'sync.size', 1, 2 ** 31 - 1);
}

/**
 * The ranks' sums of xs, checked: a communicator that returned the wrong count would normalise with garbage. NaN is
 * let through, as in the local op: a NaN in the activations must reach the loss, where the trainer stops the run.
 */
function summed(sync: BatchNormSync, xs: number[]): number[] {
  const got: unknown = sync.sumNumbers(xs);
  if (!Array.isArray(got) || got.length !== xs.length || !got.every((v) => typeof v === 'number')) {
    throw expected(`${xs.length} numbers`, 'the result of sync.sumNumbers()', got, 'E_VALUE');
  }
  return got as number[];
}

/**
 * syncBatchNorm2d of a bfloat16 map: x, weight and bias cast to float32 (differentiably: their gradients are cast
 * back), the float32 op, its output cast to bfloat16; the running buffers are moved in float32 copies and written back.
 */
function syncBatchNorm2dViaFloat32(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: BatchNorm2dOptions & { sync: BatchNormSync },
): Tensor {
  checkBatchNorm2d(x, weight, bias, runningMean, runningVar, opts);
  const wide = (t: Tensor | null): Tensor | null => (t ? t.cast('float32') : null);
  const rm = wide(runningMean);
  const rv = wide(runningVar);
  try {
    const y = syncBatchNorm2d(x.cast('float32'), wide(weight), wide(bias), rm, rv, opts).cast('bfloat16');
    if (runningMean && runningVar) {
      runningMean.native.write(rm!.native.read());
      runningVar.native.write(rv!.native.read());
    }
    return y;
  } finally {
    rm?.dispose();
    rv?.dispose();
  }
}

/** The arguments of batchNorm2d and syncBatchNorm2d, checked, with the defaults filled in. */
function checkBatchNorm2d(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: BatchNorm2dOptions,
): { training: boolean; momentum: number; eps: number; mask: Tensor | null } {
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
  return { training, momentum, eps, mask };
}

/** Active mask uint8 [B, H, W] matching x [B, C, H, W]. */
function checkMask(mask: Tensor, x: Tensor): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkShape(mask, [x.shape[0]!, x.shape[2]!, x.shape[3]!], 'mask');
}
