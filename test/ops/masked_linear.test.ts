/**
 * The masked_linear family (maskedLinear, weightMask, maskedFraction): the
 * forward and both straight-through gradients against plain float64
 * TypeScript loops and against the unfused linear(x, mul(W, mask), b), with
 * no weight, some and every weight masked; a float64 finite-difference check
 * of dx; W and bias frozen (no gradient, bits untouched); bad input as errors
 * naming the argument; and the CUDA kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { backward, fromTypedArray, linear, maskedFraction, maskedLinear, maskedLinearPacked, mul, tensor, weightMask, type Tensor } from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { describeCuda, get, itOnDevice, put } from '../helpers/cuda-harness.js';
import { check, cpu64, DTYPES, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

// x [3, 5, 7] → O = 11: odd sizes everywhere, R = 15 rows.
const XS = [3, 5, 7];
const R = 15;
const I = 7;
const O = 11;

interface Ref {
  y: Float64Array;
  dx: Float64Array;
  ds: Float64Array;
}

/** y = x·(w ⊙ 1[s > τ])ᵀ + b, dx = dy·W_eff, ds = (dyᵀ·x) ⊙ w, each a plain float64 loop. */
function reference(x: ArrayLike<number>, w: ArrayLike<number>, s: ArrayLike<number>, b: ArrayLike<number> | null, tau: number,
  dy: ArrayLike<number>, rows = R, K = I, N = O): Ref {
  const weff = Float64Array.from(w, (v, i) => (s[i]! > tau ? v : 0));
  const y = new Float64Array(rows * N);
  const dx = new Float64Array(rows * K);
  const ds = new Float64Array(N * K);
  for (let r = 0; r < rows; r++)
    for (let n = 0; n < N; n++) {
      let a = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) a += x[r * K + k]! * weff[n * K + k]!;
      y[r * N + n] = a;
    }
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) {
      let a = 0;
      for (let n = 0; n < N; n++) a += dy[r * N + n]! * weff[n * K + k]!;
      dx[r * K + k] = a;
    }
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      let a = 0;
      for (let r = 0; r < rows; r++) a += dy[r * N + n]! * x[r * K + k]!;
      ds[n * K + k] = a * w[n * K + k]!;
    }
  return { y, dx, ds };
}

const leafOf = (v: number[], shape: number[], dtype: 'float32' | 'float64', grad = true): Tensor => {
  const t = tensor(v, shape, dtype);
  t.requiresGrad = grad;
  return t;
};

