import type { NativeTensor as N } from './types.js';
export interface SparseNative {
  /** placeholder */
  readonly __sparse?: N;
}
