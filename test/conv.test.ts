/**
 * Dense conv ops (conv2d, convTranspose2d, batchNorm2d, pooling, masks) against direct-loop
 * float64 references at odd sizes, finite-difference gradients in float64, running-stat updates
 * by PyTorch's formula, masked BN at 0/60/100% masked, bit-identical results on 1 and 2 threads,
 * and bad input.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backward, mul, Rng, runtimeInfo, scope, setNumThreads, sum, tensor, type DType, type Tensor } from '../src/index.js';
import {
  applyMask, avgPool2d, batchNorm2d, conv2d, convTranspose2d, globalAvgPool, maxPool2d, upsampleMask,
} from '../src/ops/conv.js';
import { native } from '../src/native/loader.js';
import { gradcheck, randLeaf } from './helpers/gradcheck.js';
import { assertClose, tolFor, type Tol } from './helpers/tolerance.js';

const rng = new Rng(77);
const threads0 = runtimeInfo().threads;
afterAll(() => setNumThreads(threads0));

type Shape4 = [number, number, number, number];
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const f64 = (t: Tensor): Float64Array => Float64Array.from(t.toArray());

function rand(shape: readonly number[], dtype: DType, grad = true): Tensor {
  const t = tensor(Array.from({ length: numel(shape) }, () => rng.uniform() * 2 - 1), shape, dtype);
  t.requiresGrad = grad;
  return t;
}

/** The K-term sum rule of gemm.test.ts: error grows with the number of terms. */
function tolSum(dtype: DType, terms: number): Tol {
  const eps = dtype === 'float32' ? 1.2e-7 : 2.2e-16;
  return { atol: 4 * Math.max(terms, 1) * eps, rtol: 16 * eps };
}

/** Runs sum(f(inputs) · dy), backward, and reads the output and every input gradient. */
function forwardBackward(f: () => Tensor, dy: ArrayLike<number>, inputs: Array<Tensor | null>): { y: Float64Array; grads: Array<Float64Array | null> } {
  return scope(() => {
    for (const t of inputs) if (t) { t.grad?.dispose(); t.grad = null; }
    const y = f();
    backward(sum(mul(y, tensor(Array.from(dy), y.shape, y.dtype))));
    return { y: f64(y), grads: inputs.map((t) => (t?.grad ? f64(t.grad) : null)) };
  });
}

// ---- references (float64, direct loops) -------------------------------------------------------

interface ConvRef { y: Float64Array; dx: Float64Array; dw: Float64Array; db: Float64Array; shape: Shape4 }

/**
 * Conv2d, or with `transposed` its adjoint, with every gradient for the output gradient dy.
 * Each (input pixel, output pixel, weight) triple is visited once: y += x·w, dx += dy·w, dw += dy·x.
 */
