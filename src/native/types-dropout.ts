import type { NativeTensor as N } from './types.js';

/** Inverted dropout (native/src/binding/bind_dropout.cc); the backward is the same call on the gradient. */
export interface DropoutNative {
  /** offset: x is elements [offset, offset + numel) of a larger tensor, and draws that slice of its mask. */
  dropout(x: N, p: number, seed: number, step: number, offset?: number): N;
  /** residual + dropout(x, …), bit for bit as add(residual, dropout(x, …)), in one pass. */
  dropoutAdd(x: N, residual: N, p: number, seed: number, step: number, offset?: number): N;
}
