/**
 * The search both attacks share (TextAttack's GreedyWordSwapWIR): visit the
 * words in a given order; at each, score every candidate swap of the
 * current text in one call (one batched pass), keep the one that lowers the
 * true class's probability most if it lowers it at all, and stop at the first
 * text the victim no longer labels correctly, when the word budget is spent,
 * or when the query budget is. A success is re-scored afresh before it
 * counts.
 */
import { ExampleQueries, type ScoredText } from './queries.js';
import { isStopword } from './stopwords.js';
import { joinWords, withWord, type Words } from './words.js';

export type AttackStatus = 'skipped' | 'succeeded' | 'failed';

export interface WordChange {
  index: number;
  from: string;
  to: string;
}

export interface AttackOutcome {
  status: AttackStatus;
  original: string;
  perturbed: string;
  label: number;
  /** The prediction on the original text and on the perturbed one (re-scored). */
  before: number;
  after: number;
  /** Queries spent, the first scoring of the original text included (as TextAttack counts). */
  queries: number;
  /** Words in the attacked text. */
  words: number;
  changed: WordChange[];
}

export interface GreedyOptions {
  label: number;
  /** At most this many words change. */
  maxChanged: number;
}

/** Words an attack may change: not stopwords. */
export function attackableIndices(w: Words): number[] {
  return w.words.flatMap((word, i) => (isStopword(word) ? [] : [i]));
}

/** The most words a text of n words may have changed: ceil(n·fraction), as TextAttack's MaxWordsPerturbed. */
export function maxChangedWords(n: number, fraction: number): number {
  return Math.ceil(n * fraction - 1e-9);
}

/** 1 − p(true class): the untargeted goal score, higher is better for the attacker. */
export function goalScore(s: ScoredText, label: number): number {
  return 1 - s.probs[label]!;
}

export async function greedySwap(
  w: Words, initial: ScoredText, order: readonly number[], candidatesAt: (i: number) => readonly string[],
  q: ExampleQueries, o: GreedyOptions,
): Promise<AttackOutcome> {
  const words = w.words.slice();
  const changed: WordChange[] = [];
  let cur = initial;
  let succeeded = false;
  for (const i of order) {
    if (changed.length >= o.maxChanged || q.exhausted) break;
    const cands = candidatesAt(i).filter((c) => c !== words[i]);
    if (cands.length === 0) continue;
    const texts = cands.map((c) => withWord(w, words, i, c));
    const scored = await q.score(texts);
    let best = -1;
    let bestScore = goalScore(cur, o.label);
    scored.forEach((s, k) => {
      if (s && goalScore(s, o.label) > bestScore) {
        best = k;
        bestScore = goalScore(s, o.label);
      }
    });
    if (best >= 0) {
      changed.push({ index: i, from: words[i]!, to: cands[best]! });
      words[i] = cands[best]!;
      cur = scored[best]!;
      if (cur.predicted !== o.label) {
        succeeded = true;
        break;
      }
    }
  }
  const perturbed = joinWords(w, words);
  // Counted only if the victim, asked again, agrees.
  const after = succeeded ? (await q.rescore(perturbed)).predicted : cur.predicted;
  return {
    status: succeeded && after !== o.label ? 'succeeded' : 'failed', original: joinWords(w), perturbed, label: o.label,
    before: initial.predicted, after, queries: q.queries, words: w.words.length, changed,
  };
}

/** The outcome of an example the victim already gets wrong. */
export function skipped(w: Words, initial: ScoredText, label: number, queries: number): AttackOutcome {
  const text = joinWords(w);
  return { status: 'skipped', original: text, perturbed: text, label, before: initial.predicted, after: initial.predicted, queries, words: w.words.length, changed: [] };
}

/**
 * The first query of an attack: the original text's scores, and the skipped
 * outcome when the victim already gets it wrong (nothing more is spent).
 */
export async function scoreOriginal(w: Words, q: ExampleQueries, label: number): Promise<{ initial: ScoredText; skip: AttackOutcome | null }> {
  const [initial] = await q.score([joinWords(w)]);
  if (!initial) throw new Error('unreachable: the first query is within any budget ≥ 1');
  return { initial, skip: initial.predicted !== label ? skipped(w, initial, label, q.queries) : null };
}
