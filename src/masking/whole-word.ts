/**
 * Whole-word selection (BERT WWM): words in random order, each taken whole if
 * it still fits the budget round(ratio·n) of the sequence, as in Google's
 * create_pretraining_data and HF's DataCollatorForWholeWordMask. A sequence
 * can therefore end a few tokens short of the budget, never over it.
 */
import { Rng } from '../rng.js';
import type { Tensor } from '../tensor.js';
import {
  budget, candidates, checkRatio, checkWords, readIds, rowWords, type MaskSelection, type SelectionOptions, type WordBoundaries,
} from './select.js';

export interface WholeWordOptions extends SelectionOptions, WordBoundaries {
  /** Give each word one shared 80/10/10 draw (group ids). Default false: per token, as in BERT. */
  perUnit?: boolean;
}

export function selectWholeWords(ids: Tensor, opts: WholeWordOptions): MaskSelection {
  const ratio = checkRatio(opts.ratio);
  const { B, L, data } = readIds(ids);
  checkWords(opts, B * L, true);
  const cand = candidates(data, opts.special);
  const rng = new Rng(opts.seed);
  const select = new Uint8Array(B * L);
  const group = opts.perUnit ? new Int32Array(B * L).fill(-1) : null;
  for (let b = 0; b < B; b++) {
    const words = rng.shuffle(rowWords(data, cand, b, L, opts));
    let left = budget(ratio, words.reduce((s, [a, e]) => s + e - a, 0));
    for (const [s, e] of words) {
      if (left === 0) break;
      if (e - s > left) continue;
      for (let l = s; l < e; l++) {
        select[b * L + l] = 1;
        if (group) group[b * L + l] = s;
      }
      left -= e - s;
    }
  }
  return { B, L, select, group };
}
