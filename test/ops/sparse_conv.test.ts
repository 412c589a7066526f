/**
 * SparK's sparse convolution against masked-dense references in plain float64
 * TypeScript: at the active sites, sparse conv outputs and every gradient (dX
 * at active rows, dW, db) equal a dense zero-padded conv over the masked input,
 * for SparK-style nested masks at 0%, 60% and 100% masked, odd sizes, kernels
 * 1, 3 and 7, strides 1 and 2, depthwise, float64 and float32. Plus finite
 * differences, determinism across thread counts (the whole sparse stack), the
 * memory kept after backward, bad input; and the CUDA kernels against the CPU.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backward, liveBytes, Rng, runtimeInfo, scope, setNumThreads, tensor, type DType, type Tensor } from '../../src/index.js';
import { activeSites, neighbourTable, toDense } from '../../src/ops/sparse_rulebook.js';
import { sparseConv, sparseDepthwiseConv } from '../../src/ops/sparse_conv.js';
import { sparseBatchNorm, sparseMaxPool } from '../../src/ops/sparse_norm_pool.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { describeCuda, put } from '../helpers/cuda-harness.js';
import * as cudaSparse from '../helpers/cuda-sparse.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { gatherRows, rand, rng, scatterRows, smallMap, sparkMasks, tolOf } from '../helpers/spark-maps.js';
import { assertClose } from '../helpers/tolerance.js';

interface Geom {
  B: number; Cin: number; Cout: number; H: number; W: number; k: number; stride: number; pad: number;
  Ho: number; Wo: number; depthwise: boolean;
}

const wIndex = (g: Geom, co: number, ci: number, dy: number, dx: number): number =>
  g.depthwise ? (co * g.k + dy) * g.k + dx : ((co * g.Cin + ci) * g.k + dy) * g.k + dx;

/** Calls f(b, co, yo, xo, ci, yi, xi, dy, dx) for every in-range term of the dense conv. */
function forEachTerm(g: Geom, f: (b: number, co: number, yo: number, xo: number, ci: number, yi: number, xi: number, dy: number, dx: number) => void): void {
  for (let b = 0; b < g.B; b++)
    for (let co = 0; co < g.Cout; co++)
      for (let yo = 0; yo < g.Ho; yo++)
        for (let xo = 0; xo < g.Wo; xo++)
          for (let ci = g.depthwise ? co : 0; ci < (g.depthwise ? co + 1 : g.Cin); ci++)
            for (let dy = 0; dy < g.k; dy++) {
              const yi = yo * g.stride + dy - g.pad;
              if (yi < 0 || yi >= g.H) continue;
              for (let dx = 0; dx < g.k; dx++) {
                const xi = xo * g.stride + dx - g.pad;
                if (xi >= 0 && xi < g.W) f(b, co, yo, xo, ci, yi, xi, dy, dx);
              }
            }
}

/** Dense NCHW conv with zero padding (groups = C when depthwise): y [B, Cout, Ho, Wo]. */
function convRef(g: Geom, x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null): Float64Array {
  const y = new Float64Array(g.B * g.Cout * g.Ho * g.Wo);
  if (bias) for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / (g.Ho * g.Wo)) % g.Cout]!;
  forEachTerm(g, (b, co, yo, xo, ci, yi, xi, dy, dx) => {
    y[((b * g.Cout + co) * g.Ho + yo) * g.Wo + xo] += x[((b * g.Cin + ci) * g.H + yi) * g.W + xi]! * w[wIndex(g, co, ci, dy, dx)]!;
  });
  return y;
}

