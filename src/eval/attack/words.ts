/**
 * A text as the attacks see it: words (runs of letters and digits, joined by
 * an inner apostrophe or hyphen: "don't", "well-known") and the separators
 * around them, so that swapping a word keeps every space and punctuation
 * mark in place. text = seps[0] words[0] seps[1] … words[n−1] seps[n].
 *
 * Percentages of words perturbed count these words, as TextAttack counts
 * `AttackedText.words` (punctuation is not a word).
 */

export interface Words {
  readonly words: readonly string[];
  /** words.length + 1 separators. */
  readonly seps: readonly string[];
}

const WORD = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu;

export function splitWords(text: string): Words {
  const words: string[] = [];
  const seps: string[] = [];
  let last = 0;
  for (const m of text.matchAll(WORD)) {
    seps.push(text.slice(last, m.index));
    words.push(m[0]);
    last = m.index! + m[0].length;
  }
  seps.push(text.slice(last));
  return { words, seps };
}

/** The text back, with `words` in place of the original words. */
export function joinWords(w: Words, words: readonly string[] = w.words): string {
  let out = w.seps[0]!;
  for (let i = 0; i < words.length; i++) out += words[i]! + w.seps[i + 1]!;
  return out;
}

/** The text with word i replaced. */
export function withWord(w: Words, words: readonly string[], i: number, replacement: string): string {
  const next = words.slice();
  next[i] = replacement;
  return joinWords(w, next);
}

/** The text without word i: the separators on its two sides merge, runs of spaces becoming one. */
export function withoutWord(w: Words, words: readonly string[], i: number): string {
  let out = '';
  for (let k = 0; k < words.length; k++) {
    if (k === i) continue;
    out += (k === i + 1 ? mergeSeps(w.seps[i]!, w.seps[k]!) : w.seps[k]!) + words[k]!;
  }
  const tail = i === words.length - 1 ? mergeSeps(w.seps[i]!, w.seps[i + 1]!) : w.seps[words.length]!;
  return out + tail;
}

/** The separators around a deleted word: punctuation after it stays attached ("cat," → ","), runs of spaces become one. */
function mergeSeps(a: string, b: string): string {
  return (/^\S/.test(b) ? a.trimEnd() + b : a + b).replace(/\s+/g, ' ');
}

/** A candidate written in the original word's case: "Quick" → "Fast", "NASA" → "ORG", else lower case. */
export function matchCase(original: string, candidate: string): string {
  const lower = candidate.toLowerCase();
  if (original.length > 1 && original === original.toUpperCase() && original !== original.toLowerCase()) return lower.toUpperCase();
  const first = original[0]!;
  if (first !== first.toLowerCase()) return lower[0]!.toUpperCase() + lower.slice(1);
  return lower;
}
