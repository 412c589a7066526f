/** layerNorm: forward against a float64 reference, finite-difference gradients (float64), and the CUDA kernels against the CPU. */
import { describe, expect, it } from 'vitest';
import { layerNorm } from '../../src/index.js';
import { describeCuda, get, itOnDevice } from '../helpers/cuda-harness.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand, vals } from '../helpers/op-inputs.js';
import { layerNormRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('layerNorm matches mean/variance normalisation', () => {
      const x = rand([5, 37], dtype, -3, 5);
      const w = rand([37], dtype);
      const b = rand([37], dtype);
      assertClose(layerNorm(x, w, b, 1e-5).toArray(), layerNormRef(vals(x), 37, vals(w), vals(b), 1e-5), tol, 'layerNorm');
      assertClose(layerNorm(x, null, null, 1e-3).toArray(), layerNormRef(vals(x), 37, null, null, 1e-3), tol, 'layerNorm plain');
    });
  });
}

describe('gradcheck: normalisation, softmax, loss, embedding', () => {
  it('layerNorm with affine, without affine, and odd width', () => {
    gradcheck(([x, w, b]) => layerNorm(x!, w!, b!, 1e-5), [leaf(3, 7), leaf(7), leaf(7)]);
    gradcheck(([x]) => layerNorm(x!, null, null, 1e-5), [leaf(2, 2, 5)]);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on the device against float64 on the CPU by the tolerance rule;
// bfloat16 by the naive-bf16 rule, the naive pipeline written out below with a
// rounding at every op boundary (fp32 inside each op).

// ---- naive bf16 pipelines ----

function naiveLayerNorm(x: number[], R: number, C: number, w: number[] | null, b: number[] | null, eps: number) {
  const y: number[] = [], mean: number[] = [], rstd: number[] = [];
  for (let r = 0; r < R; r++) {
    const row = x.slice(r * C, (r + 1) * C);
    const m = bf(bfSum(row) / C);
    const d = row.map((v) => bf(v - m));
    const v = bf(bfSum(d.map((t) => bf(t * t))) / C);
    const rs = bf(1 / Math.sqrt(bf(v + eps)));
    mean.push(m);
    rstd.push(rs);
    for (let c = 0; c < C; c++) {
      let o = bf(d[c]! * rs);
      if (w) o = bf(o * w[c]!);
      if (b) o = bf(o + b[c]!);
      y.push(o);
    }
  }
  return { y, mean, rstd };
}

function naiveLayerNormBackward(dy: number[], x: number[], R: number, C: number, w: number[] | null) {
  const { mean, rstd } = naiveLayerNorm(x, R, C, null, null, EPS);
  const dx: number[] = [];
  const dwTerms: number[][] = Array.from({ length: C }, () => []);
  const dbTerms: number[][] = Array.from({ length: C }, () => []);
  for (let r = 0; r < R; r++) {
    const xh = Array.from({ length: C }, (_, c) => bf(bf(x[r * C + c]! - mean[r]!) * rstd[r]!));
    const g = Array.from({ length: C }, (_, c) => (w ? bf(dy[r * C + c]! * w[c]!) : dy[r * C + c]!));
    const mg = bf(bfSum(g) / C);
    const mgx = bf(bfSum(g.map((t, c) => bf(t * xh[c]!))) / C);
    for (let c = 0; c < C; c++) {
      dx.push(bf(rstd[r]! * bf(bf(g[c]! - mg) - bf(xh[c]! * mgx))));
      dwTerms[c]!.push(bf(dy[r * C + c]! * xh[c]!));
      dbTerms[c]!.push(dy[r * C + c]!);
    }
  }
  return { dx, dw: dwTerms.map(bfSum), db: dbTerms.map(bfSum) };
}

const EPS = 1e-5;

describeCuda('nn', () => {
  // Widths: the scalar paths (odd, 1500 wide) and the 16-byte register path
  // (C a multiple of 8 bf16 / 4 float32 columns, at most 2048 / 1024): 768
  // (3 packs a lane in bf16, 6 in float32), 40 (fewer packs than lanes), 264
  // (33 packs: one lane holds two), 1032 (bf16: 129 packs, 6 a lane; float32:
  // past 1024, a block per row), 2048 (bf16: 8 packs a lane; float32: a block
  // per row). Row counts are not multiples of the 8 rows a block takes.
  it('layerNorm matches the CPU, with float32 statistics, warp and block rows, with and without affine', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[1, 1], [5, 7], [33, 768], [4, 1500], [9, 40], [3, 264], [6, 1032], [2, 2048]] as const)
        for (const affine of [true, false]) {
          const x = quantize(values(R * C, R + C, 2, 0.5), dtype);
          const w = affine ? quantize(values(C, 3, 1, 1), dtype) : null;
          const b = affine ? quantize(values(C, 4, 0.5), dtype) : null;
          const [y, mean, rstd] = native().layerNorm(dev(x, [R, C], dtype), w && dev(w, [C], dtype), b && dev(b, [C], dtype), EPS);
          const [ry, rm, rr] = native().layerNorm(cpu64(x, [R, C]), w && cpu64(w, [C]), b && cpu64(b, [C]), EPS);
          expect(mean.dtype).toBe('float32');
          expect(rstd.dtype).toBe('float32');
          expect(y.dtype).toBe(dtype);
          const naive = naiveLayerNorm(x, R, C, w, b, EPS);
          const l = `layerNorm [${R}, ${C}]${affine ? ' affine' : ''}`;
          check(`${l} y`, dtype, y, ry, naive.y);
          check(`${l} mean`, dtype, mean, rm, naive.mean);
          // C = 1: var = 0, rstd = 1/sqrt(eps) ≈ 316, held to float32's relative tolerance.
          check(`${l} rstd`, dtype, rstd, rr, naive.rstd);
        }
  });

  it('layerNormBackward matches the CPU for dx, dw and db, each optional', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[1, 3], [5, 7], [130, 96], [3, 1500], [33, 768], [9, 40], [3, 264], [6, 1032], [2, 2048]] as const)
        for (const affine of [true, false]) {
          const x = quantize(values(R * C, R * C, 2, 0.5), dtype);
          const dy = quantize(values(R * C, R + 7 * C), dtype);
          const w = affine ? quantize(values(C, 5, 1, 1), dtype) : null;
          const [, mean, rstd] = native().layerNorm(dev(x, [R, C], dtype), w && dev(w, [C], dtype), null, EPS);
          const [, rm, rr] = native().layerNorm(cpu64(x, [R, C]), w && cpu64(w, [C]), null, EPS);
          const [dx, dw, db] = native().layerNormBackward(dev(dy, [R, C], dtype), dev(x, [R, C], dtype), w && dev(w, [C], dtype),
            mean, rstd, true, affine, true);
          const [rdx, rdw, rdb] = native().layerNormBackward(cpu64(dy, [R, C]), cpu64(x, [R, C]), w && cpu64(w, [C]), rm, rr, true, affine, true);
          const naive = naiveLayerNormBackward(dy, x, R, C, w);
          const l = `layerNormBackward [${R}, ${C}]${affine ? ' affine' : ''}`;
          // dx = rstd·(g − mean g − x̂·mean(g·x̂)) cancels: the error scales with the terms, not the result.
          const tdx = { atol: 2e-6 * Math.sqrt(C) * 4, rtol: tolFor('float32').rtol };
          check(`${l} dx`, dtype, dx!, rdx!, naive.dx, tdx);
          // dw, db: fp32 sums over R rows.
          const tsum = { atol: 2e-6 * Math.max(1, R), rtol: tolFor('float32').rtol };
          if (affine) check(`${l} dw`, dtype, dw!, rdw!, naive.dw, tsum);
          else expect(dw).toBeNull();
          check(`${l} db`, dtype, db!, rdb!, naive.db, tsum);
          const [onlyDx, noW, noB] = native().layerNormBackward(dev(dy, [R, C], dtype), dev(x, [R, C], dtype), w && dev(w, [C], dtype),
            mean, rstd, true, false, false);
          expect(noW).toBeNull();
          expect(noB).toBeNull();
          expect(Array.from(get(onlyDx!))).toEqual(Array.from(get(dx!)));
        }
  });

  it('layerNorm and layerNormBackward match the CPU on views off 16-byte alignment (the scalar path)', () => {
    const [R, C] = [9, 264];
    for (const dtype of DTYPES) {
      // A view one element into its storage: 4 (float32) or 2 (bfloat16) bytes off alignment.
      const off = (v: number[], shape: number[]) => dev([0, ...v], [v.length + 1], dtype).view(1, shape);
      const x = quantize(values(R * C, 41, 2, 0.5), dtype);
      const dy = quantize(values(R * C, 42), dtype);
      const w = quantize(values(C, 43, 1, 1), dtype);
      const b = quantize(values(C, 44, 0.5), dtype);
      const [y, mean, rstd] = native().layerNorm(off(x, [R, C]), off(w, [C]), off(b, [C]), EPS);
      const [ry, rm, rr] = native().layerNorm(cpu64(x, [R, C]), cpu64(w, [C]), cpu64(b, [C]), EPS);
      const naive = naiveLayerNorm(x, R, C, w, b, EPS);
      check('layerNorm unaligned y', dtype, y, ry, naive.y);
      check('layerNorm unaligned mean', dtype, mean, rm, naive.mean);
      check('layerNorm unaligned rstd', dtype, rstd, rr, naive.rstd);
      const [dx, dw, db] = native().layerNormBackward(off(dy, [R, C]), off(x, [R, C]), off(w, [C]), mean, rstd, true, true, true);
      const [rdx, rdw, rdb] = native().layerNormBackward(cpu64(dy, [R, C]), cpu64(x, [R, C]), cpu64(w, [C]), rm, rr, true, true, true);
      const nb = naiveLayerNormBackward(dy, x, R, C, w);
      check('layerNormBackward unaligned dx', dtype, dx!, rdx!, nb.dx, { atol: 2e-6 * Math.sqrt(C) * 4, rtol: tolFor('float32').rtol });
      const tsum = { atol: 2e-6 * R, rtol: tolFor('float32').rtol };
      check('layerNormBackward unaligned dw', dtype, dw!, rdw!, nb.dw, tsum);
      check('layerNormBackward unaligned db', dtype, db!, rdb!, nb.db, tsum);
    }
  });

  itOnDevice('layerNormBackward on cuda wants float32 statistics', () => {
    const x = dev([1, 2, 3, 4], [2, 2], 'bfloat16');
    const bad = dev([0, 0], [2], 'bfloat16');
    expect(() => native().layerNormBackward(x, x, null, bad, bad, true, false, false)).toThrow(
      'Expected a float32 tensor for mean but received cuda bfloat16 tensor [2]',
    );
  });
});
