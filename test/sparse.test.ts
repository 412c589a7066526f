/**
 * SparK's sparse ops against masked-dense references in plain float64
 * TypeScript: at the active sites, sparse conv outputs and every gradient
 * (dX at active rows, dW, db) equal a dense zero-padded conv over the masked
 * input, for SparK-style nested masks at 0%, 60% and 100% masked, odd sizes,
 * kernels 1, 3 and 7, strides 1 and 2, depthwise, float64 and float32. Plus
 * finite differences, the rulebook's properties, sparse BN and max pool,
 * conversions, determinism across thread counts, and bad input.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  backward, liveBytes, Rng, runtimeInfo, scope, setNumThreads, tensor, type DType, type Tensor,
} from '../src/index.js';
import { native } from '../src/native/loader.js';
import {
  activeSites, neighbourTable, sparseBatchNorm, sparseConv, sparseDepthwiseConv, sparseMaxPool, toDense, toSparse,
} from '../src/ops/sparse.js';
import { gradcheck, randLeaf } from './helpers/gradcheck.js';
import { assertClose, tolFor, type Tol } from './helpers/tolerance.js';

const rng = new Rng(4242);
// float32 kernels sum up to k²·Cin = 245 products (and dW over every row) in another order than the reference.
const tolOf = (dtype: DType): Tol => (dtype === 'float64' ? tolFor('float64') : { atol: 2e-4, rtol: 2e-4 });

function rand(shape: number[], dtype: DType, requiresGrad = true, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
  t.requiresGrad = requiresGrad;
  return t;
}

interface Masks {
  /** uint8 [B, H, W], 1 = active. */
  fine: Uint8Array;
  /** uint8 [B, Hc, Wc] with Hc = ⌈H/f⌉: the coarse mask fine was upsampled from. */
  coarse: Uint8Array;
  Hc: number;
  Wc: number;
}

/** SparK's masks: per image, round(ratio·L) coarse cells masked at random, upsampled by nearest repetition (×f). */
function sparkMasks(B: number, H: number, W: number, ratio: number, f = 2, r: Rng = rng): Masks {
  const Hc = Math.ceil(H / f);
  const Wc = Math.ceil(W / f);
  const L = Hc * Wc;
  const coarse = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const masked = Math.round(ratio * L);
    for (let i = masked; i < L; i++) coarse[b * L + order[i]!] = 1;
  }
  const fine = new Uint8Array(B * H * W);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) fine[(b * H + y) * W + x] = coarse[b * L + Math.floor(y / f) * Wc + Math.floor(x / f)]!;
  return { fine, coarse, Hc, Wc };
}

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

/** rows [N, C] at coords → dense [B, C, H, W] (zeros elsewhere), and back. */
function scatterRows(rows: ArrayLike<number>, coords: Int32Array, B: number, C: number, H: number, W: number): Float64Array {
  const d = new Float64Array(B * C * H * W);
  for (let n = 0; n < coords.length / 3; n++)
    for (let c = 0; c < C; c++) d[((coords[3 * n]! * C + c) * H + coords[3 * n + 1]!) * W + coords[3 * n + 2]!] = rows[n * C + c]!;
  return d;
}
function gatherRows(d: ArrayLike<number>, coords: Int32Array, C: number, H: number, W: number): Float64Array {
  const rows = new Float64Array((coords.length / 3) * C);
  for (let n = 0; n < coords.length / 3; n++)
    for (let c = 0; c < C; c++) rows[n * C + c] = d[((coords[3 * n]! * C + c) * H + coords[3 * n + 1]!) * W + coords[3 * n + 2]!]!;
  return rows;
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

/** A small float64 SparK map: sites, and (for stride 2) the coarse sites. */
function smallMap(B: number, H: number, W: number, ratio: number) {
  const m = sparkMasks(B, H, W, ratio);
  return {
    fine: activeSites(tensor(m.fine, [B, H, W], 'uint8')),
    coarse: activeSites(tensor(m.coarse, [B, m.Hc, m.Wc], 'uint8')),
  };
}

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

  it('sparseBatchNorm, training and eval', () => {
    scope(() => {
      const stats = (): [Tensor, Tensor] => [rand([4], 'float64', false), rand([4], 'float64', false, 0.5, 2)];
      gradcheck(([x, w, b]) => sparseBatchNorm(x!, w!, b!, null, null, { training: true }), [randLeaf([7, 4], rng), randLeaf([4], rng), randLeaf([4], rng)]);
      const [rm, rv] = stats();
      gradcheck(([x, w, b]) => sparseBatchNorm(x!, w!, b!, rm, rv, { training: false }), [randLeaf([7, 4], rng), randLeaf([4], rng), randLeaf([4], rng)]);
      gradcheck(([x]) => sparseBatchNorm(x!, null, null, null, null, { training: true, eps: 1e-3 }), [randLeaf([5, 3], rng)]);
    });
  });

  it('sparseMaxPool, toDense with a fill token, toSparse', () => {
    scope(() => {
      const { fine, coarse } = smallMap(2, 5, 6, 0.6);
      const N = fine.coords.shape[0]!;
      const nbr = neighbourTable(fine.grid, coarse.coords, { kernel: 3, stride: 2 });
      gradcheck(([x]) => sparseMaxPool(x!, nbr), [randLeaf([N, 3], rng)]);
      gradcheck(([x, f]) => toDense(x!, fine.coords, 2, 5, 6, f!), [randLeaf([N, 3], rng), randLeaf([3], rng)]);
      gradcheck(([d]) => toSparse(d!, fine.coords), [randLeaf([2, 3, 5, 6], rng)]);
    });
  });
});

