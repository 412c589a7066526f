/**
 * Problems for the fused attention tests: random inputs for a case as plain
 * arrays (a NaiveAttnSpec, which the naive reference reads), and the same
 * problem run through the fused op, forward and backward.
 */
import {
  add,
  alibiSlopes,
  attention,
  backward,
  mul,
  Rng,
  scope,
  sum,
  tensor,
  type AttentionOptions,
  type AttentionResult,
  type DType,
  type Tensor,
} from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import type { AttentionNativeOptions } from '../../src/native/types-attention.js';
import { tokenCount, type NaiveAttnSpec } from './naive-attention.js';
import { assertClose, type Tol } from './tolerance.js';

export interface Case {
  name: string;
  /** Padded batch; ignored with lens. */
  B?: number;
  L: number;
  H: number;
  Dh: number;
  /** Varlen sequence lengths; L is then maxSeqlen. */
  lens?: number[];
  keyPadding?: boolean;
  alibi?: boolean;
  /** Multiplies q: large values give peaked rows with logits of tens. */
  qScale?: number;
  /** Random additive bias, or ASA's (1 − M)·(−1e4) with the diagonal kept. */
  bias?: boolean | 'asa';
  attnMask?: boolean;
  tokenMask?: boolean;
  exclude?: boolean;
  entropy?: boolean;
  scale?: number;
}

export const uniform = (rng: Rng, n: number, lo = -1, hi = 1): Float64Array =>
  Float64Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());
const bernoulli = (rng: Rng, n: number, p: number): Uint8Array => Uint8Array.from({ length: n }, () => (rng.uniform() < p ? 1 : 0));

function cumsum(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((n, b) => (cu[b + 1] = cu[b]! + n));
  return cu;
}

/** Random inputs for a case, as plain arrays (float64 values). */
export function makeSpec(c: Case, seed: number): NaiveAttnSpec {
  const rng = new Rng(seed);
  const B = c.lens ? c.lens.length : (c.B ?? 2);
  const cu = c.lens ? cumsum(c.lens) : undefined;
  const s: NaiveAttnSpec = { B, L: c.L, H: c.H, Dh: c.Dh, q: [], k: [], v: [], cuSeqlens: cu };
  const nnz = tokenCount(s);
  const n = nnz * c.H * c.Dh;
  // q is stretched so that rows are peaked, not near uniform.
  const qs = 2 * (c.qScale ?? 1);
  s.q = uniform(rng, n, -qs, qs);
  s.k = uniform(rng, n);
  s.v = uniform(rng, n);
  if (c.scale !== undefined) s.scale = c.scale;
  if (c.keyPadding) s.keyPadding = bernoulli(rng, B * c.L, 0.3);
  if (c.alibi) s.alibiSlopes = alibiSlopes(c.H);
  if (c.bias === 'asa') {
    const m = bernoulli(rng, B * c.L * c.L, 0.4);
    s.bias = Float64Array.from(m, (x, idx) => (x && Math.floor(idx / c.L) % c.L !== idx % c.L ? -1e4 : 0));
  } else if (c.bias) {
    s.bias = uniform(rng, B * c.L * c.L, -3, 3);
  }
  if (c.attnMask) s.attnMask = bernoulli(rng, B * c.L * c.L, 0.25);
  if (c.tokenMask) s.tokenMask = bernoulli(rng, cu ? nnz : B * c.L, 0.4);
  if (c.exclude) s.excludeMaskedKeys = true;
  return s;
}

/** The same problem with every float input rounded to dtype, so the reference sees what the kernel sees. */
export function roundSpec(s: NaiveAttnSpec, dtype: DType): NaiveAttnSpec {
  if (dtype === 'float64') return s;
  const r = (a?: ArrayLike<number>): Float64Array | undefined => (a ? Float64Array.from(Float32Array.from(a)) : undefined);
  return { ...s, q: r(s.q)!, k: r(s.k)!, v: r(s.v)!, bias: r(s.bias), alibiSlopes: r(s.alibiSlopes) };
}

export interface Fused {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  bias?: Tensor;
  opts: AttentionOptions;
}

