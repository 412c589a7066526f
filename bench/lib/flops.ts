/** Work counts, in floating-point operations, shared by every row that prints a rate. */

/** C[M×N] = A[M×K]·B[K×N]: one multiply and one add per (m, n, k). */
export function gemmFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/** The flash-attention convention for attention FLOPs, printed with the results. */
export const ATTENTION_FLOPS_CONVENTION =
  'attention FLOPs: forward 4·B·H·L²·Dh (Q·Kᵀ and P·V), backward 2.5× forward, fwd+bwd 3.5× forward; softmax and scaling not counted';

export interface AttentionFlops {
  fwd: number;
  bwd: number;
  total: number;
}

export function attentionFlops(B: number, H: number, L: number, Dh: number): AttentionFlops {
  const fwd = 4 * B * H * L * L * Dh;
  const bwd = 2.5 * fwd;
  return { fwd, bwd, total: fwd + bwd };
}

/** GFLOP/s from a count and a time in ms. */
export function gflops(flops: number, ms: number): number {
  return flops / (ms * 1e6);
}