describe('sites and rulebook', () => {
  it('activeSites lists the active sites in row-major order, and the grid inverts it', () => {
    scope(() => {
      const [B, H, W] = [2, 7, 5];
      const mask = Uint8Array.from({ length: B * H * W }, () => (rng.uniform() < 0.4 ? 1 : 0));
      const { coords, grid } = activeSites(tensor(mask, [B, H, W], 'uint8'));
      const want: number[] = [];
      const wantGrid = new Int32Array(B * H * W).fill(-1);
      for (let i = 0; i < mask.length; i++) {
        if (!mask[i]) continue;
        wantGrid[i] = want.length / 3;
        want.push(Math.floor(i / (H * W)), Math.floor(i / W) % H, i % W);
      }
      expect(Array.from(coords.toArray())).toEqual(want);
      expect(coords.shape).toEqual([want.length / 3, 3]);
      expect(Array.from(grid.toArray())).toEqual(Array.from(wantGrid));
    });
  });

  it('neighbourTable matches a brute-force lookup (strides 1 and 2, explicit padding)', () => {
    scope(() => {
      const [B, H, W] = [2, 9, 8];
      const mask = Uint8Array.from({ length: B * H * W }, () => (rng.uniform() < 0.5 ? 1 : 0));
      const { grid } = activeSites(tensor(mask, [B, H, W], 'uint8'));
      const g = grid.toArray() as Int32Array;
      for (const [k, stride, padding] of [[1, 1, 0], [3, 1, 1], [3, 2, 0], [3, 2, 2], [5, 2, 2], [7, 1, 3]] as const) {
        const Ho = Math.floor((H + 2 * padding - k) / stride) + 1;
        const Wo = Math.floor((W + 2 * padding - k) / stride) + 1;
        const out: number[] = [];
        for (let b = 0; b < B; b++) for (let y = 0; y < Ho; y++) for (let x = 0; x < Wo; x++) if (rng.uniform() < 0.7) out.push(b, y, x);
        const nbr = neighbourTable(grid, tensor(out, [out.length / 3, 3], 'int32'), { kernel: k, stride, padding });
        const want: number[] = [];
        for (let m = 0; m < out.length / 3; m++)
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) {
              const y = out[3 * m + 1]! * stride + dy - padding;
              const x = out[3 * m + 2]! * stride + dx - padding;
              want.push(y >= 0 && y < H && x >= 0 && x < W ? g[(out[3 * m]! * H + y) * W + x]! : -1);
            }
        expect(Array.from(nbr.toArray())).toEqual(want);
      }
    });
  });

  it('submanifold tables are symmetric: nbr[m, o] = i exactly when nbr[i, k²−1−o] = m', () => {
    scope(() => {
      for (const k of [3, 5, 7]) {
        const { fine } = smallMap(2, 11, 9, 0.6);
        const t = neighbourTable(fine.grid, fine.coords, { kernel: k }).toArray() as Int32Array;
        const K2 = k * k;
        const N = fine.coords.shape[0]!;
        let pairs = 0;
        for (let m = 0; m < N; m++) {
          expect(t[m * K2 + (K2 - 1) / 2]).toBe(m);  // the centre is the site itself
          for (let o = 0; o < K2; o++) {
            const i = t[m * K2 + o]!;
            if (i < 0) continue;
            pairs++;
            expect(t[i * K2 + (K2 - 1 - o)]).toBe(m);
          }
        }
        expect(pairs).toBeGreaterThan(N);
      }
    });
  });
});

