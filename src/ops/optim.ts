/**
 * The optimizer kernels, fused and in place on native handles (the flat
 * buffers of src/optim/): the AdamW step, the EMA update of a teacher's
 * weights, and the global gradient-norm clip. Their callers check the
 * arguments; the bindings check them again.
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import type { AdamwNativeOptions } from '../native/types-optim.js';

/**
 * One AdamW step of param, in place, with its moments m and v. A bfloat16 param
 * (cuda) takes options.master, its float32 weights: the step updates master and
 * writes param = bf16(master).
 */
export function adamwStep(param: NativeTensor, grad: NativeTensor, m: NativeTensor, v: NativeTensor, options: AdamwNativeOptions): void {
  native().adamw(param, grad, m, v, options);
}

/** dst ← decay·dst + (1 − decay)·src, in place. */
export function emaUpdate(dst: NativeTensor, src: NativeTensor, decay: number): void {
  native().emaUpdate(dst, src, decay);
}

/** Scales every gradient in place so that their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(grads: NativeTensor[], maxNorm: number): number {
  return native().clipGradNorm(grads, maxNorm);
}

/**
 * The global L2 norm of grads as a float32 tensor of one element, left on their device: on cuda nothing waits
 * for it. AdamW's `clipNorm` option clips with it where it lies (AdamW.stepClipped).
 */
export function gradNorm(grads: NativeTensor[]): NativeTensor {
  return native().gradNorm(grads);
}
