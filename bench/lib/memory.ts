/**
 * Peak native tensor memory during a call. The addon counts the bytes of live
 * tensor storage (liveBytes); its value is sampled after every addon call made
 * inside fn, which is where tensors are born. Buffers a kernel allocates for
 * itself (the fused attention's packed K/V copies and per-thread tiles) are not
 * tensor storage and are not counted; the RSS figure (rss.ts) sees them.
 */
import { native } from '../../src/native/loader.js';

export interface PeakMemory<T> {
  result: T;
  /** liveBytes before fn. */
  baseBytes: number;
  /** Highest liveBytes seen during fn, minus baseBytes. */
  peakExtraBytes: number;
}

export function peakLiveBytes<T>(fn: () => T): PeakMemory<T> {
  const addon = native() as unknown as Record<string, unknown>;
  const liveBytes = native().liveBytes.bind(native());
  const base = liveBytes();
  let peak = base;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const [key, value] of Object.entries(addon)) {
    if (typeof value !== 'function' || key === 'liveBytes' || key === 'NativeTensor') continue;
    const f = value as (...args: unknown[]) => unknown;
    originals.set(key, f);
    addon[key] = (...args: unknown[]): unknown => {
      const r = f(...args);
      peak = Math.max(peak, liveBytes());
      return r;
    };
  }
  try {
    const result = fn();
    peak = Math.max(peak, liveBytes());
    return { result, baseBytes: base, peakExtraBytes: peak - base };
  } finally {
    for (const [key, f] of originals) addon[key] = f;
  }
}
