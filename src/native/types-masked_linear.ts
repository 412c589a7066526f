import type { NativeTensor as N } from './types.js';

/** The masked linear of weight-mask tuning (native/src/binding/bind_masked_linear.cc). */
export interface MaskedLinearNative {
  /** x [..., I]·(w ⊙ 1[scores > threshold])ᵀ + bias: w, scores [O, I], bias [O] or null. */
  maskedLinear(x: N, w: N, scores: N, bias: N | null, threshold: number): N;
  /** Serving: x·(w ⊙ bits)ᵀ + bias with the mask as packed bits (uint8 [ceil(O·I/8)], LSB first); no backward. */
  maskedLinearPacked(x: N, w: N, bits: N, bias: N | null): N;
  /** The straight-through gradients [dx | null, dscores | null]; w and bias are frozen and get none. */
  maskedLinearBackward(g: N, x: N, w: N, scores: N, threshold: number, needX: boolean, needScores: boolean): [N | null, N | null];
}
