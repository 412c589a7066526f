// The dense conv family on CUDA (conv2d, convTranspose2d, batchNorm2d, pools,
// applyMask, upsampleMask), forward and backward, against the CPU backend:
// float32 on cuda against float64 on the CPU, bfloat16 on cuda by the bf16 rule
// against a naive bf16 version (inputs rounded, the float64 op, its outputs
// rounded). Shapes are odd; several take the im2col paths that differ on the
// device (one image per chunk, several, several chunks, 1×1 in place).
import { expect, it } from 'vitest';
import { Rng } from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import type { Device, DType, NativeTensor } from '../../src/native/types.js';
import { assertClose, tolFor, type Tol } from '../helpers/tolerance.js';
import { assertBf16, describeCuda, get, put, roundBf16 } from './harness.js';

type Shape4 = [number, number, number, number];
type Mk = (values: ArrayLike<number>, shape: readonly number[]) => NativeTensor;
type Out = NativeTensor | null;

const rng = new Rng(4242);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const rand = (n: number): number[] => Array.from({ length: n }, () => rng.uniform() * 2 - 1);
const DTYPES: DType[] = ['float32', 'bfloat16'];

/** Tensors for one run: on `device` in `dtype`, values rounded to bfloat16 first when `round`. */
const mkFor = (dtype: DType, device: Device, round: boolean): Mk => (v, s) => put(round ? roundBf16(v) : v, s, dtype, device);

interface Runs {
  got: Array<Float64Array | null>;
  ref: Array<Float64Array | null>;
  naive: Array<Float64Array | null>;
  /** The float64 CPU outputs on bf16-rounded inputs, unrounded (for exact integer outputs). */
  rounded: Array<Float64Array | null>;
}

/** Runs `op` on cuda in dtype, in float64 on the CPU, and (bfloat16) on bf16-rounded inputs in float64. */
function runs(dtype: DType, op: (mk: Mk) => Out[]): Runs {
  const read = (ts: Out[]) => ts.map((t) => (t ? get(t) : null));
  const got = read(op(mkFor(dtype, 'cuda', false)));
  const ref = read(op(mkFor('float64', 'cpu', false)));
  const rounded = dtype === 'bfloat16' ? read(op(mkFor('float64', 'cpu', true))) : ref;
  const naive = rounded.map((a) => (a && dtype === 'bfloat16' ? roundBf16(a) : a));
  return { got, ref, naive, rounded };
}

/** Every output by the dtype's rule; tols[i] replaces float32's default tolerance for output i. */
function expectRuns(label: string, dtype: DType, r: Runs, tols: Array<Tol | undefined> = []): void {
  r.ref.forEach((ref, i) => {
    if (!ref) {
      expect(r.got[i], `${label}[${i}]`).toBeNull();
      return;
    }
    const got = r.got[i]!;
    expect(got.length, `${label}[${i}] length`).toBe(ref.length);
    if (dtype === 'float32') assertClose(got, ref, tols[i] ?? tolFor('float32'), `${label}[${i}]`);
    else assertBf16(`${label}[${i}]`, got, ref, r.naive[i]!);
  });
}

/**
 * float32 sums of `terms` terms of magnitude ≈ 1, in an order other than the
 * CPU's (GEMM tiles, block trees): the absolute error grows with the number of
 * terms, so atol does too (gemm.test.ts's rule); rtol stays float32's.
 */
function tolSum(terms: number): Tol {
  return { atol: 4 * Math.max(terms, 1) * 1.2e-7, rtol: tolFor('float32').rtol };
}

// ---- conv2d / convTranspose2d ---------------------------------------------------------------

interface ConvCase {
  x: Shape4;
  w: Shape4;
  s: number;
  p: number;
  groups: number;
  bias: boolean;
}

