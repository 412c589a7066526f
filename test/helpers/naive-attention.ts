/**
 * Naive multi-head attention in float64, the reference for the fused kernel.
 * It materialises every score row in full and normalises it in one pass, so it
 * shares neither code nor algorithm (tiles, online softmax, saved lse) with
 * native/src/ops/attention.cc. The backward is the generic softmax
 * vector-Jacobian product, dS = P ⊙ (g − Σ P·g), with the entropy term entering
 * through dH/dP = −(log P + 1); the kernel uses a closed form instead.
 *
 * naiveAttentionForward can also round every intermediate to float32, giving
 * the error of a plain float32 implementation: the yardstick of
 * flash-attention's test rule (fused error ≤ 2× naive error, same precision).
 *
 * Layouts, as the fused op:
 *   padded: q, k, v, out [B, L, H, Dh]; lse, entropy [B, H, L]; tokenMask [B, L]
 *   varlen: q, k, v, out [nnz, H, Dh] with cuSeqlens [B+1]; lse, entropy [H, nnz]; tokenMask [nnz]
 *   keyPadding [B, L] (padded only); bias, attnMask [B, L, L] with L = maxSeqlen in varlen.
 * Masks: 1 = masked.
 */

export interface NaiveAttnSpec {
  B: number;
  /** Sequence length (padded) or maxSeqlen (varlen): the row stride of bias and attnMask. */
  L: number;
  H: number;
  Dh: number;
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  cuSeqlens?: ArrayLike<number>;
  /** Default 1/√Dh. */
  scale?: number;
  keyPadding?: ArrayLike<number>;
  alibiSlopes?: ArrayLike<number>;
  bias?: ArrayLike<number>;
  attnMask?: ArrayLike<number>;
  tokenMask?: ArrayLike<number>;
  excludeMaskedKeys?: boolean;
}

export interface NaiveAttnForward {
  out: Float64Array;
  lse: Float64Array;
  /** 0 where a row is not measured (visible queries when tokenMask is given) or fully masked. */
  entropy: Float64Array;
}

export interface NaiveAttnGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** [B, L, L], summed over heads; only when the spec has a bias. */
  dbias?: Float64Array;
}

/** Packed tokens: B·L padded, cuSeqlens[B] varlen. */
export function tokenCount(s: NaiveAttnSpec): number {
  return s.cuSeqlens ? s.cuSeqlens[s.B]! : s.B * s.L;
}

const start = (s: NaiveAttnSpec, b: number): number => (s.cuSeqlens ? s.cuSeqlens[b]! : b * s.L);
const length = (s: NaiveAttnSpec, b: number): number => (s.cuSeqlens ? s.cuSeqlens[b + 1]! - s.cuSeqlens[b]! : s.L);
/** Index of (b, h, i) in lse / entropy. */
const statIndex = (s: NaiveAttnSpec, b: number, h: number, i: number): number =>
  s.cuSeqlens ? h * tokenCount(s) + start(s, b) + i : (b * s.H + h) * s.L + i;
/** Offset of the Dh-vector of token t, head h. */
const rowAt = (s: NaiveAttnSpec, t: number, h: number): number => (t * s.H + h) * s.Dh;

function entropyWanted(s: NaiveAttnSpec, b: number, i: number): boolean {
  return !s.tokenMask || s.tokenMask[start(s, b) + i] !== 0;
}

type Round = (x: number) => number;
const exact: Round = (x) => x;

/** The full logit row of query i (sequence b, head h) over the len keys, −∞ where masked. */
function logitRow(s: NaiveAttnSpec, b: number, h: number, i: number, R: Round = exact): Float64Array {
  const st = start(s, b);
  const len = length(s, b);
  const scale = s.scale ?? 1 / Math.sqrt(s.Dh);
  const row = new Float64Array(len);
  const qi = rowAt(s, st + i, h);
  const queryVisible = s.tokenMask !== undefined && s.tokenMask[st + i] === 0;
  for (let j = 0; j < len; j++) {
    const kj = rowAt(s, st + j, h);
    let dot = 0;
    for (let d = 0; d < s.Dh; d++) dot = R(dot + R(s.q[qi + d]! * s.k[kj + d]!));
    let x = R(R(scale) * dot);
    if (s.alibiSlopes) x = R(x - R(s.alibiSlopes[h]! * Math.abs(i - j)));
    if (s.bias) x = R(x + s.bias[(b * s.L + i) * s.L + j]!);
    let masked = false;
    if (s.keyPadding && s.keyPadding[b * s.L + j] !== 0) masked = true;
    if (s.attnMask && s.attnMask[(b * s.L + i) * s.L + j] !== 0) masked = true;
    if (s.excludeMaskedKeys && queryVisible && s.tokenMask![st + j] !== 0) masked = true;
    row[j] = masked ? -Infinity : x;
  }
  return row;
}

