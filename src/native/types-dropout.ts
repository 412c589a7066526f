import type { NativeTensor as N } from './types.js';

/** Inverted dropout (native/src/binding/bind_dropout.cc); the backward is the same call on the gradient. */
export interface DropoutNative {
  dropout(x: N, p: number, seed: number, step: number): N;
}
