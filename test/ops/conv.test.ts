/**
 * conv2d and convTranspose2d (groups, depthwise) against a direct-loop float64
 * reference at odd sizes, finite-difference gradients in float64, bit-identical
 * results on 1 and 2 threads, bad input; and the CUDA kernels against the CPU,
 * on shapes that take each im2col path of the device (one image per chunk,
 * several, several chunks, 1×1 in place).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeInfo, setNumThreads, tensor, type DType, type Tensor } from '../../src/index.js';
import { conv2d, convTranspose2d } from '../../src/ops/conv.js';
import { native } from '../../src/native/loader.js';
import { describeCuda, get, itOnDevice, put } from '../helpers/cuda-harness.js';
import * as cudaConv from '../helpers/cuda-conv.js';
import { f64, forwardBackward, numel, rand, rng, tolSum, type Shape4 } from '../helpers/dense-conv.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { assertClose } from '../helpers/tolerance.js';

const threads0 = runtimeInfo().threads;
afterAll(() => setNumThreads(threads0));

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
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU, bfloat16 on cuda by the bf16 rule
// against a naive bf16 version (inputs rounded, the float64 op, its outputs
// rounded).

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { DTYPES, expectRuns, numel, rand, runs, tolSum } = cudaConv;

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

    itOnDevice('refuses tensors on mixed devices', () => {
      const x = put(rand(2 * 3 * 5 * 5), [2, 3, 5, 5], 'float32', 'cuda');
      const w = put(rand(4 * 27), [4, 3, 3, 3], 'float32', 'cpu');
      expect(() => native().conv2d(x, w, null, 1, 0, 1)).toThrow(/Expected a cuda tensor .* for weight/);
    });
  });
}
