/**
 * Wall-clock timing: warm up, then repeat and report the median. Calls that
 * are too short to time one by one are batched so each sample lasts at least
 * `minSampleMs`; a sample is then the mean of its batch.
 */
export interface TimingOptions {
  /** Untimed calls first (caches, thread pools, lazy allocations). */
  warmup: number;
  /** Samples to take; the median is reported. */
  reps: number;
  /** Batch calls until one sample lasts about this long (default 20 ms). */
  minSampleMs?: number;
}

export interface Timing {
  /** Median over samples, ms per call. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** ms per call, one per sample. */
  samples: number[];
  /** Calls per sample. */
  batch: number;
  /** CPU time per call over all samples, summed across threads: user and kernel (sys). */
  cpuUserMs: number;
  cpuSysMs: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** True when node runs with --expose-gc (the bench collects garbage between samples). */
export const hasGc = gc !== undefined;

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function timeIt(fn: () => void, opts: TimingOptions): Timing {
  const minSample = opts.minSampleMs ?? 20;
  let lastMs = Infinity;
  for (let i = 0; i < Math.max(1, opts.warmup); i++) {
    const t0 = nowMs();
    fn();
    lastMs = nowMs() - t0;
  }
  const batch = Math.max(1, Math.ceil(minSample / Math.max(lastMs, 1e-3)));
  const samples: number[] = [];
  let user = 0;
  let sys = 0;
  for (let r = 0; r < opts.reps; r++) {
    gc?.();
    const c0 = process.cpuUsage();
    const t0 = nowMs();
    for (let i = 0; i < batch; i++) fn();
    samples.push((nowMs() - t0) / batch);
    const c = process.cpuUsage(c0);
    user += c.user / 1e3;
    sys += c.system / 1e3;
  }
  const calls = opts.reps * batch;
  return {
    medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), samples, batch,
    cpuUserMs: user / calls, cpuSysMs: sys / calls,
  };
}