/** Tensors and options for the fused op. */
export function toFused(s: NaiveAttnSpec, dtype: DType, entropy: boolean, requiresGrad = false): Fused {
  const shape = s.cuSeqlens ? [tokenCount(s), s.H, s.Dh] : [s.B, s.L, s.H, s.Dh];
  const leaf = (a: ArrayLike<number>, sh: number[]): Tensor => {
    const t = tensor(a, sh, dtype);
    t.requiresGrad = requiresGrad;
    return t;
  };
  const opts: AttentionOptions = { entropy };
  if (s.scale !== undefined) opts.scale = s.scale;
  if (s.cuSeqlens) {
    opts.cuSeqlens = tensor(s.cuSeqlens, [s.B + 1], 'int32');
    opts.maxSeqlen = s.L;
  }
  if (s.keyPadding) opts.keyPadding = tensor(s.keyPadding, [s.B, s.L], 'uint8');
  if (s.alibiSlopes) opts.alibiSlopes = tensor(s.alibiSlopes, [s.H], dtype);
  const bias = s.bias ? leaf(s.bias, [s.B, s.L, s.L]) : undefined;
  if (bias) opts.bias = bias;
  if (s.attnMask) opts.attnMask = tensor(s.attnMask, [s.B, s.L, s.L], 'uint8');
  if (s.tokenMask) opts.tokenMask = tensor(s.tokenMask, s.cuSeqlens ? [tokenCount(s)] : [s.B, s.L], 'uint8');
  if (s.excludeMaskedKeys) opts.excludeMaskedKeys = true;
  return { q: leaf(s.q, shape), k: leaf(s.k, shape), v: leaf(s.v, shape), bias, opts };
}

export function run(f: Fused): AttentionResult {
  return attention(f.q, f.k, f.v, f.opts);
}

/** The binding's options for f (the TS op's, less what only its backward uses), plus extra ones. */
function nativeOptions(f: Fused, extra: AttentionNativeOptions = {}): AttentionNativeOptions {
  const o = f.opts;
  return {
    scale: o.scale,
    cuSeqlens: o.cuSeqlens?.native,
    maxSeqlen: o.maxSeqlen,
    keyPadding: o.keyPadding?.native,
    alibiSlopes: o.alibiSlopes?.native,
    bias: o.bias?.native,
    attnMask: o.attnMask?.native,
    tokenMask: o.tokenMask?.native,
    excludeMaskedKeys: o.excludeMaskedKeys,
    ...extra,
  };
}

/** The log-sum-exp the forward saves for backward; the TS op keeps it internal, so read it from the binding. */
export function lseOf(f: Fused): Float64Array {
  const r = native().attention(f.q.native, f.k.native, f.v.native, nativeOptions(f));
  const lse = Float64Array.from(r.lse.read());
  r.out.dispose();
  r.lse.dispose();
  return lse;
}

/** out and lse straight from the binding, with extra native options (plainChain: the CPU forward's plain chain). */
export function nativeForward(s: NaiveAttnSpec, dtype: DType, extra: AttentionNativeOptions): Forward {
  return scope(() => {
    const f = toFused(s, dtype, false);
    const r = native().attention(f.q.native, f.k.native, f.v.native, nativeOptions(f, extra));
    const res: Forward = { out: Float64Array.from(r.out.read()), lse: Float64Array.from(r.lse.read()) };
    r.out.dispose();
    r.lse.dispose();
    return res;
  });
}

export interface Forward {
  out: Float64Array;
  lse: Float64Array;
  entropy?: Float64Array;
}

export function fusedForward(spec: NaiveAttnSpec, dtype: DType, entropy: boolean): Forward {
  return scope(() => {
    const f = toFused(spec, dtype, entropy);
    const r = run(f);
    const res: Forward = { out: Float64Array.from(r.out.toArray()), lse: lseOf(f) };
    if (r.entropy) res.entropy = Float64Array.from(r.entropy.toArray());
    return res;
  });
}

export interface Grads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dbias?: Float64Array;
}

/**
 * Fused gradients of Σ W·out (+ Σ We·entropy when We is given); bias, when
 * present, requires grad. withEntropy asks for the entropy output even when
 * the loss ignores it.
 */
