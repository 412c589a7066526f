import type { NativeTensor as N } from './types.js';
export interface ImageAugNative {
  /**
   * Gathers images[indices[b]], crops boxes[b] = (y0, x0, h, w) (source pixels), resizes it bilinearly to
   * outH × outW (half-pixel centres, clamped to the image), flips the output horizontally where flip[b] = 1,
   * and normalises as (v / 255 − mean[c]) / std[c]. images: uint8 [N, C, H, W]; indices: int32 [B];
   * boxes: float [B, 4]; flip: uint8 [B]; mean, std: [C] of boxes' dtype, which is the output's.
   * Returns [B, C, outH, outW]. A data op: there is no backward.
   */
  imageBatch(images: N, indices: N, boxes: N, flip: N, mean: N, std: N, outH: number, outW: number): N;
}
