/**
 * Fused multi-head attention with autograd. One kernel serves every mask mode:
 * key padding, packed variable length, ALiBi, an additive bias or binary mask
 * shared across heads (ASA), and MTO's per-token flags with the rule "visible
 * queries ignore masked keys". Nothing of size L×L is stored.
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import type { AttentionNativeOptions } from '../native/types-attention.js';
import { record, type Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkSameDtype, checkShape, checkTensor } from '../validate.js';

export interface AttentionOptions {
  /** Softmax scale; default 1/√Dh. */
  scale?: number;
  /** uint8 [B, L], 1 = padding: ignored as a key. Padded layout only. */
  keyPadding?: Tensor;
  /** int32 [B+1] offsets of packed sequences; q, k, v are then [nnz, H, Dh]. */
  cuSeqlens?: Tensor;
  maxSeqlen?: number;
  /** [H]: adds −m_h·|i−j|, computed in the kernel. */
  alibiSlopes?: Tensor;
  /** [B, L, L] additive bias shared across heads; differentiable. */
  bias?: Tensor;
  /** uint8 [B, L, L], 1 = the (query, key) pair is masked. */
  attnMask?: Tensor;
  /** uint8 [B, L] (or [nnz]), 1 = masked token (MTO). */
  tokenMask?: Tensor;
  /** With tokenMask: visible queries get −∞ on masked keys. */
  excludeMaskedKeys?: boolean;
  /** Also return the attention-row entropy of masked queries (all queries without tokenMask). */
  entropy?: boolean;
}

export interface AttentionResult {
  /** Same layout as q. */
  out: Tensor;
  /** [B, H, L] (or [H, nnz]) row entropies; 0 for rows not measured. Only with `entropy`. */
  entropy?: Tensor;
}

function validate(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): void {
  checkFloat(q, 'q');
  for (const [t, n] of [[k, 'k'], [v, 'v']] as const) {
    checkFloat(t, n);
    checkSameDtype(q, t, n);
    checkShape(t, q.shape, n);
  }
  const varlen = o.cuSeqlens !== undefined;
  if (q.shape.length !== (varlen ? 3 : 4)) {
    throw expected(varlen ? 'q of shape [nnz, H, Dh] with cuSeqlens' : 'q of shape [B, L, H, Dh]', 'q', q, 'E_SHAPE');
  }
  validateOptions(q, q.shape, o);
}

/** The options against q's dtype and the per-tensor shape [B, L, H, Dh] (or [nnz, H, Dh]). */
function validateOptions(q: Tensor, shape: readonly number[], o: AttentionOptions): void {
  const varlen = o.cuSeqlens !== undefined;
  if (o.scale !== undefined) checkNumber(o.scale, 'scale');
  const H = shape[shape.length - 2]!;
  const B = varlen ? o.cuSeqlens!.size - 1 : shape[0]!;
  const L = varlen ? (o.maxSeqlen ?? -1) : shape[1]!;
  if (varlen) {
    checkTensor(o.cuSeqlens, 'cuSeqlens');
    checkDtype(o.cuSeqlens, 'int32', 'cuSeqlens');
    checkInt(o.maxSeqlen, 'maxSeqlen');
    if (o.keyPadding) throw expected('no keyPadding with cuSeqlens (lengths come from cuSeqlens)', 'keyPadding', o.keyPadding);
  }
  if (o.keyPadding) {
    checkTensor(o.keyPadding, 'keyPadding');
    checkDtype(o.keyPadding, 'uint8', 'keyPadding');
    checkShape(o.keyPadding, [B, L], 'keyPadding');
  }
  if (o.alibiSlopes) {
    checkTensor(o.alibiSlopes, 'alibiSlopes');
    checkSameDtype(q, o.alibiSlopes, 'alibiSlopes');
    checkShape(o.alibiSlopes, [H], 'alibiSlopes');
  }
  if (o.bias) {
    checkTensor(o.bias, 'bias');
    checkSameDtype(q, o.bias, 'bias');
    checkShape(o.bias, [B, L, L], 'bias');
  }
  if (o.attnMask) {
    checkTensor(o.attnMask, 'attnMask');
    checkDtype(o.attnMask, 'uint8', 'attnMask');
    checkShape(o.attnMask, [B, L, L], 'attnMask');
  }
  if (o.tokenMask) {
    checkTensor(o.tokenMask, 'tokenMask');
    checkDtype(o.tokenMask, 'uint8', 'tokenMask');
    checkShape(o.tokenMask, varlen ? [shape[0]!] : [B, L], 'tokenMask');
  }
  if (o.excludeMaskedKeys && !o.tokenMask) throw expected('a tokenMask when excludeMaskedKeys is set', 'tokenMask', undefined);
}

/** q, k, v: [B, L, H, Dh] (or [nnz, H, Dh] with cuSeqlens). */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): AttentionResult {
  validate(q, k, v, opts);
  return run({ q, k, v }, opts);
}

