import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Fused linear + cross-entropy (native/src/binding/bind_linear_ce.cc). */
export interface LinearCeNative {
  /**
   * On cuda, lse is float32 for every input dtype (pass it back to the backward unchanged). count: the
   * non-ignored targets, when the caller counted and checked them on the host before uploading them; cuda
   * targets are then checked on the device, reported at the next read, instead of copied to the host.
   */
  linearCrossEntropy(h: N, w: N, bias: Maybe, targets: N, ignoreIndex: number, chunkSize: number, count?: number): { loss: N; lse: N; count: number };
  /**
   * intoX: X's gradient is added into that tensor in place (X's shape and dtype) and its result slot is null.
   * gradLoss: a number, or on cuda the loss's 0-d gradient tensor, read by the kernel (no wait on the host).
   */
  linearCrossEntropyBackward(
    gradLoss: number | N, h: N, w: N, bias: Maybe, targets: N, lse: N, ignoreIndex: number, count: number, chunkSize: number,
    needInput: boolean, needWeight: boolean, needBias: boolean, intoInput?: Maybe, intoWeight?: Maybe, intoBias?: Maybe,
  ): [Maybe, Maybe, Maybe];
  linearSample(h: N, w: N, bias: Maybe, seed: number, step: number, chunkSize: number, temperature: number, rowOffset?: number): N;
}
