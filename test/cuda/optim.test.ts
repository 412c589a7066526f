// AdamW (float32, and bfloat16 params with float32 master weights), the EMA
// update and global gradient-norm clipping on cuda against the CPU.
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';
import { assertBf16, bf16, describeCuda, get, put, roundBf16 } from './harness.js';

function vals(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

const OPTS = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradScale: 0.7 };

describeCuda('adamw', () => {
  it('float32 on cuda follows float64 on the CPU over 3 steps (odd size)', () => {
    const n = 1031;
    const p0 = vals(n, 1);
    const cp = put(p0, [n], 'float64', 'cpu');
    const cm = put(new Array(n).fill(0), [n], 'float64', 'cpu');
    const cv = put(new Array(n).fill(0), [n], 'float64', 'cpu');
    const gp = put(p0, [n], 'float32', 'cuda');
    const gm = put(new Array(n).fill(0), [n], 'float32', 'cuda');
    const gv = put(new Array(n).fill(0), [n], 'float32', 'cuda');
    for (let step = 1; step <= 3; step++) {
      const g = vals(n, 10 + step);
      native().adamw(cp, put(g, [n], 'float64', 'cpu'), cm, cv, { ...OPTS, step });
      native().adamw(gp, put(g, [n], 'float32', 'cuda'), gm, gv, { ...OPTS, step });
      assertClose(get(gp), get(cp), tolFor('float32'), `param after step ${step}`);
      assertClose(get(gm), get(cm), tolFor('float32'), `m after step ${step}`);
      assertClose(get(gv), get(cv), tolFor('float32'), `v after step ${step}`);
    }
  });

  for (const gradDtype of ['bfloat16', 'float32'] as const)
    it(`bfloat16 param with float32 master (grad ${gradDtype}): master follows the CPU, param = bf16(master)`, () => {
      const n = 777;
      const p0 = vals(n, 2);
      const cp = put(p0, [n], 'float64', 'cpu');
      const cm = put(new Array(n).fill(0), [n], 'float64', 'cpu');
      const cv = put(new Array(n).fill(0), [n], 'float64', 'cpu');
      const master = put(p0, [n], 'float32', 'cuda');
      const param = put(p0, [n], 'bfloat16', 'cuda');
      const gm = put(new Array(n).fill(0), [n], 'float32', 'cuda');
      const gv = put(new Array(n).fill(0), [n], 'float32', 'cuda');
      for (let step = 1; step <= 3; step++) {
        // The CPU reference gets the gradient the device sees (rounded when bf16).
        const g = vals(n, 20 + step);
        const gSeen = gradDtype === 'bfloat16' ? roundBf16(g) : Float64Array.from(g, (x) => Math.fround(x));
        native().adamw(cp, put(gSeen, [n], 'float64', 'cpu'), cm, cv, { ...OPTS, step });
        native().adamw(param, put(g, [n], gradDtype, 'cuda'), gm, gv, { ...OPTS, step, master });
        assertClose(get(master), get(cp), tolFor('float32'), `master after step ${step}`);
        expect(Array.from(get(param))).toEqual(Array.from(get(master), bf16));
      }
    });

  it('asks for master with a bfloat16 param and refuses it with a float32 one', () => {
    const p = put([1, 2], [2], 'bfloat16', 'cuda');
    const f = put([0, 0], [2], 'float32', 'cuda');
    expect(() => native().adamw(p, put([1, 1], [2], 'bfloat16', 'cuda'), f, f, { ...OPTS, step: 1 })).toThrow(/for master/);
    const q = put([1, 2], [2], 'float32', 'cuda');
    expect(() => native().adamw(q, f, f, f, { ...OPTS, step: 1, master: f })).toThrow(/no master/);
    const m16 = put([0, 0], [2], 'bfloat16', 'cuda');
    expect(() => native().adamw(p, f, m16, f, { ...OPTS, step: 1, master: put([1, 2], [2], 'float32', 'cuda') })).toThrow(/float32 tensor for m/);
  });
});

describeCuda('emaUpdate', () => {
  it('float32 matches float64 on the CPU; decay 1 keeps dst and 0 copies src', () => {
    const n = 517;
    const d0 = vals(n, 3);
    const s0 = vals(n, 4);
    for (const decay of [0.996, 1, 0]) {
      const cd = put(d0, [n], 'float64', 'cpu');
      native().emaUpdate(cd, put(s0, [n], 'float64', 'cpu'), decay);
      const gd = put(d0, [n], 'float32', 'cuda');
      native().emaUpdate(gd, put(s0, [n], 'float32', 'cuda'), decay);
      assertClose(get(gd), get(cd), tolFor('float32'), `decay ${decay}`);
    }
  });

  it('bfloat16 is within 2x the naive bf16 error', () => {
    const n = 300;
    const d0 = vals(n, 5);
    const s0 = vals(n, 6);
    const decay = 0.9;
    const ref = d0.map((d, i) => decay * d + (1 - decay) * s0[i]!);
    const naive = d0.map((d, i) => bf16(bf16(decay * bf16(d)) + bf16((1 - decay) * bf16(s0[i]!))));
    const gd = put(d0, [n], 'bfloat16', 'cuda');
    native().emaUpdate(gd, put(s0, [n], 'bfloat16', 'cuda'), decay);
    assertBf16('ema', get(gd), ref, naive);
  });
});

describeCuda('clipGradNorm', () => {
  it('returns the global norm over mixed float32/bfloat16 tensors, scales above maxNorm, and is deterministic', () => {
    const shapes = [[3, 5], [1], [1000], [257]];
    const data = shapes.map((s, k) => vals(s.reduce((a, b) => a * b, 1), 40 + k));
    const dts = ['float32', 'bfloat16', 'float32', 'bfloat16'] as const;
    const seen = data.map((d, k) => (dts[k] === 'bfloat16' ? roundBf16(d) : Float64Array.from(d, (x) => Math.fround(x))));
    let ss = 0;
    for (const d of seen) for (const x of d) ss += x * x;
    const expectNorm = Math.sqrt(ss);
    const make = () => data.map((d, k) => put(d, shapes[k]!, dts[k]!, 'cuda'));
    // Below the norm: scaled by max / (norm + 1e-6).
    const gs = make();
    const norm = native().clipGradNorm(gs, 1);
    expect(Math.abs(norm - expectNorm)).toBeLessThanOrEqual(1e-9 * expectNorm);
    const f = 1 / (norm + 1e-6);
    for (let k = 0; k < gs.length; k++) {
      const want = Float64Array.from(seen[k]!, (x) => x * f);
      if (dts[k] === 'float32') assertClose(get(gs[k]!), want, tolFor('float32'), `scaled grads[${k}]`);
      else assertBf16(`scaled grads[${k}]`, get(gs[k]!), want, roundBf16(want));
    }
    // Above the norm: untouched; and the same bits on a second run.
    const hs = make();
    const norm2 = native().clipGradNorm(hs, 1e9);
    expect(norm2).toBe(norm);
    for (let k = 0; k < hs.length; k++) expect(Array.from(get(hs[k]!))).toEqual(Array.from(seen[k]!));
    expect(native().clipGradNorm([], 1)).toBe(0);
  });
});
