/**
 * The fused attention kernels on CUDA against the naive reference (npm run
 * test:cuda; skipped without a GPU). The CPU kernel's tests, which share the
 * problem builders of helpers/attention-problems.ts, are in attention.test.ts.
 */
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import type { DType, NativeTensor } from '../../src/native/types.js';
import { interleaveQkv, makeSpec, qkvSlice, roundSpec, upstream, type Case } from '../helpers/attention-problems.js';
import { assertBf16, bf16, describeCuda, get, itOnDevice, put, roundBf16 } from '../helpers/cuda-harness.js';
import { naiveAttentionBackward, naiveAttentionForward, tokenCount, type NaiveAttnSpec } from '../helpers/naive-attention.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

// The fused attention kernels on CUDA (native/src/cuda/attention_*.cu), forward
// and backward, for every option of the CPU kernel: padded and varlen layouts,
// key padding, ALiBi, additive bias with its gradient, attnMask, MTO's
// tokenMask + excludeMaskedKeys, and the entropy output with its gradient.
// Odd lengths (1, 17, 63, 130: partial tiles of both the 32-row float32 and the
// 64-row bfloat16 tiles, and several key tiles) and head widths that are not
// multiples of the tensor cores' 16 (24, 59, 80).
//
// - float32 on cuda against the float64 naive reference
//   (helpers/naive-attention.ts) by the one tolerance rule at float32's
//   tolerances, as the CPU kernel's float32 tests;
// - bfloat16 on cuda by assertBf16: its error against the float64 reference
//   (inputs rounded to bf16) is at most 2× that of naiveBf16 below, an eager
//   bf16 pipeline with every op boundary rounded to bf16.
//
// The ops are called through the binding so that the tensors stay on the
// device and lse (float32 on cuda) can be checked too.

type CudaDType = Extract<DType, 'float32' | 'bfloat16'>;

interface Result {
  out: Float64Array;
  lse: Float64Array;
  entropy?: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dbias?: Float64Array;
}

/**
 * Which bf16 kernels: the dispatch's choice, the shared-memory tiled ones, or the register-resident (mma) ones on
 * their general per-element logit where the unmasked fast path would apply (attention_mma.cuh, fast_path).
 */
type Kernel = 'auto' | 'tiled' | 'mma-general';

