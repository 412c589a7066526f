/**
 * A per-native-call profiler. While `profiler.run(fn)` (or `withProfile`)
 * runs, every function of the addon that src/ reaches through native() is
 * timed (wall clock, and user/system CPU from process.cpuUsage), and
 * attributed to an op family (families.ts), GEMMs by the call-site labels the
 * nn modules open (profileLabel). Each run is one step: its wall time minus
 * the native time is "JS overhead between calls", so the families always sum
 * to the steps' wall time.
 *
 * Why scoped and explicit: the library keeps no global state. The profiler
 * is an object the caller owns and it is active only inside a synchronous
 * callback, exactly like noGrad and scope, so nothing is timed, allocated or
 * recorded outside it (the loader hands out the plain addon) and two users of
 * the library cannot see each other's profiles.
 *
 * Methods of native tensors are not seen by the addon proxy: the costly ones
 * on a training step's path are timed with profileSpan (zeroGrad's fill, the
 * gradient clones of add); the rest (read, copyFrom, dispose, small fills)
 * count as JS overhead. On the CUDA build the calls return before
 * their kernels finish, so a plain profile is meaningful on the CPU build
 * only; with `synchronize` (e.g. the addon's cudaSynchronize) the device is
 * drained before each timed call (not counted) and after it (counted), so
 * each call's time is its own kernels' plus its launch. That serialises
 * host and device: the families then sum to a slower step than the real
 * one, but say where the device's time goes.
 */
import { loadAddon } from '../native/loader.js';
import type { NativeAddon } from '../native/types.js';
import { classifyCall, type CallWork, type FamilyKind } from './families.js';
import { activeProfile, currentLabels, runActive, type ActiveProfile } from './state.js';

export const JS_OVERHEAD = 'JS overhead between calls';
/** The profiler's own wall time per timed call (classifying it, reading the CPU clocks), kept out of JS_OVERHEAD. */
export const PROFILER_OWN = 'profiler bookkeeping';

export interface FamilyStats {
  family: string;
  kind: FamilyKind | 'overhead';
  calls: number;
  /** Wall time summed over the calls, ms. */
  ms: number;
  flops: number;
  bytes: number;
  /** CPU time of the whole process during the calls (every thread), ms. */
  userMs: number;
  sysMs: number;
}

export interface ProfileReport {
  steps: number;
  /** Wall time of all steps, ms; equals the sum of the families' ms. */
  stepMs: number;
  userMs: number;
  sysMs: number;
  /** Time inside native calls, ms. */
  nativeMs: number;
  /** Every family including the JS-overhead row, largest first. */
  families: FamilyStats[];
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface ProfilerOptions {
  /** Waits for queued device work; called before (uncounted) and after (counted) every timed call. */
  synchronize?: () => void;
}

export class Profiler {
  private readonly fams = new Map<string, FamilyStats>();
  private readonly sync: (() => void) | null;
  private steps = 0;
  private stepMs = 0;
  private userMs = 0;
  private sysMs = 0;
  private ownMs = 0;
  private depth = 0;
  private timed: ActiveProfile | null = null;

  constructor(opts: ProfilerOptions = {}) {
    this.sync = opts.synchronize ?? null;
  }

  /** Runs fn (synchronous) as one profiled step and returns its result. */
  run<T>(fn: () => T): T {
    // Refused before the clocks start, so that a refused nested run adds no step.
    if (activeProfile()) throw new Error('withProfile: a profile is already running (profiles do not nest)');
    const c0 = process.cpuUsage();
    const t0 = nowMs();
    try {
      return runActive(this.active(), fn);
    } finally {
      const dt = nowMs() - t0;
      const c = process.cpuUsage(c0);
      this.steps++;
      this.stepMs += dt;
      this.userMs += c.user / 1e3;
      this.sysMs += c.system / 1e3;
    }
  }

  /** Forgets everything recorded (e.g. after warm-up steps). */
  reset(): void {
    this.fams.clear();
    this.steps = 0;
    this.stepMs = this.userMs = this.sysMs = this.ownMs = 0;
  }