/** Gradients of Σ gy ⊙ convRef(x) with respect to x, w and the bias. */
function convRefBackward(g: Geom, x: ArrayLike<number>, w: ArrayLike<number>, gy: ArrayLike<number>) {
  const dx = new Float64Array(g.B * g.Cin * g.H * g.W);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(g.Cout);
  forEachTerm(g, (b, co, yo, xo, ci, yi, xi, dy, ddx) => {
    const gv = gy[((b * g.Cout + co) * g.Ho + yo) * g.Wo + xo]!;
    const xIdx = ((b * g.Cin + ci) * g.H + yi) * g.W + xi;
    dx[xIdx] += gv * w[wIndex(g, co, ci, dy, ddx)]!;
    dw[wIndex(g, co, ci, dy, ddx)] += gv * x[xIdx]!;
  });
  for (let i = 0; i < gy.length; i++) db[Math.floor(i / (g.Ho * g.Wo)) % g.Cout] += gy[i]!;
  return { dx, dw, db };
}

interface ConvCase {
  dtype: DType; B: number; H: number; W: number; Cin: number; Cout: number; k: number; stride: number; ratio: number;
  depthwise?: boolean; bias?: boolean; factor?: number;
}

/** Sparse conv + backward against the masked-dense reference at the (coarse) active sites. */
function checkAgainstMaskedDense(c: ConvCase): { N: number; M: number } {
  return scope(() => {
    const depthwise = c.depthwise ?? false;
    const masks = sparkMasks(c.B, c.H, c.W, c.ratio, c.factor ?? 2);
    const sites = activeSites(tensor(masks.fine, [c.B, c.H, c.W], 'uint8'));
    const outSites = c.stride === 1 ? sites : activeSites(tensor(masks.coarse, [c.B, masks.Hc, masks.Wc], 'uint8'));
    const pad = Math.floor((c.k - 1) / 2);
    const g: Geom = {
      B: c.B, Cin: c.Cin, Cout: depthwise ? c.Cin : c.Cout, H: c.H, W: c.W, k: c.k, stride: c.stride, pad,
      Ho: Math.floor((c.H + 2 * pad - c.k) / c.stride) + 1, Wo: Math.floor((c.W + 2 * pad - c.k) / c.stride) + 1, depthwise,
    };
    if (c.stride === 2) expect([g.Ho, g.Wo]).toEqual([masks.Hc, masks.Wc]);
    const nbr = neighbourTable(sites.grid, outSites.coords, { kernel: c.k, stride: c.stride });
    const N = sites.coords.shape[0]!;
    const M = outSites.coords.shape[0]!;
    const x = rand([N, c.Cin], c.dtype);
    const w = rand([g.Cout, depthwise ? 1 : c.Cin, c.k, c.k], c.dtype);
    const b = c.bias === false ? null : rand([g.Cout], c.dtype);
    const y = (depthwise ? sparseDepthwiseConv : sparseConv)(x, w, b, nbr);
    expect(y.shape).toEqual([M, g.Cout]);
    const G = rand([M, g.Cout], c.dtype, false);
    backward(y, G);

    const inC = sites.coords.toArray() as Int32Array;
    const outC = outSites.coords.toArray() as Int32Array;
    const xd = scatterRows(x.toArray(), inC, c.B, c.Cin, c.H, c.W);
    const wv = w.toArray();
    const yd = convRef(g, xd, wv, b ? b.toArray() : null);
    const tol = tolOf(c.dtype);
    assertClose(y.toArray(), gatherRows(yd, outC, g.Cout, g.Ho, g.Wo), tol, 'output');
    const ref = convRefBackward(g, xd, wv, scatterRows(G.toArray(), outC, c.B, g.Cout, g.Ho, g.Wo));
    assertClose(x.grad!.toArray(), gatherRows(ref.dx, inC, c.Cin, c.H, c.W), tol, 'dX');
    assertClose(w.grad!.toArray(), ref.dw, tol, 'dW');
    if (b) assertClose(b.grad!.toArray(), ref.db, tol, 'db');
    return { N, M };
  });
}

