import type { NativeTensor as N } from './types.js';
export interface MimLossNative {
  /** placeholder */
  readonly __mim_loss?: N;
}
