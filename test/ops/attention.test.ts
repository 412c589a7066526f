/**
 * The fused attention kernel (native/src/ops/attention.cc) against the naive
 * float64 reference in helpers/naive-attention.ts, for every mask mode and
 * their combinations, at awkward sizes (L = 1, 7, 97, and 300, which crosses
 * the kernel's 64-query and 128-key tiles with partial last tiles; Dh = 24,
 * 40, 64).
 *
 * Backward is checked twice, as the style guide asks:
 *  - float64 finite differences (helpers/gradcheck.ts) on tiny shapes, one
 *    case per option, with the entropy output in the loss where it exists;
 *  - at L = 97, fused gradients (float64 and float32) against the naive
 *    reference's analytic backward, which is itself checked here by finite
 *    differences of the naive forward.
 * The CUDA kernels are checked in attention-cuda.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { alibiSlopes, attention, Rng, runtimeInfo, scope, setNumThreads, tensor, type DType } from '../../src/index.js';
import {
  assertGrads,
  fusedForward,
  fusedGrads,
  makeSpec,
  nativeForward,
  roundSpec,
  sequenceAsPadded,
  toFused,
  tokensOf,
  upstream,
  type Case,
  type Forward,
  type Grads,
} from '../helpers/attention-problems.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { naiveAttentionBackward, naiveAttentionForward, tokenCount, type NaiveAttnSpec } from '../helpers/naive-attention.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

function expectAllFinite(a: ArrayLike<number>, label: string): void {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new Error(`${label}: ${a[i]} at ${i}`);
}

// ---------------------------------------------------------------------------
// Forward against the reference

/** out, lse and entropy under the shared rule, tolFor(dtype). */
function checkForward(c: Case, dtype: DType, seed = 7): void {
  const spec = roundSpec(makeSpec(c, seed), dtype);
  const ref = naiveAttentionForward(spec);
  const got = fusedForward(spec, dtype, c.entropy ?? false);
  const tol = tolFor(dtype);
  assertClose(got.out, ref.out, tol, `${c.name} out`);
  assertClose(got.lse, ref.lse, tol, `${c.name} lse`);
  if (c.entropy) assertClose(got.entropy!, ref.entropy, tol, `${c.name} entropy`);
  else expect(got.entropy).toBeUndefined();
}