describe('sparseConv equals masked-dense conv at the active sites', () => {
  for (const dtype of ['float64', 'float32'] as DType[])
    for (const [B, H, W] of [[2, 9, 9], [2, 13, 11]] as Array<[number, number, number]>)
      for (const k of [1, 3, 7])
        for (const stride of [1, 2])
          it(`${dtype} [${B}, ${H}, ${W}] k${k} s${stride}, masked 0% / 60% / 100%`, () => {
            const n = [0, 0.6, 1].map((ratio) => checkAgainstMaskedDense({ dtype, B, H, W, Cin: 5, Cout: 4, k, stride, ratio }));
            expect(n[0]!.N).toBe(B * H * W);
            expect(n[1]!.N).toBeGreaterThan(0);
            expect(n[1]!.N).toBeLessThan(B * H * W);
            expect(n[2]).toEqual({ N: 0, M: 0 });
          });

  // The direct (gather-free) products run for C ≤ 128 and for a table with twice the rows it indexes (dX of a
  // stride-2 conv); the sparse im2col otherwise (sparse_conv_direct.cc). 40 and 37 channels give the direct
  // kernels' vector strips, their 8-, 4- and 1-row blocks and the scalar column tail; 136 runs the im2col
  // forward and dW (and, at stride 1, its dX through a 136-wide dY).
  for (const dtype of ['float64', 'float32'] as DType[])
    for (const [Cin, Cout] of [[40, 37], [37, 40], [136, 20], [20, 136]] as Array<[number, number]>)
      it(`${dtype} ${Cin}→${Cout} channels, k3, stride 1 and 2 (the direct products and the im2col)`, () => {
        for (const stride of [1, 2]) checkAgainstMaskedDense({ dtype, B: 2, H: 13, W: 11, Cin, Cout, k: 3, stride, ratio: 0.6 });
      });

  // The direct dW sums its rows in chunks of about 128 KiB of dY (wgrad_chunk_rows: 1024 rows of 16 float64
  // channels) once dY exceeds 512 KiB (4096 such rows), and adds the chunks' partials in order.
  it('the direct dW over several row chunks (float64, 24→16 channels, 8 × 32 × 32 at 40% masked)', () => {
    const { M } = checkAgainstMaskedDense({ dtype: 'float64', B: 8, H: 32, W: 32, Cin: 24, Cout: 16, k: 3, stride: 1, ratio: 0.4, factor: 4 });
    expect(M).toBeGreaterThan(4096);
  });

  it('without bias, a larger map of 3 tiles per dW (float64, k7, 32 channels)', () => {
    checkAgainstMaskedDense({ dtype: 'float64', B: 3, H: 24, W: 24, Cin: 32, Cout: 6, k: 7, stride: 1, ratio: 0.6, bias: false, factor: 4 });
  });

  for (const dtype of ['float64', 'float32'] as DType[])
    for (const k of [3, 7])
      for (const stride of [1, 2])
        it(`depthwise ${dtype} [2, 13, 11] k${k} s${stride}, masked 0% / 60% / 100%`, () => {
          for (const ratio of [0, 0.6, 1]) checkAgainstMaskedDense({ dtype, B: 2, H: 13, W: 11, Cin: 6, Cout: 6, k, stride, ratio, depthwise: true });
        });
});

describe('finite-difference gradients (float64)', () => {
  it('sparseConv, submanifold and strided', () => {
    scope(() => {
      const { fine, coarse } = smallMap(2, 5, 5, 0.6);
      const N = fine.coords.shape[0]!;
      const ssc = neighbourTable(fine.grid, fine.coords, { kernel: 3 });
      gradcheck(([x, w, b]) => sparseConv(x!, w!, b!, ssc), [randLeaf([N, 2], rng), randLeaf([3, 2, 3, 3], rng), randLeaf([3], rng)]);
      const down = neighbourTable(fine.grid, coarse.coords, { kernel: 3, stride: 2 });
      gradcheck(([x, w]) => sparseConv(x!, w!, null, down), [randLeaf([N, 2], rng), randLeaf([3, 2, 3, 3], rng)]);
    });
  });

  it('sparseDepthwiseConv', () => {
    scope(() => {
      const { fine } = smallMap(1, 6, 5, 0.6);
      const nbr = neighbourTable(fine.grid, fine.coords, { kernel: 3 });
      const N = fine.coords.shape[0]!;
      gradcheck(([x, w, b]) => sparseDepthwiseConv(x!, w!, b!, nbr), [randLeaf([N, 3], rng), randLeaf([3, 1, 3, 3], rng), randLeaf([3], rng)]);
    });
  });
});

