/**
 * Masked-image-modeling token ops against plain-TypeScript references: stable
 * argsort masking (ties, keep = 0 and L), Philox noise (bit-exact, thread-count
 * independent), assembleTokens forward and backward (repeated indices, CLS
 * layout, MAE round trip, SimMIM replacement), patchify / unpatchify in MAE's
 * order, the mean over tokens; finite differences in float64; bad input. The CUDA kernels against the CPU are in
 * mim_tokens-cuda.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backward, Rng, runtimeInfo, scope, setNumThreads, tensor, type DType, type Tensor } from '../../src/index.js';
import {
  assembleTokens, maskFromScores, patchify, restoreIndex, tokenMean, uniformNoise, unpatchify,
} from '../../src/ops/mim_tokens.js';
import { native } from '../../src/native/loader.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { philoxRef } from '../helpers/philox-ref.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const rng = new Rng(4242);
const threadsBefore = runtimeInfo().threads;
afterAll(() => setNumThreads(threadsBefore));

const EXACT = { atol: 0, rtol: 0 };
const ints = (t: Tensor): number[] => Array.from(t.toArray());
const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

function rand(shape: number[], dtype: DType, requiresGrad = false): Tensor {
  const t = tensor(Array.from({ length: numel(shape) }, () => rng.uniform() * 2 - 1), shape, dtype);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Runs fn with each thread count, restoring the pool size afterwards. */
function acrossThreads<T>(counts: number[], fn: () => T): T[] {
  const out: T[] = [];
  try {
    for (const n of counts) {
      setNumThreads(n);
      out.push(fn());
    }
  } finally {
    setNumThreads(threadsBefore);
  }
  return out;
}

// ---------- references ----------

/** Stable ascending argsort of one row. */
function argsortRef(row: ArrayLike<number>): number[] {
  return Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[a]! - row[b]! || a - b);
}

function maskRef(scores: ArrayLike<number>, B: number, L: number, K: number) {
  const keep: number[] = [], restore: number[] = [], mask: number[] = [];
  for (let b = 0; b < B; b++) {
    const shuffle = argsortRef(Array.from({ length: L }, (_, j) => scores[b * L + j]!));
    const r = new Array<number>(L);
    shuffle.forEach((j, rank) => (r[j] = rank));
    keep.push(...shuffle.slice(0, K));
    restore.push(...r);
    mask.push(...r.map((v) => (v >= K ? 1 : 0)));
  }
  return { keep, restore, mask };
}

function noiseRef(n: number, seed: number, step: number, low: number, high: number): Float32Array {
  const out = new Float32Array(n);
  const hi = Math.fround(high);
  for (let i = 0; i < n; i++) {
    const lanes = philoxRef(BigInt(seed), BigInt(step), BigInt(Math.floor(i / 4)));
    const u = (lanes[i % 4]! >>> 8) / 16777216;
    const v = Math.fround(low + (high - low) * u);
    // Rounding to float32 may reach high; the range is half-open.
    out[i] = v >= hi ? Math.max(Math.fround(low), nextBelow(hi)) : v;
  }
  return out;
}

/** The largest float32 below the float32 v. */
function nextBelow(v: number): number {
  if (v === 0) return -1.401298464324817e-45;
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  u[0] = v > 0 ? u[0]! - 1 : u[0]! + 1;
  return f[0]!;
}

function assembleRef(x: ArrayLike<number>, index: ArrayLike<number>, tokens: ArrayLike<number> | null,
  B: number, Ls: number, Lo: number, D: number): Float64Array {
  const out = new Float64Array(B * Lo * D);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < Lo; j++) {
      const i = index[b * Lo + j]!;
      for (let d = 0; d < D; d++) out[(b * Lo + j) * D + d] = i >= 0 ? x[(b * Ls + i) * D + d]! : tokens![(-1 - i) * D + d]!;
    }
  return out;
}