const forwardCases: Case[] = [];
for (const L of [1, 7, 97]) for (const Dh of [24, 40, 64]) forwardCases.push({ name: `plain L=${L} Dh=${Dh}`, L, H: 2, Dh });
forwardCases.push(
  // Dh = 59 leaves a scalar tail after every vector width; H = 1 is the degenerate head count.
  { name: 'plain L=97 Dh=59 H=1', L: 97, H: 1, Dh: 59 },
  { name: 'keyPadding L=97', L: 97, H: 2, Dh: 40, keyPadding: true },
  { name: 'keyPadding L=7', L: 7, H: 3, Dh: 24, keyPadding: true },
  { name: 'varlen with an empty sequence', lens: [7, 0, 97, 33], L: 97, H: 2, Dh: 64 },
  { name: 'varlen maxSeqlen above every length', lens: [1, 5, 0], L: 8, H: 2, Dh: 24 },
  { name: 'varlen maxSeqlen spanning idle tiles', lens: [5, 70, 0], L: 200, H: 2, Dh: 40, bias: true },
  { name: 'ALiBi 8 heads L=97', L: 97, H: 8, Dh: 24, alibi: true },
  { name: 'ALiBi 6 heads L=97', L: 97, H: 6, Dh: 40, alibi: true },
  { name: 'ALiBi 3 heads L=1', L: 1, H: 3, Dh: 24, alibi: true },
  { name: 'ALiBi 1 head L=97', L: 97, H: 1, Dh: 59, alibi: true },
  { name: 'ALiBi custom scale', L: 7, H: 2, Dh: 40, alibi: true, scale: 0.3 },
  // A scale of 0 (uniform weights over the keys left) and a negative one, with masked keys: the scale cannot go
  // into the exponent there (0·(−∞) is NaN; max(scale·s) = scale·max(s) needs scale > 0).
  { name: 'keyPadding scale 0', L: 97, H: 2, Dh: 40, keyPadding: true, scale: 0 },
  { name: 'tokenMask+exclude negative scale', L: 97, H: 2, Dh: 24, tokenMask: true, exclude: true, scale: -0.4 },
  { name: 'bias L=97', L: 97, H: 2, Dh: 64, bias: true },
  { name: 'bias L=7', L: 7, H: 2, Dh: 40, bias: true },
  { name: 'attnMask L=97', L: 97, H: 2, Dh: 24, attnMask: true },
  { name: 'attnMask L=7', L: 7, H: 2, Dh: 64, attnMask: true },
  { name: 'tokenMask+exclude L=97', L: 97, H: 2, Dh: 40, tokenMask: true, exclude: true },
  { name: 'tokenMask+exclude L=7', L: 7, H: 2, Dh: 24, tokenMask: true, exclude: true },
  { name: 'entropy, every row', L: 97, H: 2, Dh: 64, entropy: true },
  { name: 'entropy, masked rows only', L: 97, H: 2, Dh: 24, tokenMask: true, entropy: true },
  { name: 'entropy L=1', L: 1, H: 2, Dh: 40, entropy: true },
  {
    name: 'keyPadding+ALiBi+bias+MTO+entropy',
    L: 97, H: 6, Dh: 64, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true,
  },
  {
    name: 'keyPadding+attnMask+MTO+entropy',
    L: 7, H: 2, Dh: 40, keyPadding: true, attnMask: true, tokenMask: true, exclude: true, entropy: true,
  },
  {
    name: 'varlen+ALiBi+bias+attnMask+MTO+entropy',
    lens: [97, 0, 13, 64], L: 97, H: 4, Dh: 40, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true, entropy: true,
  },
  { name: 'ASA bias+keyPadding+entropy', L: 97, H: 2, Dh: 24, bias: 'asa', keyPadding: true, entropy: true },
  // Several query and key tiles, so the online softmax rescales across key tiles.
  { name: 'plain L=300 Dh=64', L: 300, H: 2, Dh: 64 },
  {
    name: 'L=300 keyPadding+ALiBi+bias+MTO+entropy',
    L: 300, H: 2, Dh: 40, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true,
  },
  { name: 'varlen L=300', lens: [300, 0, 129, 5], L: 300, H: 2, Dh: 24, alibi: true, tokenMask: true, exclude: true, entropy: true },
);

describe('attention forward matches the naive reference', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    for (const c of forwardCases) it(`${c.name} (${dtype})`, () => checkForward(c, dtype));
  }
});

describe('peaked rows in float32: at most 2× the error of a naive float32 implementation', () => {
  // With logits of tens, each logit already carries a float32 rounding of
  // about |s|·2^-24 that no implementation avoids, so the fixed float32
  // tolerance cannot apply. flash-attention's rule does: the fused error
  // against the float64 reference must be at most twice the error of the
  // naive algorithm run in float32 (every intermediate rounded).
  const maxErr = (got: ArrayLike<number>, ref: ArrayLike<number>): number => {
    let m = 0;
    for (let i = 0; i < ref.length; i++) {
      if (!Number.isFinite(ref[i]!)) expect(got[i]).toBe(ref[i]);
      else m = Math.max(m, Math.abs(got[i]! - ref[i]!));
    }
    return m;
  };
  const cases: Case[] = [
    { name: 'plain', B: 2, L: 97, H: 2, Dh: 40, qScale: 10, entropy: true },
    { name: 'very peaked', B: 1, L: 97, H: 2, Dh: 64, qScale: 50, entropy: true },
    { name: 'peaked across key tiles', B: 1, L: 300, H: 2, Dh: 64, qScale: 20, entropy: true },
    { name: 'keyPadding+ALiBi+bias+MTO', B: 2, L: 97, H: 3, Dh: 24, qScale: 15, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const spec = roundSpec(makeSpec(c, 81), 'float32');
      const ref = naiveAttentionForward(spec);
      const naive32 = naiveAttentionForward(spec, 'float32');
      const got = fusedForward(spec, 'float32', true);
      const floor = tolFor('float32').atol;
      for (const key of ['out', 'entropy'] as const) {
        const fused = maxErr(got[key]!, ref[key]);
        const naive = maxErr(naive32[key], ref[key]);
        expect(fused, `${key}: fused error ${fused.toExponential(2)}, naive float32 error ${naive.toExponential(2)}`).toBeLessThanOrEqual(2 * naive + floor);
      }
      expect(maxErr(got.lse, ref.lse)).toBeLessThanOrEqual(2 * maxErr(naive32.lse, ref.lse) + floor);
    });
  }
});

