/**
 * ERNIE-Gram-style n-gram selection: contiguous n-grams (n ≤ 3) taken from a
 * lexicon of frequent n-grams built from the corpus.
 *
 * **ours** (the paper's exact rules were not found):
 * - the lexicon holds n-grams with 2 ≤ n ≤ maxN and at least minCount
 *   occurrences; every single non-special token is a valid 1-gram;
 * - the distribution over n is P(n) ∝ 1/n for n = 1..maxN (6/11, 3/11, 2/11
 *   at maxN = 3), the choice ALBERT made for its n-gram masking;
 * - selection per sequence: draw n, then a uniformly random occurrence of a
 *   length-n lexicon n-gram whose tokens are all free and fit the remaining
 *   budget round(ratio·n); when none exists for that n, the next smaller n is
 *   tried; it stops when the budget is met or no 1-gram fits;
 * - 80/10/10 is per token (the spec's baseline); perUnit gives each n-gram
 *   one shared draw instead.
 */
import { expected } from '../errors.js';
import { Rng } from '../rng.js';
import type { Tensor } from '../tensor.js';
import { checkInt } from '../validate.js';
import { budget, candidates, checkRatio, readIds, type MaskSelection, type SelectionOptions } from './select.js';

export interface NgramLexicon {
  maxN: number;
  /** Key: the ids joined by ',' (e.g. "17,4021"); value: the count in the corpus. */
  counts: Map<string, number>;
}

export interface LexiconOptions {
  /** Longest n-gram. Default 3. */
  maxN?: number;
  /** Fewest occurrences to enter the lexicon. Default 2. */
  minCount?: number;
  /** Ids that never appear inside an n-gram (e.g. [CLS], [SEP], [PAD]). */
  special?: ReadonlySet<number> | readonly number[];
}

export const ngramKey = (ids: ArrayLike<number>, start: number, n: number): string => {
  let s = String(ids[start]);
  for (let j = 1; j < n; j++) s += ',' + ids[start + j];
  return s;
};

/** Counts every n-gram (2 ≤ n ≤ maxN) of special-free tokens in the sequences; keeps those seen minCount times. */
export function buildNgramLexicon(sequences: Iterable<ArrayLike<number>>, opts: LexiconOptions = {}): NgramLexicon {
  const maxN = opts.maxN ?? 3;
  const minCount = opts.minCount ?? 2;
  checkInt(maxN, 'maxN', 1, 3);
  checkInt(minCount, 'minCount', 1);
  const special = new Set(opts.special ?? []);
  const all = new Map<string, number>();
  for (const seq of sequences) {
    for (let i = 0; i < seq.length; i++) {
      for (let n = 2; n <= maxN && i + n <= seq.length; n++) {
        if (special.has(seq[i + n - 1]!) || special.has(seq[i]!)) break;
        const key = ngramKey(seq, i, n);
        all.set(key, (all.get(key) ?? 0) + 1);
      }
    }
  }
  const counts = new Map<string, number>();
  for (const [k, c] of all) if (c >= minCount) counts.set(k, c);
  return { maxN, counts };
}

export interface NgramOptions extends SelectionOptions {
  lexicon: NgramLexicon;
  /** Weights of n = 1..maxN, normalised. Default ∝ 1/n (**ours**). */
  nWeights?: readonly number[];
  perUnit?: boolean;
}

export function selectNgrams(ids: Tensor, opts: NgramOptions): MaskSelection {
  const ratio = checkRatio(opts.ratio);
  const lex = opts.lexicon;
  if (!lex || !(lex.counts instanceof Map)) throw expected('a lexicon from buildNgramLexicon', 'lexicon', lex);
  const maxN = lex.maxN;
  checkInt(maxN, 'lexicon.maxN', 1, 3);
  const w = opts.nWeights ?? Array.from({ length: maxN }, (_, j) => 1 / (j + 1));
  if (w.length !== maxN || w.some((x) => !(x >= 0)) || !(w.reduce((a, b) => a + b, 0) > 0)) {
    throw expected(`${maxN} non-negative weights with a positive sum`, 'nWeights', [...w]);
  }
  const total = w.reduce((a, b) => a + b, 0);
  const { B, L, data } = readIds(ids);
  const cand = candidates(data, opts.special);
  const rng = new Rng(opts.seed);
  const select = new Uint8Array(B * L);
  const group = opts.perUnit ? new Int32Array(B * L).fill(-1) : null;
  for (let b = 0; b < B; b++) {
    const base = b * L;
    const row = data.subarray(base, base + L);
    // Occurrences by n: starts whose n tokens are all candidates and, for n ≥ 2, a lexicon entry.
    const occ: number[][] = [[]];
    let nCand = 0;
    for (let l = 0; l < L; l++) if (cand[base + l]) nCand++;
    for (let n = 1; n <= maxN; n++) {
      const starts: number[] = [];
      for (let l = 0; l + n <= L; l++) {
        let ok = true;
        for (let j = 0; j < n && ok; j++) ok = cand[base + l + j] === 1;
        if (ok && (n === 1 || lex.counts.has(ngramKey(row, l, n)))) starts.push(l);
      }
      occ.push(starts);
    }
    let left = budget(ratio, nCand);
    while (left > 0) {
      let u = rng.uniform() * total;
      let n = 1;
      while (n < maxN && u >= w[n - 1]!) u -= w[n++ - 1]!;
      let picked = -1;
      let size = 0;
      for (let m = n; m >= 1 && picked < 0; m--) {
        if (m > left) continue;
        const free = occ[m]!.filter((l) => {
          for (let j = 0; j < m; j++) if (select[base + l + j]) return false;
          return true;
        });
        if (free.length > 0) {
          picked = free[rng.int(free.length)]!;
          size = m;
        }
      }
      if (picked < 0) break;
      for (let j = 0; j < size; j++) {
        select[base + picked + j] = 1;
        if (group) group[base + picked + j] = picked;
      }
      left -= size;
    }
  }
  return { B, L, select, group };
}
