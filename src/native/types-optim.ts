import type { NativeTensor as N } from './types.js';

export interface AdamwNativeOptions {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale?: number;
  /** fp32 master weights for a bfloat16 param (cuda): updated in fp32, param = its bf16 rounding. */
  master?: N;
  /**
   * The gradient's global norm as a float32 tensor of one element (gradNorm's result), read where it lies: the
   * gradient is scaled by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm (clipGradNorm's rule), and the
   * step is skipped (param, m and v untouched) when the norm is not finite.
   */
  clipNorm?: N;
  maxNorm?: number;
  /** Up to 8 float32 one-element tensors (losses, other norms): the step is skipped when any is not finite. */
  guards?: N[];
}

/** The optimizer kernels, all in place (native/src/binding/bind_optim.cc). */
export interface OptimNative {
  /**
   * Fused AdamW step, in place. Mixed precision (cuda): a bfloat16 param needs
   * `master`, its float32 weights (same numel); m and v are then float32, grad
   * bfloat16 or float32, and the step updates master and writes param = bf16(master).
   * A float32 (or float64) param takes no master.
   */
  adamw(param: N, grad: N, m: N, v: N, options: AdamwNativeOptions): void;
  /** In place: dst ← decay·dst + (1 − decay)·src. */
  emaUpdate(dst: N, src: N, decay: number): void;
  clipGradNorm(grads: N[], maxNorm: number): number;
  /** The global L2 norm of grads as a float32 tensor [1] on their device (no host sync on cuda). */
  gradNorm(grads: N[]): N;
}