function convRef(
  x: Float64Array, xs: Shape4, w: Float64Array, ws: Shape4, bias: Float64Array | null,
  s: number, p: number, groups: number, transposed: boolean, dyOf: (n: number) => Float64Array,
): ConvRef {
  const [B, Cin, H, W] = xs;
  const [w0, w1, kh, kw] = ws;
  const Cout = transposed ? w1 * groups : w0;
  const Ho = transposed ? (H - 1) * s - 2 * p + kh : Math.floor((H + 2 * p - kh) / s) + 1;
  const Wo = transposed ? (W - 1) * s - 2 * p + kw : Math.floor((W + 2 * p - kw) / s) + 1;
  const shape: Shape4 = [B, Cout, Ho, Wo];
  const y = new Float64Array(numel(shape));
  const dy = dyOf(y.length);
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(Cout);
  const cig = Cin / groups, cog = Cout / groups;
  // For conv2d the image side (unfolded) is x; for the transpose it is y.
  const visit = (xi: number, yi: number, wi: number): void => {
    y[yi]! += x[xi]! * w[wi]!;
    dx[xi]! += dy[yi]! * w[wi]!;
    dw[wi]! += dy[yi]! * x[xi]!;
  };
  for (let b = 0; b < B; b++)
    for (let g = 0; g < groups; g++)
      for (let ci = 0; ci < cig; ci++)
        for (let co = 0; co < cog; co++)
          for (let ki = 0; ki < kh; ki++)
            for (let kj = 0; kj < kw; kj++) {
              const wi = transposed ? (((g * cig + ci) * cog + co) * kh + ki) * kw + kj : (((g * cog + co) * cig + ci) * kh + ki) * kw + kj;
              // Positions q (small side) and image pixels i (big side): i = q·s − p + k.
              const [QH, QW, IH, IW] = transposed ? [H, W, Ho, Wo] : [Ho, Wo, H, W];
              for (let qy = 0; qy < QH; qy++)
                for (let qx = 0; qx < QW; qx++) {
                  const iy = qy * s - p + ki, ix = qx * s - p + kj;
                  if (iy < 0 || iy >= IH || ix < 0 || ix >= IW) continue;
                  const xc = (b * Cin + g * cig + ci), yc = (b * Cout + g * cog + co);
                  const xi = transposed ? (xc * H + qy) * W + qx : (xc * H + iy) * W + ix;
                  const yi = transposed ? (yc * Ho + iy) * Wo + ix : (yc * Ho + qy) * Wo + qx;
                  visit(xi, yi, wi);
                }
            }
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor(i / (Ho * Wo)) % Cout;
    if (bias) y[i]! += bias[c]!;
    db[c]! += dy[i]!;
  }
  return { y, dx, dw, db, shape };
}

interface BnRef { y: Float64Array; mean: Float64Array; varB: Float64Array; n: number }

function batchNormRef(
  x: Float64Array, [B, C, H, W]: Shape4, w: Float64Array, b: Float64Array, mask: Uint8Array | null,
  stats: { mean: ArrayLike<number>; var: ArrayLike<number> } | null, eps: number,
): BnRef {
  const S = H * W;
  const active = (bb: number, s: number): boolean => !mask || mask[bb * S + s] === 1;
  const mean = new Float64Array(C), varB = new Float64Array(C), y = new Float64Array(x.length);
  let n = 0;
  for (let bb = 0; bb < B; bb++) for (let s = 0; s < S; s++) if (active(bb, s)) n++;
  for (let c = 0; c < C; c++) {
    if (stats) {
      mean[c] = stats.mean[c]!;
      varB[c] = stats.var[c]!;
    } else if (n > 0) {
      let m = 0;
      for (let bb = 0; bb < B; bb++) for (let s = 0; s < S; s++) if (active(bb, s)) m += x[(bb * C + c) * S + s]!;
      m /= n;
      let v = 0;
      for (let bb = 0; bb < B; bb++) for (let s = 0; s < S; s++) if (active(bb, s)) v += (x[(bb * C + c) * S + s]! - m) ** 2;
      mean[c] = m;
      varB[c] = v / n;
    }
    for (let bb = 0; bb < B; bb++)
      for (let s = 0; s < S; s++) {
        const i = (bb * C + c) * S + s;
        y[i] = active(bb, s) ? ((x[i]! - mean[c]!) / Math.sqrt(varB[c]! + eps)) * w[c]! + b[c]! : 0;
      }
  }
  return { y, mean, varB, n };
}

function poolRef(
  x: Float64Array, [B, C, H, W]: Shape4, k: number, s: number, p: number, kind: 'max' | 'avg', includePad = true,
): { y: Float64Array; shape: Shape4; argmax: Int32Array } {
  const Ho = Math.floor((H + 2 * p - k) / s) + 1, Wo = Math.floor((W + 2 * p - k) / s) + 1;
  const y = new Float64Array(B * C * Ho * Wo), argmax = new Int32Array(y.length);
  for (let bc = 0; bc < B * C; bc++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        let best = -Infinity, at = -1, acc = 0, cnt = 0;
        for (let ki = 0; ki < k; ki++)
          for (let kj = 0; kj < k; kj++) {
            const iy = oy * s - p + ki, ix = ox * s - p + kj;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            const v = x[bc * H * W + iy * W + ix]!;
            if (v > best) { best = v; at = iy * W + ix; }
            acc += v;
            cnt++;
          }
        const o = (bc * Ho + oy) * Wo + ox;
        y[o] = kind === 'max' ? best : acc / (includePad ? k * k : cnt);
        argmax[o] = at;
      }
  return { y, shape: [B, C, Ho, Wo], argmax };
}

