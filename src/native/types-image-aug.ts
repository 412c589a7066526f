import type { NativeTensor as N } from './types.js';
export interface ImageAugNative {
  /** placeholder */
  readonly __image_aug?: N;
}