describe('determinism across thread counts', () => {
  const threads0 = runtimeInfo().threads;
  afterAll(() => setNumThreads(threads0));

  it('conv, depthwise conv, BN, max pool and toDense give the same bits on 1 and 3 threads', () => {
    const run = (): Float32Array[] => scope(() => {
      const r = new Rng(99);
      const [B, H, W, C] = [8, 32, 32, 64];
      const m = sparkMasks(B, H, W, 0.6, 4, r);
      const sites = activeSites(tensor(m.fine, [B, H, W], 'uint8'));
      const N = sites.coords.shape[0]!;
      const leaf = (shape: number[]): Tensor => {
        const t = tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.uniform() * 2 - 1), shape, 'float32');
        t.requiresGrad = true;
        return t;
      };
      const nbr = neighbourTable(sites.grid, sites.coords, { kernel: 3 });
      const nbr7 = neighbourTable(sites.grid, sites.coords, { kernel: 7 });
      const [x, w, b, wd, bw, fill] = [leaf([N, C]), leaf([C, C, 3, 3]), leaf([C]), leaf([C, 1, 7, 7]), leaf([C]), leaf([C])];
      // 64 channels run the direct products; a 64 → 136 → 64 detour runs the im2col's forward, dX and dW too.
      const [wUp, wDown] = [leaf([136, C, 1, 1]), leaf([C, 136, 3, 3])];
      const nbr1 = neighbourTable(sites.grid, sites.coords, { kernel: 1 });
      const h0 = sparseConv(sparseConv(sparseConv(x, w, b, nbr), wUp, null, nbr1), wDown, null, nbr);
      const h = sparseBatchNorm(sparseDepthwiseConv(h0, wd, null, nbr7), bw, null, null, null, { training: true });
      const y = toDense(sparseMaxPool(h, nbr), sites.coords, B, H, W, fill);
      backward(y, tensor(Array.from({ length: y.size }, () => r.uniform() - 0.5), y.shape, 'float32'));
      expect(N).toBeGreaterThan(3000);  // more than one gathered tile, and many reduction chunks
      return [y, x.grad!, w.grad!, b.grad!, wd.grad!, bw.grad!, fill.grad!, wUp.grad!, wDown.grad!].map((t) => t.toArray() as Float32Array);
    });
    setNumThreads(1);
    const one = run();
    setNumThreads(3);
    const three = run();
    one.forEach((a, i) => expect(Buffer.from(three[i]!.buffer).equals(Buffer.from(a.buffer)), `output ${i}`).toBe(true));
  });
});

describe('memory', () => {
  it('frees every saved handle after backward', () => {
    const before = liveBytes();
    scope(() => {
      const { fine, coarse } = smallMap(2, 9, 9, 0.6);
      const N = fine.coords.shape[0]!;
      const x = rand([N, 4], 'float32');
      const w = rand([5, 4, 3, 3], 'float32');
      const fill = rand([5], 'float32');
      const h = sparseBatchNorm(sparseConv(x, w, null, neighbourTable(fine.grid, fine.coords, { kernel: 3 })), null, null, null, null, { training: true });
      const p = sparseMaxPool(h, neighbourTable(fine.grid, coarse.coords, { kernel: 3, stride: 2 }));
      const d = toDense(p, coarse.coords, 2, 5, 5, fill);
      backward(d, rand(d.shape as number[], 'float32', false));
      expect(x.grad!.shape).toEqual([N, 4]);
    });
    expect(liveBytes()).toBe(before);
  });
});

