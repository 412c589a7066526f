/**
 * SparK's sparse batch norm and max pool: BN over the active rows equals dense
 * BN whose statistics cover the active sites (running statistics as PyTorch),
 * max pool equals the masked dense max pool, finite differences; and the CUDA
 * kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { backward, scope, tensor, type DType, type Tensor } from '../../src/index.js';
import { activeSites, neighbourTable, toDense, toSparse } from '../../src/ops/sparse_rulebook.js';
import { sparseBatchNorm, sparseMaxPool } from '../../src/ops/sparse_norm_pool.js';
import type { NativeTensor } from '../../src/native/types.js';
import { describeCuda, put } from '../helpers/cuda-harness.js';
import * as cudaSparse from '../helpers/cuda-sparse.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { gatherRows, rand, rng, scatterRows, smallMap, sparkMasks, tolOf } from '../helpers/spark-maps.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

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
    // 100% masked (no active row) has its own case below.
    for (const ratio of [0, 0.6])
      it(`${dtype}, ${ratio * 100}% masked: equals dense BN whose statistics cover the active sites; running stats as PyTorch`, () => {
        scope(() => {
          const [B, C, H, W] = [2, 5, 13, 11];
          const masks = sparkMasks(B, H, W, ratio);
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
  for (const ratio of [0, 0.6, 1])
    it(`equals the masked dense max pool (k3 s2 p1) on non-negative input, gradients included (${ratio * 100}% masked)`, () => {
      scope(() => {
        const [B, C, H, W] = [2, 4, 13, 11];
        const masks = sparkMasks(B, H, W, ratio);
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

describe('finite-difference gradients (float64)', () => {

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

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Through the native API: sites and tables exactly equal to the CPU's (their
// order defines every sparse tensor's rows); float32 on cuda against float64 on
// the CPU; bfloat16 by the bf16 rule against a naive bf16 version: the float64
// CPU op on bf16-rounded inputs, its output rounded to bf16. Masks 0%, 60% and
// 100% masked, odd sizes, strides 1 and 2, backward too; the device-side checks
// must throw the CPU's messages.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { check, f64, inp, ints, n, rand, rng, sparseMap, TOL32 } = cudaSparse;
  type Dev = cudaSparse.Dev;

  describeCuda('sparseBatchNorm and sparseMaxPool', () => {
    for (const dt of ['float32', 'bfloat16'] as Dev[]) {
      it(`batch norm forward and backward (${dt}; training, eval, no running statistics, N = 0)`, () => {
        for (const [N, C] of [[7, 4], [300, 37], [1000, 3], [0, 5]] as const) {
          const x = inp(rand(N * C, -2, 3), [N, C]);
          const w = inp(rand(C, 0.5, 1.5), [C]);
          const b = inp(rand(C), [C]);
          const rm = inp(rand(C), [C]);
          const rv = inp(rand(C, 0.5, 2), [C]);
          const g = inp(rand(N * C), [N, C]);
          if (N > 1) {
            // Running statistics are updated in place: return them as outputs.
            check(`bn train [${N}, ${C}]`, dt, [x, w, b, rm, rv], ([xx, ww, bb, m, v]) => [...n().sparseBatchNorm(xx!, ww, bb, m, v, true, 0.2, 1e-5), m, v], TOL32);
            check(`bn batch stats [${N}, ${C}]`, dt, [x, null, null], ([xx]) => n().sparseBatchNorm(xx!, null, null, null, null, false, 0.1, 1e-3), TOL32);
          }
          check(`bn eval [${N}, ${C}]`, dt, [x, w, b, rm, rv], ([xx, ww, bb, m, v]) => [...n().sparseBatchNorm(xx!, ww, bb, m, v, false, 0.1, 1e-5), m, v], TOL32);
          // The backward from given statistics (as a forward would have saved them).
          const mean = inp(rand(C, -0.5, 0.5), [C]);
          const rstd = inp(rand(C, 0.5, 2), [C]);
          for (const batchStats of [true, false])
            check(`bn backward [${N}, ${C}] ${batchStats}`, dt, [g, x, w, mean, rstd], ([gg, xx, ww, m, r]) =>
              n().sparseBatchNormBackward(gg!, xx!, ww, m!, r!, batchStats, true, true, true), TOL32);
        }
      });

      it(`max pool forward and backward (${dt}; ties keep the first offset; masked 0% / 60% / 100%)`, () => {
        for (const ratio of [0, 0.6, 1])
          for (const stride of [1, 2]) {
            const C = 5;
            const map = sparseMap(2, 11, 9, ratio, 3, stride);
            const table = (t: NativeTensor | null) => (t?.device === 'cuda' ? map.nbrD : map.nbr);
            // Multiples of 1/4 in [−2, 2]: exact in bf16, and ties are common.
            const x = inp(Array.from({ length: map.N * C }, () => (rng.int(17) - 8) / 4), [map.N, C]);
            const g = inp(rand(map.M * C), [map.M, C]);
            check(`maxpool ${ratio} s${stride}`, dt, [x], ([xx]) => n().sparseMaxPool(xx!, table(xx)));
            const argCpu = n().sparseMaxPool(f64(x.v, x.shape), map.nbr)[1];
            const argDev = argCpu.to('cuda');
            check(`maxpool backward ${ratio} s${stride}`, dt, [g], ([gg]) =>
              [n().sparseMaxPoolBackward(gg!, table(gg), gg!.device === 'cuda' ? argDev : argCpu, map.N)]);
          }
      });
    }

    it('max pool: the device arg equals the CPU arg for float32 and bfloat16', () => {
      const map = sparseMap(2, 12, 10, 0.5, 3, 2);
      const x = Array.from({ length: map.N * 4 }, () => (rng.int(9) - 4) / 2);
      const c = n().sparseMaxPool(f64(x, [map.N, 4]), map.nbr)[1];
      for (const dt of ['float32', 'bfloat16'] as Dev[]) expect(ints(n().sparseMaxPool(put(x, [map.N, 4], dt, 'cuda'), map.nbrD)[1])).toEqual(ints(c));
    });
  });
}
