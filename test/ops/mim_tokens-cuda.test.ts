/**
 * The masked-image-modeling token ops' CUDA kernels against the CPU backend (skipped without a GPU); their CPU cases
 * are in mim_tokens.test.ts.
 */
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import { assertBf16, describeCuda, get, roundBf16 } from '../helpers/cuda-harness.js';
import { close, cpu, dev, rnd, thrown, uniform } from '../helpers/cuda-mim.js';

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU by the tolerance rule, bfloat16 by
// the bf16 rule against a naive bf16 version (inputs rounded to bf16, the
// float64 CPU op, its output rounded to bf16), exact ops bit for bit, odd sizes,
// nothing and everything masked, the backwards, and the CPU's error messages.

describeCuda('mim tokens', () => {
  it('uniformNoise gives the CPU bits on the device, every shape and range', () => {
    for (const shape of [[0], [1], [7], [3, 5], [4099], [64, 197]]) {
      for (const [lo, hi] of [[0, 1], [0, 0.5], [-1.3, 2.7], [1e-3, 1e-3 + 1e-9]] as const) {
        for (const [seed, step] of [[0, 0], [12345, 7], [2 ** 40 + 3, 2 ** 33 + 1]]) {
          const c = native().uniformNoise(shape, seed, step, lo, hi, 'cuda');
          expect(c.device).toBe('cuda');
          expect(c.dtype).toBe('float32');
          const h = native().uniformNoise(shape, seed, step, lo, hi);
          expect(Array.from(get(c))).toEqual(Array.from(get(h)));
          for (const v of get(c)) expect(v >= Math.fround(lo) && v < Math.fround(hi)).toBe(true);
        }
      }
    }
    expect(thrown(() => native().uniformNoise([2], 0, 0, 0, 1, 'gpu' as never))).toMatch(/'cpu' or 'cuda'/);
  });

  it('maskFromScores sorts stably (ties by index) as the CPU, staged and unstaged rows', () => {
    for (const [B, L] of [[1, 1], [3, 7], [4, 197], [2, 9001]]) {
      // Few distinct values, so ties are everywhere.
      const s = Array.from({ length: B * L }, () => Math.floor(rnd() * 13) / 4 - 1);
      for (const keep of [0, 1, Math.floor(L / 4), L]) {
        for (const dt of ['float32', 'bfloat16'] as const) {
          const c = native().maskFromScores(dev(s, [B, L], dt), keep);
          // bf16 scores: the CPU sorts the same rounded values in float64.
          const h = native().maskFromScores(cpu(dt === 'bfloat16' ? roundBf16(s) : s, [B, L]), keep);
          for (const k of ['idsKeep', 'idsRestore', 'mask'] as const) {
            expect(c[k].device).toBe('cuda');
            expect(c[k].dtype).toBe(h[k].dtype);
            expect(c[k].shape).toEqual(h[k].shape);
            expect(Array.from(get(c[k]))).toEqual(Array.from(get(h[k])));
          }
        }
      }
    }
  });

  it('maskFromScores rejects NaN with the CPU message', () => {
    const s = [0.1, 0.2, NaN, 0.3, 0.4, 0.5];
    const m = thrown(() => native().maskFromScores(dev(s, [2, 3], 'float32'), 1));
    expect(m).toBe(thrown(() => native().maskFromScores(cpu(s, [2, 3], 'float32'), 1)));
    expect(m).toMatch(/NaN at \(b, j\) = \(0, 2\)/);
  });

  it('restoreIndex matches the CPU with and without CLS, and rejects what the CPU rejects', () => {
    const B = 3, L = 11;
    const perm = Array.from({ length: B }, () => {
      const p = Array.from({ length: L }, (_, i) => i);
      for (let i = L - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      return p;
    }).flat();
    for (const keep of [0, 4, L]) {
      for (const cls of [false, true]) {
        const c = native().restoreIndex(dev(perm, [B, L], 'int32'), keep, cls);
        const h = native().restoreIndex(cpu(perm, [B, L], 'int32'), keep, cls);
        expect(c.device).toBe('cuda');
        expect(c.shape).toEqual(h.shape);
        expect(Array.from(get(c))).toEqual(Array.from(get(h)));
      }
    }
    const bad = perm.slice();
    bad[13] = L;
    expect(thrown(() => native().restoreIndex(dev(bad, [B, L], 'int32'), 2, true))).toBe(
      thrown(() => native().restoreIndex(cpu(bad, [B, L], 'int32'), 2, true)),
    );
  });

  it('assembleTokens gathers rows and tokens exactly', () => {
    const B = 3, Ls = 5, D = 33, T = 2, Lo = 9;
    const x = uniform(B * Ls * D);
    const tok = uniform(T * D);
    const index = Array.from({ length: B * Lo }, () => Math.floor(rnd() * (Ls + T)) - T);
    for (const dt of ['float32', 'bfloat16'] as const) {
      const c = native().assembleTokens(dev(x, [B, Ls, D], dt), dev(index, [B, Lo], 'int32'), dev(tok, [T, D], dt));
      const r = (v: number[]) => (dt === 'bfloat16' ? roundBf16(v) : Float64Array.from(v, Math.fround));
      const h = native().assembleTokens(cpu(r(x), [B, Ls, D]), cpu(index, [B, Lo], 'int32'), cpu(r(tok), [T, D]));
      expect(c.dtype).toBe(dt);
      expect(c.shape).toEqual([B, Lo, D]);
      expect(Array.from(get(c))).toEqual(Array.from(get(h)));
    }
    // No tokens: only non-negative indices; a negative one is refused with the CPU message.
    const pos = index.map((v) => (v < 0 ? 0 : v));
    const c = native().assembleTokens(dev(x, [B, Ls, D], 'float32'), dev(pos, [B, Lo], 'int32'), null);
    const h = native().assembleTokens(cpu(x, [B, Ls, D], 'float32'), cpu(pos, [B, Lo], 'int32'), null);
    expect(Array.from(get(c))).toEqual(Array.from(get(h)));
    const neg = pos.slice();
    neg[5] = -1;
    expect(thrown(() => native().assembleTokens(dev(x, [B, Ls, D], 'float32'), dev(neg, [B, Lo], 'int32'), null))).toBe(
      thrown(() => native().assembleTokens(cpu(x, [B, Ls, D], 'float32'), cpu(neg, [B, Lo], 'int32'), null)),
    );
  });

  it('assembleTokensBackward sums repeated rows and tokens (one and many row groups)', () => {
    // B·Lo = 12 rows (one group) and 9·80 = 720 rows (several groups of the token sum).
    for (const [B, Ls, Lo, D, T] of [[2, 4, 6, 7, 1], [9, 50, 80, 129, 2]]) {
      const g = uniform(B * Lo * D);
      const index = Array.from({ length: B * Lo }, () => Math.floor(rnd() * (Ls + T)) - T);
      const ref = native().assembleTokensBackward(cpu(g, [B, Lo, D]), cpu(index, [B, Lo], 'int32'), Ls, T, true, true);
      const f = native().assembleTokensBackward(dev(g, [B, Lo, D], 'float32'), dev(index, [B, Lo], 'int32'), Ls, T, true, true);
      close('dx', f[0]!, ref[0]!);
      close('dtokens', f[1]!, ref[1]!);
      const hb = native().assembleTokensBackward(dev(g, [B, Lo, D], 'bfloat16'), dev(index, [B, Lo], 'int32'), Ls, T, true, true);
      const nv = native().assembleTokensBackward(cpu(roundBf16(g), [B, Lo, D]), cpu(index, [B, Lo], 'int32'), Ls, T, true, true);
      expect(hb[0]!.dtype).toBe('bfloat16');
      assertBf16('dx bf16', get(hb[0]!), get(ref[0]!), roundBf16(get(nv[0]!)));
      assertBf16('dtokens bf16', get(hb[1]!), get(ref[1]!), roundBf16(get(nv[1]!)));
      // Only one of the two asked for.
      const only = native().assembleTokensBackward(dev(g, [B, Lo, D], 'float32'), dev(index, [B, Lo], 'int32'), Ls, T, false, true);
      expect(only[0]).toBeNull();
      close('dtokens only', only[1]!, ref[1]!);
    }
  });

  it('assembleTokensBackward: dx in float32 equals the CPU float32 bit for bit (the same sums in row order)', () => {
    // MAE's layout (a permutation's first K of L, no tokens), and an index with long chains of one repeated row
    // next to unique ones and mask tokens: each hit row of dx is summed over its rows in order from 0 on both sides.
    const B = 5, Ls = 37, Lo = 23, D = 70;
    const mae = Array.from({ length: B }, () => {
      const perm = Array.from({ length: Ls }, (_, i) => i);
      for (let i = Ls - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      return perm.slice(0, Lo);
    }).flat();
    const chains = Array.from({ length: B * Lo }, (_, r) => (r % 3 === 0 ? 4 : r % 3 === 1 ? Math.floor(rnd() * Ls) : -1));
    for (const index of [mae, chains]) {
      const g = uniform(B * Lo * D, -3, 3);
      const [c] = native().assembleTokensBackward(dev(g, [B, Lo, D], 'float32'), dev(index, [B, Lo], 'int32'), Ls, 1, true, false);
      const [h] = native().assembleTokensBackward(cpu(g, [B, Lo, D], 'float32'), cpu(index, [B, Lo], 'int32'), Ls, 1, true, false);
      expect(Array.from(get(c!))).toEqual(Array.from(get(h!)));
      // Rows that no index hits stay 0.
      const hit = new Set(index.map((v, r) => (v < 0 ? -1 : Math.floor(r / Lo) * Ls + v)));
      const dx = get(c!);
      for (let row = 0; row < B * Ls; row++) if (!hit.has(row)) for (let k = 0; k < D; k++) expect(dx[row * D + k]).toBe(0);
    }
  });

  it('patchify and unpatchify permute exactly, odd channel counts and p = 1 included', () => {
    for (const [B, C, H, W, p] of [[2, 3, 8, 12, 4], [1, 1, 5, 7, 1], [3, 5, 6, 6, 3]]) {
      const img = uniform(B * C * H * W);
      for (const dt of ['float32', 'bfloat16'] as const) {
        const r = dt === 'bfloat16' ? roundBf16(img) : Float64Array.from(img, Math.fround);
        const c = native().patchify(dev(img, [B, C, H, W], dt), p);
        const h = native().patchify(cpu(r, [B, C, H, W]), p);
        expect(c.shape).toEqual(h.shape);
        expect(Array.from(get(c))).toEqual(Array.from(get(h)));
        const back = native().unpatchify(c, p, C, H, W);
        expect(back.shape).toEqual([B, C, H, W]);
        expect(Array.from(get(back))).toEqual(Array.from(r));
      }
    }
  });

  it('tokenMean and its backward', () => {
    for (const [B, L, D] of [[1, 1, 1], [3, 7, 65], [4, 197, 96]]) {
      const x = uniform(B * L * D);
      const ref = native().tokenMean(cpu(x, [B, L, D]));
      close('tokenMean', native().tokenMean(dev(x, [B, L, D], 'float32')), ref);
      const naive = roundBf16(get(native().tokenMean(cpu(roundBf16(x), [B, L, D]))));
      assertBf16('tokenMean bf16', get(native().tokenMean(dev(x, [B, L, D], 'bfloat16'))), get(ref), naive);
      const g = uniform(B * D);
      const dref = native().tokenMeanBackward(cpu(g, [B, D]), L);
      close('tokenMeanBackward', native().tokenMeanBackward(dev(g, [B, D], 'float32'), L), dref);
      const dn = roundBf16(get(native().tokenMeanBackward(cpu(roundBf16(g), [B, D]), L)));
      assertBf16('tokenMeanBackward bf16', get(native().tokenMeanBackward(dev(g, [B, D], 'bfloat16'), L)), get(dref), dn);
    }
  });
});
