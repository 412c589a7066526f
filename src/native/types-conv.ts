import type { NativeTensor as N } from './types.js';
export interface ConvNative {
  /** placeholder */
  readonly __conv?: N;
}
