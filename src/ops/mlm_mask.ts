/**
 * The fused BERT corruption kernel: each selected token becomes [MASK], a
 * uniform random id in [randomLow, randomHigh), or stays, by Philox draws that
 * are a pure function of (seed, step, position); tokens of one group share the
 * draw. masking/apply.ts (applyMlmMasking) checks the options and builds the
 * selection; the binding checks the tensors' values.
 */
import { native } from '../native/loader.js';
import { Tensor } from '../tensor.js';

export interface MlmMaskOptions {
  vocabSize: number;
  maskId: number;
  maskProb: number;
  randomProb: number;
  randomLow: number;
  randomHigh: number;
  seed: number;
  step: number;
}

/**
 * ids int32 [B, L], select uint8 [B, L] (1 = selected), group int32 [B, L] (each
 * token's group as an in-row position) or null → the corrupted ids [B, L], and
 * the flat positions b·L + l (rows, int32 [M]) and original ids (targets) of
 * the selected tokens, in row-major order.
 */
export function mlmMask(ids: Tensor, select: Tensor, group: Tensor | null, o: MlmMaskOptions): { ids: Tensor; rows: Tensor; targets: Tensor } {
  const r = native().mlmMask(
    ids.native, select.native, group?.native ?? null, o.vocabSize, o.maskId, o.maskProb, o.randomProb, o.randomLow, o.randomHigh, o.seed, o.step,
  );
  return { ids: new Tensor(r.ids), rows: new Tensor(r.rows), targets: new Tensor(r.targets) };
}
