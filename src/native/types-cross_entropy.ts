import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Cross-entropy over selected rows and the row-wise argmax (native/src/binding/bind_cross_entropy.cc). */
export interface CrossEntropyNative {
  crossEntropy(logits: N, targets: N, rows: Maybe, ignoreIndex: number): { loss: N; lse: N; count: number };
  crossEntropyBackward(gradLoss: number, logits: N, targets: N, rows: Maybe, lse: N, ignoreIndex: number, count: number): N;
  argmaxRows(x: N): N;
}
