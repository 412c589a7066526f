import type { NativeTensor as N } from './types.js';

/** Softmax over the last dimension (native/src/binding/bind_softmax.cc). */
export interface SoftmaxNative {
  softmax(x: N): N;
  softmaxBackward(dy: N, y: N): N;
}