function assembleGradRef(g: ArrayLike<number>, index: ArrayLike<number>, B: number, Ls: number, Lo: number, D: number,
  T: number): { dx: Float64Array; dt: Float64Array } {
  const dx = new Float64Array(B * Ls * D), dt = new Float64Array(T * D);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < Lo; j++) {
      const i = index[b * Lo + j]!;
      for (let d = 0; d < D; d++) {
        const v = g[(b * Lo + j) * D + d]!;
        if (i >= 0) dx[(b * Ls + i) * D + d] += v;
        else dt[(-1 - i) * D + d] += v;
      }
    }
  return { dx, dt };
}

/** MAE's patchify written from its einsum: x[n, c, h·p + py, w·p + px] → out[n, h·Wp + w, (py·p + px)·C + c]. */
function patchifyRef(x: ArrayLike<number>, B: number, C: number, H: number, W: number, p: number): Float64Array {
  const Hp = H / p, Wp = W / p, E = p * p * C;
  const out = new Float64Array(B * Hp * Wp * E);
  for (let n = 0; n < B; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          const h = Math.floor(y / p), py = y % p, w = Math.floor(xx / p), px = xx % p;
          out[(n * Hp * Wp + h * Wp + w) * E + (py * p + px) * C + c] = x[((n * C + c) * H + y) * W + xx]!;
        }
  return out;
}

function tokenMeanRef(x: ArrayLike<number>, B: number, L: number, D: number): Float64Array {
  const out = new Float64Array(B * D);
  for (let b = 0; b < B; b++)
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let l = 0; l < L; l++) s += x[(b * L + l) * D + d]!;
      out[b * D + d] = s / L;
    }
  return out;
}

/** A random index [B, Lo] in [−T, Ls), with repeats. */
function randIndex(B: number, Lo: number, Ls: number, T: number): Tensor {
  return tensor(Array.from({ length: B * Lo }, () => rng.int(Ls + T) - T), [B, Lo], 'int32');
}

// ---------- maskFromScores ----------

describe('maskFromScores', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, L, K] of [[3, 7, 2], [2, 49, 12], [4, 1, 1], [4, 1, 0], [1, 50, 37]])
      it(`matches a stable argsort: ${dtype} B=${B} L=${L} keep=${K}`, () => {
        const scores = rand([B, L], dtype);
        const r = maskFromScores(scores, K);
        expect(r.idsKeep.shape).toEqual([B, K]);
        expect(r.idsRestore.shape).toEqual([B, L]);
        expect([r.idsKeep.dtype, r.idsRestore.dtype, r.mask.dtype]).toEqual(['int32', 'int32', 'uint8']);
        const ref = maskRef(scores.toArray(), B, L, K);
        expect(ints(r.idsKeep)).toEqual(ref.keep);
        expect(ints(r.idsRestore)).toEqual(ref.restore);
        expect(ints(r.mask)).toEqual(ref.mask);
      });

  it('breaks ties by index (including -0 against +0)', () => {
    const row = [2, 1, 2, 1, 0, -0, 1, 2];
    const r = maskFromScores(tensor([...row, ...row.slice().reverse()], [2, 8], 'float64'), 4);
    expect(ints(r.idsKeep)).toEqual([4, 5, 1, 3, 2, 3, 1, 4]);
    expect(ints(r.idsRestore).slice(0, 8)).toEqual([5, 2, 6, 3, 0, 1, 4, 7]);
    const all = maskFromScores(tensor(new Array(9).fill(0.5), [1, 9]), 9);
    expect(ints(all.idsKeep)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // Long rows of four distinct values: past the sizes where an unstable sort happens to keep order.
    const B = 3, L = 300;
    const coarse = tensor(Array.from({ length: B * L }, () => rng.int(4)), [B, L], 'float32');
    const r2 = maskFromScores(coarse, 150);
    const ref = maskRef(coarse.toArray(), B, L, 150);
    expect(ints(r2.idsKeep)).toEqual(ref.keep);
    expect(ints(r2.idsRestore)).toEqual(ref.restore);
  });

  it('gives L - keep ones per row and an idsRestore that inverts the shuffle', () => {
    const B = 5, L = 37;
    // Coarse scores, so many ties.
    const scores = tensor(Array.from({ length: B * L }, () => rng.int(6)), [B, L], 'float32');
    for (const K of [0, 1, 18, 36, 37]) {
      const r = maskFromScores(scores, K);
      const keep = ints(r.idsKeep), restore = ints(r.idsRestore), mask = ints(r.mask);
      for (let b = 0; b < B; b++) {
        const row = restore.slice(b * L, (b + 1) * L);
        expect([...row].sort((a, c) => a - c)).toEqual(Array.from({ length: L }, (_, i) => i));
        for (let k = 0; k < K; k++) expect(row[keep[b * K + k]!]).toBe(k);
        expect(mask.slice(b * L, (b + 1) * L).reduce((a, c) => a + c, 0)).toBe(L - K);
      }
    }
  });

  it('keep = 0 gives an empty idsKeep and an all-ones mask; keep = L an all-zeros mask', () => {
    const s = rand([3, 7], 'float32');
    const none = maskFromScores(s, 0);
    expect(none.idsKeep.shape).toEqual([3, 0]);
    expect(ints(none.mask)).toEqual(new Array(21).fill(1));
    const all = maskFromScores(s, 7);
    expect(ints(all.mask)).toEqual(new Array(21).fill(0));
    const empty = maskFromScores(tensor([], [0, 5]), 3);
    expect(empty.idsKeep.shape).toEqual([0, 3]);
  });

  it('rejects NaN, a keep outside [0, L] and non-float scores', () => {
    const s = tensor([0, 1, 2, 3, NaN, 5], [2, 3], 'float64');
    expect(() => maskFromScores(s, 1)).toThrow('maskFromScores: Expected scores without NaN for scores but received NaN at (b, j) = (1, 1)');
    expect(() => maskFromScores(rand([2, 3], 'float32'), 4)).toThrow(/Expected an integer in \[0, 3\] for keep but received 4/);
    expect(() => maskFromScores(tensor([1, 2], [1, 2], 'int32'), 1)).toThrow(/for scores but received int32 tensor/);
    expect(() => maskFromScores(rand([6], 'float32'), 1)).toThrow(/Expected a 2-D tensor for scores/);
    expect(() => native().maskFromScores(rand([2, 3], 'float32').native, -1)).toThrow(/maskFromScores: .* for keep/);
  });
});