/** BatchNorm over the masked positions of a dense map, per PyTorch, in float64. */
function denseBnRef(d: ArrayLike<number>, mask: Uint8Array, B: number, C: number, HW: number, w: ArrayLike<number>,
  b: ArrayLike<number>, eps: number) {
  const y = new Float64Array(d.length);
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  let n = 0;
  for (const m of mask) n += m;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let bb = 0; bb < B; bb++) for (let p = 0; p < HW; p++) if (mask[bb * HW + p]) s += d[(bb * C + c) * HW + p]!;
    mean[c] = s / n;
    let q = 0;
    for (let bb = 0; bb < B; bb++) for (let p = 0; p < HW; p++) if (mask[bb * HW + p]) q += (d[(bb * C + c) * HW + p]! - mean[c]!) ** 2;
    varB[c] = q / n;
    for (let bb = 0; bb < B; bb++)
      for (let p = 0; p < HW; p++) {
        const i = (bb * C + c) * HW + p;
        y[i] = mask[bb * HW + p] ? ((d[i]! - mean[c]!) / Math.sqrt(varB[c]! + eps)) * w[c]! + b[c]! : 0;
      }
  }
  return { y, mean, varB, n };
}

describe('sparseBatchNorm', () => {
  for (const dtype of ['float64', 'float32'] as DType[])
    it(`${dtype}: equals dense BN whose statistics cover the active sites; running stats as PyTorch`, () => {
      scope(() => {
        const [B, C, H, W] = [2, 5, 13, 11];
        const masks = sparkMasks(B, H, W, 0.6);
        const sites = activeSites(tensor(masks.fine, [B, H, W], 'uint8'));
        const N = sites.coords.shape[0]!;
        const x = rand([N, C], dtype, false, -2, 3);
        const w = rand([C], dtype, false);
        const b = rand([C], dtype, false);
        const rm = rand([C], dtype, false);
        const rv = rand([C], dtype, false, 0.5, 2);
        const rm0 = rm.toArray();
        const rv0 = rv.toArray();
        const coords = sites.coords.toArray() as Int32Array;
        const ref = denseBnRef(scatterRows(x.toArray(), coords, B, C, H, W), masks.fine, B, C, H * W, w.toArray(), b.toArray(), 1e-5);
        const y = sparseBatchNorm(x, w, b, rm, rv, { training: true, momentum: 0.2 });
        const tol = tolOf(dtype);
        assertClose(y.toArray(), gatherRows(ref.y, coords, C, H, W), tol, 'y');
        assertClose(rm.toArray(), Array.from(rm0, (v, c) => 0.8 * v + 0.2 * ref.mean[c]!), tol, 'runningMean');
        assertClose(rv.toArray(), Array.from(rv0, (v, c) => 0.8 * v + (0.2 * ref.varB[c]! * ref.n) / (ref.n - 1)), tol, 'runningVar');
        // eval: the running statistics normalise, and stay as they are
        const rm1 = rm.toArray();
        const rv1 = rv.toArray();
        const ye = sparseBatchNorm(x, w, b, rm, rv, { training: false });
        const xs = x.toArray();
        const want = Array.from(xs, (v, i) => {
          const c = i % C;
          return ((v - rm1[c]!) / Math.sqrt(rv1[c]! + 1e-5)) * w.toArray()[c]! + b.toArray()[c]!;
        });
        assertClose(ye.toArray(), want, tol, 'eval y');
        expect(Array.from(rm.toArray())).toEqual(Array.from(rm1));
      });
    });

  it('eval without running statistics normalises with the batch statistics, as PyTorch', () => {
    scope(() => {
      const x = rand([9, 3], 'float64', false);
      const w = rand([3], 'float64', false);
      const y = sparseBatchNorm(x, w, null, null, null, { training: false }).toArray();
      assertClose(y, sparseBatchNorm(x, w, null, null, null, { training: true }).toArray(), tolFor('float64'), 'eval y');
      gradcheck(([xx]) => sparseBatchNorm(xx!, w, null, null, null, { training: false }), [randLeaf([9, 3], rng)]);
    });
  });

  it('no active rows: an empty output and unchanged running statistics; one row in training is an error', () => {
    scope(() => {
      const rm = tensor([1, 2], [2], 'float64');
      const rv = tensor([3, 4], [2], 'float64');
      const y = sparseBatchNorm(tensor([], [0, 2], 'float64'), null, null, rm, rv, { training: true });
      expect(y.shape).toEqual([0, 2]);
      expect(Array.from(rm.toArray())).toEqual([1, 2]);
      expect(Array.from(rv.toArray())).toEqual([3, 4]);
      expect(() => sparseBatchNorm(tensor([1, 2], [1, 2], 'float64'), null, null, rm, rv, { training: true }))
        .toThrow(/more than 1 active row per channel when training for input/);
    });
  });
});