/**
 * Attention over a fused QKV projection's output: qkv [B, L, 3, H, Dh] (or [nnz, 3, H, Dh] with cuSeqlens), whose
 * slices 0, 1, 2 are q, k and v. The kernels read them in place (a row stride of 3·H·Dh) and the backward writes one
 * dqkv, so the projection's backward is one GEMM with no sum of three input gradients. out is [B, L, H, Dh] (or
 * [nnz, H, Dh]); the same results as attention() on the three slices.
 */
export function attentionQkv(qkv: Tensor, opts: AttentionOptions = {}): AttentionResult {
  checkFloat(qkv, 'qkv');
  const varlen = opts.cuSeqlens !== undefined;
  const rank = varlen ? 4 : 5;
  if (qkv.shape.length !== rank || qkv.shape[rank - 3] !== 3) {
    throw expected(varlen ? 'qkv of shape [nnz, 3, H, Dh] with cuSeqlens' : 'qkv of shape [B, L, 3, H, Dh]', 'qkv', qkv, 'E_SHAPE');
  }
  validateOptions(qkv, [...qkv.shape.slice(0, rank - 3), ...qkv.shape.slice(rank - 2)], opts);
  return run({ qkv }, opts);
}

type Inputs = { q: Tensor; k: Tensor; v: Tensor } | { qkv: Tensor };

function run(x: Inputs, opts: AttentionOptions): AttentionResult {
  const nopts: AttentionNativeOptions = {
    scale: opts.scale,
    keyPadding: opts.keyPadding?.native,
    cuSeqlens: opts.cuSeqlens?.native,
    maxSeqlen: opts.maxSeqlen,
    alibiSlopes: opts.alibiSlopes?.native,
    bias: opts.bias?.native,
    attnMask: opts.attnMask?.native,
    tokenMask: opts.tokenMask?.native,
    excludeMaskedKeys: opts.excludeMaskedKeys,
    entropy: opts.entropy,
    biasGrad: opts.bias?.requiresGrad ?? false,
  };
  const r = 'qkv' in x ? native().attentionQkv(x.qkv.native, nopts) : native().attention(x.q.native, x.k.native, x.v.native, nopts);
  const outputs: NativeTensor[] = [r.out];
  if (r.entropy) outputs.push(r.entropy);
  // The backward needs its own handles on everything it reads.
  const ins = 'qkv' in x ? [x.qkv] : [x.q, x.k, x.v];
  const saved: NativeTensor[] = [...ins.map((t) => t.share()), r.out.reshape(r.out.shape), r.lse];
  const ent = r.entropy ? r.entropy.reshape(r.entropy.shape) : null;
  if (ent) saved.push(ent);
  const keepOpt = (t?: Tensor): NativeTensor | undefined => {
    if (!t) return undefined;
    const h = t.share();
    saved.push(h);
    return h;
  };
  const bopts: AttentionNativeOptions = {
    ...nopts,
    keyPadding: keepOpt(opts.keyPadding),
    cuSeqlens: keepOpt(opts.cuSeqlens),
    alibiSlopes: keepOpt(opts.alibiSlopes),
    bias: keepOpt(opts.bias),
    attnMask: keepOpt(opts.attnMask),
    tokenMask: keepOpt(opts.tokenMask),
    entropy: false,
  };
  const n = ins.length;
  const sIns = saved.slice(0, n);
  const so = saved[n]!;
  const slse = saved[n + 1]!;
  const inputs: Array<Tensor | null> = [...ins, opts.bias ?? null];
  const outs = record(
    'attention',
    outputs,
    inputs,
    ([gOut, gEnt]) => {
      let dout = gOut ?? null;
      if (!dout) {
        dout = native().empty(so.dtype, so.shape, so.device);
      }
      try {
        if (n === 1) {
          const g = native().attentionQkvBackward(dout, sIns[0]!, so, slse, bopts, gEnt ?? null, gEnt ? ent : null);
          return [g.dqkv, g.dbias ?? null];
        }
        const g = native().attentionBackward(dout, sIns[0]!, sIns[1]!, sIns[2]!, so, slse, bopts, gEnt ?? null, gEnt ? ent : null);
        return [g.dq, g.dk, g.dv, g.dbias ?? null];
      } finally {
        if (!gOut) dout.dispose();
      }
    },
    saved,
  );
  return outs.length > 1 ? { out: outs[0]!, entropy: outs[1]! } : { out: outs[0]! };
}

/**
 * ALiBi slopes for n heads (Press et al.): 2^(−8h/n) for a power of two n;
 * otherwise the slopes of the nearest smaller power of two, then every other
 * slope of twice that.
 */
export function alibiSlopes(nHeads: number): number[] {
  checkInt(nHeads, 'nHeads', 1);
  const pow2 = (n: number): number[] => Array.from({ length: n }, (_, i) => 2 ** ((-8 * (i + 1)) / n));
  if (Number.isInteger(Math.log2(nHeads))) return pow2(nHeads);
  const closest = 2 ** Math.floor(Math.log2(nHeads));
  const extra = pow2(2 * closest).filter((_, i) => i % 2 === 0).slice(0, nHeads - closest);
  return [...pow2(closest), ...extra];
}
