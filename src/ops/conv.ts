/**
 * Dense convolution ops, NCHW with PyTorch weight layouts: SparK's decoder and
 * the masked-dense encoder baseline that real sparse convolution is measured
 * against. The NCHW argument checks here are shared with batchnorm.ts and
 * pool.ts.
 */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, type Tensor } from '../tensor.js';
import { checkFloat, checkInt, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

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

/** x is a float NCHW map [B, C, H, W]. */
export function checkImage(x: Tensor, name: string): void {
  checkFloat(x, name);
  checkRank(x, 4, 4, name);
}

/** t, when given, is a [channels] vector of ref's dtype (a bias, weight or running statistic). */
export function checkChannelVector(t: Tensor | null | undefined, ref: Tensor, channels: number, name: string): void {
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