describe('sparseMaxPool', () => {
  it('equals the masked dense max pool (k3 s2 p1) on non-negative input, gradients included', () => {
    scope(() => {
      const [B, C, H, W] = [2, 4, 13, 11];
      const masks = sparkMasks(B, H, W, 0.6);
      const sites = activeSites(tensor(masks.fine, [B, H, W], 'uint8'));
      const out = activeSites(tensor(masks.coarse, [B, masks.Hc, masks.Wc], 'uint8'));
      const N = sites.coords.shape[0]!;
      const M = out.coords.shape[0]!;
      // Distinct positive values (after a ReLU, as in ResNet's stem): no ties, and masked zeros never win.
      const x = rand([N, C], 'float64', true, 0.01, 1);
      const y = sparseMaxPool(x, neighbourTable(sites.grid, out.coords, { kernel: 3, stride: 2 }));
      const G = rand([M, C], 'float64', false);
      backward(y, G);
      const inC = sites.coords.toArray() as Int32Array;
      const outC = out.coords.toArray() as Int32Array;
      const xd = scatterRows(x.toArray(), inC, B, C, H, W);
      const [Ho, Wo] = [masks.Hc, masks.Wc];
      const yd = new Float64Array(B * C * Ho * Wo);
      const arg = new Int32Array(yd.length);
      for (let i = 0; i < yd.length; i++) {
        const xo = i % Wo;
        const yo = Math.floor(i / Wo) % Ho;
        const bc = Math.floor(i / (Ho * Wo));
        let best = -Infinity;
        for (let dy = 0; dy < 3; dy++)
          for (let dx = 0; dx < 3; dx++) {
            const yy = 2 * yo + dy - 1;
            const xx = 2 * xo + dx - 1;
            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;  // −∞ padding, as PyTorch
            const j = (bc * H + yy) * W + xx;
            if (xd[j]! > best) [best, arg[i]] = [xd[j]!, j];
          }
        yd[i] = best;
      }
      assertClose(y.toArray(), gatherRows(yd, outC, C, Ho, Wo), tolFor('float64'), 'max');
      const gd = scatterRows(G.toArray(), outC, B, C, Ho, Wo);
      const dxd = new Float64Array(xd.length);
      for (let i = 0; i < gd.length; i++) if (gd[i] !== 0) dxd[arg[i]!] += gd[i]!;
      assertClose(x.grad!.toArray(), gatherRows(dxd, inC, C, H, W), tolFor('float64'), 'dX');
    });
  });

  it('takes the max over existing neighbours only (negative values), 0 with none, gradient to the first max', () => {
    scope(() => {
      const x = tensor([-3, -1, -2, 5, -1, 7], [3, 2], 'float64');
      x.requiresGrad = true;
      const nbr = tensor([0, 1, -1, 2, -1, -1, -1, -1, 1, -1, 1, 0], [3, 4], 'int32');
      const y = sparseMaxPool(x, nbr);
      expect(Array.from(y.toArray())).toEqual([-1, 7, 0, 0, -2, 5]);
      backward(y, tensor([1, 2, 3, 4, 5, 6], [3, 2], 'float64'));
      // Output 2 reads row 1 twice (offsets 0 and 2): only the first copy of the max takes the gradient.
      expect(Array.from(x.grad!.toArray())).toEqual([0, 0, 5, 6, 1, 2]);
    });
  });
});

