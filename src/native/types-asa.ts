import type { NativeTensor as N } from './types.js';

/** ASA fine-tuning (native/src/binding/bind_asa.cc): the adversary's mask → attention bias, and the symmetric KL. */
export interface AsaNative {
  asaMask(scores: N, keyPadding: N | null, maskValue: number): { bias: N; kept: N };
  asaMaskBackward(dbias: N | null, dkept: N | null, scores: N, keyPadding: N | null, maskValue: number): N;
  symKl(a: N, b: N): N;
  symKlBackward(grad: N, a: N, b: N, needA: boolean, needB: boolean): [N | null, N | null];
}
