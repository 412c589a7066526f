/**
 * The optim family: AdamW's fused flat update (adamwStep, run by AdamW.step)
 * and gradient clipping (clipGradNorm) against a TypeScript reference;
 * emaUpdate and EmaTeacher against a float64 reference, the exact ends decay 0
 * and 1, and bad input; and the CUDA kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW, backward, constant, mul, Parameter, sum, tensor, truncNormal, Rng, type DType, type Tensor,
} from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { readNorm } from '../../src/optim/adamw.js';
import { EmaTeacher, emaUpdate } from '../../src/optim/ema.js';
import { assertBf16, bf16, describeCuda, get, itOnDevice, put, roundBf16 } from '../helpers/cuda-harness.js';
import { adamwRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

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

describe('clipping and the step guard on the device (gradNorm, adamw clipNorm/guards, AdamW.stepClipped)', () => {
  const f32 = (a: number[]) => tensor(a, [a.length], 'float32').native;
  const bits = (t: { read(): ArrayLike<number> }) => Array.from(t.read());

  it('gradNorm is the float32 rounding of the norm clipGradNorm returns, in float32 and float64', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const gs = [tensor([3, 0, 1.5], [3], dtype).native, tensor([4, -2.25], [2], dtype).native];
      const n = native().gradNorm(gs);
      expect(n.dtype).toBe('float32');
      expect(n.shape).toEqual([1]);
      expect(n.read()[0]).toBe(Math.fround(native().clipGradNorm(gs, 1e30)));
      expect(n.read()[0]).toBe(Math.fround(Math.sqrt(9 + 2.25 + 16 + 2.25 ** 2)));
    }
    expect(() => native().gradNorm([])).toThrow(/at least one gradient tensor for grads/);
  });

  it('adamw with clipNorm equals the step with the clip factor as gradScale, bit for bit, and clipGradNorm + step to rounding', () => {
    const n = 37;
    const g0 = Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) * 3);
    const p0 = Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
    const opts = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 };
    const state = () => ({ p: f32(p0), g: f32(g0), m: f32(p0.map((x) => x * 0.1)), v: f32(p0.map((x) => x * x * 0.01)) });
    for (const maxNorm of [1, 1e6]) {
      const a = state();
      const norm = native().gradNorm([a.g]);
      native().adamw(a.p, a.g, a.m, a.v, { ...opts, clipNorm: norm, maxNorm });
      const nv = norm.read()[0]!;
      const b = state();
      native().adamw(b.p, b.g, b.m, b.v, { ...opts, gradScale: nv > maxNorm ? maxNorm / (nv + 1e-6) : 1 });
      for (const k of ['p', 'm', 'v'] as const) expect(bits(a[k]), `${k} at maxNorm ${maxNorm}`).toEqual(bits(b[k]));
      const c = state();
      native().clipGradNorm([c.g], maxNorm);
      native().adamw(c.p, c.g, c.m, c.v, opts);
      for (const k of ['p', 'm', 'v'] as const) assertClose(a[k].read(), c[k].read(), { atol: 1e-7, rtol: 1e-6 }, `${k} vs clipGradNorm`);
      if (maxNorm === 1) expect(bits(a.p)).not.toEqual(p0.map(Math.fround));
    }
  });

  it('skips the whole update, param and moments untouched, when the norm or any guard is not finite', () => {
    const p0 = [0.5, -1, 2];
    for (const [label, extra] of [
      ['NaN norm', { clipNorm: f32([NaN]), maxNorm: 1 }],
      ['infinite norm', { clipNorm: f32([Infinity]), maxNorm: 1 }],
      ['NaN guard', { guards: [f32([1]), f32([NaN])] }],
      ['-Infinity guard', { guards: [f32([-Infinity])] }],
    ] as const) {
      const p = f32(p0), g = f32([1, 1, 1]), m = f32([0.1, 0.2, 0.3]), v = f32([0.01, 0.02, 0.03]);
      native().adamw(p, g, m, v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1, ...(extra as object) });
      expect(bits(p), label).toEqual(p0);
      expect(bits(m), label).toEqual([0.1, 0.2, 0.3].map(Math.fround));
      expect(bits(v), label).toEqual([0.01, 0.02, 0.03].map(Math.fround));
    }
    // Finite guards change nothing about the step.
    const a = f32(p0), b = f32(p0);
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    native().adamw(a, f32([1, 2, 3]), f32([0, 0, 0]), f32([0, 0, 0]), { ...o, guards: [f32([2.5])] });
    native().adamw(b, f32([1, 2, 3]), f32([0, 0, 0]), f32([0, 0, 0]), o);
    expect(bits(a)).toEqual(bits(b));
  });

  it('names a bad clipNorm, maxNorm or guard', () => {
    const p = () => f32([1, 2]);
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => native().adamw(p(), p(), p(), p(), { ...o, clipNorm: f32([1, 2]), maxNorm: 1 })).toThrow(/a float32 tensor of one element for clipNorm but received float32 tensor \[2\]/);
    expect(() => native().adamw(p(), p(), p(), p(), { ...o, clipNorm: f32([1]) })).toThrow(/a positive maxNorm with clipNorm for maxNorm/);
    expect(() => native().adamw(p(), p(), p(), p(), { ...o, guards: [f32([1]), tensor([1], [1], 'float64').native] })).toThrow(/one element for guards\[1\] but received float64/);
    expect(() => native().adamw(p(), p(), p(), p(), { ...o, guards: Array.from({ length: 9 }, () => f32([1])) })).toThrow(/at most 8 guard tensors for guards/);
  });

  it('AdamW.stepClipped steps as clipGradNorm + step, and a non-finite norm in either group set skips every group', () => {
    const make = () => {
      const a = Parameter.from(tensor([0.5, -0.25, 1], [3], 'float32'));
      const b = Parameter.from(tensor([2, -1], [2], 'float32'));
      const opt = new AdamW([{ params: [a] }, { params: [b], clip: false }], { lr: 0.05 });
      a.grad!.native.write(Float32Array.from([3, 0, 4]));
      b.grad!.native.write(Float32Array.from([10, 1]));
      return { a, b, opt };
    };
    const x = make();
    const norm = readNorm(x.opt.stepClipped(1));
    const y = make();
    expect(norm).toBe(Math.fround(y.opt.clipGradNorm(1)));
    y.opt.step();
    assertClose(x.a.toArray(), y.a.toArray(), { atol: 1e-7, rtol: 1e-6 }, 'clipped group');
    expect(Array.from(x.b.toArray())).toEqual(Array.from(y.b.toArray()));  // unclipped: the same step
    // NaN in the unclipped group: nothing moves, and the norm read says so.
    for (const which of ['a', 'b'] as const) {
      const z = make();
      z[which].grad!.native.write(Float32Array.from(which === 'a' ? [NaN, 0, 0] : [Infinity, 0]));
      // clipGradNorm's rule: the clipped groups' norm (NaN), or the free groups' when that one is not (Infinity).
      expect(readNorm(z.opt.stepClipped(1))).toBe(which === 'a' ? NaN : Infinity);
      expect(Array.from(z.a.toArray())).toEqual([0.5, -0.25, 1]);
      expect(Array.from(z.b.toArray())).toEqual([2, -1]);
    }
    expect(() => make().opt.stepClipped(1, Array.from({ length: 7 }, () => f32([1])))).toThrow(/at most 6 guard tensors/);
  });

  it('undoSkippedStep takes back the count of a skipped step: the next step is a fresh optimizer\'s first', () => {
    const make = () => {
      const a = Parameter.from(tensor([0.5, -0.25, 1], [3], 'float32'));
      const opt = new AdamW([a], { lr: 0.05 });
      return { a, opt };
    };
    const x = make();
    x.a.grad!.native.write(Float32Array.from([NaN, 1, 1]));
    expect(readNorm(x.opt.stepClipped(1))).toBeNaN();
    expect(x.opt.stepCount).toBe(1);
    x.opt.undoSkippedStep();
    expect(x.opt.stepCount).toBe(0);
    x.a.grad!.native.write(Float32Array.from([0.3, 1, -2]));
    readNorm(x.opt.stepClipped(1));
    const y = make();
    y.a.grad!.native.write(Float32Array.from([0.3, 1, -2]));
    readNorm(y.opt.stepClipped(1));
    expect(Array.from(x.a.toArray())).toEqual(Array.from(y.a.toArray()));
    expect(x.opt.stepCount).toBe(1);
  });
});

const rng = new Rng(77);

function rand(shape: number[], dtype: DType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => rng.uniform() * 4 - 2), shape, dtype);
}

const emaRef = (dst: ArrayLike<number>, src: ArrayLike<number>, decay: number): Float64Array =>
  Float64Array.from(dst, (d, i) => decay * d + (1 - decay) * src[i]!);

describe('emaUpdate', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`matches decay·dst + (1 − decay)·src: ${dtype}, odd sizes, one size past the threading grain`, () => {
      const shapes = [[1], [3, 7], [5, 1, 9], [70001]];
      const dst = shapes.map((s) => rand(s, dtype));
      const src = shapes.map((s) => rand(s, dtype));
      const before = dst.map((t) => t.toArray());
      emaUpdate(dst, src, 0.9993);
      dst.forEach((t, i) => assertClose(t.toArray(), emaRef(before[i]!, src[i]!.toArray(), 0.9993), tolFor(dtype), `dst[${i}]`));
    });

  it('decay 1 leaves dst as it was and decay 0 copies src, exactly', () => {
    const dst = [rand([4, 5], 'float32'), rand([33], 'float64')];
    const src = [rand([4, 5], 'float32'), rand([33], 'float64')];
    const before = dst.map((t) => Array.from(t.toArray()));
    emaUpdate(dst, src, 1);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(before[i]));
    emaUpdate(dst, src, 0);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(Array.from(src[i]!.toArray())));
  });

  it('an empty list is a no-op', () => {
    expect(() => emaUpdate([], [], 0.5)).not.toThrow();
  });

  it('rejects bad input, naming the argument, before writing anything', () => {
    const dst = [rand([2, 3], 'float32'), rand([4], 'float32')];
    const before = dst.map((t) => Array.from(t.toArray()));
    const good = rand([2, 3], 'float32');
    expect(() => emaUpdate(dst, [good], 0.5)).toThrow(/Expected 2 tensors \(one per dst tensor\) for src but received 1/);
    expect(() => emaUpdate(dst, [good, rand([5], 'float32')], 0.5)).toThrow(/Expected shape \[4\] for src\[1\]/);
    expect(() => emaUpdate(dst, [good, rand([4], 'float64')], 0.5)).toThrow(/Expected a float32 tensor for src\[1\]/);
    expect(() => emaUpdate(dst, [good, null as unknown as Tensor], 0.5)).toThrow(/Expected a Tensor for src\[1\]/);
    expect(() => emaUpdate([tensor([1, 2], [2], 'int32')], [tensor([1, 2], [2], 'int32')], 0.5)).toThrow(/for dst\[0\]/);
    for (const decay of [-0.1, 1.5, Number.NaN]) expect(() => emaUpdate(dst, [good, rand([4], 'float32')], decay)).toThrow(/for decay/);
    expect(() => emaUpdate(dst, 'x' as unknown as Tensor[], 0.5)).toThrow(/Expected an array of tensors for src/);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(before[i]));
  });

  it('the native binding checks its arguments too', () => {
    const a = rand([2, 3], 'float64');
    expect(() => native().emaUpdate(a.native, rand([3, 2], 'float64').native, 0.5)).toThrow(
      /emaUpdate: Expected shape \[2, 3\] for src but received float64 tensor \[3, 2\]/,
    );
    expect(() => native().emaUpdate(a.native, rand([2, 3], 'float32').native, 0.5)).toThrow(/emaUpdate: Expected a float64 tensor for src/);
    expect(() => native().emaUpdate(a.native, a.native, 2)).toThrow(/emaUpdate: Expected a number in \[0, 1\] for decay but received 2/);
    expect(() => native().emaUpdate(tensor([1], [1], 'uint8').native, tensor([1], [1], 'uint8').native, 0.5)).toThrow(/for dst/);
  });
});

describe('EmaTeacher', () => {
  it('tracks the student tensor by tensor, in place on its own parameters', () => {
    const teacher = [Parameter.from(rand([3, 4], 'float64')), Parameter.from(rand([4], 'float64'))];
    const student = [rand([3, 4], 'float64'), rand([4], 'float64')];
    const ema = new EmaTeacher(teacher);
    let expected: Float64Array[] = teacher.map((t) => Float64Array.from(t.toArray()));
    for (const decay of [0.999, 0.9, 0.5]) {
      ema.update(student, decay);
      expected = expected.map((e, i) => emaRef(e, student[i]!.toArray(), decay));
    }
    teacher.forEach((t, i) => assertClose(t.toArray(), expected[i]!, tolFor('float64'), `teacher[${i}]`));
    expect(ema.params[0]).toBe(teacher[0]);
  });

  it('names its arguments in errors', () => {
    expect(() => new EmaTeacher([rand([2], 'float32'), tensor([1], [1], 'int32')])).toThrow(/for params\[1\]/);
    const ema = new EmaTeacher([rand([2], 'float32')]);
    expect(() => ema.update([rand([3], 'float32')], 0.99)).toThrow(/Expected shape \[2\] for studentParams\[0\]/);
    expect(() => ema.update([], 0.99)).toThrow(/for studentParams/);
    expect(() => ema.update([rand([2], 'float32')], 1.01)).toThrow(/for decay/);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// AdamW (float32, and bfloat16 params with float32 master weights), the EMA
// update and global gradient-norm clipping.

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

  itOnDevice('asks for master with a bfloat16 param and refuses it with a float32 one', () => {
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

  it('gradNorm stays on the device with the bits of clipGradNorm; adamw clips with it there and skips on a non-finite guard', () => {
    const data = [vals(1000, 61), vals(33, 62)];
    const gs = data.map((d) => put(d, [d.length], 'float32', 'cuda'));
    const n = native().gradNorm(gs);
    expect(n.device).toBe('cuda');
    expect(get(n)[0]).toBe(Math.fround(native().clipGradNorm(data.map((d) => put(d, [d.length], 'float32', 'cuda')), 1e30)));
    const p0 = vals(1000, 63);
    const opts = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 2 };
    const run = (device: 'cpu' | 'cuda', extra: object) => {
      const p = put(p0, [1000], 'float32', device);
      const m = put(p0.map((x) => x * 0.1), [1000], 'float32', device);
      const v = put(p0.map((x) => x * x * 0.01), [1000], 'float32', device);
      native().adamw(p, put(data[0]!, [1000], 'float32', device), m, v, { ...opts, ...extra });
      return [get(p), get(m), get(v)];
    };
    const norm = (device: 'cpu' | 'cuda') => native().gradNorm([put(data[0]!, [1000], 'float32', device)]);
    const want = run('cpu', { clipNorm: norm('cpu'), maxNorm: 1 });
    const got = run('cuda', { clipNorm: norm('cuda'), maxNorm: 1 });
    for (let k = 0; k < 3; k++) assertClose(got[k]!, want[k]!, tolFor('float32'), `clipped adamw [${k}]`);
    for (const extra of [{ guards: [put([NaN], [1], 'float32', 'cuda')] }, { clipNorm: put([Infinity], [1], 'float32', 'cuda'), maxNorm: 1 }]) {
      const skipped = run('cuda', extra);
      expect(Array.from(skipped[0]!)).toEqual(Array.from(p0, (x) => Math.fround(x)));
      expect(Array.from(skipped[1]!)).toEqual(Array.from(p0, (x) => Math.fround(x * 0.1)));
      expect(Array.from(skipped[2]!)).toEqual(Array.from(p0, (x) => Math.fround(x * x * 0.01)));
    }
  });
});
