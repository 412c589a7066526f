/**
 * The machine's yardsticks, measured by the addon's probes (bind_bench.cc) on
 * the current pool: the float32 FMA peak every GFLOP/s figure is read against,
 * and the streaming bandwidth every GB/s figure is read against. A peak is an
 * upper bound and noise (clock ramp, a neighbour's process) only lowers a run,
 * so the estimate is the best of several runs after a warm-up run, not the
 * median.
 */
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { randomArray } from './data.js';

function best(runs: number, probe: () => number): number {
  probe();
  return Math.max(...Array.from({ length: runs }, probe));
}

/** Best of 5 runs of measurePeakGflops(ms) on the pool's threads. */
export function measurePeakGflops(ms = 200): number {
  return best(5, () => native().measurePeakGflops(ms));
}

/** DRAM streaming: buffers of 2 × 128 MiB, far beyond any last-level cache of today. */
export const DRAM_STREAM_BYTES = 256 * 2 ** 20;
/** Cache-resident streaming: 2 × 4 MiB, inside a server's L3 (and beyond its L2). */
export const CACHE_STREAM_BYTES = 8 * 2 ** 20;

/** Best of 5 runs of measurePeakBandwidth(ms, bytes) (STREAM's scale kernel) on the pool's threads, GB/s. */
export function measurePeakBandwidth(bytes = DRAM_STREAM_BYTES, ms = 200): number {
  return best(5, () => native().measurePeakBandwidth(ms, bytes));
}

/**
 * The rate the ops' own GEMM ('auto': the policy the step runs, BLAS or built-in) reaches on a large float32
 * product, C[n×n] = A·B, best of 5 after a warm-up: the "machine's measured GEMM rate" a step's GEMM-bound
 * limit is computed from (issue 20). Output allocation is part of each call, as it is in the step.
 */
export function measureGemmGflops(n = 1024): number {
  const mk = (seed: number): NativeTensor => {
    const t = native().empty('float32', [n, n]);
    t.write(randomArray(n * n, seed));
    return t;
  };
  const a = mk(1);
  const b = mk(2);
  try {
    return best(5, () => {
      const t0 = performance.now();
      native().matmul(a, b, false, false, 'auto').dispose();
      return (2 * n * n * n) / ((performance.now() - t0) * 1e6);
    });
  } finally {
    a.dispose();
    b.dispose();
  }
}
