import { describe, expect, it } from 'vitest';
import { linear, Rng } from '../src/index.js';
import { gradcheck, randLeaf } from './helpers/gradcheck.js';

describe('gradcheck harness', () => {
  it('accepts linear', () => {
    const rng = new Rng(3);
    const x = randLeaf([3, 5], rng);
    const w = randLeaf([4, 5], rng);
    const b = randLeaf([4], rng);
    expect(() => gradcheck(([x, w, b]) => linear(x!, w!, b!), [x, w, b])).not.toThrow();
  });
});