describe('toDense and toSparse', () => {
  it('place rows at their sites with the fill token elsewhere, and gather them back', () => {
    scope(() => {
      const [B, C, H, W] = [2, 3, 5, 7];
      const masks = sparkMasks(B, H, W, 0.6);
      const sites = activeSites(tensor(masks.fine, [B, H, W], 'uint8'));
      const N = sites.coords.shape[0]!;
      const x = rand([N, C], 'float32', false);
      const fill = tensor([0.5, -2, 3], [3], 'float32');
      const d = toDense(x, sites.coords, B, H, W, fill).toArray();
      const want = scatterRows(x.toArray(), sites.coords.toArray() as Int32Array, B, C, H, W);
      for (let i = 0; i < want.length; i++) if (!masks.fine[Math.floor(i / (C * H * W)) * H * W + (i % (H * W))]) want[i] = [0.5, -2, 3][Math.floor(i / (H * W)) % C]!;
      expect(Array.from(d)).toEqual(Array.from(Float32Array.from(want)));
      expect(Array.from(toSparse(toDense(x, sites.coords, B, H, W, null), sites.coords).toArray())).toEqual(Array.from(x.toArray()));
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
      const h = sparseBatchNorm(sparseDepthwiseConv(sparseConv(x, w, b, nbr), wd, null, nbr7), bw, null, null, null, { training: true });
      const y = toDense(sparseMaxPool(h, nbr), sites.coords, B, H, W, fill);
      backward(y, tensor(Array.from({ length: y.size }, () => r.uniform() - 0.5), y.shape, 'float32'));
      expect(N).toBeGreaterThan(3000);  // more than one gathered tile, and many reduction chunks
      return [y, x.grad!, w.grad!, b.grad!, wd.grad!, bw.grad!, fill.grad!].map((t) => t.toArray() as Float32Array);
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
  const sites = () => activeSites(tensor([1, 1, 0, 1, 0, 1], [1, 2, 3], 'uint8'));

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

  it('names the sites, grid, mask and options of the rulebook and conversions', () => {
    scope(() => {
      const s = sites();
      expect(() => activeSites(tensor([0, 2], [1, 1, 2], 'uint8'))).toThrow(/Expected values 0 or 1 \(1 = active\) for mask but received 2/);
      expect(() => activeSites(tensor([0, 1], [1, 2], 'uint8'))).toThrow(/3-D tensor for mask/);
      expect(() => activeSites(tensor([0, 1], [1, 1, 2], 'float32'))).toThrow(/uint8 tensor for mask/);
      expect(() => neighbourTable(s.grid, tensor([0, 2, 0], [1, 3], 'int32'), { kernel: 3 })).toThrow(/sites inside \[B, H, W\] = \[1, 2, 3\] for outCoords but received \(0, 2, 0\)/);
      expect(() => neighbourTable(s.grid, tensor([0, 0, 0, 0, 0, 0], [2, 3], 'int32'), { kernel: 1 })).toThrow(/distinct sites for outCoords/);
      expect(() => neighbourTable(s.grid, s.coords, { kernel: 3, padding: 3 })).toThrow(/for padding/);
      expect(() => neighbourTable(s.grid, s.coords, { kernel: 0 })).toThrow(/for kernel/);
      expect(() => native().neighbourTable(tensor([-3, 0], [1, 1, 2], 'int32').native, s.coords.native, 1, 1, 0)).toThrow(/for grid but received -3/);
      const x = rand([4, 2], 'float32', false);
      expect(() => toDense(x, s.coords, 1, 1, 3, null)).toThrow(/sites inside \[B, H, W\] = \[1, 1, 3\] for coords/);
      expect(() => toDense(x, tensor([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1], [4, 3], 'int32'), 1, 2, 3, null)).toThrow(/distinct sites for coords/);
      expect(() => toDense(x, s.coords.detach(), 1, 2, 3, rand([3], 'float32'))).toThrow(/Expected shape \[2\] for fill/);
      expect(() => toDense(rand([3, 2], 'float32'), s.coords, 1, 2, 3, null)).toThrow(/Expected shape \[3, 3\] .* for coords/);
      expect(() => toSparse(rand([1, 2, 2, 2], 'float32'), s.coords)).toThrow(/for coords but received \(0, 1, 2\) at row 3/);
    });
  });
});
