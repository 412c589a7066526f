import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Native dense convolution, batch norm, pooling and mask ops (native/src/binding/bind_conv.cc), all NCHW. */
export interface ConvNative {
  /** x [B, Cin, H, W], weight [Cout, Cin/groups, kh, kw], bias [Cout] | null → [B, Cout, Ho, Wo]. */
  conv2d(x: N, weight: N, bias: Maybe, stride: number, padding: number, groups: number): N;
  conv2dBackward(
    grad: N, x: N, weight: N, stride: number, padding: number, groups: number,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** x [B, Cin, H, W], weight [Cin, Cout/groups, kh, kw], bias [Cout] | null → [B, Cout, (H−1)·s − 2p + kh, …]. */
  convTranspose2d(x: N, weight: N, bias: Maybe, stride: number, padding: number, groups: number): N;
  convTranspose2dBackward(
    grad: N, x: N, weight: N, stride: number, padding: number, groups: number,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** Updates runningMean/runningVar in place when training. mask: uint8 [B, H, W], 1 = active. */
  batchNorm2d(
    x: N, weight: Maybe, bias: Maybe, runningMean: Maybe, runningVar: Maybe, mask: Maybe,
    training: boolean, momentum: number, eps: number,
  ): [N, N, N];
  batchNorm2dBackward(
    grad: N, x: N, weight: Maybe, mean: N, rstd: N, mask: Maybe, training: boolean,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** → [y, argmax int32 (index into each H·W plane)]. */
  maxPool2d(x: N, kernel: number, stride: number, padding: number): [N, N];
  maxPool2dBackward(grad: N, argmax: N, inputShape: readonly number[]): N;
  avgPool2d(x: N, kernel: number, stride: number, padding: number, countIncludePad: boolean): N;
  avgPool2dBackward(
    grad: N, inputShape: readonly number[], kernel: number, stride: number, padding: number, countIncludePad: boolean,
  ): N;
  /** [B, C, H, W] → [B, C]. */
  globalAvgPool(x: N): N;
  globalAvgPoolBackward(grad: N, inputShape: readonly number[]): N;
  /** x where the nearest-upsampled mask [B, h, w] (1 = active) is 1, exactly 0 elsewhere. */
  applyMask(x: N, mask: N): N;
  /** uint8 [B, h, w] → [B, h·f, w·f]. */
  upsampleMask(mask: N, factor: number): N;
}
