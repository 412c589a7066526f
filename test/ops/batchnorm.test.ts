/**
 * batchNorm2d against a direct-loop float64 reference: training and eval,
 * PyTorch's running-statistics update, masked BN at 0/60/100% masked,
 * finite-difference gradients in float64, bit-identical results on 1 and 2
 * threads, bad input; and the CUDA kernels against the CPU.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backward, mul, runtimeInfo, scope, setNumThreads, sum, tensor, type DType, type Tensor } from '../../src/index.js';
import { batchNorm2d, syncBatchNorm2d, type BatchNormSync } from '../../src/ops/batchnorm.js';
import { maxPool2d, avgPool2d, applyMask, globalAvgPool, upsampleMask } from '../../src/ops/pool.js';
import { native } from '../../src/native/loader.js';
import type { Device } from '../../src/native/types.js';
import { describeCuda, get, itOnDevice, put } from '../helpers/cuda-harness.js';
import * as cudaConv from '../helpers/cuda-conv.js';
import { activeMask, f64, forwardBackward, rand, rng, tolSum, type Shape4 } from '../helpers/dense-conv.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const threads0 = runtimeInfo().threads;
afterAll(() => setNumThreads(threads0));

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

// ---- bad input ---------------------------------------------------------------------------------

describe('syncBatchNorm2d (synchronized statistics across data-parallel ranks)', () => {
  // Two ranks that hold the same batch: the ranks' sums are twice this rank's, so the result must be what one
  // process computes on the batch twice over (the first half of it), with dweight and dbias half of that process's
  // (each rank keeps its own; the gradient all-reduce sums them) and the running statistics of the doubled batch.
  const doubling = (): BatchNormSync & { calls: number } => ({
    size: 2,
    calls: 0,
    sumNumbers(xs) {
      this.calls++;
      return xs.map((v) => 2 * v);
    },
  });
  const twice = (t: Tensor): Tensor => {
    const a = t.toArray();
    const out = new (a.constructor as Float64ArrayConstructor)(2 * a.length);
    out.set(a);
    out.set(a, a.length);
    return tensor(out, [2 * t.shape[0]!, ...t.shape.slice(1)], t.dtype);
  };
  for (const frac of [null, 0, 0.6, 1])
    it(`equals one process on the doubled batch, forward, backward and running statistics (float64, ${frac === null ? 'no mask' : `${frac * 100}% masked`})`, () => {
      const s: Shape4 = [3, 5, 7, 9];
      const x = rand(s, 'float64');
      const w = rand([5], 'float64');
      const b = rand([5], 'float64');
      const mask = frac === null ? null : activeMask(3, 7, 9, frac);
      const dy = f64(rand(s, 'float64', false));
      const stats = (): [Tensor, Tensor] => [tensor([0.1, 0.2, -0.1, 0, 0.3], [5], 'float64'), tensor([1, 0.5, 2, 1, 1], [5], 'float64')];
      const [rm1, rv1] = stats();
      const [rm2, rv2] = stats();
      const xx = twice(x);
      xx.requiresGrad = true;
      const dyy = new Float64Array(2 * dy.length);
      dyy.set(dy);
      dyy.set(dy, dy.length);
      const one = forwardBackward(() => batchNorm2d(xx, w, b, rm1, rv1, { training: true, mask: mask ? twice(mask) : null }), dyy, [xx, w, b]);
      const sync = doubling();
      const two = forwardBackward(() => syncBatchNorm2d(x, w, b, rm2, rv2, { training: true, mask, sync }), dy, [x, w, b]);
      const half = (a: Float64Array): Float64Array => a.subarray(0, a.length / 2);
      const tol = { atol: 1e-12, rtol: 1e-10 };
      assertClose(two.y, half(one.y), tol, 'y');
      assertClose(two.grads[0]!, half(one.grads[0]!), tol, 'dx');
      assertClose(two.grads[1]!.map((v) => 2 * v), one.grads[1]!, tol, 'dweight');
      assertClose(two.grads[2]!.map((v) => 2 * v), one.grads[2]!, tol, 'dbias');
      assertClose(f64(rm2), f64(rm1), tol, 'runningMean');
      assertClose(f64(rv2), f64(rv1), tol, 'runningVar');
      // Collectives: Σx then Σ(x − mean)² in the forward, Σdy and Σdy·x̂ in the backward; none when nothing is active.
      expect(sync.calls).toBe(frac === 1 ? 1 : 3);
    });

  // Finite differences through the synchronized op itself. With the doubling stand-in, the other rank holds this
  // rank's batch and upstream weights, so perturbing x moves both ranks' inputs; by that symmetry the derivative of
  // this rank's output equals the cross-rank gradient the backward returns (its global Σdy and Σdy·x̂ include the
  // other rank's equal share). weight and bias do not reach the statistics, so their local gradients are the
  // derivatives of this rank's output as they stand.
  for (const frac of [null, 0, 0.6, 1])
    it(`has finite-difference gradients through the synchronized statistics (float64, ${frac === null ? 'no mask' : `${frac * 100}% masked`})`, () => {
      const mask = frac === null ? null : activeMask(2, 3, 5, frac);
      gradcheck(
        ([x, w, b]) => syncBatchNorm2d(x!, w!, b!, null, null, { training: true, mask, sync: doubling() }),
        [randLeaf([2, 3, 3, 5], rng), randLeaf([3], rng), randLeaf([3], rng)],
      );
    });

  it('batchNorm2dSums: per-channel Σx, Σ(x − center)² and the active count against direct loops (odd sizes, masked)', () => {
    const s: Shape4 = [3, 5, 7, 9];
    const x = rand(s, 'float64', false);
    const xv = f64(x);
    for (const frac of [null, 0.6]) {
      const mask = frac === null ? null : activeMask(3, 7, 9, frac);
      const mv = mask ? (mask.toArray() as Uint8Array) : null;
      const center = [0.1, -0.2, 0.3, 0, 0.05];
      const sum = new Array(5).fill(0);
      const sq = new Array(5).fill(0);
      let n = 0;
      for (let b = 0; b < 3; b++)
        for (let i = 0; i < 63; i++) {
          if (mv && !mv[b * 63 + i]) continue;
          n++;
          for (let c = 0; c < 5; c++) {
            const v = xv[(b * 5 + c) * 63 + i]!;
            sum[c] += v;
            sq[c] += (v - center[c]!) ** 2;
          }
        }
      const a = Array.from(native().batchNorm2dSums(x.native, mask?.native ?? null, null).read());
      const q = Array.from(native().batchNorm2dSums(x.native, mask?.native ?? null, tensor(center, [5], 'float64').native).read());
      assertClose(a.slice(0, 5), sum, { atol: 1e-12, rtol: 1e-12 }, 'Σx');
      assertClose(q.slice(0, 5), sq, { atol: 1e-12, rtol: 1e-12 }, 'Σ(x − center)²');
      expect(a[5]).toBe(n);
      expect(q[5]).toBe(n);
    }
  });

  it('with one rank, or in eval mode, is batchNorm2d and calls no collective', () => {
    const x = rand([2, 3, 4, 5], 'float64', false);
    const rm = tensor([0, 0, 0], [3], 'float64');
    const rv = tensor([1, 1, 1], [3], 'float64');
    const sync = { ...doubling(), size: 1 };
    const a = batchNorm2d(x, null, null, rm.clone(), rv.clone(), { training: true });
    expect(Array.from(syncBatchNorm2d(x, null, null, rm.clone(), rv.clone(), { training: true, sync }).toArray())).toEqual(Array.from(a.toArray()));
    const two = doubling();
    const e = batchNorm2d(x, null, null, rm, rv, { training: false });
    expect(Array.from(syncBatchNorm2d(x, null, null, rm, rv, { training: false, sync: two }).toArray())).toEqual(Array.from(e.toArray()));
    expect(sync.calls + two.calls).toBe(0);
  });

  it('refuses a bad sync, and a sum of the wrong length or type, naming them', () => {
    const x = rand([2, 3, 2, 2], 'float64', false);
    const run = (sync: unknown): Tensor => syncBatchNorm2d(x, null, null, null, null, { training: true, sync: sync as BatchNormSync });
    expect(() => run({ size: 0, sumNumbers: (xs: number[]) => xs })).toThrow('Expected an integer in [1, 2147483647] for sync.size but received 0');
    expect(() => run({ size: 1.5, sumNumbers: (xs: number[]) => xs })).toThrow(/for sync\.size but received 1\.5/);
    expect(() => run({ size: 2 })).toThrow(/Expected an object with size and sumNumbers\(\) for sync/);
    expect(() => run({ size: 2, sumNumbers: (xs: number[]) => xs.slice(1) })).toThrow(/Expected 4 numbers for the result of sync\.sumNumbers\(\)/);
    expect(() => run({ size: 2, sumNumbers: (xs: number[]) => xs.map(String) })).toThrow(/Expected 4 numbers for the result of sync\.sumNumbers\(\)/);
    // NaN goes through, as in the local op, so that it reaches the loss (where the trainer stops the run).
    expect(Array.from(run({ size: 2, sumNumbers: (xs: number[]) => xs.map(() => Number.NaN) }).toArray()).every(Number.isNaN)).toBe(true);
  });

  it("refuses a global-sums tensor of the wrong shape or dtype, naming it", () => {
    const x = rand([2, 3, 2, 2], 'float64', false);
    const [y, mean, rstd] = native().batchNorm2d(x.native, null, null, null, null, null, true, 0.1, 1e-5);
    const bad = (t: Tensor): void => void native().batchNorm2dBackward(y, x.native, null, mean, rstd, null, true, true, false, false, t.native);
    expect(() => bad(tensor([1, 2, 3], [3], 'float64'))).toThrow(/global/);
    expect(() => bad(tensor([0, 0, 0, 0, 0, 0, 4], [7], 'float32'))).toThrow(/global/);
    expect(() => bad(tensor([0, 0, 0, 0, 0, 0, -1], [7], 'float64'))).toThrow(/active count/);
    expect(() => native().batchNorm2dSums(x.native, null, tensor([0, 0], [2], 'float64').native)).toThrow(/center/);
  });

});

describe('bad input', () => {
  const x = rand([2, 3, 7, 9], 'float32', false);

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
    // An empty plane with padding passes the size rule above; its windows would lie wholly in the padding (the max
    // pool read out of bounds and crashed for wide planes, the average divided 0 by 0).
    for (const shape of [[1, 1, 0, 1 << 20], [1, 1, 5, 0]]) {
      const empty = tensor([], shape, 'float32');
      expect(() => maxPool2d(empty, { kernel: 2, stride: 1, padding: 1 })).toThrow(
        `Expected an input plane of at least 1 × 1 pixels for input but received [${shape.join(', ')}]`,
      );
      expect(() => avgPool2d(empty, { kernel: 2, stride: 1, padding: 1, countIncludePad: false })).toThrow(/at least 1 × 1 pixels for input/);
    }
    expect(() => native().avgPool2dBackward(tensor([], [1, 1, 0, 0], 'float32').native, [1, 1, 0, 3], 2, 1, 1, false)).toThrow(/at least 1 × 1 pixels for inputShape/);
    expect(() => avgPool2d(x, { kernel: 0 })).toThrow(/for kernel/);
    expect(() => applyMask(x, tensor(new Array(8).fill(1), [2, 2, 2], 'uint8'))).toThrow(/whose h and w divide the input's 7 × 9 for mask/);
    expect(() => upsampleMask(tensor([1], [1, 1, 1], 'uint8'), 0)).toThrow(/for factor/);
    expect(() => globalAvgPool(rand([2, 3, 4], 'float32', false))).toThrow('Expected a 4-D tensor for input but received float32 tensor [2, 3, 4]');
    expect(() => globalAvgPool(tensor([1, 2], [1, 1, 1, 2], 'int32'))).toThrow(/Expected a float32 or float64 tensor for input/);
    expect(() => native().globalAvgPoolBackward(rand([2, 3], 'float32', false).native, [2, 4, 5, 5])).toThrow(
      'globalAvgPoolBackward: Expected shape [2, 4] for grad but received float32 tensor [2, 3]',
    );
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU, bfloat16 on cuda by the bf16 rule
// against a naive bf16 version (inputs rounded, the float64 op, its outputs
// rounded).

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { DTYPES, expectRuns, numel, rand, rng, runs, tolSum } = cudaConv;

  // ---- batchNorm2d ------------------------------------------------------------------------------

  function maskOf(kind: 'none' | 'all-active' | 'some' | 'all-masked', B: number, S: number): number[] | null {
    if (kind === 'none') return null;
    if (kind === 'all-active') return new Array(B * S).fill(1);
    if (kind === 'all-masked') return new Array(B * S).fill(0);
    return Array.from({ length: B * S }, () => (rng.uniform() < 0.4 ? 1 : 0)); // about 60% masked
  }

  function checkBatchNorm(dtype: DType, xs: Shape4, kind: 'none' | 'all-active' | 'some' | 'all-masked', training: boolean): void {
    const N = native();
    const [B, C, H, W] = xs;
    const xv = rand(numel(xs)).map((v) => 3 + 2 * v); // an offset mean, as activations have
    const wv = rand(C), bv = rand(C), dyv = rand(numel(xs));
    const rmv = rand(C), rvv = rand(C).map((v) => 1 + 0.5 * v);
    const mv = maskOf(kind, B, H * W);
    const r = runs(dtype, (mk) => {
      const x = mk(xv, xs), w = mk(wv, [C]), b = mk(bv, [C]), rm = mk(rmv, [C]), rv = mk(rvv, [C]);
      const m = mv ? put(mv, [B, H, W], 'uint8', x.device) : null;
      const [y, mean, rstd] = N.batchNorm2d(x, w, b, rm, rv, m, training, 0.1, 1e-5);
      const [dx, dw, db] = N.batchNorm2dBackward(mk(dyv, xs), x, w, mean, rstd, m, training, true, true, true);
      return [y, mean, rstd, rm, rv, dx, dw, db];
    });
    const n = mv ? mv.reduce((a, v) => a + v, 0) : B * H * W;
    // Statistics and the gradients' sums run over n fp32 terms in a block tree.
    const tStat = tolSum(Math.sqrt(Math.max(n, 1)) * 4);
    expectRuns(`batchNorm2d ${dtype} ${JSON.stringify(xs)} mask ${kind} training ${training}`, dtype, r, [
      tStat, tStat, tStat, tStat, tStat, tStat, tolSum(n), tolSum(n),
    ]);
    if (mv) {
      // Inactive positions are exactly 0 in y and dx.
      const S = H * W;
      for (const out of [r.got[0]!, r.got[5]!])
        for (let i = 0; i < out.length; i++) if (!mv[Math.floor(i / (C * S)) * S + (i % S)]) expect(out[i]).toBe(0);
    }
  }

  describeCuda('batchNorm2d', () => {
    for (const dtype of DTYPES) {
      it(`training and eval, forward and backward, 0%, ~60% and 100% masked: ${dtype}`, () => {
        for (const xs of [[3, 5, 4, 7], [4, 3, 33, 17]] as Shape4[])
          for (const kind of ['none', 'all-active', 'some', 'all-masked'] as const)
            for (const training of [true, false]) checkBatchNorm(dtype, xs, kind, training);
      });
    }

    itOnDevice('keeps float32 statistics for bfloat16 input and takes them back in the backward', () => {
      const N = native();
      const x = put(rand(2 * 3 * 4 * 4), [2, 3, 4, 4], 'bfloat16', 'cuda');
      const [, mean, rstd] = N.batchNorm2d(x, null, null, null, null, null, true, 0.1, 1e-5);
      expect(mean.dtype).toBe('float32');
      expect(rstd.dtype).toBe('float32');
      const bad = mean.cast('bfloat16');
      expect(() => N.batchNorm2dBackward(x.clone(), x, null, bad, rstd, null, true, true, false, false)).toThrow(
        /Expected a float32 tensor for mean but received cuda bfloat16 tensor \[3\]/,
      );
    });

    // Synchronized BatchNorm on cuda (float32): the local sums on the device, the ranks' sums on the host. Two
    // ranks that hold the same batch (the doubling communicator of the CPU cases above, whose float64 CPU result
    // those cases check against one process on the doubled batch) against the same on the CPU in float64.
    const doubling: BatchNormSync = { size: 2, sumNumbers: (xs) => xs.map((v) => 2 * v) };
    it('synchronized: batchNorm2dSums on cuda against the CPU in float64 (odd sizes, 0%, ~60% and 100% masked)', () => {
      const N = native();
      const xs: Shape4 = [3, 5, 7, 9];
      // float32 values, so that both devices sum the same inputs (the reference's are float64).
      const xv = rand(numel(xs)).map((v) => Math.fround(3 + 2 * v));
      const center = put([3.1, 2.9, 3, 3.2, 2.8], [5], 'float64', 'cpu');
      for (const kind of ['none', 'some', 'all-masked'] as const) {
        const mv = maskOf(kind, 3, 63);
        const r = runs('float32', (mk) => {
          const x = mk(xv, xs);
          const m = mv ? put(mv, [3, 7, 9], 'uint8', x.device) : null;
          const a = N.batchNorm2dSums(x, m, null);
          const q = N.batchNorm2dSums(x, m, center);
          // The result is a host tensor whatever the input's device (MPI sums it on the host).
          expect(a.device).toBe('cpu');
          return [a, q];
        });
        const n = mv ? mv.reduce((t, v) => t + v, 0) : 3 * 63;
        expect(r.got[0]![5], `count ${kind}`).toBe(n);
        expect(r.got[1]![5], `count ${kind}`).toBe(n);
        // The inputs are float32 either way; the sums are in double on both devices, in different orders.
        assertClose(r.got[0]!, r.ref[0]!, { atol: 1e-9, rtol: 1e-12 }, `Σx ${kind}`);
        assertClose(r.got[1]!, r.ref[1]!, { atol: 1e-9, rtol: 1e-12 }, `Σ(x − center)² ${kind}`);
      }
    });

    it('synchronized: syncBatchNorm2d on cuda (float32) against the CPU in float64: forward, gradients, running statistics', () => {
      const xs: Shape4 = [4, 3, 33, 17];
      const [B, C, H, W] = xs;
      const xv = rand(numel(xs)).map((v) => 3 + 2 * v);
      const wv = rand(C), bv = rand(C), dyv = rand(numel(xs));
      const rmv = rand(C), rvv = rand(C).map((v) => 1 + 0.5 * v);
      for (const kind of ['none', 'some', 'all-masked'] as const) {
        const mv = maskOf(kind, B, H * W);
        const run = (device: Device, dtype: DType): Array<Float64Array | null> =>
          scope(() => {
            const leaf = (v: number[], shape: readonly number[]): Tensor => {
              const t = tensor(v, shape, dtype, device);
              t.requiresGrad = true;
              return t;
            };
            const x = leaf(xv, xs), w = leaf(wv, [C]), b = leaf(bv, [C]);
            const rm = tensor(rmv, [C], dtype, device), rv = tensor(rvv, [C], dtype, device);
            const mask = mv ? tensor(mv, [B, H, W], 'uint8', device) : null;
            const y = syncBatchNorm2d(x, w, b, rm, rv, { training: true, mask, sync: doubling });
            backward(sum(mul(y, tensor(dyv, xs, dtype, device))));
            const read = (t: Tensor | null): Float64Array | null => (t ? Float64Array.from(t.native.read()) : null);
            return [read(y), read(x.grad), read(w.grad), read(b.grad), read(rm), read(rv)];
          });
        const got = run('cuda', 'float32');
        const ref = run('cpu', 'float64');
        const n = 2 * (mv ? mv.reduce((t, v) => t + v, 0) : B * H * W);
        const tStat = tolSum(Math.sqrt(Math.max(n, 1)) * 4);
        const tols = [tStat, tStat, tolSum(n), tolSum(n), tStat, tStat];
        ref.forEach((r, i) => assertClose(got[i]!, r!, tols[i]!, `syncBatchNorm2d cuda ${kind} [${i}]`));
      }
    });

    it('synchronized, bfloat16 (--precision bf16): the float32 op between two casts, within bfloat16 rounding of it', () => {
      const xs: Shape4 = [4, 3, 9, 7];
      const [B, C, H, W] = xs;
      const round = (a: number[]): number[] => Array.from(get(put(a, [a.length], 'bfloat16', 'cuda')));
      const xv = round(rand(numel(xs)).map((v) => 3 + 2 * v));
      const wv = round(rand(C)), bv = round(rand(C)), dyv = round(rand(numel(xs)));
      const rmv = round(rand(C)), rvv = round(rand(C).map((v) => 1 + 0.5 * v));
      const mv = maskOf('some', B, H * W);
      const run = (dtype: DType): Array<Float64Array | null> =>
        scope(() => {
          const leaf = (v: number[], shape: number[]): Tensor => {
            const t = tensor(v, shape, dtype, 'cuda');
            t.requiresGrad = true;
            return t;
          };
          const x = leaf(xv, xs), w = leaf(wv, [C]), b = leaf(bv, [C]);
          const rm = tensor(rmv, [C], dtype, 'cuda'), rv = tensor(rvv, [C], dtype, 'cuda');
          const y = syncBatchNorm2d(x, w, b, rm, rv, { training: true, mask: tensor(mv!, [B, H, W], 'uint8', 'cuda'), sync: doubling });
          expect(y.dtype).toBe(dtype);
          backward(sum(mul(y, tensor(dyv, xs, dtype, 'cuda'))));
          const read = (t: Tensor | null): Float64Array | null => (t ? Float64Array.from(t.native.read()) : null);
          return [read(y), read(x.grad), read(w.grad), read(b.grad), read(rm), read(rv)];
        });
      const got = run('bfloat16');
      const ref = run('float32');
      // Each output is the float32 one rounded to bfloat16 once (relative step 2^-8), up to the float32 sums' order.
      const tol = { atol: 1e-2, rtol: 2 ** -7 };
      ref.forEach((r, i) => assertClose(got[i]!, r!, tol, `bf16 syncBatchNorm2d [${i}]`));
    });

    it('refuses a mask value other than 0 or 1 with the CPU message', () => {
      const N = native();
      const mv = new Array(2 * 4 * 4).fill(1);
      mv[13] = 2;
      for (const device of ['cpu', 'cuda'] as Device[]) {
        const dt: DType = device === 'cpu' ? 'float64' : 'float32';
        const x = put(rand(2 * 3 * 16), [2, 3, 4, 4], dt, device);
        const m = put(mv, [2, 4, 4], 'uint8', device);
        expect(() => N.batchNorm2d(x, null, null, null, null, m, true, 0.1, 1e-5)).toThrow(
          /Expected values 0 or 1 for mask but received 2 at position 13/,
        );
      }
    });
  });
}