export function fusedGrads(spec: NaiveAttnSpec, dtype: DType, W: ArrayLike<number>, We?: ArrayLike<number>, withEntropy = We !== undefined): Grads {
  return scope(() => {
    const f = toFused(spec, dtype, withEntropy, true);
    const r = run(f);
    let loss = sum(mul(r.out, tensor(W, r.out.shape, dtype)));
    if (We) loss = add(loss, sum(mul(r.entropy!, tensor(We, r.entropy!.shape, dtype))));
    backward(loss);
    const g = (t: Tensor): Float64Array => Float64Array.from(t.grad!.toArray());
    const res: Grads = { dq: g(f.q), dk: g(f.k), dv: g(f.v) };
    if (f.bias) res.dbias = g(f.bias);
    return res;
  });
}

export function assertGrads(got: Grads, ref: Grads, tol: Tol, label: string): void {
  assertClose(got.dq, ref.dq, tol, `${label} dq`);
  assertClose(got.dk, ref.dk, tol, `${label} dk`);
  assertClose(got.dv, ref.dv, tol, `${label} dv`);
  if ((got.dbias === undefined) !== (ref.dbias === undefined)) throw new Error(`${label}: dbias present in only one of got and ref`);
  if (ref.dbias) assertClose(got.dbias!, ref.dbias, tol, `${label} dbias`);
}

/** Upstream gradients for out and entropy, exactly representable in float32. */
export function upstream(spec: NaiveAttnSpec, seed: number): { W: Float64Array; We: Float64Array } {
  const rng = new Rng(seed);
  const nnz = tokenCount(spec);
  const r = (a: Float64Array): Float64Array => Float64Array.from(Float32Array.from(a));
  return { W: r(uniform(rng, nnz * spec.H * spec.Dh)), We: r(uniform(rng, nnz * spec.H)) };
}

/** Packed-token indices of sequence b. */
export const tokensOf = (spec: NaiveAttnSpec, b: number): number[] => {
  const st = spec.cuSeqlens ? spec.cuSeqlens[b]! : b * spec.L;
  const len = spec.cuSeqlens ? spec.cuSeqlens[b + 1]! - st : spec.L;
  return Array.from({ length: len }, (_, i) => st + i);
};

/** Sequence b of a varlen spec as its own padded batch of one. */
export function sequenceAsPadded(spec: NaiveAttnSpec, b: number): NaiveAttnSpec {
  const toks = tokensOf(spec, b);
  const len = toks.length;
  const row = spec.H * spec.Dh;
  const rows = (a: ArrayLike<number>): Float64Array => Float64Array.from(toks.flatMap((t) => Array.from({ length: row }, (_, c) => a[t * row + c]!)));
  const block = (a: ArrayLike<number>): Float64Array =>
    Float64Array.from({ length: len * len }, (_, x) => a[(b * spec.L + Math.floor(x / len)) * spec.L + (x % len)]!);
  const s: NaiveAttnSpec = { ...spec, B: 1, L: len, q: rows(spec.q), k: rows(spec.k), v: rows(spec.v), cuSeqlens: undefined };
  if (spec.bias) s.bias = block(spec.bias);
  if (spec.attnMask) s.attnMask = Uint8Array.from(block(spec.attnMask));
  if (spec.tokenMask) s.tokenMask = Uint8Array.from(toks.map((t) => spec.tokenMask![t]!));
  return s;
}

/** q, k, v [tokens, H·Dh] interleaved per token into one qkv [tokens, 3, H·Dh] (attentionQkv's layout). */
export function interleaveQkv(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, tokens: number, row: number): Float64Array {
  const o = new Float64Array(3 * tokens * row);
  for (let t = 0; t < tokens; t++)
    [q, k, v].forEach((a, j) => {
      for (let x = 0; x < row; x++) o[(3 * t + j) * row + x] = a[t * row + x]!;
    });
  return o;
}

/** Slice j (0 q, 1 k, 2 v) of a [tokens, 3, H·Dh] array. */
export function qkvSlice(a: ArrayLike<number>, j: number, tokens: number, row: number): Float64Array {
  const o = new Float64Array(tokens * row);
  for (let t = 0; t < tokens; t++) for (let x = 0; x < row; x++) o[t * row + x] = a[(3 * t + j) * row + x]!;
  return o;
}