// Scores in [−1, 1): τ = −2 keeps every weight, τ = 2 none, τ = 0.2 some.
const CASES = [
  { label: '0% masked', tau: -2, fraction: 0 },
  { label: 'some masked', tau: 0.2, fraction: NaN },
  { label: '100% masked', tau: 2, fraction: 1 },
] as const;

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`maskedLinear ${dtype}`, () => {
    const xv = values(R * I, 1);
    const wv = values(O * I, 2, 0.5);
    const sv = values(O * I, 3);
    const bv = values(O, 4);
    const gv = values(R * O, 5);
    for (const c of CASES) {
      it(`${c.label}: y, dx and dscores match float64 loops and the unfused linear(x, mul(W, mask), b)`, () => {
        const x = leafOf(xv, XS, dtype);
        const w = leafOf(wv, [O, I], dtype, false);
        const s = leafOf(sv, [O, I], dtype);
        const b = leafOf(bv, [O], dtype, false);
        const frac = maskedFraction(s, c.tau);
        if (Number.isNaN(c.fraction)) expect(frac).toBeGreaterThan(0.2), expect(frac).toBeLessThan(0.8);
        else expect(frac).toBe(c.fraction);

        const y = maskedLinear(x, w, s, b, c.tau);
        expect(y.shape).toEqual([3, 5, O]);
        backward(y, tensor(gv, [3, 5, O], dtype));
        // The values the tensors hold (float32-rounded), for the float64 loops.
        const q = (v: number[]) => (dtype === 'float32' ? quantize(v, 'float32') : v);
        const ref = reference(q(xv), q(wv), q(sv), q(bv), c.tau, q(gv));
        assertClose(y.toArray(), ref.y, tol, 'y');
        assertClose(x.grad!.toArray(), ref.dx, tol, 'dx');
        assertClose(s.grad!.toArray(), ref.ds, tol, 'dscores');
        if (c.fraction === 1) expect(Array.from(x.grad!.toArray()).every((v) => v === 0)).toBe(true);

        // Unfused: W_eff = W ⊙ mask as a leaf of linear, dscores = dW_eff ⊙ W by hand.
        const mask = weightMask(s, c.tau);
        expect(mask.dtype).toBe(dtype);
        const weff = mul(w, mask).detach();
        weff.requiresGrad = true;
        const x2 = leafOf(xv, XS, dtype);
        const y2 = linear(x2, weff, b);
        backward(y2, tensor(gv, [3, 5, O], dtype));
        const dweff = weff.grad!.toArray();
        const wq = w.toArray();
        const ds2 = Float64Array.from(dweff, (d, i) => d * wq[i]!);
        assertClose(y.toArray(), y2.toArray(), tol, 'y vs unfused');
        assertClose(x.grad!.toArray(), x2.grad!.toArray(), tol, 'dx vs unfused');
        assertClose(s.grad!.toArray(), ds2, tol, 'dscores vs dW_eff ⊙ W');
      });
    }

    it('takes no bias, and empty rows or features', () => {
      const x = tensor(xv.slice(0, 2 * I), [2, I], dtype);
      const w = tensor(wv, [O, I], dtype);
      const s = tensor(sv, [O, I], dtype);
      const q = (v: number[]) => (dtype === 'float32' ? quantize(v, 'float32') : v);
      assertClose(maskedLinear(x, w, s, null, 0.2).toArray(), reference(q(xv), q(wv), q(sv), null, 0.2, new Array(2 * O).fill(0), 2).y, tol, 'no bias');
      expect(maskedLinear(tensor([], [0, I], dtype), w, s, null, 0).shape).toEqual([0, O]);
      const b = tensor(bv, [O], dtype);
      const y = maskedLinear(tensor([], [2, 0], dtype), tensor([], [O, 0], dtype), tensor([], [O, 0], dtype), b, 0);
      assertClose(y.toArray(), [...q(bv), ...q(bv)], tol, 'I = 0 leaves the bias');
    });
  });
}

