import type { NativeTensor as N } from './types.js';

/** NCHW ↔ NHWC (native/src/binding/bind_layout.cc). */
export interface LayoutNative {
  toChannelsLast(x: N): N;
  toChannelsFirst(x: N): N;
}