describe('ALiBi slopes', () => {
  // mlm.md: m_h = 2^(−8h/n), h = 1..n, for n a power of two; otherwise the
  // slopes of the nearest smaller power of two, then every other slope of twice that.
  const specSlopes = (n: number): number[] => {
    const pow2 = (m: number): number[] => Array.from({ length: m }, (_, h) => 2 ** ((-8 * (h + 1)) / m));
    let p = 1;
    while (p * 2 <= n) p *= 2;
    if (p === n) return pow2(n);
    return [...pow2(p), ...pow2(2 * p).filter((_, i) => i % 2 === 0).slice(0, n - p)];
  };

  it('8 heads: 2^-1 … 2^-8', () => {
    const want = [1, 2, 3, 4, 5, 6, 7, 8].map((e) => 2 ** -e);
    expect(alibiSlopes(8)).toEqual(want);
    expect(specSlopes(8)).toEqual(want);
  });

  it('6 heads: the 4-head slopes, then 2^-1 and 2^-3 from the 8-head ones', () => {
    const want = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3];
    expect(alibiSlopes(6)).toEqual(want);
    expect(specSlopes(6)).toEqual(want);
  });

  it('agrees with the spec formula for 1..16 heads', () => {
    for (let n = 1; n <= 16; n++) assertClose(alibiSlopes(n), specSlopes(n), tolFor('float64'), `${n} heads`);
  });

  it('the kernel applies −m_h·|i−j|: a query with zero q·k attends by distance alone', () => {
    // q = 0 makes every q·k 0, so row i's weights are softmax(−m_h|i−j|) exactly.
    scope(() => {
      const L = 5;
      const H = 2;
      const Dh = 1;
      const slopes = alibiSlopes(H);
      const q = tensor(new Float64Array(L * H * Dh), [1, L, H, Dh], 'float64');
      // v_j = j picks out the expected distance-weighted mean of key positions.
      const v = tensor(Float64Array.from({ length: L * H }, (_, t) => Math.floor(t / H)), [1, L, H, Dh], 'float64');
      const out = attention(q, q, v, { alibiSlopes: tensor(slopes, [H], 'float64') }).out.toArray();
      const want: number[] = [];
      for (let i = 0; i < L; i++)
        for (let h = 0; h < H; h++) {
          const w = Array.from({ length: L }, (_, j) => Math.exp(-slopes[h]! * Math.abs(i - j)));
          const z = w.reduce((a, b) => a + b, 0);
          want.push(w.reduce((a, x, j) => a + (x / z) * j, 0));
        }
      assertClose(out, want, tolFor('float64'), 'distance-weighted mean');
    });
  });
});

// ---------------------------------------------------------------------------
// Fully masked and fully visible

