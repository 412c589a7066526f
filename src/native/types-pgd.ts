import type { NativeTensor as N } from './types.js';

/** L2 PGD on embeddings (native/src/binding/bind_pgd.cc): the random start and the projected step. */
export interface PgdNative {
  pgdRandomStart(like: N, starts: N, lengths: N, eps: number, seed: number, step: number, rowOffset?: number): N;
  pgdStep(delta: N, grad: N, starts: N, lengths: N, alpha: number, eps: number): N;
}
