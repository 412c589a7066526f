/**
 * maxPool2d, avgPool2d, globalAvgPool, applyMask and upsampleMask against
 * direct-loop float64 references at odd sizes, ties, finite-difference
 * gradients in float64; and the CUDA kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { tensor, type DType, type Tensor } from '../../src/index.js';
import { applyMask, avgPool2d, globalAvgPool, maxPool2d, upsampleMask } from '../../src/ops/pool.js';
import { native } from '../../src/native/loader.js';
import type { Device } from '../../src/native/types.js';
import { assertBf16, describeCuda, get, put, roundBf16 } from '../helpers/cuda-harness.js';
import * as cudaConv from '../helpers/cuda-conv.js';
import { activeMask, f64, forwardBackward, rand, rng, tolSum, type Shape4 } from '../helpers/dense-conv.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

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

  it('applyMask keeps active pixels, zeroes the rest (even non-finite ones), and masks the gradient (0%, 60% and 100% masked)', () => {
    const cases = [0, 0.6, 1].flatMap((frac) => ([[6, 9], [2, 3], [3, 1], [1, 1]] as const).map(([h, w]) => ({ frac, h, w })));
    for (const { frac, h, w } of cases) {
      const B = 2, C = 3, H = 6, W = 9;
      const mask = activeMask(B, h, w, frac);
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

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU, bfloat16 on cuda by the bf16 rule
// against a naive bf16 version (inputs rounded, the float64 op, its outputs
// rounded).

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { DTYPES, dyFor, expectRuns, numel, rand, rng, runs, tolSum } = cudaConv;

  // ---- pooling ----------------------------------------------------------------------------------

  describeCuda('pooling', () => {
    const shapes: Shape4[] = [[2, 3, 7, 9], [1, 2, 10, 6]];
    const windows = [[3, 2, 1], [2, 2, 0], [3, 1, 1], [4, 3, 2]] as const;

    for (const dtype of DTYPES) {
      it(`maxPool2d forward, argmax and backward: ${dtype}`, () => {
        const N = native();
        for (const xs of shapes)
          for (const [k, s, p] of windows) {
            // float32-exact values, so argmax cannot differ between the float32 and float64 runs.
            const xv = rand(numel(xs)).map(Math.fround);
            xv[5] = NaN; // a NaN wins its windows
            xv[7] = xv[8]!; // a tie: the first maximum wins
            const r = runs(dtype, (mk) => {
              const x = mk(xv, xs);
              const [y, am] = N.maxPool2d(x, k, s, p);
              const dy = mk(dyFor(y.shape), y.shape);
              return [y, am, N.maxPool2dBackward(dy, am, xs)];
            });
            const label = `maxPool2d ${dtype} ${JSON.stringify(xs)} k${k} s${s} p${p}`;
            // argmax is exact: against the CPU on the same (rounded) inputs.
            expect(Array.from(r.got[1]!), `${label} argmax`).toEqual(Array.from(r.rounded[1]!));
            if (dtype === 'float32') {
              assertClose(r.got[0]!, r.ref[0]!, { atol: 0, rtol: 0 }, `${label} y`); // a max of float32-exact values
              assertClose(r.got[2]!, r.ref[2]!, tolSum(4), `${label} dx`);
            } else {
              assertBf16(`${label} y`, r.got[0]!, r.ref[0]!, r.naive[0]!);
              assertBf16(`${label} dx`, r.got[2]!, r.ref[2]!, r.naive[2]!);
            }
          }
      });

      it(`avgPool2d forward and backward, counting the padding or not: ${dtype}`, () => {
        const N = native();
        for (const xs of shapes)
          for (const [k, s, p] of windows)
            for (const include of [true, false]) {
              const xv = rand(numel(xs));
              const r = runs(dtype, (mk) => {
                const y = N.avgPool2d(mk(xv, xs), k, s, p, include);
                return [y, N.avgPool2dBackward(mk(dyFor(y.shape), y.shape), xs, k, s, p, include)];
              });
              expectRuns(`avgPool2d ${dtype} ${JSON.stringify(xs)} k${k} s${s} p${p} ${include}`, dtype, r, [tolSum(k * k), tolSum(k * k)]);
            }
      });

      it(`globalAvgPool forward and backward: ${dtype}`, () => {
        const N = native();
        for (const xs of [[2, 3, 7, 9], [3, 2, 1, 1], [1, 2, 40, 41], [9, 1, 3, 3]] as Shape4[]) {
          const xv = rand(numel(xs));
          const r = runs(dtype, (mk) => {
            const y = N.globalAvgPool(mk(xv, xs));
            return [y, N.globalAvgPoolBackward(mk(dyFor(y.shape), y.shape), xs)];
          });
          expectRuns(`globalAvgPool ${dtype} ${JSON.stringify(xs)}`, dtype, r, [tolSum(xs[2] * xs[3]), undefined]);
        }
      });
    }

    it('refuses an argmax outside the plane with the CPU message', () => {
      const N = native();
      const am = [0, 3, 5, 35, 2, 1];
      for (const device of ['cpu', 'cuda'] as Device[]) {
        const dt: DType = device === 'cpu' ? 'float64' : 'float32';
        const dy = put(rand(6), [1, 1, 2, 3], dt, device);
        expect(() => N.maxPool2dBackward(dy, put(am, [1, 1, 2, 3], 'int32', device), [1, 1, 5, 7])).toThrow(
          /Expected indices in \[0, 35\) for argmax but received 35 at position 3/,
        );
      }
    });
  });

  // ---- masks ------------------------------------------------------------------------------------

  describeCuda('applyMask and upsampleMask', () => {
    for (const dtype of DTYPES) {
      it(`applyMask keeps active pixels exactly and zeroes the rest, even non-finite ones: ${dtype}`, () => {
        const N = native();
        const xs: Shape4 = [2, 3, 8, 12];
        const xv = rand(numel(xs));
        xv[1] = Infinity;
        xv[13] = NaN;
        for (const fill of [null, 0, 1] as const) {
          const mv = Array.from({ length: 2 * 4 * 3 }, () => (fill ?? (rng.uniform() < 0.5 ? 1 : 0)));
          mv[0] = fill ?? 0; // x[1] and x[13] lie under mask cell 0
          const got = get(N.applyMask(put(xv, xs, dtype, 'cuda'), put(mv, [2, 4, 3], 'uint8', 'cuda')));
          const ref = get(N.applyMask(put(dtype === 'bfloat16' ? roundBf16(xv) : xv, xs, 'float64', 'cpu'), put(mv, [2, 4, 3], 'uint8', 'cpu')));
          const want = dtype === 'float32' ? Float64Array.from(ref, (v) => Math.fround(v)) : ref;
          expect(Array.from(got)).toEqual(Array.from(want));
        }
      });
    }

    it('upsampleMask repeats each cell f × f, as the CPU does', () => {
      const N = native();
      for (const [B, h, w, f] of [[2, 3, 5, 4], [1, 1, 1, 7], [3, 2, 2, 1]] as const) {
        const mv = Array.from({ length: B * h * w }, () => (rng.uniform() < 0.5 ? 1 : 0));
        const got = N.upsampleMask(put(mv, [B, h, w], 'uint8', 'cuda'), f);
        expect(got.device).toBe('cuda');
        expect(got.shape).toEqual([B, h * f, w * f]);
        expect(Array.from(get(got))).toEqual(Array.from(get(N.upsampleMask(put(mv, [B, h, w], 'uint8', 'cpu'), f))));
      }
    });

    it('refuses a mask value other than 0 or 1 in applyMask and upsampleMask', () => {
      const N = native();
      const mv = [1, 0, 3, 1];
      const m = put(mv, [1, 2, 2], 'uint8', 'cuda');
      expect(() => N.upsampleMask(m, 2)).toThrow(/Expected values 0 or 1 for mask but received 3 at position 2/);
      expect(() => N.applyMask(put(rand(16), [1, 1, 4, 4], 'float32', 'cuda'), m)).toThrow(
        /Expected values 0 or 1 for mask but received 3 at position 2/,
      );
    });
  });
}
