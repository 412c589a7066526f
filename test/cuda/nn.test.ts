// CUDA LayerNorm, softmax, cross-entropy, argmax and embedding against the CPU
// backend: float32 on the device against float64 on the CPU by the tolerance
// rule; bfloat16 by the naive-bf16 rule, the naive pipeline written out below
// with a rounding at every op boundary (fp32 inside each op).
import { expect, it } from 'vitest';
import { tolFor } from '../helpers/tolerance.js';
import { describeCuda, get, put } from './harness.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, ints, native, quantize, values } from './ops-helpers.js';

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

function naiveSoftmax(x: number[], R: number, C: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < R; r++) {
    const row = x.slice(r * C, (r + 1) * C);
    const m = Math.max(...row);
    if (m === -Infinity) {
      y.push(...row.map(() => 0));
      continue;
    }
    const e = row.map((v) => (v === -Infinity ? 0 : bf(Math.exp(bf(v - m)))));
    const s = bfSum(e);
    y.push(...e.map((t) => bf(t / s)));
  }
  return y;
}

function naiveSoftmaxBackward(dy: number[], y: number[], R: number, C: number): number[] {
  const dx: number[] = [];
  for (let r = 0; r < R; r++) {
    const dot = bfSum(Array.from({ length: C }, (_, c) => bf(y[r * C + c]! * dy[r * C + c]!)));
    for (let c = 0; c < C; c++) dx.push(bf(y[r * C + c]! * bf(dy[r * C + c]! - dot)));
  }
  return dx;
}

// Cross-entropy over the selected rows: per-row lse and loss, their mean, and dlogits.
function naiveCrossEntropy(x: number[], V: number, tg: number[], rows: number[] | null, ignore: number, gradLoss: number, N: number) {
  const lse: number[] = [], losses: number[] = [];
  const d = new Array<number>(N * V).fill(0);
  let count = 0;
  tg.forEach((t, m) => {
    if (t === ignore) {
      lse.push(0);
      return;
    }
    count++;
    const r = rows ? rows[m]! : m;
    const row = x.slice(r * V, (r + 1) * V);
    const mx = Math.max(...row);
    const s = bfSum(row.map((v) => bf(Math.exp(bf(v - mx)))));
    const l = bf(mx + bf(Math.log(s)));
    lse.push(l);
    losses.push(bf(l - row[t]!));
  });
  const loss = count ? bf(bfSum(losses) / count) : 0;
  const gs = count ? bf(gradLoss / count) : 0;
  tg.forEach((t, m) => {
    if (t === ignore) return;
    const r = rows ? rows[m]! : m;
    for (let c = 0; c < V; c++) d[r * V + c] = bf(gs * bf(Math.exp(bf(x[r * V + c]! - lse[m]!))));
    d[r * V + t] = bf(d[r * V + t]! - gs);
  });
  return { loss, lse, d, count };
}

const EPS = 1e-5;