// ---- conv2d / convTranspose2d -----------------------------------------------------------------

function checkConv(dtype: DType, xs: Shape4, ws: Shape4, s: number, p: number, groups: number, transposed: boolean, withBias = true): void {
  const x = rand(xs, dtype);
  const w = rand(ws, dtype);
  const Cout = transposed ? ws[1] * groups : ws[0];
  const b = withBias ? rand([Cout], dtype) : null;
  const dys: number[] = [];
  const ref = convRef(f64(x), xs, f64(w), ws, b ? f64(b) : null, s, p, groups, transposed, (n) => {
    for (let i = 0; i < n; i++) dys.push(rng.uniform() * 2 - 1);
    return Float64Array.from(dys);
  });
  const op = transposed ? convTranspose2d : conv2d;
  const got = forwardBackward(() => op(x, w, b, { stride: s, padding: p, groups }), dys, [x, w, b]);
  const k = ws[2] * ws[3];
  const cig = xs[1] / groups;
  assertClose(got.y, ref.y, tolSum(dtype, cig * k + 1), 'y');
  assertClose(got.grads[0]!, ref.dx, tolSum(dtype, Cout * k), 'dx');
  assertClose(got.grads[1]!, ref.dw, tolSum(dtype, numel(ref.shape) / Cout), 'dw');
  if (b) assertClose(got.grads[2]!, ref.db, tolSum(dtype, numel(ref.shape) / Cout), 'db');
  for (const t of [x, w, b]) t?.dispose();
}

describe('conv2d', () => {
  // B=2, Cin=3, Cout=5, 7×9: kernels 1, 3, 4, 7; strides 1, 2; paddings 0..3.
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const k of [1, 3, 4, 7])
      for (const s of [1, 2])
        it(`matches the reference: ${dtype} k${k} s${s} p0..3, with and without bias`, () => {
          for (let p = 0; p <= 3; p++) checkConv(dtype, [2, 3, 7, 9], [5, 3, k, k], s, p, 1, false, p % 2 === 0);
        });

  it('matches the reference with groups and depthwise (3×3, 7×7), strides 1 and 2', () => {
    for (const dtype of ['float32', 'float64'] as DType[]) {
      checkConv(dtype, [2, 6, 7, 9], [4, 3, 3, 3], 1, 1, 2, false);
      checkConv(dtype, [3, 6, 8, 5], [6, 2, 3, 3], 2, 0, 3, false);
      for (const [k, p] of [[3, 1], [7, 3], [7, 0], [4, 2], [3, 3], [1, 2]] as const)
        for (const s of [1, 2]) checkConv(dtype, [2, 4, 7, 9], [4, 1, k, k], s, p, 4, false);
      checkConv(dtype, [2, 3, 6, 37], [3, 1, 7, 7], 1, 3, 3, false); // rows of several vectors plus a tail
    }
  });

  it('matches the reference where images are batched into one GEMM and where they are not', () => {
    // 17×17 (289 positions) takes one GEMM per image; 10×10 batches 3 images, leaving a lone last one.
    checkConv('float32', [3, 4, 17, 17], [6, 4, 3, 3], 1, 1, 1, false);
    checkConv('float32', [4, 5, 10, 10], [3, 5, 3, 3], 1, 1, 1, false);
    checkConv('float32', [4, 5, 10, 10], [3, 5, 1, 1], 1, 0, 1, false); // pointwise, lone last image
    checkConv('float64', [2, 5, 17, 16], [3, 5, 1, 1], 1, 0, 1, false); // pointwise, one image per GEMM
    checkConv('float64', [1, 3, 1, 1], [2, 3, 1, 1], 1, 0, 1, false);
  });

  it('backward matches finite differences (float64)', () => {
    const r = (shape: number[]): Tensor => randLeaf(shape, rng);
    gradcheck(([x, w, b]) => conv2d(x!, w!, b!, { stride: 2, padding: 1 }), [r([2, 3, 5, 6]), r([4, 3, 3, 3]), r([4])]);
    gradcheck(([x, w]) => conv2d(x!, w!, null, { padding: 2, groups: 2 }), [r([1, 4, 4, 5]), r([2, 2, 3, 2])]);
    gradcheck(([x, w, b]) => conv2d(x!, w!, b!, { padding: 1, groups: 3 }), [r([2, 3, 5, 5]), r([3, 1, 3, 3]), r([3])]);
    gradcheck(([x, w]) => conv2d(x!, w!, null, { stride: 2, padding: 3, groups: 3 }), [r([1, 3, 6, 7]), r([3, 1, 7, 7])]);
  });

  it('is bit-identical on 1 and 2 threads (per-image tasks vs threaded GEMM, chunked dW)', () => {
    const cases: Array<[Shape4, Shape4, number, number, number]> = [
      [[8, 6, 16, 16], [5, 6, 3, 3], 1, 1, 1],
      [[5, 4, 9, 7], [6, 4, 3, 3], 2, 1, 1],
      [[32, 3, 4, 4], [4, 3, 3, 3], 1, 1, 1],
      [[4, 6, 11, 13], [6, 1, 7, 7], 1, 3, 6],
    ];
    for (const [xs, ws, s, p, groups] of cases) {
      const x = rand(xs, 'float32');
      const w = rand(ws, 'float32');
      const b = rand([ws[0]], 'float32');
      const dy = Array.from({ length: 1 << 16 }, () => rng.uniform() - 0.5);
      const runs = [1, 2].map((t) => {
        setNumThreads(t);
        const y = conv2d(x, w, b, { stride: s, padding: p, groups });
        const n = y.size;
        y.dispose();
        return forwardBackward(() => conv2d(x, w, b, { stride: s, padding: p, groups }), dy.slice(0, n), [x, w, b]);
      });
      setNumThreads(threads0);
      expect(runs[1]!.y).toEqual(runs[0]!.y);
      for (let i = 0; i < 3; i++) expect(runs[1]!.grads[i]).toEqual(runs[0]!.grads[i]);
    }
  });
});

