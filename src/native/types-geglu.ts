import type { NativeTensor as N } from './types.js';

/** GeGLU (native/src/binding/bind_geglu.cc). */
export interface GegluNative {
  geglu(x: N): N;
  gegluBackward(g: N, x: N): N;
}