describeCuda('nn', () => {
  it('layerNorm matches the CPU, with float32 statistics, warp and block rows, with and without affine', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[1, 1], [5, 7], [33, 768], [4, 1500]] as const)
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
      for (const [R, C] of [[1, 3], [5, 7], [130, 96], [3, 1500]] as const)
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

  it('layerNormBackward on cuda wants float32 statistics', () => {
    const x = dev([1, 2, 3, 4], [2, 2], 'bfloat16');
    const bad = dev([0, 0], [2], 'bfloat16');
    expect(() => native().layerNormBackward(x, x, null, bad, bad, true, false, false)).toThrow(
      'Expected a float32 tensor for mean but received cuda bfloat16 tensor [2]',
    );
  });

  it('softmax and softmaxBackward match the CPU, −∞ entries and fully masked rows included', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[3, 1], [7, 33], [5, 1025]] as const) {
        const x = quantize(values(R * C, R + C, 6), dtype);
        if (C > 1) x[1] = -Infinity;  // one masked entry in row 0
        for (let c = 0; c < C; c++) x[(R - 1) * C + c] = -Infinity;  // the last row fully masked
        const y = native().softmax(dev(x, [R, C], dtype));
        const ry = native().softmax(cpu64(x, [R, C]));
        check(`softmax [${R}, ${C}]`, dtype, y, ry, naiveSoftmax(x, R, C));
        expect(Array.from(get(y)).slice((R - 1) * C)).toEqual(new Array(C).fill(0));
        const yq = quantize(Array.from(get(ry)), dtype);
        const dy = quantize(values(R * C, 2 * R + C), dtype);
        check(`softmaxBackward [${R}, ${C}]`, dtype, native().softmaxBackward(dev(dy, [R, C], dtype), dev(yq, [R, C], dtype)),
          native().softmaxBackward(cpu64(dy, [R, C]), cpu64(yq, [R, C])), naiveSoftmaxBackward(dy, yq, R, C));
      }
  });

  it('crossEntropy and its backward match the CPU: all, some and no rows ignored, with and without row selection', () => {
    const IGN = -100;
    for (const dtype of DTYPES)
      for (const [N, V] of [[7, 11], [5, 2000]] as const)
        for (const ignored of ['none', 'some', 'all'] as const)
          for (const select of [false, true]) {
            const x = quantize(values(N * V, N + V, 4), dtype);
            const rows = select ? [4, 0, 2] : null;
            const M = rows ? rows.length : N;
            const tg = values(M, M + V).map((v, m) =>
              ignored === 'all' || (ignored === 'some' && m % 2 === 1) ? IGN : Math.floor((v + 1) * 0.5 * V) % V);
            const idx = (d: 'cpu' | 'cuda') => [ints(tg, [M], d), rows ? ints(rows, [M], d) : null] as const;
            const [dt, dr] = idx('cuda');
            const [ct, cr] = idx('cpu');
            const r = native().crossEntropy(dev(x, [N, V], dtype), dt, dr, IGN);
            const rc = native().crossEntropy(cpu64(x, [N, V]), ct, cr, IGN);
            const naive = naiveCrossEntropy(x, V, tg, rows, IGN, 1.5, N);
            const l = `crossEntropy [${N}, ${V}] ${ignored} ignored${select ? ', rows' : ''}`;
            expect(r.count).toBe(rc.count);
            expect(r.count).toBe(naive.count);
            expect(r.loss.shape).toEqual([]);
            expect(r.loss.dtype).toBe(dtype);
            expect(r.lse.dtype).toBe('float32');
            check(`${l} loss`, dtype, r.loss, rc.loss, [naive.loss]);
            check(`${l} lse`, dtype, r.lse, rc.lse, naive.lse);
            const d = native().crossEntropyBackward(1.5, dev(x, [N, V], dtype), dt, dr, r.lse, IGN, r.count);
            const dc = native().crossEntropyBackward(1.5, cpu64(x, [N, V]), ct, cr, rc.lse, IGN, rc.count);
            check(`${l} dlogits`, dtype, d, dc, naive.d);
          }
  });

  it('crossEntropy on cuda reports a bad target as the CPU does', () => {
    const x = dev(values(6, 1), [2, 3], 'float32');
    expect(() => native().crossEntropy(x, ints([0, 3], [2], 'cuda'), null, -100)).toThrow(
      'Expected indices in [0, 3) or the ignore index -100 for targets but received 3 at position 1',
    );
  });

  it('argmaxRows picks the first of equal maxima, as the CPU', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[5, 7], [3, 2000], [2, 1]] as const) {
        // Few distinct values, so ties are common (more so once rounded to bf16).
        const x = quantize(values(R * C, R * C, 3).map((v) => Math.round(v * 4) / 4), dtype);
        const got = native().argmaxRows(dev(x, [R, C], dtype));
        expect(got.dtype).toBe('int32');
        expect(Array.from(get(got))).toEqual(Array.from(get(native().argmaxRows(cpu64(x, [R, C])))));
      }
  });

  it('embedding gathers exactly; embeddingBackward sums repeated ids in a fixed order', () => {
    for (const dtype of DTYPES)
      for (const [V, D, N] of [[50, 33, 200], [7, 300, 5], [200000, 3, 10]] as const) {
        const table = quantize(values(V * D, V + D, 1), dtype);
        const ids = values(N, N + V).map((v) => Math.floor((v + 1) * 0.5 * V) % V);
        ids[N - 1] = ids[0]!;  // at least one repeat
        const out = native().embedding(dev(table, [V, D], dtype), ints(ids, [N], 'cuda'));
        expect(out.shape).toEqual([N, D]);
        expect(Array.from(get(out))).toEqual(Array.from(get(native().embedding(cpu64(table, [V, D]), ints(ids, [N], 'cpu')))));
        const g = quantize(values(N * D, 3 * N + D), dtype);
        const dt = native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V);
        expect(dt.shape).toEqual([V, D]);
        const l = `embeddingBackward V=${V} D=${D} N=${N}`;
        if (dtype === 'float32') {
          // Same summation order as the CPU's float32 kernel: equal bit for bit.
          const c32 = native().embeddingBackward(put(g, [N, D], 'float32', 'cpu'), ints(ids, [N], 'cpu'), V);
          expect(Array.from(get(dt))).toEqual(Array.from(get(c32)));
        }
        const naive = new Array<number>(V * D).fill(0);
        for (let v = 0; v < V; v++)
          if (ids.includes(v))
            for (let c = 0; c < D; c++) naive[v * D + c] = bfSum(ids.flatMap((id, i) => (id === v ? [g[i * D + c]!] : [])));
        check(l, dtype, dt, native().embeddingBackward(cpu64(g, [N, D]), ints(ids, [N], 'cpu'), V), naive);
        expect(Array.from(get(dt))).toEqual(Array.from(get(native().embeddingBackward(dev(g, [N, D], dtype), ints(ids, [N], 'cuda'), V))));
      }
  });

  it('embedding on cuda reports an out-of-range id as the CPU does', () => {
    const t = dev(values(6, 2), [3, 2], 'float32');
    expect(() => native().embedding(t, ints([0, 3], [2], 'cuda'))).toThrow('Expected indices in [0, 3) for ids but received 3 at position 1');
  });
});


