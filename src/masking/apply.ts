/**
 * BERT corruption of a selection by the native fused kernel: each selected
 * token becomes [MASK] (maskProb), a uniform random id in [randomLow,
 * randomHigh) (randomProb), or stays (the rest); tokens of one group share the
 * draw. Returns the corrupted ids and the flat positions and original ids of
 * the selected tokens, ready for crossEntropy(logits, targets, {rows}).
 */
import { expected } from '../errors.js';
import { mlmMask } from '../ops/mlm_mask.js';
import { fromTypedArray, type Tensor } from '../tensor.js';
import { checkInt, checkNumber } from '../validate.js';
import { readIds, type MaskSelection } from './select.js';

export interface MlmMaskingOptions {
  vocabSize: number;
  maskId: number;
  /** Default 0.8 (BERT). ELECTRA: 0.85 with randomProb 0. */
  maskProb?: number;
  /** Default 0.1 (BERT). */
  randomProb?: number;
  /** Random replacements are drawn from [randomLow, randomHigh). Default [0, vocabSize), as BERT and Hugging Face; [5, V) leaves cloze's specials out, as fairseq's RoBERTa does. */
  randomLow?: number;
  randomHigh?: number;
  /** Philox seed and counter: the draws are a pure function of (seed, step, position). */
  seed: number;
  step: number;
}

export interface MlmMaskingResult {
  /** int32 [B, L] corrupted ids. */
  ids: Tensor;
  /** int32 [M] flat positions b·L + l of the selected tokens, in row-major order. */
  rows: Tensor;
  /** int32 [M] original ids at those positions. */
  targets: Tensor;
}

/** ids int32 [B, L] + selection [B, L] -> corrupted ids [B, L], rows [M], targets [M]. */
export function applyMlmMasking(ids: Tensor, selection: MaskSelection, opts: MlmMaskingOptions): MlmMaskingResult {
  const { B, L } = readIds(ids);
  if (!selection || selection.B !== B || selection.L !== L || !(selection.select instanceof Uint8Array) || selection.select.length !== B * L) {
    throw expected(`a selection of shape [${B}, ${L}]`, 'selection', selection ? [selection.B, selection.L] : selection, 'E_SHAPE');
  }
  const group = selection.group;
  if (group !== null && (!(group instanceof Int32Array) || group.length !== B * L)) {
    throw expected(`an Int32Array of ${B * L} group ids or null`, 'group', group instanceof Int32Array ? group.length : group, 'E_SHAPE');
  }
  checkInt(opts.vocabSize, 'vocabSize', 1, 2 ** 31 - 1);
  const V = opts.vocabSize;
  checkInt(opts.maskId, 'maskId', 0, V - 1);
  const maskProb = opts.maskProb ?? 0.8;
  const randomProb = opts.randomProb ?? 0.1;
  checkNumber(maskProb, 'maskProb', 0, 1);
  checkNumber(randomProb, 'randomProb', 0, 1 - maskProb);
  const lo = opts.randomLow ?? 0;
  const hi = opts.randomHigh ?? V;
  checkInt(lo, 'randomLow', 0, V - 1);
  checkInt(hi, 'randomHigh', lo + 1, V);
  checkInt(opts.seed, 'seed', 0, 2 ** 53);
  checkInt(opts.step, 'step', 0, 2 ** 53);
  const sel = fromTypedArray(selection.select, [B, L]);
  const grp = group ? fromTypedArray(group, [B, L]) : null;
  try {
    return mlmMask(ids, sel, grp, {
      vocabSize: V, maskId: opts.maskId, maskProb, randomProb, randomLow: lo, randomHigh: hi, seed: opts.seed, step: opts.step,
    });
  } finally {
    sel.dispose();
    grp?.dispose();
  }
}
