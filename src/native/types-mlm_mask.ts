import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** BERT corruption of selected tokens (native/src/binding/bind_mlm_mask.cc). */
export interface MlmMaskNative {
  mlmMask(ids: N, select: N, group: Maybe, vocabSize: number, maskId: number, maskProb: number, randomProb: number, randomLow: number, randomHigh: number, seed: number, step: number): { ids: N; rows: N; targets: N };
}