// ---------- uniformNoise ----------

describe('uniformNoise', () => {
  it('matches a BigInt Philox4x32-10 reference bit for bit', () => {
    // Random123's known answer for counter 0, key 0, to pin the reference itself.
    expect(philoxRef(0n, 0n, 0n)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    for (const [shape, seed, step, low, high] of [
      [[3, 7], 7, 0, 0, 1], [[49], 2 ** 40 + 3, 2 ** 33 + 5, -2, 3], [[2, 3, 5], 0, 1, 0.25, 0.5], [[1], 1, 1, -1e-3, 1e-3],
    ] as Array<[number[], number, number, number, number]>) {
      const t = uniformNoise(shape, seed, step, low, high);
      expect(t.shape).toEqual(shape);
      expect(t.dtype).toBe('float32');
      assertClose(t.toArray(), noiseRef(numel(shape), seed, step, low, high), EXACT, `noise ${shape}`);
    }
  });

  it('is a pure function of (seed, step, element index)', () => {
    const a = ints(uniformNoise([100], 3, 9));
    expect(ints(uniformNoise([100], 3, 9))).toEqual(a);
    expect(ints(uniformNoise([10], 3, 9))).toEqual(a.slice(0, 10)); // shape does not matter, only the index
    expect(ints(uniformNoise([4, 25], 3, 9))).toEqual(a);
    expect(ints(uniformNoise([100], 3, 10))).not.toEqual(a);
    expect(ints(uniformNoise([100], 4, 9))).not.toEqual(a);
  });

  it('does not change with the thread count', () => {
    const [one, three] = acrossThreads([1, 3], () => uniformNoise([64, 999], 11, 2).toArray());
    expect(Buffer.from(three!.buffer).equals(Buffer.from(one!.buffer))).toBe(true);
  });

  it('stays in [low, high) with the right mean', () => {
    for (const [low, high] of [[0, 1], [-3, 5], [0.1, 0.1000001]]) {
      const v = uniformNoise([20000], 5, 1, low, high).toArray();
      let mn = Infinity, mx = -Infinity, s = 0;
      for (const x of v) {
        mn = Math.min(mn, x);
        mx = Math.max(mx, x);
        s += x;
      }
      expect(mn).toBeGreaterThanOrEqual(Math.fround(low));
      expect(mx).toBeLessThan(Math.fround(high));
      // The mean of 20000 uniforms has sd (high - low)/sqrt(12·20000) ≈ 0.002·(high - low).
      expect(Math.abs(s / v.length - (low + high) / 2)).toBeLessThan(0.01 * (high - low) + 1e-6);
    }
  });

  it('handles empty shapes and rejects bad arguments', () => {
    expect(uniformNoise([3, 0], 1, 1).shape).toEqual([3, 0]);
    expect(uniformNoise([], 1, 1).shape).toEqual([]);
    expect(() => uniformNoise([2, -1], 1, 1)).toThrow(/for shape but received \[2, -1\]/);
    expect(() => uniformNoise([2], 1.5, 1)).toThrow(/for seed but received 1.5/);
    expect(() => uniformNoise([2], 1, -1)).toThrow(/for step but received -1/);
    expect(() => uniformNoise([2], 1, 1, 1, 1)).toThrow('Expected a number above low (1) for high but received 1');
    expect(() => native().uniformNoise([2], 1, 1, 2, 1)).toThrow(/uniformNoise: Expected a finite number above low \(2\) for high but received 1/);
  });
});

// ---------- assembleTokens ----------

describe('assembleTokens', () => {
  const cases: Array<[number, number, number, number, number]> = [
    // B, Ls, Lo, D, T
    [3, 7, 7, 5, 1], [2, 49, 60, 24, 2], [1, 1, 1, 1, 1], [2, 0, 4, 3, 1], [3, 5, 0, 4, 1], [4, 13, 9, 300, 3],
  ];
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, Ls, Lo, D, T] of cases)
      it(`forward and backward match the reference: ${dtype} B=${B} Ls=${Ls} Lo=${Lo} D=${D} T=${T}`, () => {
        scope(() => {
          const x = rand([B, Ls, D], dtype, true);
          const tokens = rand([T, D], dtype, true);
          const index = randIndex(B, Lo, Ls, T);
          const out = assembleTokens(x, index, tokens);
          expect(out.shape).toEqual([B, Lo, D]);
          const ix = index.toArray();
          assertClose(out.toArray(), assembleRef(x.toArray(), ix, tokens.toArray(), B, Ls, Lo, D), EXACT, 'out');
          const g = rand([B, Lo, D], dtype);
          backward(out, g);
          const ref = assembleGradRef(g.toArray(), ix, B, Ls, Lo, D, T);
          assertClose(x.grad!.toArray(), ref.dx, tolFor(dtype), 'dx');
          assertClose(tokens.grad!.toArray(), ref.dt, tolFor(dtype), 'dtokens');
        });
      });

  it('gathers without tokens (index = idsKeep)', () => {
    const x = rand([3, 7, 5], 'float32');
    const { idsKeep } = maskFromScores(rand([3, 7], 'float32'), 3);
    const kept = assembleTokens(x, idsKeep, null);
    assertClose(kept.toArray(), assembleRef(x.toArray(), idsKeep.toArray(), null, 3, 7, 3, 5), EXACT, 'kept');
  });

  it('backward matches finite differences (float64): repeated indices, several tokens, CLS layout', () => {
    const x = randLeaf([2, 4, 3], rng);
    const t = randLeaf([2, 3], rng);
    // Repeats of 1 and 3 in row 0, both tokens, a source row never used.
    const idx = tensor([1, 1, -1, 3, 3, -2, 0, -1, -1, 2, 2, 2], [2, 6], 'int32');
    gradcheck(([a, b]) => assembleTokens(a!, idx, b!), [x, t]);
    // CLS in front of every row: [-1, 0, 1, 2, 3].
    const cls = tensor([-1, 0, 1, 2, 3, -1, 0, 1, 2, 3], [2, 5], 'int32');
    gradcheck(([a, b]) => assembleTokens(a!, cls, b!), [randLeaf([2, 4, 3], rng), randLeaf([1, 3], rng)]);
    // Only x needs a gradient.
    gradcheck(([a]) => assembleTokens(a!, idx, t), [randLeaf([2, 4, 3], rng)]);
  });

  it('backward does not change with the thread count (many repeats, float32)', () => {
    const B = 32, Ls = 9, Lo = 200, D = 257, T = 2;
    const index = randIndex(B, Lo, Ls, T);
    const g = rand([B, Lo, D], 'float32');
    const runs = acrossThreads([1, 2, 3], () => {
      const [dx, dt] = native().assembleTokensBackward(g.native, index.native, Ls, T, true, true);
      return [dx!.read(), dt!.read()];
    });
    for (const r of runs.slice(1)) {
      expect(Buffer.from(r[0]!.buffer).equals(Buffer.from(runs[0]![0]!.buffer))).toBe(true);
      expect(Buffer.from(r[1]!.buffer).equals(Buffer.from(runs[0]![1]!.buffer))).toBe(true);
    }
    const ref = assembleGradRef(g.toArray(), index.toArray(), B, Ls, Lo, D, T);
    assertClose(runs[0]![0]!, ref.dx, { atol: 1e-4, rtol: 1e-4 }, 'dx');
    assertClose(runs[0]![1]!, ref.dt, { atol: 1e-3, rtol: 1e-4 }, 'dtokens');
  });

  it('MAE round trip: gather kept, prepend CLS, unshuffle with the mask token', () => {
    const B = 3, L = 49, D = 24, K = 12;
    const x = rand([B, L, D], 'float32');
    const clsTok = rand([1, D], 'float32');
    const maskTok = rand([1, D], 'float32');
    const { idsKeep, idsRestore, mask } = maskFromScores(uniformNoise([B, L], 1, 0), K);
    const kept = assembleTokens(x, idsKeep, null);
    const clsIdx = tensor(Array.from({ length: B * (K + 1) }, (_, i) => (i % (K + 1)) - 1), [B, K + 1], 'int32');
    const enc = assembleTokens(kept, clsIdx, clsTok);
    const xs = x.toArray(), m = ints(mask), ct = clsTok.toArray(), mt = maskTok.toArray();
    for (const cls of [false, true]) {
      const src = cls ? enc : kept;
      const dec = assembleTokens(src, restoreIndex(idsRestore, K, cls), maskTok).toArray();
      const off = cls ? 1 : 0;
      const Lo = L + off;
      const want = new Float64Array(B * Lo * D);
      for (let b = 0; b < B; b++) {
        if (cls) for (let d = 0; d < D; d++) want[b * Lo * D + d] = ct[d]!;
        for (let j = 0; j < L; j++)
          for (let d = 0; d < D; d++)
            want[(b * Lo + off + j) * D + d] = m[b * L + j] ? mt[d]! : xs[(b * L + j) * D + d]!;
      }
      assertClose(dec, want, EXACT, `decoder input cls=${cls}`);
    }
  });

  it('SimMIM replacement: index = mask ? -1 : j', () => {
    const B = 2, L = 16, D = 7;
    const x = rand([B, L, D], 'float64');
    const tok = rand([1, D], 'float64');
    const { mask } = maskFromScores(uniformNoise([B, L], 2, 0), 6);
    const m = ints(mask);
    const idx = tensor(m.map((v, i) => (v ? -1 : i % L)), [B, L], 'int32');
    const out = assembleTokens(x, idx, tok).toArray();
    const xs = x.toArray(), ts = tok.toArray();
    for (let i = 0; i < B * L; i++)
      for (let d = 0; d < D; d++) expect(out[i * D + d]).toBe(m[i] ? ts[d] : xs[i * D + d]);
  });

  it('rejects out-of-range indices, naming the op and the position', () => {
    const x = rand([2, 7, 5], 'float32');
    const tok = rand([1, 5], 'float32');
    const bad = (v: number): Tensor => tensor([0, 1, 2, 3, 4, 5, 6, v, 0], [1, 9], 'int32');
    const idx = tensor([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 7, 0], [2, 6], 'int32');
    expect(() => assembleTokens(x, idx, tok)).toThrow(
      'assembleTokens: Expected indices in [-1, 7) for index but received 7 at (b, j) = (1, 4)');
    expect(() => assembleTokens(rand([1, 7, 5], 'float32'), bad(-2), tok)).toThrow(/received -2 at \(b, j\) = \(0, 7\)/);
    expect(() => assembleTokens(rand([1, 7, 5], 'float32'), bad(-1), null)).toThrow(
      'assembleTokens: Expected indices in [0, 7) (no tokens, so no negative index) for index but received -1 at (b, j) = (0, 7)');
    expect(() => native().assembleTokensBackward(rand([1, 9, 5], 'float32').native, bad(7).native, 7, 1, true, true)).toThrow(
      /assembleTokensBackward: Expected indices in \[-1, 7\) for index but received 7 at \(b, j\) = \(0, 7\)/);
    expect(() => native().assembleTokensBackward(rand([1, 9, 5], 'float32').native, bad(0).native, 7, 1, true, 1 as never)).toThrow(
      /for needTokens/);
  });

  it('rejects wrong dtypes and shapes', () => {
    const x = rand([2, 7, 5], 'float32');
    const idx = tensor(new Array(6).fill(0), [2, 3], 'int32');
    expect(() => assembleTokens(x, tensor(new Array(6).fill(0), [2, 3], 'float32'), null)).toThrow(
      'Expected an int32 tensor for index but received float32 tensor [2, 3]');
    expect(() => assembleTokens(x, tensor([0, 0, 0], [1, 3], 'int32'), null)).toThrow(/Expected shape \[2, Lo\] .* for index/);
    expect(() => assembleTokens(x, idx, rand([1, 5], 'float64'))).toThrow('Expected a float32 tensor for tokens but received float64 tensor [1, 5]');
    expect(() => assembleTokens(x, idx, rand([1, 4], 'float32'))).toThrow(/Expected shape \[T, 5\] .* for tokens/);
    expect(() => assembleTokens(rand([2, 35], 'float32'), idx, null)).toThrow(/Expected a 3-D tensor for input/);
    expect(() => native().assembleTokens(x.native, idx.native, rand([1, 5], 'float64').native)).toThrow(
      /assembleTokens: Expected a float32 tensor for tokens/);
    expect(() => native().assembleTokens(x.native, tensor([0], [1, 1], 'int32').native, null)).toThrow(/assembleTokens: .* for index/);
  });
});

