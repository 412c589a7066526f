/**
 * The one piece of module state behind profiling: the profile running now
 * (if any) and its stack of call-site labels. It is set only for the duration
 * of a synchronous callback (Profiler.run / withProfile) and restored in a
 * `finally`, the same rule as noGrad and scope (autograd/mode.ts): it can
 * never outlive the call or leak into interleaved async work, so a library
 * user who never profiles never sees it. This module imports nothing, so the
 * loader and the tape can read it without an import cycle.
 */
import type { NativeAddon } from '../native/types.js';

/** What the loader and the tape need from a running profile. */
export interface ActiveProfile {
  /** The addon with every function timed (a Proxy over the real one). */
  readonly addon: NativeAddon;
  /** Times fn as native work of `family` touching `bytes` (for native tensor methods: fill, clone). */
  span<T>(family: string, bytes: number, fn: () => T): T;
}

let active: ActiveProfile | null = null;
let labels: string[] = [];

/** The timed addon while a profile runs, else null (the loader then hands out the plain addon). */
export function profiledAddon(): NativeAddon | null {
  return active === null ? null : active.addon;
}

export function activeProfile(): ActiveProfile | null {
  return active;
}

/** Runs fn with `p` as the running profile; profiles do not nest. */
export function runActive<T>(p: ActiveProfile, fn: () => T): T {
  if (active) throw new Error('withProfile: a profile is already running (profiles do not nest)');
  active = p;
  const prevLabels = labels;
  labels = [];
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('withProfile takes a synchronous function');
    return r;
  } finally {
    active = null;
    labels = prevLabels;
  }
}

/** The call-site labels open now, outermost first. */
export function currentLabels(): readonly string[] {
  return labels;
}

/**
 * Runs fn under the call-site label `label` (nested inside the labels already
 * open). Without a running profile it only calls fn: the modules that label
 * their GEMMs pay one closure and one null check when profiling is off.
 */
export function profileLabel<T>(label: string, fn: () => T): T {
  if (active === null) return fn();
  labels.push(label);
  try {
    return fn();
  } finally {
    labels.pop();
  }
}

/**
 * Runs fn, native work done through a tensor's own methods (fill, clone),
 * which the addon proxy cannot see, as a call of `family` touching `bytes`
 * when a profile runs; otherwise only calls fn.
 */
export function profileSpan<T>(family: string, bytes: number, fn: () => T): T {
  return active === null ? fn() : active.span(family, bytes, fn);
}

/**
 * For the tape: a backward closure recorded while a profile runs is wrapped
 * so that, when it runs, the labels are those of its forward call (backward
 * runs later, outside the modules' label scopes). Without a profile the
 * closure is returned as it is.
 */
export function withForwardLabels<F extends (...a: never[]) => unknown>(backward: F): F {
  if (active === null || labels.length === 0) return backward;
  const saved = labels.slice();
  return ((...a: Parameters<F>) => {
    const prev = labels;
    labels = saved.slice();
    try {
      return backward(...a);
    } finally {
      labels = prev;
    }
  }) as F;
}