describe('maskedLinear: gradients', () => {
  it('dx passes a float64 finite-difference check (the mask is constant in x)', () => {
    const w = tensor(values(O * I, 2, 0.5), [O, I], 'float64');
    const s = tensor(values(O * I, 3), [O, I], 'float64');
    const b = tensor(values(O, 4), [O], 'float64');
    gradcheck(([x]) => maskedLinear(x!, w, s, b, 0.2), [leafOf(values(R * I, 1), XS, 'float64')]);
  });

  it('dscores is the straight-through (dyᵀ·x) ⊙ W, nonzero also where the weight is masked', () => {
    const xv = values(R * I, 1);
    const wv = values(O * I, 2, 0.5);
    const sv = values(O * I, 3);
    const gv = values(R * O, 5);
    const s = leafOf(sv, [O, I], 'float64');
    const y = maskedLinear(tensor(xv, XS, 'float64'), tensor(wv, [O, I], 'float64'), s, null, 0.2);
    backward(y, tensor(gv, [3, 5, O], 'float64'));
    const ds = s.grad!.toArray();
    for (let n = 0; n < O; n++)
      for (let k = 0; k < I; k++) {
        let a = 0;
        for (let r = 0; r < R; r++) a += gv[r * O + n]! * xv[r * I + k]!;
        expect(ds[n * I + k]).toBeCloseTo(a * wv[n * I + k]!, 12);
      }
    expect(sv.some((v, i) => v <= 0.2 && ds[i] !== 0)).toBe(true);
  });

  it('leaves W and bias frozen: no gradient, and their bits untouched by forward and backward', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const w = leafOf(values(O * I, 2, 0.5), [O, I], dtype);
      const b = leafOf(values(O, 4), [O], dtype);
      const x = leafOf(values(R * I, 1), XS, dtype);
      const s = leafOf(values(O * I, 3), [O, I], dtype);
      const bits = (t: Tensor) => Array.from(new Uint8Array(t.toArray().slice().buffer));
      const w0 = bits(w);
      const b0 = bits(b);
      backward(maskedLinear(x, w, s, b, 0.2), tensor(values(R * O, 5), [3, 5, O], dtype));
      expect(w.grad).toBeNull();
      expect(b.grad).toBeNull();
      expect(x.grad).not.toBeNull();
      expect(s.grad).not.toBeNull();
      expect(bits(w)).toEqual(w0);
      expect(bits(b)).toEqual(b0);
    }
  });

  it('keeps no masked weight on the tape: the forward holds on to its output only', () => {
    const x = leafOf(values(R * I, 1), XS, 'float64');
    const w = tensor(values(O * I, 2), [O, I], 'float64');
    const s = leafOf(values(O * I, 3), [O, I], 'float64');
    const before = native().liveBytes();
    const y = maskedLinear(x, w, s, null, 0.2);
    expect(native().liveBytes() - before).toBe(y.native.nbytes);
    backward(y, tensor(values(R * O, 5), [3, 5, O], 'float64'));
  });

  it('records nothing when only W and bias require grad', () => {
    const y = maskedLinear(tensor(values(R * I, 1), XS), leafOf(values(O * I, 2), [O, I], 'float32'), tensor(values(O * I, 3), [O, I]),
      leafOf(values(O, 4), [O], 'float32'), 0);
    expect(y.requiresGrad).toBe(false);
  });

  it('gives dx only, or dscores only, when only one of them requires grad', () => {
    const gv = values(R * O, 5);
    const x = leafOf(values(R * I, 1), XS, 'float64', false);
    const s = leafOf(values(O * I, 3), [O, I], 'float64');
    backward(maskedLinear(x, tensor(values(O * I, 2), [O, I], 'float64'), s, null, 0), tensor(gv, [3, 5, O], 'float64'));
    expect(x.grad).toBeNull();
    expect(s.grad).not.toBeNull();
  });
});

describe('maskedLinear: the threshold', () => {
  it('is strict (a score equal to τ is masked) and compared in double, as weightMask does', () => {
    const x = tensor([1], [1, 1]);
    const w = tensor([2, 3, 5], [3, 1]);
    // float32(0.1) is 0.10000000149…, above the double τ = 0.1, so it is kept.
    const s = tensor([0.5, 0.25, 0.1], [3, 1]);
    expect(Array.from(maskedLinear(x, w, s, null, 0.5).toArray())).toEqual([0, 0, 0]);
    expect(Array.from(maskedLinear(x, w, s, null, 0.25).toArray())).toEqual([2, 0, 0]);
    expect(Array.from(maskedLinear(x, w, s, null, 0.1).toArray())).toEqual([2, 3, 5]);
    expect(Array.from(weightMask(s, 0.1).toArray())).toEqual([1, 1, 1]);
  });
});

describe('weightMask and maskedFraction', () => {
  it('are 1[scores > τ] as 0/1 in scores\' dtype and the share of zeros', () => {
    const s = tensor([-1, 0.5, 0.2, 0.3], [2, 2], 'float64');
    expect(Array.from(weightMask(s, 0.2).toArray())).toEqual([0, 1, 0, 1]);
    expect(maskedFraction(s, 0.2)).toBe(0.5);
    expect(maskedFraction(tensor([], [0, 3]), 0)).toBe(0);
  });
});

