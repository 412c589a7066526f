import type { Device, NativeTensor as N } from './types.js';

/** Native masked-image-modeling token ops (native/src/binding/bind_mim_tokens.cc). */
export interface MimTokensNative {
  /** Stable ascending argsort per row of scores [B, L]; keeps the first `keep`. mask: uint8, 1 = removed. */
  maskFromScores(scores: N, keep: number): { idsKeep: N; idsRestore: N; mask: N };
  /** float32 uniform in [low, high) from Philox(seed, step, ⌊i/4⌋), lane i mod 4; the same bits on every device. */
  uniformNoise(shape: readonly number[], seed: number, step: number, low: number, high: number, device?: Device): N;
  /** out[b, j] = index ≥ 0 ? x[b, index] : tokens[−1 − index]; x [B, Ls, D], index int32 [B, Lo], tokens [T, D]. */
  assembleTokens(x: N, index: N, tokens: N | null): N;
  assembleTokensBackward(
    grad: N, index: N, sourceTokens: number, numTokens: number, needInput: boolean, needTokens: boolean,
  ): [N | null, N | null];
  /** MAE's decoder index from idsRestore int32 [B, L]: [B, L], or [B, 1 + L] with a CLS slot at 0. */
  restoreIndex(idsRestore: N, keep: number, cls: boolean): N;
  /** images [B, C, H, W] → [B, (H/p)(W/p), p·p·C], pixels ordered (py, px, c) within a patch. */
  patchify(images: N, patchSize: number): N;
  unpatchify(patches: N, patchSize: number, channels: number, height: number, width: number): N;
  /** x [B, L, D] → mean over L, [B, D]. */
  tokenMean(x: N): N;
  tokenMeanBackward(grad: N, tokens: number): N;
}
