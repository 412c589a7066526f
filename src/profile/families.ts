/**
 * Which op family a native call belongs to, and the work it did: FLOPs for
 * the compute-bound calls (GEMMs, attention, the fused head), from their
 * shapes; bytes touched for the memory-bound ones. Named by the addon's
 * function names (src/native/types-*.ts).
 */
import type { NativeTensor } from '../native/types.js';

export type FamilyKind = 'compute' | 'memory';

export interface CallWork {
  family: string;
  kind: FamilyKind;
  /** Floating-point operations (compute families); 0 for memory families. */
  flops: number;
  /** Bytes of tensors read and written (memory families); 0 for compute families. */
  bytes: number;
}

/** C[M×N] = A[M×K]·B[K×N]: one multiply and one add per (m, n, k). */
export function gemmFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

function isTensor(v: unknown): v is NativeTensor {
  return typeof v === 'object' && v !== null && 'nbytes' in v && 'shape' in v && 'dtype' in v;
}

/** Bytes of every tensor in v (a tensor, or arrays and plain objects of them). */
export function tensorBytes(v: unknown): number {
  if (isTensor(v)) return v.disposed ? 0 : v.nbytes;
  if (Array.isArray(v)) return v.reduce((a: number, x) => a + tensorBytes(x), 0);
  if (typeof v === 'object' && v !== null && v.constructor === Object) {
    return Object.values(v).reduce((a: number, x) => a + tensorBytes(x), 0);
  }
  return 0;
}

const numel = (t: NativeTensor): number => t.shape.reduce((a, s) => a * s, 1);

/** [batch, M, N, K] of matmul(a, b, transA, transB): a [..., M, K] (or [..., K, M]), b [.., K, N] (or [.., N, K]). */
function matmulDims(a: NativeTensor, b: NativeTensor, ta: boolean, tb: boolean): [number, number, number, number] {
  const r = a.shape.length;
  const M = ta ? a.shape[r - 1]! : a.shape[r - 2]!;
  const K = ta ? a.shape[r - 2]! : a.shape[r - 1]!;
  const rb = b.shape.length;
  const N = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const batch = a.shape.slice(0, -2).reduce((x, s) => x * s, 1);
  return [batch, M, N, K];
}

/** linear(x [..., K], w [N, K]): rows·N·K multiply-adds. */
function linearFlops(x: NativeTensor, w: NativeTensor): number {
  const N = w.shape[0]!;
  const K = w.shape[1]!;
  return gemmFlops(numel(x) / K, N, K);
}

/**
 * Attention FLOPs by the flash-attention convention (bench/lib/flops.ts):
 * forward 4·H·Lq·Lk·Dh per sequence (Q·Kᵀ and P·V), backward 2.5× forward.
 * q, k: [B, L, H, Dh] padded, or [nnz, H, Dh] packed with cuSeqlens (or a qkv [B, L, 3, H, Dh] / [nnz, 3, H, Dh]
 * as both: its dims 0, 1, −2 and −1 are q's).
 */
function attentionFlops(q: NativeTensor, k: NativeTensor, opts: { cuSeqlens?: NativeTensor } | undefined): number {
  const H = q.shape[q.shape.length - 2]!;
  const Dh = q.shape[q.shape.length - 1]!;
  const cu = opts?.cuSeqlens;
  if (cu) {
    const offs = cu.device === 'cpu' ? cu.data() : cu.read();
    let s = 0;
    for (let i = 0; i + 1 < offs.length; i++) {
      const n = offs[i + 1]! - offs[i]!;
      s += n * n;
    }
    return 4 * H * Dh * s;
  }
  const B = q.shape[0]!;
  return 4 * B * H * q.shape[1]! * k.shape[1]! * Dh;
}

/** The family of elementwise ops, also used for add's gradient copies (profileSpan). */
export const ELEMENTWISE_FAMILY = 'elementwise (add, scale, axpy, …)';
const ELEMENTWISE = new Set(['add', 'mul', 'mulBackward', 'scale', 'biasAdd', 'sum', 'mean', 'reduceBackward', 'axpyInPlace', 'sumRows']);
/** Functions that write into an argument (its index), so that write is counted as well as the read. */
const IN_PLACE: Record<string, number[]> = { adamw: [0, 2, 3], axpyInPlace: [0], emaUpdate: [0] };

