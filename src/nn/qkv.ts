/**
 * The fused QKV projection shared by BERT's self-attention and the ViT's MultiHeadAttention: the query, key and
 * value weights (kept as their three HF parameters) stacked per call into one projection of width 3D, so that one
 * GEMM replaces three, and attentionQkv reads q, k and v in place from its output; the backward is one GEMM too,
 * with no sum of three input gradients. The stacking copies 3·D² weights (and 3D biases) per call.
 */
import { concatRows } from '../ops/concat.js';
import { linear } from '../ops/linalg.js';
import type { Tensor } from '../tensor.js';
import type { Linear } from './layers.js';

/** Whether three projections can be stacked: plain linear layers (no weight-mask tuning), all with biases or none. */
export function qkvFusable(q: Linear, k: Linear, v: Linear): boolean {
  return [q, k, v].every((p) => !p.weightMask && !p.packedMask && !!p.bias === !!q.bias);
}

/** x [..., D] → [..., 3D], the columns q | k | v (check qkvFusable first). */
export function projectQkv(q: Linear, k: Linear, v: Linear, x: Tensor): Tensor {
  const w = concatRows([q.weight, k.weight, v.weight]);
  const b = q.bias ? concatRows([q.bias, k.bias!, v.bias!]) : null;
  return linear(x, w, b);
}
