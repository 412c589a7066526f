import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** matmul and linear (native/src/binding/bind_linalg.cc). */
export interface LinalgNative {
  matmul(a: N, b: N, transA: boolean, transB: boolean, impl?: 'auto' | 'builtin' | 'blas'): N;
  matmulBackward(g: N, a: N, b: N, transA: boolean, transB: boolean, needA: boolean, needB: boolean): [Maybe, Maybe];
  linear(x: N, w: N, bias: Maybe): N;
  linearBackward(g: N, x: N, w: N, needX: boolean, needW: boolean, needBias: boolean): [Maybe, Maybe, Maybe];
}
