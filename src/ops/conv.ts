/**
 * Dense convolution ops, NCHW with PyTorch weight layouts: SparK's decoder and
 * the masked-dense encoder baseline that real sparse convolution is measured
 * against. Masks here are *active* masks (1 = visible, kept), as in SparK's
 * code, where the project's masking convention (1 = removed) would multiply
 * the wrong half: invert a removal mask before passing it.
 */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  /** Channel groups; groups = Cin = Cout is a depthwise conv (ConvNeXt's 7×7), run by a direct kernel. */
  groups?: number;
}

function convOptions(opts: Conv2dOptions): { stride: number; padding: number; groups: number } {
  const { stride = 1, padding = 0, groups = 1 } = opts;
  checkInt(stride, 'stride', 1, 2 ** 20);
  checkInt(padding, 'padding', 0, 2 ** 20);
  checkInt(groups, 'groups', 1, 2 ** 31 - 1);
  return { stride, padding, groups };
}

function checkImage(x: Tensor, name: string): void {
  checkFloat(x, name);
  checkRank(x, 4, 4, name);
}

function checkChannelVector(t: Tensor | null | undefined, ref: Tensor, channels: number, name: string): void {
  if (!t) return;
  checkTensor(t, name);
  checkSameDtype(ref, t, name);
  checkShape(t, [channels], name);
}

function checkGroups(x: Tensor, groups: number): void {
  if (x.shape[1]! % groups !== 0) throw expected(`channels divisible by groups (${groups})`, 'input', x, 'E_SHAPE');
}

/** Checks x and the options, then the weight's dtype and rank (its layout differs per op). */
function checkConvInputs(x: Tensor, weight: Tensor, opts: Conv2dOptions): { stride: number; padding: number; groups: number } {
  checkImage(x, 'input');
  const o = convOptions(opts);
  checkGroups(x, o.groups);
  checkTensor(weight, 'weight');
  checkSameDtype(x, weight, 'weight');
  checkRank(weight, 4, 4, 'weight');
  return o;
}

/** Runs conv2d or convTranspose2d and records its backward, which takes the same stride, padding and groups. */
function recordConv(
  op: 'conv2d' | 'convTranspose2d', x: Tensor, weight: Tensor, bias: Tensor | null,
  { stride, padding, groups }: { stride: number; padding: number; groups: number },
): Tensor {
  const y = native()[op](x.native, weight.native, bias?.native ?? null, stride, padding, groups);
  const sx = x.share();
  const sw = weight.share();
  return record(
    op,
    [y],
    [x, weight, bias],
    ([g]) =>
      native()[`${op}Backward` as const](
        g!, sx, sw, stride, padding, groups, x.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false,
      ),
    [sx, sw],
  )[0]!;
}

/** Active mask uint8 [B, H, W] matching x [B, C, H, W]. */
function checkMask(mask: Tensor, x: Tensor): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkShape(mask, [x.shape[0]!, x.shape[2]!, x.shape[3]!], 'mask');
}

/**
 * x [B, Cin, H, W] ⊛ weight [Cout, Cin/groups, kh, kw] (+ bias [Cout]) → [B, Cout, Ho, Wo],
 * Ho = ⌊(H + 2·padding − kh)/stride⌋ + 1 (PyTorch's Conv2d).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const o = checkConvInputs(x, weight, opts);
  const { padding, groups } = o;
  const [, Cin, H, W] = x.shape as [number, number, number, number];
  const [Cout, , kh, kw] = weight.shape as [number, number, number, number];
  if (Cout === 0 || Cout % groups !== 0 || weight.shape[1] !== Cin / groups || kh === 0 || kw === 0) {
    throw expected(
      `a weight [Cout, ${Cin / groups}, kh, kw] with Cout a positive multiple of groups (${groups})`, 'weight', weight, 'E_SHAPE',
    );
  }
  if (H + 2 * padding < kh || W + 2 * padding < kw) {
    throw expected(
      `a kernel no larger than the padded input (${H + 2 * padding} × ${W + 2 * padding} with padding ${padding})`,
      'weight', weight, 'E_SHAPE',
    );
  }
  checkChannelVector(bias, x, Cout, 'bias');
  return recordConv('conv2d', x, weight, bias, o);
}

/**
 * The transpose (adjoint) of conv2d, PyTorch's ConvTranspose2d without output padding:
 * x [B, Cin, H, W], weight [Cin, Cout/groups, kh, kw], bias [Cout] → [B, Cout, (H−1)·stride − 2·padding + kh, …].
 * SparK's decoder upsamples by 2 with kernel 4, stride 2, padding 1.
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const o = checkConvInputs(x, weight, opts);
  const { stride, padding, groups } = o;
  const [, Cin, H, W] = x.shape as [number, number, number, number];
  const [wc, cg, kh, kw] = weight.shape as [number, number, number, number];
  if (wc !== Cin || cg === 0 || kh === 0 || kw === 0) {
    throw expected(`a weight [${Cin}, Cout/groups, kh, kw] with Cout/groups ≥ 1`, 'weight', weight, 'E_SHAPE');
  }
  const Ho = (H - 1) * stride - 2 * padding + kh;
  const Wo = (W - 1) * stride - 2 * padding + kw;
  if (H < 1 || W < 1 || Ho < 1 || Wo < 1) {
    throw expected(
      `a padding that leaves a non-empty output ((H − 1)·stride − 2·padding + k ≥ 1, input [${x.shape.join(', ')}], kernel ${kh} × ${kw})`,
      'padding', padding, 'E_SHAPE',
    );
  }
  checkChannelVector(bias, x, cg * groups, 'bias');
  return recordConv('convTranspose2d', x, weight, bias, o);
}

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

export interface Pool2dOptions {
  kernel: number;
  /** Default: the kernel. */
  stride?: number;
  /** At most kernel/2, as PyTorch; max pooling pads with −∞, average pooling with zeros. */
  padding?: number;
}