// ---------- restoreIndex ----------

describe('restoreIndex', () => {
  it('matches the reference with and without CLS', () => {
    for (const [B, L, K] of [[3, 7, 2], [2, 49, 12], [2, 1, 0], [2, 1, 1]]) {
      const { idsRestore } = maskFromScores(rand([B, L], 'float32'), K);
      const r = ints(idsRestore);
      for (const cls of [false, true]) {
        const got = restoreIndex(idsRestore, K, cls);
        const off = cls ? 1 : 0;
        expect(got.shape).toEqual([B, L + off]);
        const want: number[] = [];
        for (let b = 0; b < B; b++) {
          if (cls) want.push(0);
          for (let j = 0; j < L; j++) want.push(r[b * L + j]! < K ? r[b * L + j]! + off : -1);
        }
        expect(ints(got)).toEqual(want);
      }
    }
  });

  it('rejects bad input', () => {
    const r = tensor([0, 1, 2, 3], [2, 2], 'int32');
    expect(() => restoreIndex(r, 3, false)).toThrow(/Expected an integer in \[0, 2\] for keep but received 3/);
    expect(() => restoreIndex(r, 1, 1 as never)).toThrow(/for cls but received 1/);
    expect(() => restoreIndex(tensor([0, 1], [1, 2], 'float32'), 1, false)).toThrow(/Expected an int32 tensor for idsRestore/);
    expect(() => restoreIndex(r, 1, false)).toThrow('restoreIndex: Expected indices in [0, 2) for idsRestore but received 2 at (b, j) = (1, 0)');
  });
});