describe('convTranspose2d', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`matches the reference: ${dtype}, SparK's k4 s2 p1 and odd geometries`, () => {
      checkConv(dtype, [2, 3, 7, 9], [3, 5, 4, 4], 2, 1, 1, true);
      for (const [k, s, p] of [[1, 1, 0], [3, 1, 1], [3, 2, 0], [4, 2, 3], [7, 2, 2], [2, 3, 0]] as const)
        checkConv(dtype, [2, 3, 7, 9], [3, 5, k, k], s, p, 1, true, k !== 3);
      checkConv(dtype, [2, 4, 5, 3], [4, 3, 4, 4], 2, 1, 2, true);
      checkConv(dtype, [5, 6, 3, 3], [6, 4, 4, 4], 2, 1, 1, true); // 9 positions: images batched
    });

  it('doubles the size with k4 s2 p1', () => {
    const y = convTranspose2d(rand([1, 2, 5, 6], 'float32'), rand([2, 3, 4, 4], 'float32'), null, { stride: 2, padding: 1 });
    expect(y.shape).toEqual([1, 3, 10, 12]);
  });

  it('backward matches finite differences (float64)', () => {
    const r = (shape: number[]): Tensor => randLeaf(shape, rng);
    gradcheck(([x, w, b]) => convTranspose2d(x!, w!, b!, { stride: 2, padding: 1 }), [r([2, 3, 3, 4]), r([3, 2, 4, 4]), r([2])]);
    gradcheck(([x, w]) => convTranspose2d(x!, w!, null, { stride: 1, padding: 1, groups: 2 }), [r([1, 4, 3, 3]), r([4, 1, 3, 3])]);
  });

  it('is bit-identical on 1 and 2 threads', () => {
    // 16×16 inputs give one GEMM per image: 8 tasks, run on the pool with 2 threads.
    const x = rand([8, 8, 16, 16], 'float32');
    const w = rand([8, 4, 4, 4], 'float32');
    const b = rand([4], 'float32');
    const dy = Array.from({ length: 8 * 4 * 32 * 32 }, () => rng.uniform() - 0.5);
    const runs = [1, 2].map((t) => {
      setNumThreads(t);
      return forwardBackward(() => convTranspose2d(x, w, b, { stride: 2, padding: 1 }), dy, [x, w, b]);
    });
    setNumThreads(threads0);
    expect(runs[1]).toEqual(runs[0]);
  });
});