describe('0% and 100% masking', () => {
  const base: Case = { name: 'base', B: 2, L: 7, H: 2, Dh: 24 };

  for (const dtype of ['float64', 'float32'] as const) {
    it(`tokenMask all 1 with excludeMaskedKeys: every query attends to everything and is measured (${dtype})`, () => {
      const plain = roundSpec(makeSpec(base, 11), dtype);
      const masked: NaiveAttnSpec = { ...plain, tokenMask: new Uint8Array(plain.B * plain.L).fill(1), excludeMaskedKeys: true };
      const ref = naiveAttentionForward(plain);
      const got = fusedForward(masked, dtype, true);
      const tol = tolFor(dtype);
      assertClose(got.out, ref.out, tol, 'out');
      assertClose(got.lse, ref.lse, tol, 'lse');
      assertClose(got.entropy!, ref.entropy, tol, 'entropy');
      expect(got.entropy!.every((e) => e > 0)).toBe(true);
    });

    it(`tokenMask all 0 with excludeMaskedKeys: plain attention, no row measured (${dtype})`, () => {
      const plain = roundSpec(makeSpec(base, 12), dtype);
      const visible: NaiveAttnSpec = { ...plain, tokenMask: new Uint8Array(plain.B * plain.L), excludeMaskedKeys: true };
      const ref = naiveAttentionForward(plain);
      const got = fusedForward(visible, dtype, true);
      assertClose(got.out, ref.out, tolFor(dtype), 'out');
      assertClose(got.lse, ref.lse, tolFor(dtype), 'lse');
      expect(Array.from(got.entropy!)).toEqual(new Array(got.entropy!.length).fill(0));
    });

    it(`a fully padded batch row: out 0, lse −∞, entropy 0, zero gradients, no NaN (${dtype})`, () => {
      const spec = roundSpec(makeSpec({ ...base, keyPadding: true, bias: true, tokenMask: true, exclude: true }, 13), dtype);
      const kp = Uint8Array.from(spec.keyPadding!);
      kp.fill(1, spec.L, 2 * spec.L);
      spec.keyPadding = kp;
      const ref = naiveAttentionForward(spec);
      const got = fusedForward(spec, dtype, true);
      const tol = tolFor(dtype);
      assertClose(got.out, ref.out, tol, 'out');
      assertClose(got.lse, ref.lse, tol, 'lse');
      assertClose(got.entropy!, ref.entropy, tol, 'entropy');
      const row = spec.L * spec.H * spec.Dh;
      expect(Array.from(got.out.subarray(row))).toEqual(new Array(row).fill(0));
      const stats = spec.H * spec.L;
      expect(Array.from(got.lse.subarray(stats))).toEqual(new Array(stats).fill(-Infinity));
      expect(Array.from(got.entropy!.subarray(stats))).toEqual(new Array(stats).fill(0));

      const { W, We } = upstream(spec, 14);
      const g = fusedGrads(spec, dtype, W, We);
      for (const [name, a] of Object.entries(g) as Array<[string, Float64Array]>) expectAllFinite(a, name);
      for (const a of [g.dq, g.dk, g.dv]) expect(Array.from(a.subarray(row))).toEqual(new Array(row).fill(0));
      const bb = spec.L * spec.L;
      expect(Array.from(g.dbias!.subarray(bb))).toEqual(new Array(bb).fill(0));
      assertGrads(g, naiveAttentionBackward(spec, W, We), tolFor(dtype), 'padded-row grads');
    });

    it(`attnMask rows fully masked: those queries give 0 and −∞ (${dtype})`, () => {
      const spec = roundSpec(makeSpec({ ...base, attnMask: true }, 15), dtype);
      const am = Uint8Array.from(spec.attnMask!);
      const dead = [0, 3, spec.L + 6]; // (b, i) = (0, 0), (0, 3), (1, 6)
      for (const r of dead) am.fill(1, r * spec.L, (r + 1) * spec.L);
      spec.attnMask = am;
      const ref = naiveAttentionForward(spec);
      const got = fusedForward(spec, dtype, true);
      assertClose(got.out, ref.out, tolFor(dtype), 'out');
      assertClose(got.lse, ref.lse, tolFor(dtype), 'lse');
      assertClose(got.entropy!, ref.entropy, tolFor(dtype), 'entropy');
      for (const r of dead) {
        const b = Math.floor(r / spec.L);
        const i = r % spec.L;
        for (let h = 0; h < spec.H; h++) {
          expect(got.lse[(b * spec.H + h) * spec.L + i]).toBe(-Infinity);
          for (let d = 0; d < spec.Dh; d++) expect(got.out[(r * spec.H + h) * spec.Dh + d]).toBe(0);
        }
      }
      const { W, We } = upstream(spec, 16);
      const g = fusedGrads(spec, dtype, W, We);
      for (const [name, a] of Object.entries(g) as Array<[string, Float64Array]>) expectAllFinite(a, name);
      assertGrads(g, naiveAttentionBackward(spec, W, We), tolFor(dtype), 'attnMask grads');
    });
  }

  it('varlen with every sequence empty (nnz = 0)', () => {
    const spec = makeSpec({ name: 'empty', lens: [0, 0], L: 0, H: 2, Dh: 24 }, 17);
    const got = fusedForward(spec, 'float64', true);
    expect(got.out.length).toBe(0);
    expect(got.entropy!.length).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Mask semantics, checked without the reference

describe('mask semantics', () => {
  it('a visible query whose other keys are all masked returns its own value (MTO)', () => {
    scope(() => {
      const spec = makeSpec({ name: 'mto', B: 1, L: 6, H: 2, Dh: 24, tokenMask: true, exclude: true }, 21);
      spec.tokenMask = Uint8Array.from([0, 1, 1, 0, 1, 1]);
      spec.keyPadding = Uint8Array.from([0, 0, 0, 1, 0, 0]); // hides the other visible token, 3
      const got = fusedForward(spec, 'float64', false);
      const row = spec.H * spec.Dh;
      assertClose(got.out.subarray(0, row), Array.from(spec.v).slice(0, row), tolFor('float64'), 'out of query 0');
    });
  });

  it('visible queries ignore masked keys; masked queries see them', () => {
    const spec = makeSpec({ name: 'mto', B: 2, L: 97, H: 2, Dh: 40, tokenMask: true, exclude: true }, 22);
    const before = fusedForward(spec, 'float64', false);
    const rng = new Rng(23);
    const k = Float64Array.from(spec.k);
    const v = Float64Array.from(spec.v);
    const row = spec.H * spec.Dh;
    for (let t = 0; t < spec.B * spec.L; t++) {
      if (!spec.tokenMask![t]) continue;
      for (let c = 0; c < row; c++) {
        k[t * row + c] = rng.uniform() * 2 - 1;
        v[t * row + c] = rng.uniform() * 2 - 1;
      }
    }
    const after = fusedForward({ ...spec, k, v }, 'float64', false);
    let changedMasked = 0;
    for (let t = 0; t < spec.B * spec.L; t++) {
      const a = before.out.subarray(t * row, (t + 1) * row);
      const b = after.out.subarray(t * row, (t + 1) * row);
      if (spec.tokenMask![t]) changedMasked += a.some((x, c) => Math.abs(x - b[c]!) > 1e-6) ? 1 : 0;
      else assertClose(b, a, tolFor('float64'), `visible token ${t}`);
    }
    expect(changedMasked).toBe(Array.from(spec.tokenMask!).filter((m) => m !== 0).length);
  });

  it('padded keys do not influence any output', () => {
    const spec = makeSpec({ name: 'kp', B: 2, L: 97, H: 2, Dh: 24, keyPadding: true }, 24);
    const before = fusedForward(spec, 'float64', true);
    const k = Float64Array.from(spec.k);
    const v = Float64Array.from(spec.v);
    const row = spec.H * spec.Dh;
    for (let t = 0; t < spec.B * spec.L; t++) if (spec.keyPadding![t]) for (let c = 0; c < row; c++) k[t * row + c] = v[t * row + c] = 50;
    const after = fusedForward({ ...spec, k, v }, 'float64', true);
    assertClose(after.out, before.out, tolFor('float64'), 'out');
    assertClose(after.lse, before.lse, tolFor('float64'), 'lse');
    assertClose(after.entropy!, before.entropy!, tolFor('float64'), 'entropy');
  });
});

// ---------------------------------------------------------------------------
// Varlen against padded, one sequence at a time

describe('varlen equals each sequence run alone in padded mode', () => {
  const c: Case = {
    name: 'varlen',
    lens: [5, 0, 97, 1, 64, 30], L: 97, H: 3, Dh: 24, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true, entropy: true,
  };
  it('forward and gradients (float64)', () => {
    const spec = makeSpec(c, 31);
    const nnz = tokenCount(spec);
    const row = spec.H * spec.Dh;
    const { W, We } = upstream(spec, 32);
    const all = fusedForward(spec, 'float64', true);
    const allG = fusedGrads(spec, 'float64', W, We);
    const tol = tolFor('float64');
    for (let b = 0; b < spec.B; b++) {
      const toks = tokensOf(spec, b);
      if (toks.length === 0) continue;
      const one = sequenceAsPadded(spec, b);
      const len = toks.length;
      const pick = (a: Float64Array): Float64Array => Float64Array.from(toks.flatMap((t) => Array.from(a.subarray(t * row, (t + 1) * row))));
      // varlen stats are [H, nnz]; padded ones [1, H, len].
      const pickStat = (a: Float64Array): Float64Array => Float64Array.from({ length: spec.H * len }, (_, x) => a[Math.floor(x / len) * nnz + toks[x % len]!]!);
      const sep = fusedForward(one, 'float64', true);
      assertClose(pick(all.out), sep.out, tol, `sequence ${b} out`);
      assertClose(pickStat(all.lse), sep.lse, tol, `sequence ${b} lse`);
      assertClose(pickStat(all.entropy!), sep.entropy!, tol, `sequence ${b} entropy`);
      const sepG = fusedGrads(one, 'float64', pick(W), pickStat(We));
      assertClose(pick(allG.dq), sepG.dq, tol, `sequence ${b} dq`);
      assertClose(pick(allG.dk), sepG.dk, tol, `sequence ${b} dk`);
      assertClose(pick(allG.dv), sepG.dv, tol, `sequence ${b} dv`);
      const blk = Float64Array.from({ length: len * len }, (_, x) => allG.dbias![(b * spec.L + Math.floor(x / len)) * spec.L + (x % len)]!);
      assertClose(blk, sepG.dbias!, tol, `sequence ${b} dbias`);
    }
  });

  it('padded with trailing key padding equals varlen on the real tokens', () => {
    const lens = [97, 40, 1];
    const vspec = makeSpec({ name: 'v', lens, L: 97, H: 2, Dh: 40, alibi: true, entropy: true }, 33);
    const L = 97;
    const row = vspec.H * vspec.Dh;
    const cu = vspec.cuSeqlens!;
    const pad = (a: ArrayLike<number>): Float64Array => {
      const o = new Float64Array(lens.length * L * row);
      lens.forEach((n, b) => o.set(Array.from(a).slice(cu[b]! * row, (cu[b]! + n) * row), b * L * row));
      return o;
    };
    const kp = Uint8Array.from({ length: lens.length * L }, (_, x) => (x % L >= lens[Math.floor(x / L)]! ? 1 : 0));
    const pspec: NaiveAttnSpec = { ...vspec, B: lens.length, cuSeqlens: undefined, q: pad(vspec.q), k: pad(vspec.k), v: pad(vspec.v), keyPadding: kp };
    const vg = fusedForward(vspec, 'float64', true);
    const pg = fusedForward(pspec, 'float64', true);
    assertClose(pad(vg.out).filter((_, x) => !kp[Math.floor(x / row)]), pg.out.filter((_, x) => !kp[Math.floor(x / row)]), tolFor('float64'), 'out');
  });
});

// ---------------------------------------------------------------------------
// Backward

describe('the naive reference backward', () => {
  // Validates the reference itself: its analytic gradients against central
  // differences of its own forward, on a small problem with every option.
  it('matches finite differences of the naive forward', () => {
    const spec = makeSpec(
      { name: 'tiny', lens: [4, 0, 3], L: 4, H: 2, Dh: 3, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true },
      41,
    );
    const { W, We } = upstream(spec, 42);
    const loss = (s: NaiveAttnSpec): number => {
      const f = naiveAttentionForward(s);
      return f.out.reduce((a, x, i) => a + x * W[i]!, 0) + f.entropy.reduce((a, x, i) => a + x * We[i]!, 0);
    };
    const g = naiveAttentionBackward(spec, W, We);
    const eps = 1e-6;
    for (const key of ['q', 'k', 'v', 'bias'] as const) {
      const base = Float64Array.from(spec[key]!);
      const num = base.map((x, i) => {
        const p = Float64Array.from(base);
        p[i] = x + eps;
        const lp = loss({ ...spec, [key]: p });
        p[i] = x - eps;
        return (lp - loss({ ...spec, [key]: p })) / (2 * eps);
      });
      const ana = key === 'bias' ? g.dbias! : g[`d${key}`];
      assertClose(ana, num, { atol: 1e-7, rtol: 1e-5 }, `naive d${key}`);
    }
  });
});

describe('attention backward: float64 finite differences', () => {
  const tiny = { B: 2, L: 5, H: 2, Dh: 3 };
  const cases: Case[] = [
    { name: 'plain', ...tiny },
    { name: 'keyPadding', ...tiny, keyPadding: true },
    { name: 'varlen with an empty sequence', lens: [3, 0, 5, 1], L: 5, H: 2, Dh: 3 },
    { name: 'ALiBi, 3 heads, custom scale', ...tiny, H: 3, alibi: true, scale: 0.7 },
    { name: 'bias', ...tiny, bias: true },
    { name: 'attnMask', ...tiny, attnMask: true },
    { name: 'tokenMask+exclude', ...tiny, tokenMask: true, exclude: true },
    { name: 'entropy, every row', ...tiny, entropy: true },
    { name: 'entropy, masked rows, exclude', ...tiny, tokenMask: true, exclude: true, entropy: true },
    { name: 'keyPadding+ALiBi+bias+attnMask+MTO+entropy', ...tiny, H: 3, keyPadding: true, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true, entropy: true },
    { name: 'varlen+ALiBi+bias+MTO+entropy', lens: [4, 0, 2, 5], L: 5, H: 2, Dh: 3, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const spec = makeSpec(c, 51);
      if (spec.keyPadding) {
        // One batch row fully padded, so zero gradients are checked too.
        const kp = Uint8Array.from(spec.keyPadding);
        kp.fill(1, spec.L, 2 * spec.L);
        spec.keyPadding = kp;
      }
      scope(() => {
        const f = toFused(spec, 'float64', c.entropy ?? false, true);
        const inputs = f.bias ? [f.q, f.k, f.v, f.bias] : [f.q, f.k, f.v];
        gradcheck(([q, k, v, bias]) => {
          const r = attention(q!, k!, v!, { ...f.opts, bias });
          return r.entropy ? [r.out, r.entropy] : r.out;
        }, inputs);
      });
    });
  }

  it('a loss on the entropy alone (no gradient reaches out)', () => {
    const spec = makeSpec({ name: 'ent', ...tiny, bias: true, tokenMask: true, entropy: true }, 52);
    scope(() => {
      const f = toFused(spec, 'float64', true, true);
      gradcheck(([q, k, v, bias]) => attention(q!, k!, v!, { ...f.opts, bias }).entropy!, [f.q, f.k, f.v, f.bias!]);
    });
  });
});

describe('attention backward at L = 97 against the naive reference', () => {
  // The fused float32 gradients are compared with the naive float64 analytic
  // gradients (validated by finite differences above) on the float32-rounded
  // inputs; float64 fused gradients are compared the same way.
  const cases: Case[] = [
    { name: 'keyPadding+ALiBi+bias+MTO+entropy', B: 2, L: 97, H: 2, Dh: 40, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
    { name: 'attnMask+entropy', B: 1, L: 97, H: 3, Dh: 64, attnMask: true, entropy: true },
    { name: 'varlen+ALiBi+bias+MTO+entropy', lens: [97, 0, 70, 3], L: 97, H: 2, Dh: 24, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
    { name: 'plain, no entropy', B: 2, L: 97, H: 2, Dh: 64 },
    { name: 'keyPadding, scale 0', B: 2, L: 97, H: 2, Dh: 40, keyPadding: true, scale: 0 },
    { name: 'keyPadding, negative scale', B: 2, L: 97, H: 2, Dh: 40, keyPadding: true, scale: -0.4 },
    { name: 'Dh=59 bias+entropy', B: 1, L: 97, H: 2, Dh: 59, bias: true, entropy: true },
    { name: 'L=300 keyPadding+ALiBi+bias+MTO+entropy', B: 1, L: 300, H: 2, Dh: 40, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
  ];
  for (const dtype of ['float64', 'float32'] as const) {
    for (const c of cases) {
      it(`${c.name} (${dtype})`, () => {
        const spec = roundSpec(makeSpec(c, 61), dtype);
        const { W, We } = upstream(spec, 62);
        const ref = naiveAttentionBackward(spec, W, c.entropy ? We : undefined);
        const got = fusedGrads(spec, dtype, W, c.entropy ? We : undefined);
        assertGrads(got, ref, tolFor(dtype), c.name);
      });
    }
  }

  it('entropy returned but left out of the loss adds nothing (float32)', () => {
    const c = cases[0]!;
    const spec = roundSpec(makeSpec(c, 63), 'float32');
    const { W } = upstream(spec, 64);
    assertGrads(fusedGrads(spec, 'float32', W, undefined, true), naiveAttentionBackward(spec, W), tolFor('float32'), 'out-only loss');
  });
});

describe('the forward\'s fusions agree bit for bit with its plain chain', () => {
  // Without the entropy, the exponentials of a full key tile run inside its P·V product (attention.cc's
  // pv_with_exponentials) when Dh fills whole 2-vector panels; they must give the plain chain's bits (plainChain:
  // the exponentials in a pass of their own). L = 300 has two full key tiles and a partial one (always the plain
  // chain), and a last query tile of 44 rows (register blocks of 8 and a tail on AVX-512). Dh = 16, 32, 64 and 96
  // give the P·V product fewer, exactly as many and more steps than the exponentials need (AVX-512: 32 fewer,
  // 64 exact; AVX2: 16 fewer, 32 exact). Masks and ALiBi (the scale applied to the logits, 1 in the exponent),
  // fully masked rows (p = 0), and a scale positive as a double but 0 in float32 (the scale cannot go into the
  // exponent: 0·(−∞) is NaN) take the same path. L = 256 ends on a full key tile, whose product writes the
  // normalised output rows itself (its `out`), masked rows (1/l = 0) included.
  const cases: Case[] = [
    { name: 'plain L=300 Dh=64', L: 300, H: 3, Dh: 64 },
    { name: 'plain L=300 Dh=32', L: 300, H: 2, Dh: 32 },
    { name: 'plain L=300 Dh=16', L: 300, H: 2, Dh: 16 },
    { name: 'plain L=300 Dh=96', L: 300, H: 2, Dh: 96 },
    { name: 'plain L=256 Dh=40 (no interleaving)', L: 256, H: 2, Dh: 40 },
    { name: 'varlen L=300', lens: [300, 0, 129, 5, 256], L: 300, H: 2, Dh: 64 },
    { name: 'keyPadding+ALiBi L=300', L: 300, H: 2, Dh: 64, keyPadding: true, alibi: true },
    { name: 'attnMask+MTO L=300', L: 300, H: 2, Dh: 32, attnMask: true, tokenMask: true, exclude: true },
    { name: 'attnMask, scale 1e-46 (0 in float32)', L: 300, H: 2, Dh: 64, attnMask: true, scale: 1e-46 },
    { name: 'plain L=256 Dh=64 (a full last key tile)', L: 256, H: 3, Dh: 64 },
    { name: 'attnMask+keyPadding L=256 Dh=32 (a full last key tile)', L: 256, H: 2, Dh: 32, attnMask: true, keyPadding: true },
  ];
  // The first differing index, -1 for none (toEqual's diff of arrays this long takes a minute to print).
  const firstDiff = (a: Float64Array, b: Float64Array): number =>
    a.length !== b.length ? 0 : a.findIndex((x, i) => !Object.is(x, b[i]));
  for (const c of cases) {
    it(c.name, () => {
      const spec = roundSpec(makeSpec(c, 23), 'float32');
      if (c.attnMask) {
        // Rows with every key masked: (b, i) = (0, 5) and (1, L − 10).
        const am = Uint8Array.from(spec.attnMask!);
        for (const r of [5, 2 * spec.L - 10]) am.fill(1, r * spec.L, (r + 1) * spec.L);
        spec.attnMask = am;
      }
      const fused = nativeForward(spec, 'float32', {});
      const plain = nativeForward(spec, 'float32', { plainChain: true });
      expect(firstDiff(fused.out, plain.out)).toBe(-1);
      expect(firstDiff(fused.lse, plain.lse)).toBe(-1);
      // Not vacuous: both match the reference.
      const ref = naiveAttentionForward(spec);
      assertClose(fused.out, ref.out, tolFor('float32'), `${c.name} out`);
      assertClose(fused.lse, ref.lse, tolFor('float32'), `${c.name} lse`);
    });
  }
});

describe('thread count', () => {
  // Every query tile or (sequence, head) (forward), and every (sequence, head) or
  // sequence (backward with dbias) is owned by one task, so results must be
  // bit-identical for any number of threads; a race or a shared scratch buffer
  // would break this. With 15 heads, 1 and 3 threads take whole-head tasks that
  // pack their own K and V (at least 4 heads per thread), 8 threads take query
  // tiles over packs of the whole batch: both schedules must agree bit for bit.
  it('does not change a single bit of the forward or the gradients', () => {
    const c: Case = {
      name: 'threads', lens: [97, 3, 64, 0, 80], L: 97, H: 3, Dh: 40, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true,
    };
    const spec = roundSpec(makeSpec(c, 71), 'float32');
    const { W, We } = upstream(spec, 72);
    const before = runtimeInfo().threads;
    const results: Array<[Forward, Grads]> = [];
    try {
      for (const n of [1, 3, 8]) {
        setNumThreads(n);
        results.push([fusedForward(spec, 'float32', true), fusedGrads(spec, 'float32', W, We)]);
      }
    } finally {
      setNumThreads(before);
    }
    const [[f1, g1], [f3, g3], [f8, g8]] = results as [[Forward, Grads], [Forward, Grads], [Forward, Grads]];
    expect(f3).toEqual(f1);
    expect(g3).toEqual(g1);
    expect(f8).toEqual(f1);
    expect(g8).toEqual(g1);
  });
});