/** Softmax of a logit row: probabilities, log-sum-exp (−∞ when every logit is −∞). */
function softmaxRow(row: Float64Array, R: Round = exact): { p: Float64Array; lse: number } {
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  const p = new Float64Array(row.length);
  if (m === -Infinity) return { p, lse: -Infinity };
  let z = 0;
  for (let j = 0; j < row.length; j++) z = R(z + R(Math.exp(R(row[j]! - m))));
  const lse = R(m + R(Math.log(z)));
  for (let j = 0; j < row.length; j++) p[j] = R(Math.exp(R(row[j]! - lse)));
  return { p, lse };
}

/** precision 'float32' rounds every intermediate to float32 (inputs should already be float32 values). */
export function naiveAttentionForward(s: NaiveAttnSpec, precision: 'float64' | 'float32' = 'float64'): NaiveAttnForward {
  const R: Round = precision === 'float32' ? Math.fround : exact;
  const nnz = tokenCount(s);
  const out = new Float64Array(nnz * s.H * s.Dh);
  const lse = new Float64Array(s.H * nnz);
  const entropy = new Float64Array(s.H * nnz);
  for (let b = 0; b < s.B; b++) {
    const st = start(s, b);
    const len = length(s, b);
    for (let h = 0; h < s.H; h++) {
      for (let i = 0; i < len; i++) {
        const row = logitRow(s, b, h, i, R);
        const { p, lse: z } = softmaxRow(row, R);
        const si = statIndex(s, b, h, i);
        lse[si] = z;
        if (z === -Infinity) continue; // out stays 0, entropy 0
        const oi = rowAt(s, st + i, h);
        for (let j = 0; j < len; j++) {
          if (p[j] === 0) continue;
          const vj = rowAt(s, st + j, h);
          for (let d = 0; d < s.Dh; d++) out[oi + d] = R(out[oi + d]! + R(p[j]! * s.v[vj + d]!));
        }
        if (entropyWanted(s, b, i)) {
          let e = 0;
          // log p = logit − lse stays finite where p underflows to 0.
          for (let j = 0; j < len; j++) if (row[j] !== -Infinity) e = R(e - R(p[j]! * R(row[j]! - z)));
          entropy[si] = e;
        }
      }
    }
  }
  return { out, lse, entropy };
}

/**
 * Gradients of Σ dout·out + Σ dentropy·entropy. Rows where entropy is not
 * measured ignore dentropy, as the forward defines entropy 0 there.
 */
export function naiveAttentionBackward(
  s: NaiveAttnSpec,
  dout: ArrayLike<number>,
  dentropy?: ArrayLike<number>,
): NaiveAttnGrads {
  const nnz = tokenCount(s);
  const scale = s.scale ?? 1 / Math.sqrt(s.Dh);
  const dq = new Float64Array(nnz * s.H * s.Dh);
  const dk = new Float64Array(nnz * s.H * s.Dh);
  const dv = new Float64Array(nnz * s.H * s.Dh);
  const dbias = s.bias ? new Float64Array(s.B * s.L * s.L) : undefined;
  for (let b = 0; b < s.B; b++) {
    const st = start(s, b);
    const len = length(s, b);
    for (let h = 0; h < s.H; h++) {
      for (let i = 0; i < len; i++) {
        const row = logitRow(s, b, h, i);
        const { p, lse } = softmaxRow(row);
        if (lse === -Infinity) continue;
        const oi = rowAt(s, st + i, h);
        const dH = dentropy && entropyWanted(s, b, i) ? dentropy[statIndex(s, b, h, i)]! : 0;
        // g_j = ∂loss/∂P_j over the live keys.
        const g = new Float64Array(len);
        for (let j = 0; j < len; j++) {
          if (row[j] === -Infinity) continue;
          const vj = rowAt(s, st + j, h);
          let x = 0;
          for (let d = 0; d < s.Dh; d++) x += dout[oi + d]! * s.v[vj + d]!;
          g[j] = x - dH * (row[j]! - lse + 1);
          for (let d = 0; d < s.Dh; d++) dv[vj + d] += p[j]! * dout[oi + d]!;
        }
        let pg = 0;
        for (let j = 0; j < len; j++) pg += p[j]! * g[j]!;
        for (let j = 0; j < len; j++) {
          if (row[j] === -Infinity) continue;
          const dS = p[j]! * (g[j]! - pg);
          if (dbias) dbias[(b * s.L + i) * s.L + j] += dS;
          const kj = rowAt(s, st + j, h);
          for (let d = 0; d < s.Dh; d++) {
            dq[oi + d] += scale * dS * s.k[kj + d]!;
            dk[kj + d] += scale * dS * s.q[oi + d]!;
          }
        }
      }
    }
  }
  return dbias ? { dq, dk, dv, dbias } : { dq, dk, dv };
}
