/**
 * PWWS (Ren et al. 2019, "Generating Natural Language Adversarial Examples
 * through Probability Weighted Word Saliency"). For each word w_i that may
 * change:
 *   saliency S_i = P(y|x) − P(y|x with w_i → [UNK]),
 *   ΔP*_i = P(y|x) − P(y|x with w_i → its best synonym),
 * and words are visited in the order of softmax(S)_i · ΔP*_i, highest first,
 * as the paper's H(x, x*_i, w_i). Candidates are WordNet synonyms (the
 * caller's `synonyms`), written in the word's case. TextAttack's version
 * multiplies by the swapped text's score 1 − P(y|·) rather than the drop;
 * we follow the paper (the two orders differ only when ΔP* has mixed signs).
 */
import { attackableIndices, greedySwap, scoreOriginal, type AttackOutcome } from './greedy.js';
import { ExampleQueries } from './queries.js';
import { matchCase, withWord, type Words } from './words.js';

export interface PwwsOptions {
  label: number;
  maxChanged: number;
  /** The tokenizer's unknown token as text, e.g. "[UNK]". */
  unkText: string;
  /** Synonym candidates of a word (lower case); excluded: the word itself. */
  synonyms: (word: string) => readonly string[];
}

function softmax(xs: readonly number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

export async function pwws(w: Words, q: ExampleQueries, o: PwwsOptions): Promise<AttackOutcome> {
  const { initial, skip } = await scoreOriginal(w, q, o.label);
  if (skip) return skip;
  const y = o.label;
  const p0 = initial.probs[y]!;
  const indices = attackableIndices(w);
  const cands = new Map<number, string[]>();
  for (const i of indices) {
    const word = w.words[i]!;
    cands.set(i, [...new Set(o.synonyms(word.toLowerCase()).map((s) => matchCase(word, s)))].filter((s) => s !== word));
  }
  // Saliency: every word → [UNK], one call.
  const unk = await q.score(indices.map((i) => withWord(w, w.words, i, o.unkText)));
  const saliency = unk.map((s) => (s ? p0 - s.probs[y]! : 0));
  // ΔP*: the best synonym of each word on the original text, every word's synonyms in one call.
  const texts = indices.flatMap((i) => cands.get(i)!.map((c) => withWord(w, w.words, i, c)));
  const scored = texts.length > 0 ? await q.score(texts) : [];
  const delta: number[] = [];
  let at = 0;
  for (const i of indices) {
    const mine = scored.slice(at, (at += cands.get(i)!.length)).filter((s) => s !== null);
    delta.push(mine.length === 0 ? 0 : Math.max(...mine.map((s) => p0 - s!.probs[y]!)));
  }
  const weight = indices.length > 0 ? softmax(saliency) : [];
  const order = indices.map((i, k) => ({ i, h: weight[k]! * delta[k]! })).sort((a, b) => b.h - a.h || a.i - b.i).map((x) => x.i);
  return greedySwap(w, initial, order, (i) => cands.get(i) ?? [], q, { label: y, maxChanged: o.maxChanged });
}
