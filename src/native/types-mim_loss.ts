/** Typings of the masked-image-modeling loss exports (native/src/binding/bind_mim_loss.cc). */
import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

export interface MaskedPatchLossNativeOptions {
  kind?: 'mse' | 'l1';
  normPix?: boolean;
  eps?: number;
}

export interface MimLossNative {
  /** pred, target [B, L, P]; mask uint8 [B, L]. count: masked patches. */
  maskedPatchLoss(pred: N, target: N, mask: N, options: MaskedPatchLossNativeOptions): { loss: N; perPatch: N; count: number };
  maskedPatchLossBackward(
    gradLoss: number, pred: N, target: N, mask: N, options: MaskedPatchLossNativeOptions, needPred: boolean, needTarget: boolean,
  ): [Maybe, Maybe];
  /** x [B, L, D]; mask uint8 [B, L]. count: images with both masked and visible tokens. */
  maskedCosine(x: N, mask: N, eps: number): { loss: N; count: number };
  maskedCosineBackward(gradLoss: number, x: N, mask: N, eps: number): N;
  /** pred, target [B, L]; mask uint8 [B, L]. count: masked pairs. */
  rankingLoss(pred: N, target: N, mask: N): { loss: N; count: number };
  rankingLossBackward(gradLoss: number, pred: N, target: N, mask: N): N;
}
