/**
 * The pretend device's bfloat16 (test/helpers/pretend-cuda-setup.ts): an addon wrapper that runs an op given
 * bfloat16 tensors on float32 copies with the CPU kernels, then rounds to bfloat16 what the cuda addon returns in
 * bfloat16. Also the device queries a one-GPU machine answers.
 */
import type { NativeTensor } from '../../src/native/types.js';

type Addon = Record<string, unknown> & { NativeTensor: unknown };
type Fn = (...a: unknown[]) => unknown;

/** The device queries, as one idle GPU would answer them (no allocator: its counters stay 0). */
const DEVICE_QUERIES: Record<string, Fn> = {
  cudaAvailable: () => ({ available: true, reason: '' }),
  cudaSynchronize: () => undefined,
  cudaInfo: () => ({ name: 'pretend', sm: '0.0', driver: 'none', runtime: 'none', deviceCount: 1 }),
  cudaMemStats: () => ({ liveBytes: 0, peakBytes: 0, cachedBytes: 0, mallocCalls: 0 }),
  cudaResetPeak: () => undefined,
  cudaReleaseCache: () => undefined,
  cudaSelectDevice: () => 0,
  cudaCreateStream: () => ({}),
  cudaSetStream: () => undefined,
  cudaDestroyStream: () => undefined,
};

/** Results the cuda addon keeps in float32 for bfloat16 inputs: these ops' results after the first (statistics). */
const F32_AFTER_FIRST = new Set(['layerNorm', 'batchNorm2d']);
/** … results under these keys (log-sum-exp). */
const F32_KEYS = new Set(['lse']);
/** … and every result of these ops (norms). */
const F32_OPS = new Set(['gradNorm']);

export function bf16Emulation(real: Addon): Addon {
  const isHandle = (x: unknown): x is NativeTensor => x instanceof (real.NativeTensor as new () => NativeTensor);
  const plain = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype;
  const cache = new Map<string, Fn>();
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && prop in DEVICE_QUERIES) return DEVICE_QUERIES[prop];
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || typeof v !== 'function' || prop === 'NativeTensor') return v;
      let w = cache.get(prop);
      if (w) return w;
      const fn = v as Fn;
      w = (...args: unknown[]) => {
        const copies: Array<{ orig: NativeTensor; f32: NativeTensor }> = [];
        const widen = (x: unknown): unknown => {
          if (!isHandle(x) || x.dtype !== 'bfloat16') return x;
          const f32 = x.cast('float32');
          copies.push({ orig: x, f32 });
          return f32;
        };
        let a = args.map((x) => (Array.isArray(x) ? x.map(widen) : plain(x) ? Object.fromEntries(Object.entries(x).map(([k, y]) => [k, widen(y)])) : widen(x)));
        if (copies.length === 0) return fn.apply(target, args);
        let param: NativeTensor | null = null;
        let master: NativeTensor | null = null;
        if (prop === 'adamw') {
          // A bfloat16 parameter with its float32 master: the step updates the master, and the parameter is the
          // master rounded (as the fused kernel writes it).
          const opts = a[a.length - 1] as Record<string, unknown> | undefined;
          if (opts && isHandle(opts.master)) {
            param = args[0] as NativeTensor;
            master = opts.master;
            const { master: _master, ...rest } = opts;
            a = [master, ...a.slice(1, -1), rest];
          }
        }
        const res = fn.apply(target, a);
        const results = new Set<unknown>(Array.isArray(res) ? res : plain(res) ? Object.values(res) : [res]);
        for (const { orig, f32 } of copies) {
          if (orig === param || results.has(f32)) continue;
          // Round in-place updates back (an untouched input rounds to itself: it came from bfloat16).
          const back = f32.cast('bfloat16');
          orig.copyFrom(back);
          back.dispose();
          f32.dispose();
        }
        if (param && master) {
          const back = master.cast('bfloat16');
          param.copyFrom(back);
          back.dispose();
        }
        const narrow = (x: unknown, keep: boolean): unknown => {
          if (!isHandle(x) || x.dtype !== 'float32' || keep || F32_OPS.has(prop)) return x;
          const b = x.cast('bfloat16');
          x.dispose();
          return b;
        };
        if (Array.isArray(res)) return res.map((x, i) => narrow(x, i > 0 && F32_AFTER_FIRST.has(prop)));
        if (plain(res)) return Object.fromEntries(Object.entries(res).map(([k, y]) => [k, narrow(y, F32_KEYS.has(k))]));
        return narrow(res, false);
      };
      cache.set(prop, w);
      return w;
    },
  });
}
