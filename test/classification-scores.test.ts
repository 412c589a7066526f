/** Accuracy and macro-F1 against hand-computed values (scikit-learn's definitions). */
import { describe, expect, it } from 'vitest';
import { classificationScores } from '../src/eval/classification.js';

describe('classificationScores', () => {
  it('computes accuracy and macro-F1 as scikit-learn does', () => {
    // truth:     0 0 0 1 1 2
    // predicted: 0 0 1 1 2 2
    // class 0: tp 2, pred 2, true 3 -> F1 = 4/5; class 1: tp 1, pred 2, true 2 -> 1/2; class 2: tp 1, pred 2, true 1 -> 2/3
    const r = classificationScores([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2], 3);
    expect(r.accuracy).toBeCloseTo(4 / 6, 12);
    expect(r.f1[0]).toBeCloseTo(0.8, 12);
    expect(r.f1[1]).toBeCloseTo(0.5, 12);
    expect(r.f1[2]).toBeCloseTo(2 / 3, 12);
    expect(r.macroF1).toBeCloseTo((0.8 + 0.5 + 2 / 3) / 3, 12);
    expect(r.examples).toBe(6);
  });

  it('averages over the classes present in labels or predictions, as scikit-learn does', () => {
    const r = classificationScores([0, 0, 0, 0], [0, 0, 0, 1], 3);
    expect(r.accuracy).toBe(0.75);
    // class 0: 2·3/(4+3) = 6/7; class 1: true but never predicted, 0; class 2: absent, left out
    expect(r.macroF1).toBeCloseTo(6 / 7 / 2, 12);
    expect(r.f1[2]).toBe(0);
  });

  it('refuses mismatched lengths and ids out of range, naming them', () => {
    expect(() => classificationScores([0], [0, 1], 2)).toThrow('Expected as many predictions as labels for predicted but received 1 predictions and 2 labels');
    expect(() => classificationScores([0, 2], [0, 1], 2)).toThrow('Expected class ids in [0, 2) for predicted but received 2 at 1');
    expect(() => classificationScores([0, 1], [0, -1], 2)).toThrow('Expected class ids in [0, 2) for truth but received -1 at 1');
  });
});
