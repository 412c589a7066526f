/**
 * BERT-Attack style (Li et al. 2020), with single-token candidates only:
 * words are visited by importance, the drop in the true class's probability
 * when the word is deleted (the spec's ranking); candidates at a word are a
 * masked language model's top-k predictions there (the caller's
 * `candidates`, computed on the original text). BERT-Attack's sentence-
 * encoder similarity filter has no offline equivalent and is not applied.
 * Unlike TextAttack's recipe, stopword candidates are dropped too.
 */
import { attackableIndices, greedySwap, scoreOriginal, type AttackOutcome } from './greedy.js';
import { ExampleQueries } from './queries.js';
import { isStopword } from './stopwords.js';
import { matchCase, withoutWord, type Words } from './words.js';

export interface BertAttackOptions {
  label: number;
  maxChanged: number;
  /** Candidate words at each of `indices` (lower case, one token each), from the MLM on the original text. */
  candidates: (indices: readonly number[]) => Promise<ReadonlyArray<readonly string[]>>;
}

export async function bertAttack(w: Words, q: ExampleQueries, o: BertAttackOptions): Promise<AttackOutcome> {
  const { initial, skip } = await scoreOriginal(w, q, o.label);
  if (skip) return skip;
  const y = o.label;
  const p0 = initial.probs[y]!;
  const indices = attackableIndices(w);
  const deleted = await q.score(indices.map((i) => withoutWord(w, w.words, i)));
  const importance = deleted.map((s) => (s ? p0 - s.probs[y]! : -Infinity));
  const order = indices.map((i, k) => ({ i, v: importance[k]! })).sort((a, b) => b.v - a.v || a.i - b.i).map((x) => x.i);
  const lists = await o.candidates(indices);
  const cands = new Map<number, string[]>();
  indices.forEach((i, k) => {
    const word = w.words[i]!;
    // A function word in place of a content word ("farmer" → "a") is not a substitution a reader would accept.
    cands.set(i, [...new Set(lists[k]!.filter((c) => !isStopword(c)).map((c) => matchCase(word, c)))].filter((c) => c.toLowerCase() !== word.toLowerCase()));
  });
  return greedySwap(w, initial, order, (i) => cands.get(i) ?? [], q, { label: y, maxChanged: o.maxChanged });
}
