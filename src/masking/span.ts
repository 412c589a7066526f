/**
 * SpanBERT span selection: span lengths in words ~ Geometric(p = 0.2) limited
 * to 1..10 (the distribution renormalised over 1..10, as in SpanBERT's code,
 * which gives the published mean ≈ 3.8; clamping at 10 would give 4.46).
 * Spans are drawn until round(ratio·n) tokens are covered; all tokens of a
 * span share one 80/10/10 draw (group id = the span's first position).
 *
 * Details that are **ours**: the anchor is a uniformly random free word that
 * fits the remaining budget (SpanBERT draws an anchor token); a span grows to
 * the right over whole words and stops early at a special token, an already
 * selected word, the sequence end, or a word that would exceed the budget, so
 * words are never cut and a sequence may end a few tokens short of the budget.
 */
import { Rng } from '../rng.js';
import type { Tensor } from '../tensor.js';
import { checkInt, checkNumber } from '../validate.js';
import {
  budget, candidates, checkRatio, checkWords, readIds, rowWords, type MaskSelection, type SelectionOptions, type WordBoundaries,
} from './select.js';

export interface SpanOptions extends SelectionOptions, WordBoundaries {
  /** Geometric parameter. Default 0.2 (SpanBERT). */
  p?: number;
  /** Longest span in words. Default 10 (SpanBERT). */
  maxSpan?: number;
}

/** A span length in 1..maxSpan with P(k) ∝ p(1−p)^(k−1). */
export function sampleSpanLength(rng: Rng, p = 0.2, maxSpan = 10): number {
  const q = 1 - p;
  // Inverse CDF of the truncated geometric: P(X ≤ k) = (1 − q^k) / (1 − q^max).
  const u = rng.uniform() * (1 - q ** maxSpan);
  let k = 1;
  let cdf = p;
  while (k < maxSpan && u >= cdf) {
    k++;
    cdf = 1 - q ** k;
  }
  return k;
}

export function selectSpans(ids: Tensor, opts: SpanOptions): MaskSelection {
  const ratio = checkRatio(opts.ratio);
  const p = opts.p ?? 0.2;
  const maxSpan = opts.maxSpan ?? 10;
  checkNumber(p, 'p', Number.MIN_VALUE, 1);
  checkInt(maxSpan, 'maxSpan', 1);
  const { B, L, data } = readIds(ids);
  checkWords(opts, B * L, false);
  const cand = candidates(data, opts.special);
  const rng = new Rng(opts.seed);
  const select = new Uint8Array(B * L);
  const group = new Int32Array(B * L).fill(-1);
  for (let b = 0; b < B; b++) {
    const words = rowWords(data, cand, b, L, opts);
    const taken = new Uint8Array(words.length);
    let left = budget(ratio, words.reduce((s, [a, e]) => s + e - a, 0));
    const len = (w: number): number => words[w]![1] - words[w]![0];
    const take = (w: number, g: number): void => {
      taken[w] = 1;
      left -= len(w);
      for (let l = words[w]![0]; l < words[w]![1]; l++) {
        select[b * L + l] = 1;
        group[b * L + l] = g;
      }
    };
    while (left > 0) {
      const free: number[] = [];
      for (let w = 0; w < words.length; w++) if (!taken[w] && len(w) <= left) free.push(w);
      if (free.length === 0) break;
      const k = sampleSpanLength(rng, p, maxSpan);
      let w = free[rng.int(free.length)]!;
      const g = words[w]![0];
      take(w, g);
      for (let n = 1; n < k; n++) {
        const next = w + 1;
        if (next >= words.length || taken[next] || words[next]![0] !== words[w]![1] || len(next) > left) break;
        take(next, g);
        w = next;
      }
    }
  }
  return { B, L, select, group };
}
