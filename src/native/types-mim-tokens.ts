import type { NativeTensor as N } from './types.js';
export interface MimTokensNative {
  /** placeholder */
  readonly __mim_tokens?: N;
}
