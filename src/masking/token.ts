/** BERT token-level selection: exactly round(ratio·n) random non-special tokens per sequence. */
import { Rng } from '../rng.js';
import type { Tensor } from '../tensor.js';
import { budget, candidates, checkRatio, readIds, type MaskSelection, type SelectionOptions } from './select.js';

/** ids int32 [B, L] -> selection [B, L]; one draw per token (group null). */
export function selectTokens(ids: Tensor, opts: SelectionOptions): MaskSelection {
  const ratio = checkRatio(opts.ratio);
  const { B, L, data } = readIds(ids);
  const cand = candidates(data, opts.special);
  const rng = new Rng(opts.seed);
  const select = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const pos: number[] = [];
    for (let l = 0; l < L; l++) if (cand[b * L + l]) pos.push(l);
    const k = budget(ratio, pos.length);
    // Partial Fisher–Yates: the first k of a random permutation.
    for (let j = 0; j < k; j++) {
      const r = j + rng.int(pos.length - j);
      [pos[j], pos[r]] = [pos[r]!, pos[j]!];
      select[b * L + pos[j]!] = 1;
    }
  }
  return { B, L, select, group: null };
}