// ---------- patchify / unpatchify ----------

describe('patchify', () => {
  const shapes: Array<[number, number, number, number, number]> = [
    // B, C, H, W, p
    [2, 3, 28, 28, 7], [1, 1, 28, 28, 4], [3, 2, 6, 10, 2], [2, 3, 5, 3, 1], [1, 3, 8, 8, 8], [2, 1, 0, 4, 2],
  ];
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, C, H, W, p] of shapes)
      it(`matches MAE's einsum order and inverts: ${dtype} [${B}, ${C}, ${H}, ${W}] p=${p}`, () => {
        const img = rand([B, C, H, W], dtype);
        const pt = patchify(img, p);
        expect(pt.shape).toEqual([B, (H / p) * (W / p), p * p * C]);
        assertClose(pt.toArray(), patchifyRef(img.toArray(), B, C, H, W, p), EXACT, 'patches');
        const back = unpatchify(pt, p, C, H, W);
        expect(back.shape).toEqual([B, C, H, W]);
        assertClose(back.toArray(), img.toArray(), EXACT, 'unpatchify(patchify(x))');
      });

  it('backward matches finite differences (float64)', () => {
    gradcheck(([x]) => patchify(x!, 2), [randLeaf([2, 3, 4, 6], rng)]);
    gradcheck(([x]) => unpatchify(x!, 3, 2, 6, 3), [randLeaf([2, 2, 18], rng)]);
  });

  it('rejects a patch size that does not divide the sides, and bad shapes', () => {
    const img = rand([1, 3, 28, 28], 'float32');
    expect(() => patchify(img, 5)).toThrow('Expected a patch size that divides the image sides H = 28 and W = 28 for patchSize but received 5');
    expect(() => patchify(img, 0)).toThrow(/for patchSize but received 0/);
    expect(() => patchify(rand([3, 28, 28], 'float32'), 4)).toThrow(/Expected a 4-D tensor for images/);
    expect(() => patchify(tensor([1, 2, 3, 4], [1, 1, 2, 2], 'int32'), 2)).toThrow(/Expected a float32 or float64 tensor for images/);
    expect(() => native().patchify(img.native, 6)).toThrow(/patchify: Expected a patch size that divides the image sides H = 28 and W = 28 for patchSize but received 6/);
    const pt = rand([1, 49, 48], 'float32');
    expect(unpatchify(pt, 4, 3, 28, 28).shape).toEqual([1, 3, 28, 28]);
    expect(() => unpatchify(pt, 4, 2, 28, 28)).toThrow('Expected shape [1, 49, 32] for patches but received float32 tensor [1, 49, 48]');
    expect(() => unpatchify(pt, 4, 3, 28, 30)).toThrow(/divides the image sides height = 28 and width = 30 for patchSize/);
    expect(() => native().unpatchify(pt.native, 4, 3, 24, 28)).toThrow(/unpatchify: Expected shape \[1, 42, 48\] for patches/);
  });
});

