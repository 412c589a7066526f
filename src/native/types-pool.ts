import type { NativeTensor as N } from './types.js';

/** Pooling and SparK's mask ops over NCHW maps (native/src/binding/bind_pool.cc). */
export interface PoolNative {
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
