/**
 * Shared pieces of the MLM selection strategies (the README's text pre-training section): the selection
 * type, special tokens, the per-sequence budget and word segmentation.
 * Mask rule: 1 = selected for prediction (masked).
 */
import { expected } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkDtype, checkNumber, checkRank, checkTensor } from '../validate.js';

/** What a strategy selects, row-major over [B, L]. */
export interface MaskSelection {
  B: number;
  L: number;
  /** uint8 [B·L], 1 = selected for prediction. */
  select: Uint8Array;
  /**
   * int32 [B·L] or null. Selected tokens with the same value (an in-row
   * position, that of the unit's first token) share one 80/10/10 draw; null
   * means one draw per token.
   */
  group: Int32Array | null;
}

/** Special tokens are never selected: a uint8 [B·L] flag array (1 = special) or a list/set of ids. */
export type SpecialTokens = Uint8Array | ReadonlySet<number> | readonly number[];

export interface SelectionOptions {
  /** Fraction of each sequence's non-special tokens to select, in [0, 1]. Default 0.15 (BERT). */
  ratio?: number;
  special?: SpecialTokens;
  /** Seed of the Rng that makes the selection; pass a different one per step. */
  seed: number;
}

/** Reads int32 ids [B, L] into a plain array. */
export function readIds(ids: Tensor, name = 'ids'): { B: number; L: number; data: Int32Array } {
  checkTensor(ids, name);
  checkDtype(ids, 'int32', name);
  checkRank(ids, 2, 2, name);
  return { B: ids.shape[0]!, L: ids.shape[1]!, data: ids.toArray() as Int32Array };
}

/** uint8 [B·L], 1 = may be selected (not special). */
export function candidates(data: Int32Array, special: SpecialTokens | undefined): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(n).fill(1);
  if (special === undefined) return out;
  if (special instanceof Uint8Array) {
    if (special.length !== n) throw expected(`a uint8 array of ${n} flags`, 'special', special.length, 'E_SHAPE');
    for (let i = 0; i < n; i++) out[i] = special[i] ? 0 : 1;
    return out;
  }
  const set = special instanceof Set ? special : new Set(special as readonly number[]);
  for (let i = 0; i < n; i++) if (set.has(data[i]!)) out[i] = 0;
  return out;
}

export function checkRatio(ratio: number | undefined): number {
  const r = ratio ?? 0.15;
  checkNumber(r, 'ratio', 0, 1);
  return r;
}

/** Tokens to select in a sequence with n candidates: round(ratio·n) (halves round up). */
export function budget(ratio: number, n: number): number {
  return Math.min(n, Math.round(ratio * n));
}

/** Where words begin: a uint8 [B·L] flag array (1 = starts a word), or a vocabulary whose "##" pieces continue a word. */
export interface WordBoundaries {
  wordStarts?: Uint8Array;
  vocab?: readonly string[];
}

/**
 * Words of row b as [start, end) token ranges over candidate tokens. A special
 * token ends a word; a continuation right after a special starts a new word.
 * Without wordStarts or vocab each token is a word.
 */
export function rowWords(data: Int32Array, cand: Uint8Array, b: number, L: number, w: WordBoundaries): Array<[number, number]> {
  const words: Array<[number, number]> = [];
  const base = b * L;
  let start = -1;
  for (let l = 0; l < L; l++) {
    const i = base + l;
    if (!cand[i]) {
      if (start >= 0) words.push([start, l]);
      start = -1;
      continue;
    }
    let begins = true;
    if (w.wordStarts) begins = w.wordStarts[i] !== 0;
    else if (w.vocab) begins = !(w.vocab[data[i]!] ?? '').startsWith('##');
    if (begins || start < 0) {
      if (start >= 0) words.push([start, l]);
      start = l;
    }
  }
  if (start >= 0) words.push([start, L]);
  return words;
}

export function checkWords(w: WordBoundaries, n: number, required: boolean): void {
  if (w.wordStarts !== undefined) {
    if (!(w.wordStarts instanceof Uint8Array) || w.wordStarts.length !== n) {
      throw expected(`a uint8 array of ${n} flags`, 'wordStarts', w.wordStarts instanceof Uint8Array ? w.wordStarts.length : w.wordStarts, 'E_SHAPE');
    }
  } else if (w.vocab !== undefined) {
    if (!Array.isArray(w.vocab)) throw expected('an array of token strings', 'vocab', w.vocab);
  } else if (required) {
    throw expected('word-start flags or a vocab', 'wordStarts', undefined);
  }
}
