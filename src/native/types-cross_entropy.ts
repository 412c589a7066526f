import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Cross-entropy over selected rows and the row-wise argmax (native/src/binding/bind_cross_entropy.cc). */
export interface CrossEntropyNative {
  /** count: the non-ignored targets, counted by the caller (cuda targets are then checked on the device). */
  crossEntropy(logits: N, targets: N, rows: Maybe, ignoreIndex: number, count?: number): { loss: N; lse: N; count: number };
  /** gradLoss: a number, or the loss's 0-d gradient tensor (read on the device on cuda). */
  crossEntropyBackward(gradLoss: number | N, logits: N, targets: N, rows: Maybe, lse: N, ignoreIndex: number, count: number): N;
  argmaxRows(x: N): N;
}