function checkConv(dtype: DType, c: ConvCase, transposed: boolean): void {
  const N = native();
  const fwd = transposed ? N.convTranspose2d.bind(N) : N.conv2d.bind(N);
  const bwd = transposed ? N.convTranspose2dBackward.bind(N) : N.conv2dBackward.bind(N);
  const cout = transposed ? c.w[1] * c.groups : c.w[0];
  const xv = rand(numel(c.x)), wv = rand(numel(c.w)), bv = c.bias ? rand(cout) : null;
  // The output shape, from a CPU run, so dy can be drawn once for all runs.
  const yShape = fwd(put(xv, c.x, 'float64', 'cpu'), put(wv, c.w, 'float64', 'cpu'), null, c.s, c.p, c.groups).shape;
  const dyv = rand(numel(yShape));
  const r = runs(dtype, (mk) => {
    const x = mk(xv, c.x), w = mk(wv, c.w), b = bv ? mk(bv, [cout]) : null;
    const y = fwd(x, w, b, c.s, c.p, c.groups);
    const [dx, dw, db] = bwd(mk(dyv, yShape), x, w, c.s, c.p, c.groups, true, true, true);
    return [y, dx, dw, db];
  });
  const k = c.w[2] * c.w[3];
  const perOut = numel(yShape) / cout;  // terms of each dw/db entry: B·positions
  const label = `${transposed ? 'convTranspose2d' : 'conv2d'} ${dtype} x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} s${c.s} p${c.p} g${c.groups}`;
  expectRuns(label, dtype, r, [tolSum((c.x[1] / c.groups) * k + 1), tolSum(cout * k), tolSum(perOut), tolSum(perOut)]);
  // Only some gradients asked for: the others come back null.
  const N2 = runs(dtype, (mk) => {
    const x = mk(xv, c.x), w = mk(wv, c.w);
    return bwd(mk(dyv, yShape), x, w, c.s, c.p, c.groups, false, true, false);
  });
  expect(N2.got[0]).toBeNull();
  expect(N2.got[2]).toBeNull();
  expectRuns(`${label} (dw only)`, dtype, N2, [undefined, tolSum(perOut)]);
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 3, 7, 9], w: [5, 3, 3, 3], s: 1, p: 1, groups: 1, bias: true },
  { x: [2, 3, 7, 9], w: [5, 3, 4, 4], s: 2, p: 2, groups: 1, bias: false },
  { x: [1, 3, 6, 5], w: [4, 3, 3, 3], s: 2, p: 0, groups: 1, bias: true }, // one image: GEMMs in place
  { x: [3, 4, 5, 6], w: [6, 4, 1, 1], s: 1, p: 0, groups: 1, bias: true }, // 1×1, images side by side
  { x: [1, 4, 5, 6], w: [6, 4, 1, 1], s: 1, p: 0, groups: 1, bias: true }, // 1×1, the image is its unfolding
  { x: [2, 6, 7, 9], w: [4, 3, 3, 3], s: 1, p: 1, groups: 2, bias: true },
  { x: [3, 6, 8, 5], w: [6, 2, 3, 3], s: 2, p: 0, groups: 3, bias: false },
  { x: [2, 4, 7, 9], w: [4, 1, 7, 7], s: 1, p: 3, groups: 4, bias: true }, // depthwise 7×7
  { x: [2, 4, 9, 7], w: [4, 1, 3, 3], s: 2, p: 1, groups: 4, bias: true }, // depthwise, stride 2
  { x: [2, 5, 8, 6], w: [5, 1, 4, 4], s: 3, p: 2, groups: 5, bias: false }, // depthwise, taps beyond the positions
];

const CONVT_CASES: ConvCase[] = [
  { x: [2, 5, 4, 3], w: [5, 2, 3, 3], s: 2, p: 1, groups: 1, bias: true },
  { x: [2, 4, 3, 3], w: [4, 3, 3, 3], s: 2, p: 0, groups: 2, bias: true },
  { x: [2, 3, 4, 5], w: [3, 2, 2, 2], s: 2, p: 0, groups: 1, bias: false }, // SparK's decoder upsampling
  { x: [1, 4, 3, 5], w: [4, 3, 1, 1], s: 1, p: 0, groups: 1, bias: true }, // 1×1, one image: GEMM into the output
  { x: [3, 4, 3, 5], w: [4, 3, 1, 1], s: 1, p: 0, groups: 1, bias: true }, // 1×1, several images: fold
  { x: [2, 3, 5, 4], w: [3, 1, 3, 3], s: 1, p: 1, groups: 3, bias: true }, // depthwise transpose (general path)
];

describeCuda('conv2d and convTranspose2d', () => {
  for (const dtype of DTYPES) {
    it(`conv2d forward and backward match the CPU: ${dtype}`, () => {
      for (const c of CONV_CASES) checkConv(dtype, c, false);
    });
    it(`convTranspose2d forward and backward match the CPU: ${dtype}`, () => {
      for (const c of CONVT_CASES) checkConv(dtype, c, true);
    });
  }

  it('conv2d over several chunks of images (unfolded input above the chunk budget), float32', () => {
    // 64·9 rows × 64·64 positions = 2.4M unfolded elements per image: 14 images per chunk, so
    // 15 images make a chunk of 14 and one of 1, and dw is summed over two chunks.
    checkConv('float32', { x: [15, 64, 64, 64], w: [4, 64, 3, 3], s: 1, p: 1, groups: 1, bias: true }, false);
  });

  it('returns zero weight and bias gradients for an empty batch', () => {
    const N = native();
    const x = put([], [0, 3, 5, 5], 'float32', 'cuda'), w = put(rand(5 * 27), [5, 3, 3, 3], 'float32', 'cuda');
    const dy = put([], [0, 5, 3, 3], 'float32', 'cuda');
    const [dx, dw, db] = N.conv2dBackward(dy, x, w, 1, 0, 1, true, true, true);
    expect(dx!.shape).toEqual([0, 3, 5, 5]);
    expect(Array.from(get(dw!))).toEqual(new Array(135).fill(0));
    expect(Array.from(get(db!))).toEqual(new Array(5).fill(0));
  });

  it('refuses tensors on mixed devices', () => {
    const x = put(rand(2 * 3 * 5 * 5), [2, 3, 5, 5], 'float32', 'cuda');
    const w = put(rand(4 * 27), [4, 3, 3, 3], 'float32', 'cpu');
    expect(() => native().conv2d(x, w, null, 1, 0, 1)).toThrow(/Expected a cuda tensor .* for weight/);
  });
});

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

  it('keeps float32 statistics for bfloat16 input and takes them back in the backward', () => {
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

/** A fixed dy per shape, the same values for every run of one check. */
const dyCache = new Map<string, number[]>();
function dyFor(shape: readonly number[]): number[] {
  const key = shape.join('x');
  if (!dyCache.has(key)) dyCache.set(key, rand(numel(shape)));
  return dyCache.get(key)!;
}

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