/** Forward and backward of spec on cuda; the upstream gradients are W (out) and We (entropy, when given). */
function runCuda(
  s: NaiveAttnSpec,
  dtype: CudaDType,
  entropy: boolean,
  W: ArrayLike<number>,
  We?: ArrayLike<number>,
  kernel: Kernel = 'auto',
  cuOnHost = false,
  packed = false,
): Result {
  const nnz = tokenCount(s);
  const shape = s.cuSeqlens ? [nnz, s.H, s.Dh] : [s.B, s.L, s.H, s.Dh];
  const stat = s.cuSeqlens ? [s.H, nnz] : [s.B, s.H, s.L];
  const owned: NativeTensor[] = [];
  const dev = (a: ArrayLike<number>, sh: number[], dt: DType): NativeTensor => {
    const t = put(a, sh, dt, 'cuda');
    owned.push(t);
    return t;
  };
  try {
    const q = dev(s.q, shape, dtype);
    const k = dev(s.k, shape, dtype);
    const v = dev(s.v, shape, dtype);
    const opts = {
      scale: s.scale,
      // On the host, cuSeqlens is validated there and uploaded by the binding (no read back from the device).
      cuSeqlens: s.cuSeqlens ? (cuOnHost ? put(s.cuSeqlens, [s.B + 1], 'int32', 'cpu') : dev(s.cuSeqlens, [s.B + 1], 'int32')) : undefined,
      maxSeqlen: s.cuSeqlens ? s.L : undefined,
      keyPadding: s.keyPadding ? dev(s.keyPadding, [s.B, s.L], 'uint8') : undefined,
      alibiSlopes: s.alibiSlopes ? dev(s.alibiSlopes, [s.H], dtype) : undefined,
      bias: s.bias ? dev(s.bias, [s.B, s.L, s.L], dtype) : undefined,
      attnMask: s.attnMask ? dev(s.attnMask, [s.B, s.L, s.L], 'uint8') : undefined,
      tokenMask: s.tokenMask ? dev(s.tokenMask, s.cuSeqlens ? [nnz] : [s.B, s.L], 'uint8') : undefined,
      excludeMaskedKeys: s.excludeMaskedKeys,
      entropy,
      biasGrad: s.bias !== undefined,
      tiledKernel: kernel === 'tiled',
      mmaGeneral: kernel === 'mma-general',
    };
    // packed: q, k and v interleaved per token into one qkv [..., 3, H, Dh] (attentionQkv, the fused projection's form).
    const row = s.H * s.Dh;
    const qkv = packed ? dev(interleaveQkv(s.q, s.k, s.v, nnz, row), [...shape.slice(0, -2), 3, s.H, s.Dh], dtype) : null;
    const f = qkv ? native().attentionQkv(qkv, opts) : native().attention(q, k, v, opts);
    owned.push(f.out, f.lse);
    if (f.entropy) owned.push(f.entropy);
    for (const t of [f.out, f.lse, f.entropy]) if (t) expect(t.device).toBe('cuda');
    expect(f.out.dtype).toBe(dtype);
    expect(f.lse.dtype).toBe('float32'); // float32 on cuda whatever q's dtype
    expect(Array.from(f.lse.shape)).toEqual(stat);
    const dout = dev(W, shape, dtype);
    const dent = We ? dev(We, stat, dtype) : null;
    if (qkv) {
      const g = native().attentionQkvBackward(dout, qkv, f.out, f.lse, { ...opts, entropy: false }, dent, We ? f.entropy! : null);
      owned.push(g.dqkv);
      if (g.dbias) owned.push(g.dbias);
      const d = get(g.dqkv);
      const r: Result = { out: get(f.out), lse: get(f.lse), dq: qkvSlice(d, 0, nnz, row), dk: qkvSlice(d, 1, nnz, row), dv: qkvSlice(d, 2, nnz, row) };
      if (f.entropy) r.entropy = get(f.entropy);
      if (g.dbias) r.dbias = get(g.dbias);
      return r;
    }
    const g = native().attentionBackward(dout, q, k, v, f.out, f.lse, { ...opts, entropy: false }, dent, We ? f.entropy! : null);
    owned.push(g.dq, g.dk, g.dv);
    if (g.dbias) owned.push(g.dbias);
    const r: Result = { out: get(f.out), lse: get(f.lse), dq: get(g.dq), dk: get(g.dk), dv: get(g.dv) };
    if (f.entropy) r.entropy = get(f.entropy);
    if (g.dbias) r.dbias = get(g.dbias);
    return r;
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** The spec with every float input rounded to bfloat16, as the device holds it. */
function roundSpecBf16(s: NaiveAttnSpec): NaiveAttnSpec {
  const r = (a?: ArrayLike<number>): Float64Array | undefined => (a ? roundBf16(a) : undefined);
  return { ...s, q: r(s.q)!, k: r(s.k)!, v: r(s.v)!, bias: r(s.bias), alibiSlopes: r(s.alibiSlopes) };
}

/**
 * An eager bfloat16 attention: scores, logits, probabilities, outputs and
 * every gradient rounded to bf16 at each op boundary (products and sums inside
 * one op in full precision, as a bf16 matmul with fp32 accumulation); lse in
 * float32, as the fused op returns it.
 */
function naiveBf16(s: NaiveAttnSpec, W: ArrayLike<number>, We?: ArrayLike<number>): Result {
  const R = bf16;
  const nnz = tokenCount(s);
  const scale = s.scale ?? 1 / Math.sqrt(s.Dh);
  const n = nnz * s.H * s.Dh;
  const out = new Float64Array(n);
  const dq = new Float64Array(n);
  const dk = new Float64Array(n);
  const dv = new Float64Array(n);
  const lse = new Float64Array(s.H * nnz);
  const entropy = new Float64Array(s.H * nnz);
  const dbias = s.bias ? new Float64Array(s.B * s.L * s.L) : undefined;
  const at = (t: number, h: number): number => (t * s.H + h) * s.Dh;
  for (let b = 0; b < s.B; b++) {
    const st = s.cuSeqlens ? s.cuSeqlens[b]! : b * s.L;
    const len = s.cuSeqlens ? s.cuSeqlens[b + 1]! - st : s.L;
    for (let h = 0; h < s.H; h++) {
      for (let i = 0; i < len; i++) {
        const si = s.cuSeqlens ? h * nnz + st + i : (b * s.H + h) * s.L + i;
        const qi = at(st + i, h);
        const visible = s.tokenMask !== undefined && s.tokenMask[st + i] === 0;
        const x = new Float64Array(len);
        let m = -Infinity;
        for (let j = 0; j < len; j++) {
          const kj = at(st + j, h);
          let dot = 0;
          for (let d = 0; d < s.Dh; d++) dot += s.q[qi + d]! * s.k[kj + d]!;
          let y = R(R(dot) * scale);
          if (s.alibiSlopes) y = R(y - R(s.alibiSlopes[h]! * Math.abs(i - j)));
          if (s.bias) y = R(y + s.bias[(b * s.L + i) * s.L + j]!);
          const masked =
            (s.keyPadding !== undefined && s.keyPadding[b * s.L + j] !== 0) ||
            (s.attnMask !== undefined && s.attnMask[(b * s.L + i) * s.L + j] !== 0) ||
            (s.excludeMaskedKeys === true && visible && s.tokenMask![st + j] !== 0);
          x[j] = masked ? -Infinity : y;
          m = Math.max(m, x[j]!);
        }
        if (m === -Infinity) {
          lse[si] = -Infinity;
          continue;
        }
        let z = 0;
        for (let j = 0; j < len; j++) z += Math.exp(x[j]! - m);
        const l = Math.fround(m + Math.log(z));
        lse[si] = l;
        const P = Float64Array.from(x, (y) => (y === -Infinity ? 0 : R(Math.exp(y - l))));
        for (let d = 0; d < s.Dh; d++) {
          let acc = 0;
          for (let j = 0; j < len; j++) acc += P[j]! * s.v[at(st + j, h) + d]!;
          out[qi + d] = R(acc);
        }
        const wanted = !s.tokenMask || s.tokenMask[st + i] !== 0;
        if (wanted) {
          let e = 0;
          for (let j = 0; j < len; j++) if (x[j] !== -Infinity) e -= P[j]! * R(x[j]! - l);
          entropy[si] = R(e);
        }
        // Backward of Σ W·out + Σ We·entropy through the softmax.
        const dH = We && wanted ? We[si]! : 0;
        const g = new Float64Array(len);
        let pg = 0;
        for (let j = 0; j < len; j++) {
          if (x[j] === -Infinity) continue;
          const vj = at(st + j, h);
          let dp = 0;
          for (let d = 0; d < s.Dh; d++) dp += W[qi + d]! * s.v[vj + d]!;
          g[j] = R(R(dp) - R(dH * R(x[j]! - l + 1)));
          pg += P[j]! * g[j]!;
        }
        pg = R(pg);
        for (let j = 0; j < len; j++) {
          if (x[j] === -Infinity) continue;
          const dS = R(P[j]! * R(g[j]! - pg));
          if (dbias) dbias[(b * s.L + i) * s.L + j] += dS;
          const kj = at(st + j, h);
          for (let d = 0; d < s.Dh; d++) {
            dq[qi + d] += scale * dS * s.k[kj + d]!;
            dk[kj + d] += scale * dS * s.q[qi + d]!;
            dv[kj + d] += P[j]! * W[qi + d]!;
          }
        }
      }
    }
  }
  const r: Result = { out, lse, entropy, dq: roundBf16(dq), dk: roundBf16(dk), dv: roundBf16(dv) };
  if (dbias) r.dbias = roundBf16(dbias);
  return r;
}

/** Case name, with the upstream entropy gradient in the loss whenever the case asks for entropy. */
function checkFloat32(s: NaiveAttnSpec, entropy: boolean, label: string, seed: number): void {
  const spec = roundSpec(s, 'float32');
  const { W, We } = upstream(spec, seed);
  const got = runCuda(spec, 'float32', entropy, W, entropy ? We : undefined);
  const ref = naiveAttentionForward(spec);
  const tol = tolFor('float32');
  assertClose(got.out, ref.out, tol, `${label} out`);
  assertClose(got.lse, ref.lse, tol, `${label} lse`);
  if (entropy) assertClose(got.entropy!, ref.entropy, tol, `${label} entropy`);
  else expect(got.entropy).toBeUndefined();
  const g = naiveAttentionBackward(spec, W, entropy ? We : undefined);
  assertClose(got.dq, g.dq, tol, `${label} dq`);
  assertClose(got.dk, g.dk, tol, `${label} dk`);
  assertClose(got.dv, g.dv, tol, `${label} dv`);
  expect(got.dbias === undefined).toBe(g.dbias === undefined);
  if (g.dbias) assertClose(got.dbias!, g.dbias, tol, `${label} dbias`);
}

function checkBf16(s: NaiveAttnSpec, entropy: boolean, label: string, seed: number, kernel: Kernel = 'auto'): void {
  const spec = roundSpecBf16(s);
  const up = upstream(spec, seed);
  const W = roundBf16(up.W);
  const We = entropy ? roundBf16(up.We) : undefined;
  const got = runCuda(spec, 'bfloat16', entropy, W, We, kernel);
  const naive = naiveBf16(spec, W, We);
  const ref = naiveAttentionForward(spec);
  assertBf16(`${label} out`, got.out, ref.out, naive.out);
  assertBf16(`${label} lse`, got.lse, ref.lse, naive.lse);
  if (entropy) assertBf16(`${label} entropy`, got.entropy!, ref.entropy, naive.entropy!);
  const g = naiveAttentionBackward(spec, W, We);
  const maxAbs = (a: ArrayLike<number>): number => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
    return m;
  };
  // Where every sequence has one token (L = 1) dq and dk are exactly 0: P = 1, so dS = dP − D, two float32 sums of
  // Dh products (one from the mma, one from the delta kernel) that agree only to their last bits. The relative
  // rule has no scale there, so bound each entry by that cancellation: |dS| ≤ Dh·2^-22·max|dO|·max|V| (a few ulps
  // of the largest sum), times scale·max|K| (dq) or scale·max|Q| (dk), for the one key of each row.
  const scale = spec.scale ?? 1 / Math.sqrt(spec.Dh);
  const dsBound = spec.Dh * 2 ** -22 * maxAbs(W) * maxAbs(spec.v);
  for (const [key, other] of [['dq', spec.k], ['dk', spec.q]] as const) {
    if (maxAbs(g[key]) === 0) expect(maxAbs(got[key]), `${label} ${key} (exactly 0 in the reference)`).toBeLessThanOrEqual(dsBound * scale * maxAbs(other));
    else assertBf16(`${label} ${key}`, got[key], g[key], naive[key]);
  }
  assertBf16(`${label} dv`, got.dv, g.dv, naive.dv);
  expect(got.dbias === undefined).toBe(g.dbias === undefined);
  if (g.dbias) assertBf16(`${label} dbias`, got.dbias!, g.dbias, naive.dbias!);
}

const cases: Case[] = [];

for (const [L, Dh] of [[1, 32], [17, 64], [63, 80], [130, 64], [130, 128], [63, 24]] as const) {
  cases.push({ name: `plain L=${L} Dh=${Dh}`, L, H: 2, Dh });
}

cases.push(
  { name: 'plain L=17 Dh=59 H=1', L: 17, H: 1, Dh: 59 },
  { name: 'keyPadding L=63', L: 63, H: 2, Dh: 64, keyPadding: true },
  { name: 'ALiBi 3 heads L=130', L: 130, H: 3, Dh: 32, alibi: true },
  { name: 'ALiBi custom scale L=17', L: 17, H: 2, Dh: 40, alibi: true, scale: 0.3 },
  { name: 'bias L=63', L: 63, H: 2, Dh: 64, bias: true },
  { name: 'bias L=130 H=3', L: 130, H: 3, Dh: 32, bias: true },
  { name: 'attnMask L=17', L: 17, H: 2, Dh: 32, attnMask: true },
  { name: 'tokenMask+exclude L=130', L: 130, H: 2, Dh: 64, tokenMask: true, exclude: true },
  { name: 'entropy, every row L=63', L: 63, H: 2, Dh: 64, entropy: true },
  { name: 'entropy, masked rows only L=130', L: 130, H: 2, Dh: 32, tokenMask: true, entropy: true },
  { name: 'entropy L=1', L: 1, H: 2, Dh: 40, entropy: true },
  { name: 'ASA bias+keyPadding+entropy', L: 63, H: 2, Dh: 32, bias: 'asa', keyPadding: true, entropy: true },
  {
    name: 'keyPadding+ALiBi+bias+MTO+entropy L=130',
    L: 130, H: 3, Dh: 64, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true,
  },
  {
    name: 'keyPadding+attnMask+MTO+entropy L=17',
    L: 17, H: 2, Dh: 80, keyPadding: true, attnMask: true, tokenMask: true, exclude: true, entropy: true,
  },
  { name: 'varlen with an empty sequence', lens: [17, 0, 130, 1], L: 130, H: 2, Dh: 64 },
  { name: 'varlen maxSeqlen above every length', lens: [1, 5, 0], L: 70, H: 2, Dh: 32, bias: true },
  {
    name: 'varlen+ALiBi+bias+attnMask+MTO+entropy',
    lens: [130, 0, 13, 64], L: 130, H: 2, Dh: 40, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true, entropy: true,
  },
);

/** Specs where a mask removes nothing (0%) or everything (100%). */
function extremes(): Array<{ name: string; spec: NaiveAttnSpec; entropy: boolean }> {
  const base = makeSpec({ name: '', B: 2, L: 63, H: 2, Dh: 64, bias: true }, 5);
  const n = base.B * base.L;
  const ones = (k: number): Uint8Array => new Uint8Array(k).fill(1);
  return [
    { name: 'keyPadding 0%', spec: { ...base, keyPadding: new Uint8Array(n) }, entropy: true },
    { name: 'keyPadding 100%', spec: { ...base, keyPadding: ones(n) }, entropy: true },
    { name: 'attnMask 100%', spec: { ...base, attnMask: ones(n * base.L) }, entropy: true },
    // Every token masked: no query is visible, so nothing is excluded, and every row has an entropy.
    { name: 'tokenMask 100% + exclude', spec: { ...base, tokenMask: ones(n), excludeMaskedKeys: true }, entropy: true },
    // No token masked: every query is visible, no key is masked; no row has an entropy.
    { name: 'tokenMask 0% + exclude', spec: { ...base, tokenMask: new Uint8Array(n), excludeMaskedKeys: true }, entropy: true },
  ];
}

describeCuda('attention', () => {
  cases.forEach((c, idx) => {
    it(`${c.name} (float32)`, () => checkFloat32(makeSpec(c, 11 + idx), c.entropy ?? false, c.name, 101 + idx));
    it(`${c.name} (bfloat16)`, () => checkBf16(makeSpec(c, 11 + idx), c.entropy ?? false, c.name, 101 + idx));
    // bf16 goes to the register-resident mma kernels (attention_mma_fwd.cu, attention_mma_bwd.cu) where
    // they apply (Dh a multiple of 8, no entropy or bias gradient); the tiled
    // kernels they replace stay checked too.
    it(`${c.name} (bfloat16, tiled kernel)`, () =>
      checkBf16(makeSpec(c, 11 + idx), c.entropy ?? false, c.name, 101 + idx, 'tiled'));
  });

  // The mma kernels on what they take: no entropy and no bias (so no bias
  // gradient), every head-tile width (32, 64, 128, padded 24 and 80), several
  // query and key tiles, the masks they read through the shared logit.
  const mmaCases: Case[] = [
    { name: 'mma plain L=200 Dh=64', L: 200, H: 2, Dh: 64 },
    { name: 'mma plain L=130 Dh=128', L: 130, H: 2, Dh: 128 },
    { name: 'mma plain L=70 Dh=24', L: 70, H: 2, Dh: 24 },
    { name: 'mma plain L=129 Dh=80', L: 129, H: 1, Dh: 80 },
    { name: 'mma keyPadding L=130 Dh=64', L: 130, H: 3, Dh: 64, keyPadding: true },
    { name: 'mma ALiBi+attnMask L=77 Dh=32', L: 77, H: 2, Dh: 32, alibi: true, attnMask: true },
    { name: 'mma MTO exclude L=130 Dh=64', L: 130, H: 2, Dh: 64, tokenMask: true, exclude: true },
    { name: 'mma varlen L=200 Dh=64', lens: [200, 0, 1, 65, 128], L: 200, H: 2, Dh: 64 },
    // A positive scale that is 0 as a float: the general path (the fast one would give −∞·0 = NaN on a partial tile).
    { name: 'mma scale 1e-50 L=65 Dh=64', L: 65, H: 2, Dh: 64, scale: 1e-50 },
  ];
  mmaCases.forEach((c, idx) => {
    it(`${c.name} (bfloat16)`, () => checkBf16(makeSpec(c, 51 + idx), false, c.name, 151 + idx));
  });

  // The unmasked fast path (no mask, bias or ALiBi, a scale·log2 e that is a normal float: attention_mma.cuh's
  // fast_path) takes the plain cases above but the 1e-50 scale; here those cases again, each also on the general
  // per-element logit, and fast-path shapes with partial query and key tiles in every position (L not a multiple of
  // 64, a one-token sequence, varlen starts inside a tile).
  const fastCases: Case[] = [
    { name: 'mma fast L=1 Dh=64', L: 1, H: 2, Dh: 64 },
    { name: 'mma fast L=65 Dh=32', L: 65, H: 3, Dh: 32 },
    { name: 'mma fast L=191 Dh=64 scale 0.05', L: 191, H: 2, Dh: 64, scale: 0.05 },
    { name: 'mma fast L=97 Dh=128', L: 97, H: 1, Dh: 128 },
    { name: 'mma fast varlen', lens: [63, 1, 0, 129, 64], L: 129, H: 2, Dh: 64 },
    { name: 'mma fast peaked rows L=130 Dh=64', L: 130, H: 2, Dh: 64, qScale: 8 },
  ];
  [...mmaCases.filter((c) => !c.keyPadding && !c.alibi && !c.attnMask && !c.exclude && !(c.scale !== undefined && c.scale < 1e-30)), ...fastCases].forEach((c, idx) => {
    const seed = 71 + idx;
    it(`${c.name} (bfloat16, fast path)`, () => checkBf16(makeSpec(c, seed), false, c.name, seed + 100));
    it(`${c.name} (bfloat16, mma general path)`, () => checkBf16(makeSpec(c, seed), false, c.name, seed + 100, 'mma-general'));
  });

  itOnDevice('mma fast path and general path agree closely, and are not the same kernel (same inputs, bfloat16)', () => {
    const spec = roundSpecBf16(makeSpec({ name: '', B: 2, L: 200, H: 2, Dh: 64 }, 31));
    const W = roundBf16(upstream(spec, 6).W);
    const fast = runCuda(spec, 'bfloat16', false, W);
    const general = runCuda(spec, 'bfloat16', false, W, undefined, 'mma-general');
    // Both round P to bf16 for the products; they differ only by the exponent's rounding (one FMA against a
    // multiply and a subtraction) and exp2's last bits, so a value may land a bf16 step or two away (a review's
    // emulation of this shape over 6 seeds: at most one step, 2^-7 relative just above a power of two).
    let differ = 0;
    for (const key of ['out', 'dq', 'dk', 'dv'] as const) {
      let worst = 0;
      for (let i = 0; i < fast[key].length; i++) {
        const a = fast[key][i]!, b = general[key][i]!;
        worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(b), 1e-2));
        if (a !== b) differ++;
      }
      expect(worst, key).toBeLessThanOrEqual(2 ** -6);
    }
    // The two paths round differently somewhere: had mmaGeneral no effect (or the fast path never run), every
    // value would be equal.
    expect(differ).toBeGreaterThan(0);
    for (let i = 0; i < fast.lse.length; i++) expect(Math.abs(fast.lse[i]! - general.lse[i]!)).toBeLessThan(1e-5);
  });

  it('mma: every key padded (100%) and none (0%), bfloat16', () => {
    const base = makeSpec({ name: '', B: 2, L: 70, H: 2, Dh: 64 }, 5);
    const n = base.B * base.L;
    checkBf16({ ...base, keyPadding: new Uint8Array(n) }, false, 'mma keyPadding 0%', 7);
    checkBf16({ ...base, keyPadding: new Uint8Array(n).fill(1) }, false, 'mma keyPadding 100%', 7);
    const spec = roundSpecBf16({ ...base, keyPadding: new Uint8Array(n).fill(1) });
    const { W } = upstream(spec, 9);
    const r = runCuda(spec, 'bfloat16', false, roundBf16(W));
    expect(r.out.every((x) => x === 0)).toBe(true);
    expect(r.lse.every((x) => x === -Infinity)).toBe(true);
    for (const g of [r.dq, r.dk, r.dv]) expect(g.every((x) => x === 0)).toBe(true);
  });

  it('varlen with cuSeqlens on the host: the same bits as with it on the device, and the same refusals', () => {
    const spec = makeSpec({ name: '', lens: [17, 0, 63, 5], L: 63, H: 2, Dh: 40, tokenMask: true, exclude: true }, 23);
    const { W } = upstream(spec, 5);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const w = dtype === 'bfloat16' ? roundBf16(W) : W;
      const s = dtype === 'bfloat16' ? roundSpecBf16(spec) : spec;
      const onDevice = runCuda(s, dtype, false, w);
      const onHost = runCuda(s, dtype, false, w, undefined, 'auto', true);
      for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) expect(onHost[key]).toEqual(onDevice[key]);
    }
    const nnz = tokenCount(spec);
    const q = put(spec.q, [nnz, spec.H, spec.Dh], 'float32', 'cuda');
    const bad = Int32Array.from(spec.cuSeqlens!);
    bad[bad.length - 1] = nnz + 1;
    try {
      for (const cu of [put(bad, [bad.length], 'int32', 'cpu'), put(bad, [bad.length], 'int32', 'cuda')])
        expect(() => native().attention(q, q, q, { cuSeqlens: cu, maxSeqlen: spec.L })).toThrow(
          `Expected cuSeqlens[B] equal to the ${nnz} packed tokens of q for cuSeqlens but received ${nnz + 1}`,
        );
    } finally {
      q.dispose();
    }
  });

  // The fused QKV projection's form: the same kernels reading q, k and v in place with a row stride of 3·H·Dh (and
  // writing one dqkv), so the same bits as on three separate tensors, on every kernel family.
  const packedCases: Array<[string, Case, CudaDType, Kernel]> = [
    ['bf16 mma fast path, L=130 Dh=64', { name: '', B: 2, L: 130, H: 4, Dh: 64 }, 'bfloat16', 'auto'],
    ['bf16 mma general path, key padding, L=63 Dh=80', { name: '', B: 3, L: 63, H: 2, Dh: 80, keyPadding: true }, 'bfloat16', 'mma-general'],
    ['bf16 tiled, varlen + ALiBi + bias + MTO', { name: '', lens: [17, 0, 63], L: 63, H: 2, Dh: 24, alibi: true, bias: true, tokenMask: true, exclude: true }, 'bfloat16', 'tiled'],
    ['float32, Dh=59 (no mma), key padding', { name: '', B: 2, L: 17, H: 3, Dh: 59, keyPadding: true }, 'float32', 'auto'],
  ];
  for (const [name, c, dtype, kernel] of packedCases)
    it(`qkv packed (attentionQkv) equals q, k, v apart, bit for bit: ${name}`, () => {
      const spec = dtype === 'bfloat16' ? roundSpecBf16(makeSpec(c, 23)) : roundSpec(makeSpec(c, 23), 'float32');
      const { W } = upstream(spec, 5);
      const w = dtype === 'bfloat16' ? roundBf16(W) : W;
      const apart = runCuda(spec, dtype, false, w, undefined, kernel);
      const packed = runCuda(spec, dtype, false, w, undefined, kernel, false, true);
      for (const key of ['out', 'lse', 'dq', 'dk', 'dv', 'dbias'] as const) expect(packed[key], key).toEqual(apart[key]);
    });

  it('mma: every output and gradient is deterministic (no atomics)', () => {
    const spec = roundSpecBf16(makeSpec({ name: '', B: 2, L: 130, H: 4, Dh: 64, keyPadding: true }, 22));
    const { W } = upstream(spec, 4);
    const a = runCuda(spec, 'bfloat16', false, roundBf16(W));
    const b = runCuda(spec, 'bfloat16', false, roundBf16(W));
    for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) expect(b[key]).toEqual(a[key]);
  });

  for (const e of extremes()) {
    it(`${e.name} (float32)`, () => checkFloat32(e.spec, e.entropy, e.name, 7));
    it(`${e.name} (bfloat16)`, () => checkBf16(e.spec, e.entropy, e.name, 7));
  }

  it('fully masked rows give output 0, lse −∞ and zero gradients', () => {
    const base = makeSpec({ name: '', B: 2, L: 17, H: 2, Dh: 32, bias: true }, 3);
    const kp = new Uint8Array(base.B * base.L);
    kp.fill(1, 0, base.L); // sequence 0 has every key padded
    const spec = roundSpecBf16({ ...base, keyPadding: kp });
    const { W, We } = upstream(spec, 9);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const r = runCuda(spec, dtype, true, roundBf16(W), roundBf16(We));
      const row = base.L * base.H * base.Dh;
      expect(Array.from(r.out.subarray(0, row)).every((x) => x === 0)).toBe(true);
      expect(Array.from(r.lse.subarray(0, base.H * base.L)).every((x) => x === -Infinity)).toBe(true);
      expect(Array.from(r.entropy!.subarray(0, base.H * base.L)).every((x) => x === 0)).toBe(true);
      for (const g of [r.dq, r.dk, r.dv]) expect(Array.from(g.subarray(0, row)).every((x) => x === 0)).toBe(true);
      expect(Array.from(r.dbias!.subarray(0, base.L * base.L)).every((x) => x === 0)).toBe(true);
    }
  });

  it('gradients are deterministic (dbias sums heads in a fixed order; no atomics)', () => {
    const spec = roundSpecBf16(makeSpec({ name: '', B: 2, L: 130, H: 4, Dh: 64, bias: true, alibi: true, entropy: true }, 21));
    const { W, We } = upstream(spec, 4);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const a = runCuda(spec, dtype, true, roundBf16(W), roundBf16(We));
      const b = runCuda(spec, dtype, true, roundBf16(W), roundBf16(We));
      for (const key of ['out', 'lse', 'entropy', 'dq', 'dk', 'dv', 'dbias'] as const) expect(b[key]).toEqual(a[key]);
    }
  });

  itOnDevice('refuses a head width above 128 with a message naming q', () => {
    const q = put(new Float32Array(1 * 2 * 1 * 136), [1, 2, 1, 136], 'float32', 'cuda');
    try {
      expect(() => native().attention(q, q, q, {})).toThrow(/Expected a head width of at most 128 on cuda for q/);
    } finally {
      q.dispose();
    }
  });
});