export interface AvgPool2dOptions extends Pool2dOptions {
  /** Divide by kernel² (true, PyTorch's default) or by the pixels inside the input. */
  countIncludePad?: boolean;
}

function poolOptions(x: Tensor, opts: Pool2dOptions): { kernel: number; stride: number; padding: number } {
  checkImage(x, 'input');
  const kernel = opts?.kernel;
  checkInt(kernel, 'kernel', 1, 2 ** 20);
  const { stride = kernel, padding = 0 } = opts;
  checkInt(stride, 'stride', 1, 2 ** 20);
  checkInt(padding, 'padding', 0, Math.floor(kernel / 2));
  const [, , H, W] = x.shape as [number, number, number, number];
  if (H + 2 * padding < kernel || W + 2 * padding < kernel) {
    throw expected(`an input no smaller than the kernel (${kernel}) after padding`, 'input', x, 'E_SHAPE');
  }
  return { kernel, stride, padding };
}

/** Max pooling over x [B, C, H, W]; the gradient goes to the first maximum of each window. */
export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const { kernel, stride, padding } = poolOptions(x, opts);
  const [y, argmax] = native().maxPool2d(x.native, kernel, stride, padding);
  const shape = x.shape;
  return record('maxPool2d', [y], [x], ([g]) => [native().maxPool2dBackward(g!, argmax, shape)], [argmax])[0]!;
}

export function avgPool2d(x: Tensor, opts: AvgPool2dOptions): Tensor {
  const { kernel, stride, padding } = poolOptions(x, opts);
  const include = opts.countIncludePad ?? true;
  if (typeof include !== 'boolean') throw expected('a boolean', 'countIncludePad', include);
  const shape = x.shape;
  return record('avgPool2d', [native().avgPool2d(x.native, kernel, stride, padding, include)], [x], ([g]) => [
    native().avgPool2dBackward(g!, shape, kernel, stride, padding, include),
  ])[0]!;
}

/** x [B, C, H, W] → mean over H·W, [B, C]. */
export function globalAvgPool(x: Tensor): Tensor {
  checkImage(x, 'input');
  const shape = x.shape;
  return record('globalAvgPool', [native().globalAvgPool(x.native)], [x], ([g]) => [
    native().globalAvgPoolBackward(g!, shape),
  ])[0]!;
}

function checkCoarseMask(mask: Tensor, x: Tensor): void {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkRank(mask, 3, 3, 'mask');
  const [B, , H, W] = x.shape as [number, number, number, number];
  const [mb, h, w] = mask.shape as [number, number, number];
  if (mb !== B || h < 1 || w < 1 || H % h !== 0 || W % w !== 0) {
    throw expected(`a mask [${B}, h, w] whose h and w divide the input's ${H} × ${W}`, 'mask', mask, 'E_SHAPE');
  }
}

/**
 * x [B, C, H, W] where the active mask [B, h, w], upsampled by nearest repetition (H/h × W/w), is 1,
 * and exactly 0 elsewhere: SparK's re-masking after each dense op. The gradient is masked the same way.
 */
export function applyMask(x: Tensor, mask: Tensor): Tensor {
  checkImage(x, 'input');
  checkCoarseMask(mask, x);
  const sm = mask.share();
  return record('applyMask', [native().applyMask(x.native, mask.native)], [x], ([g]) => [native().applyMask(g!, sm)], [
    sm,
  ])[0]!;
}

/** uint8 mask [B, h, w] → [B, h·factor, w·factor] by nearest repetition (not differentiable). */
export function upsampleMask(mask: Tensor, factor: number): Tensor {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkRank(mask, 3, 3, 'mask');
  checkInt(factor, 'factor', 1, 2 ** 20);
  return new Tensor(native().upsampleMask(mask.native, factor));
}
