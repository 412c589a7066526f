/** AdamW's fused flat update and gradient clipping against a TypeScript reference. */
import { describe, expect, it } from 'vitest';
import { AdamW, backward, constant, mul, Parameter, sum, tensor, truncNormal, Rng } from '../src/index.js';
import { adamwRef } from './helpers/reference.js';
import { assertClose } from './helpers/tolerance.js';

describe('AdamW', () => {
  it('matches the reference for 5 steps, with decay on weights and none on norm/bias parameters', () => {
    const rng = new Rng(2);
    const w = truncNormal([3, 4], 0.5, rng, 'float64');
    const b = constant([4], 0.3, 'float64');
    expect(w.decay).toBe(true);
    expect(b.decay).toBe(false);
    const opt = new AdamW([w, b], { lr: 0.1, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.05 });
    const refW = { p: Float64Array.from(w.toArray()), m: new Float64Array(12), v: new Float64Array(12) };
    const refB = { p: Float64Array.from(b.toArray()), m: new Float64Array(4), v: new Float64Array(4) };
    for (let step = 1; step <= 5; step++) {
      opt.zeroGrad();
      // loss = Σ w² · 0.5 + Σ b³/3, so dw = w and db = b².
      const loss = sum(mul(mul(w, w), tensor(new Array(12).fill(0.5), [3, 4], 'float64')));
      backward(loss);
      const loss2 = sum(mul(mul(b, b), mul(b, tensor(new Array(4).fill(1 / 3), [4], 'float64'))));
      backward(loss2);
      const gw = Array.from(refW.p);
      const gb = Array.from(refB.p).map((v) => v * v);
      assertClose(w.grad!.toArray(), gw, { atol: 1e-12, rtol: 1e-12 }, 'dw');
      assertClose(b.grad!.toArray(), gb, { atol: 1e-12, rtol: 1e-12 }, 'db');
      opt.step();
      adamwRef(refW, gw, step, { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, wd: 0.05 });
      adamwRef(refB, gb, step, { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, wd: 0 });
      assertClose(w.toArray(), refW.p, { atol: 1e-12, rtol: 1e-10 }, `w after step ${step}`);
      assertClose(b.toArray(), refB.p, { atol: 1e-12, rtol: 1e-10 }, `b after step ${step}`);
    }
    expect(opt.stepCount).toBe(5);
  });

  it('parameters become views of one flat buffer per group, and grads accumulate across backward calls', () => {
    const p1 = Parameter.from(tensor([1, 2], [2], 'float64'));
    const p2 = Parameter.from(tensor([3], [1], 'float64'));
    const opt = new AdamW([{ params: [p1, p2], weightDecay: 0 }], { lr: 0.01 });
    expect(p1.native.sharesStorage(p2.native)).toBe(true);
    expect(p1.grad!.native.sharesStorage(opt.flatGrads()[0]!)).toBe(true);
    opt.zeroGrad();
    backward(sum(p1));
    backward(sum(p1));
    expect(Array.from(p1.grad!.toArray())).toEqual([2, 2]);
    expect(Array.from(p2.grad!.toArray())).toEqual([0]);
  });

  it('clipGradNorm scales all gradients to the max norm and returns the norm before', () => {
    const p1 = Parameter.from(tensor([0, 0], [2], 'float64'));
    const p2 = Parameter.from(tensor([0], [1], 'float64'), { decay: false });
    const opt = new AdamW([p1, p2], { lr: 0.01 });
    p1.grad!.native.write(Float64Array.from([3, 0]));
    p2.grad!.native.write(Float64Array.from([4]));
    const norm = opt.clipGradNorm(1);
    expect(norm).toBeCloseTo(5, 12);
    assertClose(p1.grad!.toArray(), [0.6, 0], { atol: 1e-6, rtol: 1e-6 }, 'clipped');
    assertClose(p2.grad!.toArray(), [0.8], { atol: 1e-6, rtol: 1e-6 }, 'clipped');
    // Below the threshold nothing changes.
    expect(opt.clipGradNorm(10)).toBeCloseTo(1, 5);
    assertClose(p2.grad!.toArray(), [0.8], { atol: 1e-6, rtol: 1e-6 }, 'unclipped');
  });
});
