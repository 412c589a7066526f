/** The text-classification sanity floors: the majority class, and a bag-of-words logistic regression. */
import { describe, expect, it } from 'vitest';
import { BagOfWords, bagOfWordsBaseline, exampleTokens, majorityBaseline, words } from '../src/eval/bag-of-words.js';
import { classificationScores } from '../src/eval/classification.js';
import type { LabelledExample } from '../src/data/labelled.js';
import { Rng } from '../src/rng.js';

describe('bag-of-words features', () => {
  it('lowercases word unigrams and prefixes a pair\'s second text', () => {
    expect(words("Don't PANIC: 42 towels, naïve!")).toEqual(["don't", 'panic', '42', 'towels', 'naïve']);
    expect(exampleTokens({ text: 'A cat', textPair: 'a Dog' })).toEqual(['a', 'cat', 'b:a', 'b:dog']);
  });

  it('keeps words seen at least minCount times and uses log(1 + count) or binary values', () => {
    const train = [{ text: 'red red blue' }, { text: 'red green' }, { text: 'blue' }];
    const bow = new BagOfWords(train, 2);
    expect([...bow.vocab.keys()]).toEqual(['blue', 'red']);
    const r = bow.row({ text: 'Red red red green blue' });
    const byWord = Object.fromEntries([...r.ids].map((id, j) => [[...bow.vocab.keys()][id]!, r.values[j]!]));
    expect(byWord.red).toBeCloseTo(Math.log(4), 6);
    expect(byWord.blue).toBeCloseTo(Math.log(2), 6);
    expect(byWord.green).toBeUndefined();
    const bin = new BagOfWords(train, 2, true).row({ text: 'red red blue' });
    expect([...bin.values]).toEqual([1, 1]);
  });
});

describe('majorityBaseline', () => {
  it('predicts the most frequent training class (lowest id on ties) and scores it exactly', () => {
    const r = majorityBaseline(Int32Array.from([2, 1, 2, 0, 1, 2]), Int32Array.from([0, 1, 2, 2]), 3);
    expect([...r.predictions]).toEqual([2, 2, 2, 2]);
    expect(r.accuracy).toBe(0.5);
    expect(r.macroF1).toBeCloseTo((0 + 0 + 2 / 3) / 3, 12);
    expect(r.trainAccuracy).toBe(0.5);
    expect(r.macroF1).toBe(classificationScores([2, 2, 2, 2], [0, 1, 2, 2], 3).macroF1);
    expect([...majorityBaseline(Int32Array.from([1, 0]), Int32Array.from([1]), 2).predictions]).toEqual([0]);
  });
});

describe('bagOfWordsBaseline', () => {
  // Three classes, each with its own keywords, among shared filler words; pairs carry the signal only in text_pair.
  const vocab = [['apple', 'pear', 'plum'], ['hammer', 'saw', 'drill'], ['violin', 'flute', 'drum']];
  const filler = ['the', 'a', 'of', 'and', 'thing', 'some'];
  function fixture(n: number, seed: number, pair = false): { ex: LabelledExample[]; y: Int32Array } {
    const rng = new Rng(seed);
    const ex: LabelledExample[] = [];
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = i % 3;
      y[i] = c;
      const ws = [vocab[c]![rng.int(3)]!, filler[rng.int(6)]!, filler[rng.int(6)]!, vocab[c]![rng.int(3)]!];
      const signal = ws.join(' ');
      const noise = [filler[rng.int(6)]!, filler[rng.int(6)]!, vocab[rng.int(3)]![rng.int(3)]!].join(' ');
      ex.push(pair ? { text: noise, textPair: signal, label: String(c) } : { text: signal, label: String(c) });
    }
    return { ex, y };
  }

  it('learns a separable fixture', () => {
    const tr = fixture(240, 1);
    const te = fixture(60, 2);
    const r = bagOfWordsBaseline(tr.ex, tr.y, te.ex, te.y, 3, { epochs: 30, batchSize: 32, seed: 0 });
    expect(r.features).toBe(15);
    expect(r.trainAccuracy).toBe(1);
    expect(r.accuracy).toBe(1);
    expect(r.macroF1).toBe(1);
  });

  it('tells a pair\'s second-text words apart from its first text\'s', () => {
    const tr = fixture(240, 3, true);
    const te = fixture(60, 4, true);
    const r = bagOfWordsBaseline(tr.ex, tr.y, te.ex, te.y, 3, { epochs: 30, batchSize: 32, seed: 0 });
    expect(r.accuracy).toBe(1);
  });

  it('is a pure function of its seed', () => {
    const tr = fixture(90, 5);
    const te = fixture(30, 6);
    const a = bagOfWordsBaseline(tr.ex, tr.y, te.ex, te.y, 3, { epochs: 2, seed: 7 });
    const b = bagOfWordsBaseline(tr.ex, tr.y, te.ex, te.y, 3, { epochs: 2, seed: 7 });
    expect([...a.predictions]).toEqual([...b.predictions]);
  });

  it('rejects labels that do not match the examples', () => {
    const tr = fixture(9, 1);
    expect(() => bagOfWordsBaseline(tr.ex, tr.y.subarray(1), tr.ex, tr.y, 3)).toThrow(/one label per example/);
    expect(() => bagOfWordsBaseline(tr.ex, tr.y, tr.ex, tr.y, 2)).toThrow(/class ids in \[0, 2\)/);
  });
});
