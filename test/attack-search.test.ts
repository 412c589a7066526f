/**
 * The attack machinery on toy victims (class probabilities computed from the
 * words in plain TypeScript): word splitting, TextAttack's metrics on
 * hand-made outcomes, the query cache and budget, and the greedy search's
 * rules (stopwords, the word budget, a success that flips the prediction).
 */
import { describe, expect, it } from 'vitest';
import { bertAttack } from '../src/eval/attack/bert-attack.js';
import { attackableIndices, maxChangedWords, type AttackOutcome } from '../src/eval/attack/greedy.js';
import { attackMetrics } from '../src/eval/attack/metrics.js';
import { pwws } from '../src/eval/attack/pwws.js';
import { ExampleQueries, type Victim } from '../src/eval/attack/queries.js';
import { isStopword } from '../src/eval/attack/stopwords.js';
import { joinWords, matchCase, splitWords, withoutWord, withWord } from '../src/eval/attack/words.js';

/** Two classes: p(positive) = sigmoid(sum of word weights); unknown words weigh 0. */
function toyVictim(weights: Record<string, number>, calls: string[][] = []): Victim {
  return async (texts) => {
    calls.push([...texts]);
    const out = new Float32Array(texts.length * 2);
    texts.forEach((t, i) => {
      const z = splitWords(t).words.reduce((a, w) => a + (weights[w.toLowerCase()] ?? 0), 0);
      const p = 1 / (1 + Math.exp(-z));
      out[2 * i] = 1 - p;
      out[2 * i + 1] = p;
    });
    return out;
  };
}

describe('words', () => {
  it('splits into words and separators and joins back exactly', () => {
    const t = "  Don't stop: the well-known cat, 42 times!";
    const w = splitWords(t);
    expect(w.words).toEqual(["Don't", 'stop', 'the', 'well-known', 'cat', '42', 'times']);
    expect(w.seps.length).toBe(w.words.length + 1);
    expect(joinWords(w)).toBe(t);
    expect(withWord(w, w.words, 4, 'dog')).toBe("  Don't stop: the well-known dog, 42 times!");
    expect(withoutWord(w, w.words, 4)).toBe("  Don't stop: the well-known, 42 times!");
    expect(withoutWord(w, w.words, 0)).toBe(' stop: the well-known cat, 42 times!');
    expect(withoutWord(w, w.words, 6)).toBe("  Don't stop: the well-known cat, 42!");
    expect(splitWords('').words).toEqual([]);
  });

  it('writes candidates in the original case', () => {
    expect(matchCase('Quick', 'FAST')).toBe('Fast');
    expect(matchCase('NASA', 'agency')).toBe('AGENCY');
    expect(matchCase('quick', 'Fast')).toBe('fast');
    expect(matchCase('I', 'me')).toBe('Me');
  });

  it('knows stopwords in any case and with either apostrophe', () => {
    for (const w of ['the', 'The', 'not', "don't", 'don’t', 'and']) expect(isStopword(w)).toBe(true);
    for (const w of ['cat', 'good', 'terrible']) expect(isStopword(w)).toBe(false);
    expect(attackableIndices(splitWords('the cat is not good'))).toEqual([1, 4]);
  });

  it('allows ceil(n · fraction) changed words', () => {
    expect(maxChangedWords(5, 0.1)).toBe(1);
    expect(maxChangedWords(10, 0.1)).toBe(1);
    expect(maxChangedWords(11, 0.1)).toBe(2);
    expect(maxChangedWords(10, 0.3)).toBe(3);
  });
});

describe('attack metrics', () => {
  it("equal hand-computed values with TextAttack's definitions", () => {
    const o = (status: AttackOutcome['status'], queries: number, words: number, changed: number) => ({
      status, queries, words, changed: Array.from({ length: changed }, (_, i) => ({ index: i, from: 'a', to: 'b' })),
    });
    const m = attackMetrics([o('skipped', 1, 10, 0), o('succeeded', 20, 10, 1), o('succeeded', 40, 20, 4), o('failed', 90, 8, 2), o('failed', 30, 12, 0)]);
    expect(m).toMatchObject({ examples: 5, skipped: 1, succeeded: 2, failed: 2 });
    expect(m.cleanAccuracy).toBeCloseTo(4 / 5, 12);
    expect(m.accuracyUnderAttack).toBeCloseTo(2 / 5, 12);
    expect(m.attackSuccessRate).toBeCloseTo(2 / 4, 12);
    expect(m.avgWordsPerturbedPercent).toBeCloseTo((10 + 20) / 2, 12);
    expect(m.avgQueries).toBeCloseTo((20 + 40 + 90 + 30) / 4, 12);
    expect(m.avgWords).toBeCloseTo(60 / 5, 12);
    const none = attackMetrics([o('skipped', 1, 3, 0)]);
    expect(none.attackSuccessRate).toBeNull();
    expect(none.avgWordsPerturbedPercent).toBeNull();
    expect(none.avgQueries).toBeNull();
    expect(none.accuracyUnderAttack).toBe(0);
  });
});