describe('bad input', () => {

  it('names the neighbour table when an index is out of range or the table does not fit', () => {
    scope(() => {
      const x = rand([4, 2], 'float32');
      const w = rand([3, 2, 1, 1], 'float32');
      expect(() => sparseConv(x, w, null, tensor([0, 4], [2, 1], 'int32'))).toThrow(/Expected entries in \[-1, 4\) .* for nbr but received 4 at \(m, o\) = \(1, 0\)/);
      expect(() => sparseConv(x, w, null, tensor([-2], [1, 1], 'int32'))).toThrow(/for nbr but received -2/);
      expect(() => sparseConv(x, w, null, tensor([0, 1], [1, 2], 'int32'))).toThrow(/Expected shape \[M, 1\] .* for nbr/);
      expect(() => sparseConv(x, w, null, tensor([0], [1, 1], 'float32'))).toThrow(/int32 tensor for nbr/);
      expect(() => sparseMaxPool(x, tensor([9], [1, 1], 'int32'))).toThrow(/for nbr but received 9/);
      // The native checks hold without the TypeScript layer in front.
      expect(() => native().sparseConv(x.native, w.native, null, tensor([7], [1, 1], 'int32').native)).toThrow(/for nbr/);
      expect(() => native().sparseDepthwiseConv(x.native, rand([2, 1, 1, 1], 'float32').native, null, tensor([-5], [1, 1], 'int32').native)).toThrow(/for nbr/);
      // Two outputs reading input row 0 at the same offset: no grid makes that table, and its backward refuses it.
      const y = sparseConv(x, w, null, tensor([0, 0], [2, 1], 'int32'));
      expect(() => backward(y, rand([2, 3], 'float32', false))).toThrow(/each input row at most once per offset.* for nbr/);
    });
  });

  it('names the argument on shape and dtype mismatches', () => {
    scope(() => {
      const x = rand([4, 2], 'float32');
      const nbr = tensor([0, 1, 2, 3], [4, 1], 'int32');
      expect(() => sparseConv(x, rand([3, 5, 1, 1], 'float32'), null, nbr)).toThrow(/Expected shape \[Cout, 2, k, k\] .* for weight/);
      expect(() => sparseConv(x, rand([3, 2, 1, 2], 'float32'), null, nbr)).toThrow(/square kernel for weight/);
      expect(() => sparseConv(x, rand([3, 2, 1, 1], 'float64'), null, nbr)).toThrow(/float32 tensor for weight/);
      expect(() => sparseConv(x, rand([3, 2, 1, 1], 'float32'), rand([2], 'float32'), nbr)).toThrow(/Expected shape \[3\] for bias/);
      expect(() => sparseConv(tensor([1, 2], [1, 2], 'int32'), rand([3, 2, 1, 1], 'float32'), null, nbr)).toThrow(/for input/);
      expect(() => sparseDepthwiseConv(x, rand([2, 2, 3, 3], 'float32'), null, nbr)).toThrow(/Expected shape \[2, 1, k, k\] .* for weight/);
      expect(() => native().sparseConvBackward(rand([3, 3], 'float32').native, x.native, rand([3, 2, 1, 1], 'float32').native, nbr.native, true, true, true))
        .toThrow(/Expected shape \[4, 3\] for grad/);
      expect(() => sparseBatchNorm(x, rand([3], 'float32'), null, null, null, { training: true })).toThrow(/for weight/);
      expect(() => sparseBatchNorm(x, null, null, rand([2], 'float32'), null, { training: true })).toThrow(/both running statistics or neither for runningVar/);
      expect(() => sparseBatchNorm(x, null, null, null, null, { training: true, momentum: 2 })).toThrow(/for momentum/);
    });
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Through the native API: sites and tables exactly equal to the CPU's (their
// order defines every sparse tensor's rows); float32 on cuda against float64 on
// the CPU; bfloat16 by the bf16 rule against a naive bf16 version: the float64
// CPU op on bf16-rounded inputs, its output rounded to bf16. Masks 0%, 60% and
// 100% masked, odd sizes, strides 1 and 2, backward too; the device-side checks
// must throw the CPU's messages.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { check, inp, n, rand, sparseMap, TOL32 } = cudaSparse;
  type Dev = cudaSparse.Dev;

  interface ConvCase { B: number; H: number; W: number; Cin: number; Cout: number; k: number; stride: number; depthwise?: boolean; scale?: number }

  function convCase(dt: Dev, c: ConvCase, ratio: number): void {
    const map = sparseMap(c.B, c.H, c.W, ratio, c.k, c.stride);
    const table = (t: NativeTensor | null) => (t?.device === 'cuda' ? map.nbrD : map.nbr);
    const Cout = c.depthwise ? c.Cin : c.Cout;
    const x = inp(rand(map.N * c.Cin), [map.N, c.Cin]);
    const s = c.scale ?? 1;
    const w = inp(rand(Cout * (c.depthwise ? 1 : c.Cin) * map.K2, -s, s), [Cout, c.depthwise ? 1 : c.Cin, c.k, c.k]);
    const b = inp(rand(Cout), [Cout]);
    const g = inp(rand(map.M * Cout), [map.M, Cout]);
    const fwd = c.depthwise ? n().sparseDepthwiseConv.bind(n()) : n().sparseConv.bind(n());
    const bwd = c.depthwise ? n().sparseDepthwiseConvBackward.bind(n()) : n().sparseConvBackward.bind(n());
    const label = `${c.depthwise ? 'depthwise ' : ''}[${c.B}, ${c.H}, ${c.W}] ${c.Cin}→${Cout} k${c.k} s${c.stride} ${ratio}`;
    check(`${label} forward`, dt, [x, w, b], ([xx, ww, bb]) => [fwd(xx!, ww!, bb, table(xx)), fwd(xx!, ww!, null, table(xx))], TOL32);
    check(`${label} backward`, dt, [g, x, w], ([gg, xx, ww]) => bwd(gg!, xx!, ww!, table(gg), true, true, true), TOL32);
    check(`${label} backward dW only`, dt, [g, x, w], ([gg, xx, ww]) => bwd(gg!, xx!, ww!, table(gg), false, true, false), TOL32);
  }

  describeCuda('sparseConv and sparseDepthwiseConv', () => {
    for (const dt of ['float32', 'bfloat16'] as Dev[]) {
      for (const k of [1, 3, 7])
        for (const stride of [1, 2])
          it(`${dt} [2, 13, 11] 5→3 k${k} s${stride}, masked 0% / 60% / 100%`, () => {
            for (const ratio of [0, 0.6, 1]) convCase(dt, { B: 2, H: 13, W: 11, Cin: 5, Cout: 3, k, stride }, ratio);
          });

      it(`${dt} 64→48 channels, k3, a larger map`, () => {
        for (const stride of [1, 2]) convCase(dt, { B: 2, H: 20, W: 18, Cin: 64, Cout: 48, k: 3, stride, scale: 0.2 }, 0.6);
      });

      it(`${dt} several GEMM tiles (k7, 512 channels, 3072 rows)`, () => {
        // K2·Cin = 25088 columns: 1280 rows per float32 tile, 2560 per bf16 tile.
        convCase(dt, { B: 3, H: 32, W: 32, Cin: 512, Cout: 8, k: 7, stride: 1, scale: 0.05 }, 0);
      });

      for (const k of [3, 7])
        for (const stride of [1, 2])
          it(`depthwise ${dt} [2, 13, 11] 6 channels k${k} s${stride}, masked 0% / 60% / 100%`, () => {
            for (const ratio of [0, 0.6, 1]) convCase(dt, { B: 2, H: 13, W: 11, Cin: 6, Cout: 6, k, stride, depthwise: true }, ratio);
          });
    }

    it('is bit-for-bit repeatable', () => {
      const map = sparseMap(2, 16, 16, 0.6, 3, 1);
      const x = put(rand(map.N * 32), [map.N, 32], 'float32', 'cuda');
      const w = put(rand(16 * 32 * 9), [16, 32, 3, 3], 'float32', 'cuda');
      const g = put(rand(map.M * 16), [map.M, 16], 'float32', 'cuda');
      const run = () => n().sparseConvBackward(g, x, w, map.nbrD, true, true, true).map((t) => Array.from(t!.read()));
      expect(run()).toEqual(run());
    });
  });
}
