import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** BatchNorm2d over NCHW maps (native/src/binding/bind_batchnorm.cc). */
export interface BatchNormNative {
  /** Updates runningMean/runningVar in place when training. mask: uint8 [B, H, W], 1 = active. */
  batchNorm2d(
    x: N, weight: Maybe, bias: Maybe, runningMean: Maybe, runningVar: Maybe, mask: Maybe,
    training: boolean, momentum: number, eps: number,
  ): [N, N, N];
  batchNorm2dBackward(
    grad: N, x: N, weight: Maybe, mean: N, rstd: N, mask: Maybe, training: boolean,
    needInput: boolean, needWeight: boolean, needBias: boolean,
    /** Synchronized BN: host float64 [2C + 1], the ranks' summed [Σdy, Σdy·x̂, active count]; dx uses them (cuda: uploaded). */
    global?: Maybe,
  ): [Maybe, Maybe, Maybe];
  /**
   * Per channel Σx, or Σ(x − center)² with center host float64 [C]; then the active count: a host float64 [C + 1]
   * whatever x's device (cuda: summed on the device and copied back, which waits for the stream).
   */
  batchNorm2dSums(x: N, mask: Maybe, center: Maybe): N;
}