describe('query bookkeeping', () => {
  it('caches repeated texts, batches uncached ones, and stops at the budget', async () => {
    const calls: string[][] = [];
    const q = new ExampleQueries(toyVictim({ good: 2 }, calls), 2, 5, 2);
    const a = await q.score(['a good day', 'a day', 'a good day', 'x']);
    expect(q.queries).toBe(3);
    expect(calls).toEqual([['a good day', 'a day'], ['x']]);
    expect(a[0]!.predicted).toBe(1);
    expect(a[2]).toBe(a[0]);
    const b = await q.score(['a day', 'y', 'z', 'w']);
    expect(q.queries).toBe(5);
    expect(q.exhausted).toBe(true);
    expect(b.map((s) => s !== null)).toEqual([true, true, true, false]);
  });

  it('gives the same probabilities batched and one query a pass', async () => {
    const texts = ['good', 'bad movie', 'good good bad', 'fine'];
    const w = { good: 1.5, bad: -2, fine: 0.3 };
    const batched = await new ExampleQueries(toyVictim(w), 2, 100, 64).score(texts);
    const single = new ExampleQueries(toyVictim(w), 2, 100, 1);
    const one = await single.score(texts);
    expect(single.passes).toBe(4);
    expect(one.map((s) => Array.from(s!.probs))).toEqual(batched.map((s) => Array.from(s!.probs)));
  });
});

describe('greedy word swaps', () => {
  const weights = { great: 3, good: 1, fine: 0.2, bad: -2, awful: -3, terrible: -3, film: 0.1, movie: 0, plot: 0 };
  const synonyms: Record<string, string[]> = { great: ['good', 'fine', 'bad'], film: ['movie'], plot: ['story'], good: ['fine'] };

  it('PWWS flips a prediction, never changes a stopword, re-scores the success, and counts queries from the first', async () => {
    const w = splitWords('The great film is not bad at all');
    const q = new ExampleQueries(toyVictim(weights), 2, 2000, 64);
    const r = await pwws(w, q, { label: 1, maxChanged: 3, unkText: '[UNK]', synonyms: (x) => synonyms[x] ?? [] });
    expect(r.status).toBe('succeeded');
    expect(r.before).toBe(1);
    expect(r.after).toBe(0);
    expect(r.changed).toEqual([{ index: 1, from: 'great', to: 'bad' }]);
    expect(r.perturbed).toBe('The bad film is not bad at all');
    // 1 original + 3 [UNK] texts (great, film, bad) + 3 + 1 synonym texts; the search's texts are cached.
    expect(r.queries).toBe(8);
    for (const c of r.changed) expect(isStopword(c.from)).toBe(false);
  });

  it('skips an example the victim already gets wrong, with one query', async () => {
    const q = new ExampleQueries(toyVictim(weights), 2, 2000, 64);
    const r = await pwws(splitWords('an awful film'), q, { label: 1, maxChanged: 1, unkText: '[UNK]', synonyms: () => ['x'] });
    expect(r.status).toBe('skipped');
    expect(r.queries).toBe(1);
  });

  it('fails within the word budget when one swap is not enough, changing each word at most once', async () => {
    const w = splitWords('great great film');
    const q = new ExampleQueries(toyVictim({ great: 3, fine: -0.5 }), 2, 2000, 64);
    const r = await pwws(w, q, { label: 1, maxChanged: 1, unkText: '[UNK]', synonyms: (x) => (x === 'great' ? ['fine'] : []) });
    expect(r.status).toBe('failed');
    expect(r.changed.length).toBe(1);
    const r2 = await pwws(w, new ExampleQueries(toyVictim({ great: 3, fine: -0.5 }), 2, 2000, 64), {
      label: 1, maxChanged: 3, unkText: '[UNK]', synonyms: (x) => (x === 'great' ? ['fine'] : []),
    });
    expect(new Set(r2.changed.map((c) => c.index)).size).toBe(r2.changed.length);
    expect(r2.status).toBe('succeeded');
    expect(r2.after).toBe(1 - 1);
  });

  it('stops at the query budget and counts the example as failed', async () => {
    const q = new ExampleQueries(toyVictim(weights), 2, 3, 64);
    const r = await pwws(splitWords('great film plot'), q, { label: 1, maxChanged: 3, unkText: '[UNK]', synonyms: (x) => synonyms[x] ?? [] });
    expect(r.status).toBe('failed');
    expect(r.queries).toBe(3);
  });

  it('BERT-Attack orders words by the drop on deletion and takes the candidates it is given', async () => {
    const w = splitWords('a good great film');
    const asked: number[][] = [];
    const r = await bertAttack(w, new ExampleQueries(toyVictim(weights), 2, 2000, 64), {
      label: 1, maxChanged: 1,
      candidates: async (idx) => {
        asked.push([...idx]);
        return idx.map((i) => (i === 2 ? ['awful', 'Great'] : ['film']));
      },
    });
    expect(asked).toEqual([[1, 2, 3]]);
    expect(r.changed).toEqual([{ index: 2, from: 'great', to: 'awful' }]);
    expect(r.status).toBe('succeeded');
  });
});
