import type { NativeTensor as N } from './types.js';

export interface AdamwNativeOptions {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale?: number;
  /** fp32 master weights for a bfloat16 param (cuda): updated in fp32, param = its bf16 rounding. */
  master?: N;
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
}
