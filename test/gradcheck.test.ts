/** The finite-difference gradient check (helpers/gradcheck.ts) catches a wrong backward. */
import { describe, expect, it } from 'vitest';
import { Rng, scale, type Tensor } from '../src/index.js';
import { gradcheck, randLeaf } from './helpers/gradcheck.js';

const rng = new Rng(7);
const leaf = (...shape: number[]): Tensor => randLeaf(shape, rng);

describe('gradcheck catches a wrong gradient', () => {
  it('fails on a deliberately wrong backward', () => {
    const x = leaf(3);
    let calls = 0;
    // The first call records the graph (analytic gradient of 2x); later calls (FD) evaluate 3x.
    expect(() => gradcheck(([x]) => scale(x!, calls++ === 0 ? 2 : 3), [x])).toThrow(/gradient of input 0/);
  });
});
