// bench:cuda's masked-token cases (bench/lib/cuda-masked.ts) build on the CPU
// too: here in float32 at small sizes, each checked against a plain-JS
// reference of what its PyTorch counterpart (bench/baselines/masked_ops_torch.py)
// computes, so the bench times the same function on both sides.
import { describe, expect, it } from 'vitest';
import { buildMaskedCase, type MaskedShape } from '../bench/lib/cuda-masked.js';

const shape: MaskedShape = {
  rows: 13, hidden: 8, vocab: 37, batch: 3, tokens: 7, keep: 3, patch: 6, maskRatio: 0.5,
  convBatch: 2, convSize: 9, convChannels: 3, convCell: 3, convRatio: 0.5,
};
const arr = (t: { read(): ArrayLike<number> }): number[] => Array.from(t.read());

describe('bench:cuda masked-token cases on the CPU', () => {
  it('mlm-head: the mean cross-entropy of h·Wᵀ + b and its bias gradient', () => {
    const c = buildMaskedCase('mlm-head', shape, 'cpu', 'float32');
    try {
      const { h, w, b, targets } = c.inputs as Record<string, { read(): ArrayLike<number> }>;
      const [H, W, Bv, T] = [arr(h!), arr(w!), arr(b!), arr(targets!)];
      const { rows: M, hidden: D, vocab: V } = shape;
      let loss = 0;
      const db = new Array<number>(V).fill(0);
      for (let m = 0; m < M; m++) {
        const z = Array.from({ length: V }, (_, v) => Bv[v]! + H.slice(m * D, (m + 1) * D).reduce((s, x, d) => s + x * W[v * D + d]!, 0));
        const mx = Math.max(...z);
        const se = z.reduce((s, x) => s + Math.exp(x - mx), 0);
        loss += mx + Math.log(se) - z[T[m]!]!;
        for (let v = 0; v < V; v++) db[v]! += (Math.exp(z[v]! - mx) / se - (v === T[m] ? 1 : 0)) / M;
      }
      const r = c.run();
      expect(r.out.read()[0]).toBeCloseTo(loss / M, 5);
      const got = arr(r.grads[2]!);
      db.forEach((x, v) => expect(got[v]).toBeCloseTo(x, 6));
      r.out.dispose();
      for (const g of r.grads) g.dispose();
    } finally {
      c.dispose();
    }
  });

  it('token-gather: MAE ids_keep rows, and the backward scatters the gradient back', () => {
    const c = buildMaskedCase('token-gather', shape, 'cpu', 'float32');
    try {
      const X = arr(c.inputs.x!), I = arr(c.inputs.index!), G = arr(c.inputs.grad!);
      const { batch: B, tokens: L, keep: K, hidden: D } = shape;
      const r = c.run();
      const y = arr(r.out), gx = arr(r.grads[0]!);
      const want = new Array<number>(B * L * D).fill(0);
      for (let b = 0; b < B; b++) {
        const ids = I.slice(b * K, (b + 1) * K);
        expect(new Set(ids).size).toBe(K); // distinct tokens, as an argsort's first K
        for (let k = 0; k < K; k++)
          for (let d = 0; d < D; d++) {
            expect(y[(b * K + k) * D + d]).toBe(X[(b * L + ids[k]!) * D + d]);
            want[(b * L + ids[k]!) * D + d]! += G[(b * K + k) * D + d]!;
          }
      }
      expect(gx).toEqual(want);
      r.out.dispose();
      for (const g of r.grads) g.dispose();
    } finally {
      c.dispose();
    }
  });

  it("patch-loss: MAE's forward_loss with normalised target pixels (unbiased variance, eps 1e-6)", () => {
    const c = buildMaskedCase('patch-loss', shape, 'cpu', 'float32');
    try {
      const Pr = arr(c.inputs.pred!), Tg = arr(c.inputs.target!), Mk = arr(c.inputs.mask!);
      const { batch: B, tokens: L, patch: P } = shape;
      let num = 0, den = 0;
      for (let i = 0; i < B * L; i++) {
        const t = Tg.slice(i * P, (i + 1) * P);
        const mean = t.reduce((s, x) => s + x, 0) / P;
        const v = t.reduce((s, x) => s + (x - mean) ** 2, 0) / (P - 1);
        const per = t.reduce((s, x, j) => s + (Pr[i * P + j]! - (x - mean) / Math.sqrt(v + 1e-6)) ** 2, 0) / P;
        num += per * Mk[i]!;
        den += Mk[i]!;
      }
      expect(den).toBe(B * Math.round(L * shape.maskRatio));
      const r = c.run();
      expect(r.out.read()[0]).toBeCloseTo(num / den, 5);
      r.out.dispose();
      for (const g of r.grads) g.dispose();
    } finally {
      c.dispose();
    }
  });

  it("sparse-conv: the visible sites of SparK's masked-dense conv2d(x·mask)·mask, and its dx and dW", () => {
    const c = buildMaskedCase('sparse-conv', shape, 'cpu', 'float32');
    try {
      const { convBatch: B, convSize: S, convChannels: C, convCell: cell } = shape;
      const X = arr(c.inputs.x!), Wt = arr(c.inputs.weight!), G = arr(c.inputs.grad!), Mk = arr(c.inputs.mask!), P = arr(c.inputs.coords!);
      const N = P.length / 3;
      // The mask is whole cells: round(9 · 0.5) = 5 of the 3 × 3 cells hidden per image.
      for (let b = 0; b < B; b++) {
        let visible = 0;
        for (let cy = 0; cy < S / cell; cy++)
          for (let cx = 0; cx < S / cell; cx++) {
            const v = Mk[(b * S + cy * cell) * S + cx * cell]!;
            for (let y = 0; y < cell; y++) for (let x = 0; x < cell; x++) expect(Mk[(b * S + cy * cell + y) * S + cx * cell + x]).toBe(v);
            visible += v;
          }
        expect(visible).toBe(9 - 5);
      }
      // The dense map torch convolves: x at the visible sites, 0 elsewhere (x·mask), NCHW.
      const dense = new Array<number>(B * C * S * S).fill(0);
      const gDense = new Array<number>(B * C * S * S).fill(0);
      const row = new Map<number, number>();
      for (let m = 0; m < N; m++) {
        const [b, y, x] = [P[3 * m]!, P[3 * m + 1]!, P[3 * m + 2]!];
        expect(Mk[(b * S + y) * S + x]).toBe(1);
        row.set((b * S + y) * S + x, m);
        for (let ci = 0; ci < C; ci++) {
          dense[((b * C + ci) * S + y) * S + x] = X[m * C + ci]!;
          gDense[((b * C + ci) * S + y) * S + x] = G[m * C + ci]!; // the gradient of y·mask is 0 off the mask
        }
      }
      const at = (a: number[], b: number, ch: number, y: number, x: number): number => (y < 0 || x < 0 || y >= S || x >= S ? 0 : a[((b * C + ch) * S + y) * S + x]!);
      const r = c.run();
      const out = arr(r.out), dx = arr(r.grads[0]!), dw = arr(r.grads[1]!);
      const wantDw = new Array<number>(C * C * 9).fill(0);
      for (let m = 0; m < N; m++) {
        const [b, y, x] = [P[3 * m]!, P[3 * m + 1]!, P[3 * m + 2]!];
        for (let co = 0; co < C; co++) {
          let s = 0;
          for (let ci = 0; ci < C; ci++)
            for (let ky = 0; ky < 3; ky++)
              for (let kx = 0; kx < 3; kx++) {
                const v = at(dense, b, ci, y + ky - 1, x + kx - 1);
                s += Wt[((co * C + ci) * 3 + ky) * 3 + kx]! * v;
                wantDw[((co * C + ci) * 3 + ky) * 3 + kx]! += G[m * C + co]! * v;
              }
          expect(out[m * C + co]).toBeCloseTo(s, 5);
        }
        // dx at a visible site: the transposed conv of the masked gradient (then ·mask, which keeps it).
        for (let ci = 0; ci < C; ci++) {
          let s = 0;
          for (let co = 0; co < C; co++)
            for (let ky = 0; ky < 3; ky++)
              for (let kx = 0; kx < 3; kx++) s += Wt[((co * C + ci) * 3 + ky) * 3 + kx]! * at(gDense, b, co, y - ky + 1, x - kx + 1);
          expect(dx[m * C + ci]).toBeCloseTo(s, 5);
        }
      }
      wantDw.forEach((v, i) => expect(dw[i]).toBeCloseTo(v, 4));
      expect(row.size).toBe(N);
      r.out.dispose();
      for (const g of r.grads) g.dispose();
    } finally {
      c.dispose();
    }
  });
});