/** The family and work of addon function `name` called with `args`, returning `result`. */
export function classifyCall(name: string, args: readonly unknown[], result: unknown, labels: readonly string[]): CallWork {
  const site = labels.length ? labels.join(' › ') : 'unlabelled';
  const compute = (family: string, flops: number): CallWork => ({ family, kind: 'compute', flops, bytes: 0 });
  const t = (i: number): NativeTensor => args[i] as NativeTensor;
  switch (name) {
    case 'linear':
      return compute(`GEMM ${site} fwd`, linearFlops(t(0), t(1)));
    case 'linearBackward':
      // g [..., N], x [..., K], w [N, K]; one GEMM per gradient asked for (bias is a row sum)
      return compute(`GEMM ${site} bwd`, ((args[3] ? 1 : 0) + (args[4] ? 1 : 0)) * linearFlops(t(1), t(2)));
    case 'matmul': {
      const [b, M, N, K] = matmulDims(t(0), t(1), !!args[2], !!args[3]);
      return compute(`GEMM ${site} fwd`, b * gemmFlops(M, N, K));
    }
    case 'matmulBackward': {
      const [b, M, N, K] = matmulDims(t(1), t(2), !!args[3], !!args[4]);
      return compute(`GEMM ${site} bwd`, ((args[5] ? 1 : 0) + (args[6] ? 1 : 0)) * b * gemmFlops(M, N, K));
    }
    case 'attention':
      return compute('attention fwd', attentionFlops(t(0), t(1), args[3] as { cuSeqlens?: NativeTensor }));
    case 'attentionBackward':
      return compute('attention bwd', 2.5 * attentionFlops(t(1), t(2), args[6] as { cuSeqlens?: NativeTensor }));
    // qkv [B, L, 3, H, Dh] (or [nnz, 3, H, Dh]): its dims 0, 1, -2 and -1 are q's.
    case 'attentionQkv':
      return compute('attention fwd', attentionFlops(t(0), t(0), args[1] as { cuSeqlens?: NativeTensor }));
    case 'attentionQkvBackward':
      return compute('attention bwd', 2.5 * attentionFlops(t(1), t(1), args[4] as { cuSeqlens?: NativeTensor }));
    case 'linearCrossEntropy': {
      const h = t(0);
      const w = t(1);
      return compute('head (linear+CE) fwd', gemmFlops(h.shape[0]!, w.shape[0]!, h.shape[1]!));
    }
    case 'linearCrossEntropyBackward': {
      // recomputes each chunk's logits, then one GEMM per gradient asked for (dh, dW)
      const h = t(1);
      const w = t(2);
      const n = 1 + (args[9] ? 1 : 0) + (args[10] ? 1 : 0);
      return compute('head (linear+CE) bwd', n * gemmFlops(h.shape[0]!, w.shape[0]!, h.shape[1]!));
    }
  }
  let family: string;
  if (name === 'layerNorm' || name === 'layerNormBackward') family = 'layer norm';
  else if (/^(gelu|geglu)(Backward)?$/.test(name)) family = 'GELU/GeGLU';
  else if (name.startsWith('dropout')) family = 'dropout';
  else if (name === 'embedding' || name === 'embeddingBackward') family = 'embedding (and row gathers)';
  else if (name === 'crossEntropy' || name === 'crossEntropyBackward') family = 'cross-entropy';
  else if (name === 'adamw') family = 'AdamW';
  else if (name === 'clipGradNorm' || name === 'gradNorm') family = 'clip';
  else if (ELEMENTWISE.has(name)) family = ELEMENTWISE_FAMILY;
  else if (name === 'empty' || name === 'fromTypedArray') family = 'allocation';
  else family = `other: ${name}`;
  let bytes = tensorBytes(args) + tensorBytes(result);
  for (const i of IN_PLACE[name] ?? []) bytes += tensorBytes(args[i]);
  return { family, kind: 'memory', flops: 0, bytes };
}