describe('maskedLinear: bad input', () => {
  const x = tensor(values(R * I, 1), XS);
  const w = tensor(values(O * I, 2), [O, I]);
  const s = tensor(values(O * I, 3), [O, I]);
  const b = tensor(values(O, 4), [O]);
  it('rejects shape and dtype mismatches, naming the argument', () => {
    expect(() => maskedLinear(x, w, tensor(values(O * 8, 3), [O, 8]), b, 0)).toThrow(/Expected shape \[11, 7\] for scores/);
    expect(() => maskedLinear(x, tensor(values(O * 6, 2), [O, 6]), s, b, 0)).toThrow(/\[O, 7\].*for weight/);
    expect(() => maskedLinear(x, w, s, tensor([1, 2], [2]), 0)).toThrow(/Expected shape \[11\] for bias/);
    expect(() => maskedLinear(x, w, s.cast('float64'), b, 0)).toThrow(/Expected a float32 tensor for scores/);
    expect(() => maskedLinear(x, w.cast('float64'), s, b, 0)).toThrow(/for weight/);
    expect(() => maskedLinear(x, w, s, b.cast('float64'), 0)).toThrow(/for bias/);
    expect(() => maskedLinear(x, tensor(values(O * I, 2), [1, O, I]), s, b, 0)).toThrow(/2-D tensor for weight/);
  });
  it('rejects a threshold that is not a finite number', () => {
    for (const tau of [NaN, Infinity, -Infinity]) expect(() => maskedLinear(x, w, s, b, tau)).toThrow(/finite number for threshold/);
    expect(() => maskedLinear(x, w, s, b, '0' as unknown as number)).toThrow(/threshold/);
    expect(() => weightMask(s, NaN)).toThrow(/threshold/);
  });
  it('is checked again in the addon, naming the op', () => {
    const n = native();
    expect(() => n.maskedLinear(x.native, w.native, tensor([0], [1, 1]).native, null, 0)).toThrow(/maskedLinear: Expected shape \[11, 7\] for scores/);
    expect(() => n.maskedLinear(x.native, w.native, s.native, null, NaN)).toThrow(/maskedLinear: Expected a finite threshold for threshold/);
    expect(() => n.maskedLinearBackward(tensor([0], [1, 1]).native, x.native, w.native, s.native, 0, true, true)).toThrow(
      /maskedLinearBackward: Expected shape \[3, 5, 11\] for grad/,
    );
  });
});

/** Packed bits of 1[s > τ], weight i at byte i >> 3, bit i & 7. */
function packed(s: ArrayLike<number>, tau: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(s.length / 8));
  for (let i = 0; i < s.length; i++) if (s[i]! > tau) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

describe('maskedLinearPacked (serving with the mask as packed bits)', () => {
  for (const c of CASES) {
    it(`${c.label}: equals the float64 reference of the same mask`, () => {
      const xv = Array.from({ length: R * I }, (_, i) => Math.sin(i + 1));
      const wv = Array.from({ length: O * I }, (_, i) => Math.cos(2 * i + 1));
      const sv = Array.from({ length: O * I }, (_, i) => Math.sin(3 * i + 2));
      const bv = Array.from({ length: O }, (_, i) => 0.1 * i - 0.3);
      const ref = reference(xv, wv, sv, bv, c.tau, new Float64Array(R * O));
      const bits = packed(sv, c.tau);
      // O·I = 77 weights: the last byte is partly padding.
      expect(bits.length).toBe(10);
      const y = maskedLinearPacked(tensor(xv, XS, 'float64'), tensor(wv, [O, I], 'float64'), fromTypedArray(bits), tensor(bv, [O], 'float64'));
      expect(y.shape).toEqual([3, 5, O]);
      assertClose(y.toArray(), ref.y, tolFor('float64'));
    });
  }
  it('refuses an input that needs a gradient, and bits of the wrong dtype or length, naming the argument', () => {
    const w = tensor(new Array(O * I).fill(0.5), [O, I]);
    const bits = fromTypedArray(new Uint8Array(10));
    expect(() => maskedLinearPacked(leafOf(new Array(R * I).fill(1), XS, 'float32'), w, bits, null)).toThrow(/for input/);
    const x = tensor(new Array(R * I).fill(1), XS);
    expect(() => maskedLinearPacked(x, w, fromTypedArray(new Uint8Array(9)), null)).toThrow(/for bits/);
    expect(() => maskedLinearPacked(x, w, tensor(new Array(10).fill(1), [10]), null)).toThrow(/uint8.*bits|bits.*uint8/);
    expect(() => native().maskedLinearPacked(x.native, w.native, fromTypedArray(new Uint8Array(11)).native, null)).toThrow(/maskedLinearPacked/);
  });
});