// ---------- tokenMean ----------

describe('tokenMean', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, L, D] of [[3, 7, 5], [2, 49, 24], [4, 1, 3], [1, 16, 300]])
      it(`matches the reference: ${dtype} B=${B} L=${L} D=${D}`, () => {
        const x = rand([B, L, D], dtype);
        const y = tokenMean(x);
        expect(y.shape).toEqual([B, D]);
        assertClose(y.toArray(), tokenMeanRef(x.toArray(), B, L, D), tolFor(dtype), 'tokenMean');
      });

  it('backward matches finite differences (float64)', () => {
    gradcheck(([x]) => tokenMean(x!), [randLeaf([3, 7, 5], rng)]);
    gradcheck(([x]) => tokenMean(x!), [randLeaf([2, 1, 4], rng)]);
  });

  it('rejects no tokens and bad input', () => {
    expect(() => tokenMean(tensor([], [2, 0, 3]))).toThrow('Expected at least one token (L > 0) for input but received float32 tensor [2, 0, 3]');
    expect(() => native().tokenMean(tensor([], [2, 0, 3]).native)).toThrow(/tokenMean: Expected at least one token/);
    expect(() => tokenMean(rand([2, 3], 'float32'))).toThrow(/Expected a 3-D tensor for input/);
    expect(() => tokenMean(tensor([1], [1, 1, 1], 'int32'))).toThrow(/for input but received int32/);
  });
});
