import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Elementwise ops, reductions and activations (native/src/binding/bind_elementwise.cc). */
export interface ElementwiseNative {
  add(a: N, b: N): N;
  mul(a: N, b: N): N;
  mulBackward(g: N, a: N, b: N, needA: boolean, needB: boolean): [Maybe, Maybe];
  scale(x: N, factor: number): N;
  axpyInPlace(dst: N, src: N, alpha: number): void;
  biasAdd(x: N, b: N): N;
  sumRows(x: N): N;
  sum(x: N): N;
  mean(x: N): N;
  reduceBackward(g: N, shape: readonly number[], factor: number): N;
  gelu(x: N): N;
  geluBackward(g: N, x: N): N;
  relu(x: N): N;
  reluBackward(g: N, x: N): N;
  relu6(x: N): N;
  relu6Backward(g: N, x: N): N;
  tanh(x: N): N;
  tanhBackward(g: N, x: N): N;
}
