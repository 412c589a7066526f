/**
 * Switches the layers' fused paths off (or on again) in a whole model, for ablations and benchmarks, as
 * FlashAttention's BERT exposes `fused_bias_fc` and `fused_dropout_add_ln`: qkv, the stacked QKV projection of
 * BERT's self-attention and the ViT's MultiHeadAttention (src/nn/qkv.ts); residual, BERT's dropout and residual add
 * in one pass (dropoutAdd). Both are on by default; off, the same functions are computed by the unfused chains
 * (to float32 round-off for qkv, bit for bit for residual).
 */
import type { Module } from './module.js';

export interface Fusions {
  qkv?: boolean;
  residual?: boolean;
}

export function setFusions(model: Module, f: Fusions): void {
  for (const [, m] of model.namedModules()) {
    const layer = m as Partial<{ fuseQkv: boolean; fuseResidual: boolean }>;
    if (f.qkv !== undefined && typeof layer.fuseQkv === 'boolean') layer.fuseQkv = f.qkv;
    if (f.residual !== undefined && typeof layer.fuseResidual === 'boolean') layer.fuseResidual = f.residual;
  }
}