// ---- batchNorm2d ------------------------------------------------------------------------------

/** uint8 [B, H, W] with about `frac` of the positions masked (0), exactly none/all at 0 and 1. */
function activeMask(B: number, H: number, W: number, frac: number): Tensor {
  const v = Array.from({ length: B * H * W }, () => (frac >= 1 ? 0 : frac <= 0 ? 1 : rng.uniform() < frac ? 0 : 1));
  return tensor(v, [B, H, W], 'uint8');
}

describe('batchNorm2d', () => {
  const xs: Shape4 = [3, 5, 7, 9];
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const frac of [null, 0, 0.6, 1])
      it(`training ${dtype}, ${frac === null ? 'no mask' : `${frac * 100}% masked`}: output and PyTorch's running update`, () => {
        const x = rand(xs, dtype, false);
        const w = rand([5], dtype, false);
        const b = rand([5], dtype, false);
        const rm0 = Array.from({ length: 5 }, () => rng.uniform());
        const rv0 = Array.from({ length: 5 }, () => 0.5 + rng.uniform());
        const rm = tensor(rm0, [5], dtype);
        const rv = tensor(rv0, [5], dtype);
        const mask = frac === null ? null : activeMask(3, 7, 9, frac);
        const y = batchNorm2d(x, w, b, rm, rv, { training: true, momentum: 0.3, eps: 1e-4, mask });
        const ref = batchNormRef(f64(x), xs, f64(w), f64(b), mask ? (mask.toArray() as Uint8Array) : null, null, 1e-4);
        const got = f64(y);
        assertClose(got, ref.y, tolSum(dtype, 64), 'y');
        expect(got.every(Number.isFinite)).toBe(true);
        if (mask) {
          const m = mask.toArray();
          for (let i = 0; i < got.length; i++) if (m[Math.floor(i / 315) * 63 + (i % 63)] === 0) expect(got[i]).toBe(0);
        }
        // PyTorch: r ← (1 − m)·r + m·stat, with the unbiased variance; nothing moves when no position is active.
        const expMean = rm0.map((r, c) => (ref.n > 0 ? 0.7 * r + 0.3 * ref.mean[c]! : r));
        const expVar = rv0.map((r, c) => (ref.n > 1 ? 0.7 * r + 0.3 * ref.varB[c]! * (ref.n / (ref.n - 1)) : r));
        assertClose(rm.toArray(), expMean, tolFor(dtype), 'runningMean');
        assertClose(rv.toArray(), expVar, tolFor(dtype), 'runningVar');
      });

  it('eval mode normalises with the running statistics and leaves them alone', () => {
    const x = rand(xs, 'float64', false);
    const w = rand([5], 'float64', false);
    const b = rand([5], 'float64', false);
    const rm = tensor([0.1, -0.2, 0.3, 0, 0.5], [5], 'float64');
    const rv = tensor([1, 2, 0.5, 0.25, 3], [5], 'float64');
    const mask = activeMask(3, 7, 9, 0.6);
    for (const m of [null, mask]) {
      const y = batchNorm2d(x, w, b, rm, rv, { training: false, mask: m });
      const ref = batchNormRef(f64(x), xs, f64(w), f64(b), m ? (m.toArray() as Uint8Array) : null, { mean: f64(rm), var: f64(rv) }, 1e-5);
      assertClose(f64(y), ref.y, tolFor('float64'), 'y');
    }
    expect(Array.from(rm.toArray())).toEqual([0.1, -0.2, 0.3, 0, 0.5]);
    expect(Array.from(rv.toArray())).toEqual([1, 2, 0.5, 0.25, 3]);
  });

  it('with a single active position moves the running mean but not the running variance (ours)', () => {
    const x = rand([2, 2, 2, 2], 'float64', false);
    const rm = tensor([0, 0], [2], 'float64');
    const rv = tensor([1, 1], [2], 'float64');
    const mask = tensor([0, 0, 0, 0, 0, 0, 1, 0], [2, 2, 2], 'uint8');
    const y = batchNorm2d(x, null, null, rm, rv, { training: true, mask });
    const xv = f64(x);
    // The active position is (b 1, y 1, x 0): flat index (1·C + c)·4 + 2.
    assertClose(rm.toArray(), [0.1 * xv[10]!, 0.1 * xv[14]!], tolFor('float64'), 'runningMean');
    expect(Array.from(rv.toArray())).toEqual([1, 1]);
    expect(Array.from(y.toArray())).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('backward matches finite differences (float64): training, masked, eval', () => {
    const r = (shape: number[]): Tensor => randLeaf(shape, rng);
    const stats = (): [Tensor, Tensor] => [tensor([0.1, 0.2, -0.1], [3], 'float64'), tensor([1, 0.5, 2], [3], 'float64')];
    const mask = activeMask(2, 3, 4, 0.6);
    for (const [training, m] of [[true, null], [true, mask], [false, null], [false, mask]] as const)
      gradcheck(([x, w, b]) => {
        const [rm, rv] = stats();
        return batchNorm2d(x!, w!, b!, rm, rv, { training, mask: m });
      }, [r([2, 3, 3, 4]), r([3]), r([3])]);
  });

  it('100% masked: zero output, zero gradients, no NaN', () => {
    const x = rand([2, 3, 2, 3], 'float32');
    const w = rand([3], 'float32');
    const b = rand([3], 'float32');
    const got = forwardBackward(
      () => batchNorm2d(x, w, b, null, null, { training: true, mask: activeMask(2, 2, 3, 1) }),
      Array.from({ length: 36 }, () => 1), [x, w, b],
    );
    for (const a of [got.y, ...got.grads]) expect(Array.from(a!).every((v) => v === 0)).toBe(true);
  });

  it('is bit-identical on 1 and 2 threads', () => {
    const x = rand([4, 6, 9, 9], 'float32');
    const w = rand([6], 'float32');
    const b = rand([6], 'float32');
    const mask = activeMask(4, 9, 9, 0.6);
    const dy = Array.from({ length: x.size }, () => rng.uniform() - 0.5);
    const runs = [1, 2].map((t) => {
      setNumThreads(t);
      return forwardBackward(() => batchNorm2d(x, w, b, null, null, { training: true, mask }), dy, [x, w, b]);
    });
    setNumThreads(threads0);
    expect(runs[1]).toEqual(runs[0]);
  });
});

// ---- pooling and masks ------------------------------------------------------------------------

describe('pooling', () => {
  const xs: Shape4 = [2, 3, 7, 9];
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`max and average pooling match the reference: ${dtype}`, () => {
      for (const [k, s, p] of [[2, 2, 0], [3, 2, 1], [3, 1, 1], [2, 1, 1], [7, 1, 3], [1, 2, 0]] as const) {
        const x = rand(xs, dtype, false);
        const ref = poolRef(f64(x), xs, k, s, p, 'max');
        const y = maxPool2d(x, { kernel: k, stride: s, padding: p });
        expect(y.shape).toEqual(ref.shape);
        assertClose(f64(y), ref.y, tolFor(dtype), `max k${k} s${s} p${p}`);
        for (const inc of [true, false]) {
          const a = avgPool2d(x, { kernel: k, stride: s, padding: p, countIncludePad: inc });
          assertClose(f64(a), poolRef(f64(x), xs, k, s, p, 'avg', inc).y, tolSum(dtype, k * k), `avg k${k} s${s} p${p}`);
        }
      }
      const x = rand(xs, dtype, false);
      const g = globalAvgPool(x);
      expect(g.shape).toEqual([2, 3]);
      const direct = Array.from({ length: 6 }, (_, bc) => f64(x).slice(bc * 63, bc * 63 + 63).reduce((a, v) => a + v, 0) / 63);
      assertClose(f64(g), direct, tolSum(dtype, 63), 'globalAvgPool');
    });

  it('max pooling routes a tie to the first maximum of each window', () => {
    const x = tensor(new Array(16).fill(1), [1, 1, 4, 4], 'float64');
    x.requiresGrad = true;
    const got = forwardBackward(() => maxPool2d(x, { kernel: 2, stride: 1 }), new Array(9).fill(1), [x]);
    // Windows start at every (r, c) with r, c < 3; each sends its gradient to its top-left pixel.
    expect(Array.from(got.grads[0]!)).toEqual([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
  });

  it('backward matches finite differences (float64)', () => {
    const r = (shape: number[]): Tensor => randLeaf(shape, rng);
    gradcheck(([x]) => maxPool2d(x!, { kernel: 3, stride: 2, padding: 1 }), [r([2, 2, 5, 6])]);
    gradcheck(([x]) => maxPool2d(x!, { kernel: 2, stride: 1 }), [r([1, 2, 4, 3])]);
    gradcheck(([x]) => avgPool2d(x!, { kernel: 3, stride: 2, padding: 1 }), [r([2, 2, 5, 6])]);
    gradcheck(([x]) => avgPool2d(x!, { kernel: 3, stride: 1, padding: 1, countIncludePad: false }), [r([1, 2, 4, 5])]);
    gradcheck(([x]) => globalAvgPool(x!), [r([2, 3, 3, 4])]);
  });
});

describe('masks', () => {
  it('upsampleMask repeats each cell factor × factor', () => {
    const m = tensor([1, 0, 0, 1, 1, 1], [1, 2, 3], 'uint8');
    const u = upsampleMask(m, 2);
    expect(u.shape).toEqual([1, 4, 6]);
    expect(Array.from(u.toArray())).toEqual([
      1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ]);
    expect(Array.from(upsampleMask(m, 1).toArray())).toEqual([1, 0, 0, 1, 1, 1]);
  });

  it('applyMask keeps active pixels, zeroes the rest (even non-finite ones), and masks the gradient', () => {
    for (const [h, w] of [[6, 9], [2, 3], [3, 1], [1, 1]] as const) {
      const B = 2, C = 3, H = 6, W = 9;
      const mask = activeMask(B, h, w, 0.6);
      const vals = Array.from({ length: B * C * H * W }, () => rng.uniform() * 2 - 1);
      vals[0] = Infinity;
      vals[1] = NaN;
      const x = tensor(vals, [B, C, H, W], 'float64');
      x.requiresGrad = true;
      const m = mask.toArray();
      const keep = (i: number): boolean => {
        const b = Math.floor(i / (C * H * W)), y = Math.floor(i / W) % H, xx = i % W;
        return m[(b * h + Math.floor(y / (H / h))) * w + Math.floor(xx / (W / w))] === 1;
      };
      const dy = Array.from({ length: vals.length }, () => rng.uniform());
      const got = forwardBackward(() => applyMask(x, mask), dy, [x]);
      expect(Array.from(got.y)).toEqual(vals.map((v, i) => (keep(i) ? v : 0)));
      expect(Array.from(got.grads[0]!)).toEqual(dy.map((v, i) => (keep(i) ? v : 0)));
    }
  });
});

// ---- bad input ---------------------------------------------------------------------------------

describe('bad input', () => {
  const x = rand([2, 3, 7, 9], 'float32', false);

  it('conv2d names the argument', () => {
    expect(() => conv2d(x, rand([4, 1, 3, 3], 'float32'), null, { groups: 2 })).toThrow(/Expected channels divisible by groups \(2\) for input/);
    expect(() => conv2d(x, rand([5, 2, 3, 3], 'float32'), null)).toThrow(/Expected a weight \[Cout, 3, kh, kw\].* for weight but received float32 tensor \[5, 2, 3, 3\]/);
    expect(() => conv2d(x, rand([5, 3, 9, 9], 'float32'), null, { padding: 0 })).toThrow(/no larger than the padded input \(7 × 9 with padding 0\) for weight/);
    expect(() => conv2d(x, rand([5, 3, 3, 3], 'float32'), rand([4], 'float32'))).toThrow(/Expected shape \[5\] for bias/);
    expect(() => conv2d(x, rand([5, 3, 3, 3], 'float64'), null)).toThrow(/Expected a float32 tensor for weight/);
    expect(() => conv2d(x, rand([5, 3, 3, 3], 'float32'), null, { stride: 0 })).toThrow(/for stride/);
    expect(() => conv2d(rand([3, 7, 9], 'float32'), rand([5, 3, 3, 3], 'float32'), null)).toThrow(/Expected a 4-D tensor for input/);
    expect(() => convTranspose2d(x, rand([4, 5, 4, 4], 'float32'), null)).toThrow(/Expected a weight \[3, Cout\/groups, kh, kw\].* for weight/);
    expect(() => convTranspose2d(rand([1, 3, 1, 1], 'float32'), rand([3, 2, 3, 3], 'float32'), null, { padding: 2 })).toThrow(/for padding/);
  });

  it('the native bindings validate on their own', () => {
    const n = native();
    const w = rand([5, 3, 3, 3], 'float32', false);
    expect(() => n.conv2d(x.native, w.native, null, 1, 0, 2)).toThrow(/conv2d: Expected channels divisible by groups \(2\) for input/);
    expect(() => n.conv2d(x.native, w.native, null, 1, 0, 1.5)).toThrow(/for groups/);
    expect(() => n.conv2d(x.native, rand([5, 3, 8, 3], 'float32').native, null, 1, 0, 1)).toThrow(/padded input .* for weight/);
    expect(() => n.conv2dBackward(x.native, x.native, w.native, 1, 0, 1, true, true, true)).toThrow(/Expected shape \[2, 5, 5, 7\] for grad/);
    const [y, am] = n.maxPool2d(x.native, 2, 2, 0);
    const bad = tensor(new Array(am.shape.reduce((a, b) => a * b, 1)).fill(63), am.shape, 'int32');
    expect(() => n.maxPool2dBackward(y, bad.native, [2, 3, 7, 9])).toThrow(/Expected indices in \[0, 63\) for argmax/);
    expect(() => n.applyMask(x.native, tensor([2], [1, 1, 1], 'uint8').native)).toThrow(/for mask/);
  });

  it('batchNorm2d, pooling and masks name the argument', () => {
    const c = rand([3], 'float32', false);
    expect(() => batchNorm2d(x, c, c, null, null, { training: false })).toThrow(/Expected running statistics in eval mode for runningMean/);
    expect(() => batchNorm2d(x, rand([4], 'float32', false), null, null, null, { training: true })).toThrow(/Expected shape \[3\] for weight/);
    expect(() => batchNorm2d(x, null, null, null, null, { training: true, mask: tensor(new Array(126).fill(1), [2, 7, 9], 'float32') })).toThrow(/Expected a uint8 tensor for mask/);
    expect(() => batchNorm2d(x, null, null, null, null, { training: true, mask: tensor(new Array(126).fill(2), [2, 7, 9], 'uint8') })).toThrow(/Expected values 0 or 1 for mask/);
    expect(() => batchNorm2d(x, null, null, c, null, { training: true })).toThrow(/for runningVar/);
    expect(() => batchNorm2d(x, null, null, null, null, { training: true, momentum: 2 })).toThrow(/for momentum/);
    expect(() => maxPool2d(x, { kernel: 3, padding: 2 })).toThrow(/for padding/);
    expect(() => maxPool2d(x, { kernel: 8 })).toThrow(/no smaller than the kernel \(8\) after padding for input/);
    expect(() => avgPool2d(x, { kernel: 0 })).toThrow(/for kernel/);
    expect(() => applyMask(x, tensor(new Array(8).fill(1), [2, 2, 2], 'uint8'))).toThrow(/whose h and w divide the input's 7 × 9 for mask/);
    expect(() => upsampleMask(tensor([1], [1, 1, 1], 'uint8'), 0)).toThrow(/for factor/);
  });
});
