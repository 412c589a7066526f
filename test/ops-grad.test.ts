/** Finite-difference gradient checks, in float64, for every op except attention (test/attention.test.ts). */
import { describe, expect, it } from 'vitest';
import {
  add, biasAdd, crossEntropy, dropout, embedding, gelu, layerNorm, linear, matmul, mean, mul, relu, reshape, Rng,
  scale, softmax, sum, tensor, type Tensor,
} from '../src/index.js';
import { gradcheck, randLeaf } from './helpers/gradcheck.js';

const rng = new Rng(7);
const leaf = (...shape: number[]): Tensor => randLeaf(shape, rng);

describe('gradcheck: linear algebra', () => {
  for (const ta of [false, true])
    for (const tb of [false, true])
      it(`matmul batched transA=${ta} transB=${tb}`, () => {
        const a = leaf(2, ...(ta ? [5, 3] : [3, 5]));
        const b = leaf(2, ...(tb ? [4, 5] : [5, 4]));
        gradcheck(([a, b]) => matmul(a!, b!, { transA: ta, transB: tb }), [a, b]);
      });

  it('matmul with a 2-D b shared across the batch', () => {
    gradcheck(([a, b]) => matmul(a!, b!), [leaf(3, 2, 5), leaf(5, 3)]);
    gradcheck(([a, b]) => matmul(a!, b!, { transA: true, transB: true }), [leaf(2, 5, 3), leaf(4, 5)]);
  });

  it('linear with and without bias, over leading dims', () => {
    gradcheck(([x, w, b]) => linear(x!, w!, b!), [leaf(2, 3, 5), leaf(4, 5), leaf(4)]);
    gradcheck(([x, w]) => linear(x!, w!), [leaf(7, 5), leaf(3, 5)]);
  });
});

describe('gradcheck: elementwise and reductions', () => {
  it('add, mul (including x·x), scale', () => {
    gradcheck(([a, b]) => add(a!, b!), [leaf(3, 4), leaf(3, 4)]);
    gradcheck(([a, b]) => mul(a!, b!), [leaf(3, 4), leaf(3, 4)]);
    gradcheck(([a]) => mul(a!, a!), [leaf(5)]);
    gradcheck(([a]) => scale(a!, -2.5), [leaf(2, 3)]);
  });
  it('biasAdd', () => gradcheck(([x, b]) => biasAdd(x!, b!), [leaf(2, 3, 4), leaf(4)]));
  it('sum and mean', () => {
    gradcheck(([x]) => sum(x!), [leaf(3, 5)]);
    gradcheck(([x]) => mean(x!), [leaf(3, 5)]);
  });
  it('gelu and relu', () => {
    gradcheck(([x]) => gelu(x!), [leaf(4, 5)]);
    // Keep relu inputs away from the kink at 0, where the derivative does not exist.
    const x = tensor([-0.9, -0.4, -0.1, 0.2, 0.5, 0.8], [6], 'float64');
    x.requiresGrad = true;
    gradcheck(([x]) => relu(x!), [x]);
  });
  it('dropout: the mask is a function of (seed, step), so it differentiates like a fixed mask', () => {
    gradcheck(([x]) => dropout(x!, { p: 0.3, seed: 11, step: 4 }), [leaf(6, 7)]);
  });
  it('reshape', () => gradcheck(([x]) => mul(reshape(x!, [3, -1]), reshape(x!, [3, 4])), [leaf(2, 6)]));
});

describe('gradcheck: normalisation, softmax, loss, embedding', () => {
  it('layerNorm with affine, without affine, and odd width', () => {
    gradcheck(([x, w, b]) => layerNorm(x!, w!, b!, 1e-5), [leaf(3, 7), leaf(7), leaf(7)]);
    gradcheck(([x]) => layerNorm(x!, null, null, 1e-5), [leaf(2, 2, 5)]);
  });
  it('softmax', () => gradcheck(([x]) => softmax(x!), [leaf(3, 6)]));
  it('crossEntropy over selected rows with an ignore index', () => {
    const targets = tensor([2, -100, 0, 4], [4], 'int32');
    const rows = tensor([5, 0, 2, 3], [4], 'int32');
    gradcheck(([x]) => crossEntropy(x!, targets, { rows }), [leaf(6, 5)]);
    gradcheck(([x]) => crossEntropy(x!, tensor([1, 0, 3], [3], 'int32')), [leaf(3, 4)]);
  });
  it('embedding with repeated ids (scatter-add backward)', () => {
    const ids = tensor([1, 3, 1, 0, 3, 3], [2, 3], 'int32');
    gradcheck(([t]) => embedding(t!, ids), [leaf(5, 4)]);
  });
});

describe('gradcheck catches a wrong gradient', () => {
  it('fails on a deliberately wrong backward', () => {
    const x = leaf(3);
    let calls = 0;
    // The first call records the graph (analytic gradient of 2x); later calls (FD) evaluate 3x.
    expect(() => gradcheck(([x]) => scale(x!, calls++ === 0 ? 2 : 3), [x])).toThrow(/gradient of input 0/);
  });
});