// float32 on cuda vs float64 on the CPU; bfloat16 by the naive-bf16 rule.
describeCuda('maskedLinear', () => {
  const xv = values(R * I, 1);
  const wv = values(O * I, 2, 0.5);
  const sv = values(O * I, 3);
  const bv = values(O, 4);
  const gv = values(R * O, 5);
  for (const dtype of DTYPES) {
    for (const c of CASES) {
      it(`${dtype}, ${c.label}: forward and backward match the CPU`, () => {
        const [xq, wq, sq, bq, gq] = [xv, wv, sv, bv, gv].map((v) => quantize(v, dtype));
        const n = native();
        const y = n.maskedLinear(cpu64(xq!, XS), cpu64(wq!, [O, I]), cpu64(sq!, [O, I]), cpu64(bq!, [O]), c.tau);
        const [dx, ds] = n.maskedLinearBackward(cpu64(gq!, [3, 5, O]), cpu64(xq!, XS), cpu64(wq!, [O, I]), cpu64(sq!, [O, I]), c.tau, true, true);
        const d = (v: number[], s: number[]) => put(v, s, dtype, 'cuda');
        const yc = n.maskedLinear(d(xq!, XS), d(wq!, [O, I]), d(sq!, [O, I]), d(bq!, [O]), c.tau);
        expect(yc.device).toBe('cuda');
        const [dxc, dsc] = n.maskedLinearBackward(d(gq!, [3, 5, O]), d(xq!, XS), d(wq!, [O, I]), d(sq!, [O, I]), c.tau, true, true);
        check('y', dtype, yc, y);
        check('dx', dtype, dxc!, dx!);
        // bf16 rounds dW_eff at the GEMM and again after ⊙W, as linearBackward then mul would.
        const dsRef = get(ds!);
        const wRef = Float64Array.from(wq!);
        const dsNaive = dtype === 'bfloat16' ? Array.from(dsRef, (v, i) => (wRef[i] === 0 ? 0 : quantize([quantize([v / wRef[i]!], dtype)[0]! * wRef[i]!], dtype)[0]!)) : undefined;
        check('dscores', dtype, dsc!, dsRef, dsNaive);
      });
    }
  }
  it('packed bits: forward matches the CPU (float32, some masked)', () => {
    const n = native();
    const bits = packed(sv, 0.2);
    const y = n.maskedLinearPacked(cpu64(xv, XS), cpu64(wv, [O, I]), fromTypedArray(bits).native, cpu64(bv, [O]));
    const d = (v: number[], s: number[]) => put(v, s, 'float32', 'cuda');
    const yc = n.maskedLinearPacked(d(xv, XS), d(wv, [O, I]), fromTypedArray(bits).to('cuda').native, d(bv, [O]));
    check('y', 'float32', yc, y);
  });
  itOnDevice('rejects operands on different devices', () => {
    const n = native();
    expect(() => n.maskedLinear(put(xv, XS, 'float32', 'cuda'), put(wv, [O, I], 'float32', 'cuda'), put(sv, [O, I], 'float32', 'cpu'), null, 0)).toThrow(/scores/);
  });
});
