/** Token batches with special ids, and their checks, for the MLM masking and mlmMask tests. */
import { Rng, tensor, type MaskSelection, type Tensor } from '../../src/index.js';

// Special ids: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK]; ordinary tokens from 5.
export const PAD = 0, CLS = 2, SEP = 3, MASK = 4, FIRST = 5;
export const SPECIAL = [PAD, 1, CLS, SEP, MASK];

/** B sequences of length L: [CLS] tokens… [SEP] [PAD]…, with a random amount of padding. */
export function batch(B: number, L: number, V: number, seed: number, pad = true): { ids: Tensor; data: Int32Array } {
  const rng = new Rng(seed);
  const data = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const len = pad ? Math.max(3, L - rng.int(Math.floor(L / 3))) : L;
    for (let l = 0; l < L; l++) {
      data[b * L + l] = l === 0 ? CLS : l === len - 1 ? SEP : l >= len ? PAD : FIRST + rng.int(V - FIRST);
    }
  }
  return { ids: tensor(data, [B, L], 'int32'), data };
}

export const ints = (t: Tensor): number[] => Array.from(t.toArray());
export const isSpecial = (id: number): boolean => SPECIAL.includes(id);
/** Binomial tolerance: k standard deviations of a proportion p over n draws. */
export const sdTol = (p: number, n: number, k = 5): number => k * Math.sqrt((p * (1 - p)) / n);

export function groupsOf(sel: MaskSelection): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (let i = 0; i < sel.B * sel.L; i++) {
    if (!sel.select[i]) continue;
    const key = Math.floor(i / sel.L) * sel.L + sel.group![i]!;
    m.set(key, [...(m.get(key) ?? []), i]);
  }
  return m;
}