  /** Totals over the steps run so far; the families sum to stepMs, userMs and sysMs. */
  report(): ProfileReport {
    const families = [...this.fams.values()].map((f) => ({ ...f }));
    const sum = (k: 'ms' | 'userMs' | 'sysMs'): number => families.reduce((a, f) => a + f[k], 0);
    const nativeMs = sum('ms');
    // The bookkeeping's CPU time is not measured apart (it would take two more clock reads per call): it stays in
    // JS_OVERHEAD's user/system columns; its wall time is its own row, so JS_OVERHEAD's wall time is the step's own.
    if (this.ownMs > 0) families.push({ family: PROFILER_OWN, kind: 'overhead', calls: 0, flops: 0, bytes: 0, ms: this.ownMs, userMs: 0, sysMs: 0 });
    families.push({
      family: JS_OVERHEAD, kind: 'overhead', calls: 0, flops: 0, bytes: 0,
      ms: this.stepMs - nativeMs - this.ownMs, userMs: this.userMs - sum('userMs'), sysMs: this.sysMs - sum('sysMs'),
    });
    families.sort((a, b) => b.ms - a.ms);
    return { steps: this.steps, stepMs: this.stepMs, userMs: this.userMs, sysMs: this.sysMs, nativeMs, families };
  }

  private active(): ActiveProfile {
    if (!this.timed) {
      this.timed = {
        addon: this.timedAddon(loadAddon().addon),
        span: (family, bytes, fn) => this.time(() => ({ family, kind: 'memory', flops: 0, bytes }), fn),
      };
    }
    return this.timed;
  }

  /** The addon with each function wrapped in a timer (wrappers made once per name). */
  private timedAddon(addon: NativeAddon): NativeAddon {
    const wrappers = new Map<PropertyKey, unknown>();
    return new Proxy(addon, {
      get: (target, prop) => {
        const v = (target as unknown as Record<PropertyKey, unknown>)[prop];
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        let w = wrappers.get(prop);
        if (!w) {
          w = this.timer(prop, v as (...a: unknown[]) => unknown, target);
          wrappers.set(prop, w);
        }
        return w;
      },
    });
  }

  private timer(name: string, f: (...a: unknown[]) => unknown, self: unknown): (...a: unknown[]) => unknown {
    return (...args: unknown[]) => {
      const labels = currentLabels();
      let result: unknown;
      return this.time(() => classifyCall(name, args, result, labels), () => (result = f.apply(self, args)));
    };
  }

  /** Runs fn timed; `work` (called after fn) says which family it was and what it did. */
  private time<T>(work: () => CallWork, fn: () => T): T {
    // a native call made from inside another (none today) is part of the outer one
    if (this.depth > 0) return fn();
    this.depth++;
    const tIn = nowMs();
    // Work queued by untimed calls (tensor methods) is drained outside this call's time.
    if (this.sync) this.sync();
    const c0 = process.cpuUsage();
    const t0 = nowMs();
    let done = false;
    try {
      const r = fn();
      if (this.sync) this.sync();
      done = true;
      return r;
    } finally {
      const dt = nowMs() - t0;
      const c = process.cpuUsage(c0);
      this.depth--;
      // A call that threw is not classified: its error must reach the caller, not one from reading its arguments.
      if (done) this.add(work(), dt, c.user / 1e3, c.system / 1e3);
      this.ownMs += nowMs() - tIn - dt;
    }
  }

  private add(w: CallWork, ms: number, userMs: number, sysMs: number): void {
    let s = this.fams.get(w.family);
    if (!s) {
      s = { family: w.family, kind: w.kind, calls: 0, ms: 0, flops: 0, bytes: 0, userMs: 0, sysMs: 0 };
      this.fams.set(w.family, s);
    }
    s.calls++;
    s.ms += ms;
    s.flops += w.flops;
    s.bytes += w.bytes;
    s.userMs += userMs;
    s.sysMs += sysMs;
  }
}

/** Runs fn as one step of `profiler` (see Profiler.run). */
export function withProfile<T>(profiler: Profiler, fn: () => T): T {
  return profiler.run(fn);
}
