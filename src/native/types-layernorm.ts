import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** LayerNorm over the last dimension (native/src/binding/bind_layernorm.cc). */
export interface LayerNormNative {
  layerNorm(x: N, w: Maybe, b: Maybe, eps: number): [N, N, N];
  layerNormBackward(dy: N, x: N, w: Maybe, mean: N, rstd: N, needX: boolean, needW: boolean, needB: boolean): [Maybe, Maybe, Maybe];
}
