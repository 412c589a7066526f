/**
 * A pretend cuda device for machines without a GPU, to catch a host tensor
 * reaching a cuda step. Every native handle made "on cuda" (`to('cuda')`,
 * `empty(…, 'cuda')`, `uniformNoise(…, 'cuda')`, or the output of an op whose
 * inputs are on it) is a real CPU tensor tagged as cuda: its `device` reads
 * 'cuda', and every addon call checks, as the cuda addon does, that its tensor
 * arguments are all on one device (but for the host tensors it takes on purpose:
 * hostAllowed), throwing E_DEVICE naming the op and the argument otherwise. Reads of tagged handles (read(), to('cpu')) are
 * counted; data() of one throws, as a cuda tensor's zero-copy view does.
 *
 * Use it through vi.mock of src/native/loader.js (see fakeCudaLoader), so every
 * module of the test file sees the wrapped addon. float32 only: the CPU has no
 * bfloat16 kernels to stand in for the device's.
 */
import type { NativeTensor } from '../../src/native/types.js';

type Addon = Record<string, unknown> & { NativeTensor: unknown };

export interface FakeCuda {
  /** Reads of tagged handles since the last reset (read(), to('cpu')). */
  reads: number;
  /** Addon calls that ran "on cuda". */
  cudaCalls: number;
  /** When an array: each cuda call's op name, and 'read' for each read of a tagged handle, in order. */
  trace: string[] | null;
  /** Whether a handle is tagged as on the pretend device. */
  onCuda(h: NativeTensor): boolean;
  reset(): void;
}

export const fake: FakeCuda = {
  reads: 0,
  cudaCalls: 0,
  trace: null,
  onCuda: (h) => tagged.has(h as object),
  reset() {
    this.reads = 0;
    this.cudaCalls = 0;
  },
};

const tagged = new WeakSet<object>();
let wrapped: Addon | null = null;

function deviceError(op: string, what: string): Error {
  const e = new Error(`${op}: Expected every tensor on device cuda (pretend) but received ${what} on the CPU`) as Error & { code: string };
  e.code = 'E_DEVICE';
  return e;
}

/**
 * Host tensors the cuda addon takes on purpose (index data the binding validates on the host and uploads itself,
 * so that a device copy need not be read back): attention's cuSeqlens, the label-word ops' words and classOf,
 * synchronized BatchNorm's centre and summed statistics.
 */
const HOST_ARGS: Record<string, string> = {
  attention: 'argument 3.cuSeqlens',
  attentionBackward: 'argument 6.cuSeqlens',
  attentionQkv: 'argument 1.cuSeqlens',
  attentionQkvBackward: 'argument 4.cuSeqlens',
  labelWordLogits: 'argument 3',
  labelWordLogitsBackward: 'argument 3',
  verbalizerPool: 'argument 1',
  verbalizerPoolBackward: 'argument 2',
  // Synchronized BatchNorm: the centre and the ranks' sums are host float64 (bind_batchnorm.cc uploads them).
  batchNorm2dSums: 'argument 2',
  batchNorm2dBackward: 'argument 10',
};
/** Ops whose result is a host tensor whatever their inputs' device: batchNorm2dSums (its sums go to MPI). */
const HOST_RESULTS = new Set(['batchNorm2dSums']);
function hostAllowed(op: string, at: string): boolean {
  return HOST_ARGS[op] === at;
}

/** The handles among an argument or result: itself, an array's items, a plain object's values. */
function handlesIn(v: unknown, isHandle: (x: unknown) => x is NativeTensor): Array<{ h: NativeTensor; at: string }> {
  if (isHandle(v)) return [{ h: v, at: '' }];
  if (Array.isArray(v)) return v.flatMap((x, i) => (isHandle(x) ? [{ h: x, at: `[${i}]` }] : []));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.entries(v).flatMap(([k, x]) => (isHandle(x) ? [{ h: x, at: `.${k}` }] : []));
  }
  return [];
}

/**
 * The real addon wrapped once. The handles' accessors and methods are not
 * configurable on their prototype, so every handle the wrapped addon hands out
 * gets its own: `device` ('cuda' when tagged), and transfer, view and read
 * methods whose results are decorated in turn.
 */
export function wrapAddon(real: Addon): Addon {
  if (wrapped) return wrapped;
  const isHandle = (x: unknown): x is NativeTensor => x instanceof (real.NativeTensor as unknown as new () => NativeTensor);
  const proto = (real.NativeTensor as unknown as { prototype: Record<string, (...a: unknown[]) => unknown> }).prototype;
  const own = (h: object, name: string, value: unknown): void => {
    Object.defineProperty(h, name, { value, configurable: true, writable: true });
  };
  const decorate = (h: object, cuda: boolean): object => {
    if (cuda) {
      tagged.add(h);
      own(h, 'device', 'cuda');
    }
    for (const k of ['cast', 'reshape', 'view', 'clone']) {
      own(h, k, (...a: unknown[]) => decorate(proto[k]!.apply(h, a) as object, tagged.has(h)));
    }
    own(h, 'to', (device: unknown) => {
      if (device === 'cuda') return decorate(proto.clone!.call(h) as object, true);
      if (tagged.has(h) && device === 'cpu') {
        fake.reads++;
        fake.trace?.push('read');
        return decorate(proto.clone!.call(h) as object, false);
      }
      return decorate(proto.to!.call(h, device) as object, false);
    });
    own(h, 'read', (...a: unknown[]) => {
      if (tagged.has(h)) {
        fake.reads++;
        fake.trace?.push('read');
      }
      return proto.read!.apply(h, a);
    });
    own(h, 'data', (...a: unknown[]) => {
      if (tagged.has(h)) throw deviceError('data', 'a zero-copy view asked of a cuda tensor (use read())');
      return proto.data!.apply(h, a);
    });
    return h;
  };

  const cache = new Map<string, unknown>();
  wrapped = new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || typeof v !== 'function' || prop === 'NativeTensor') return v;
      let w = cache.get(prop);
      if (!w) {
        const fn = v as (...a: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          let cuda = false;
          const a = args.map((x) => {
            if (x === 'cuda') {
              cuda = true;
              return 'cpu';
            }
            return x;
          });
          const hs = a.flatMap((x, i) => handlesIn(x, isHandle).map((e) => ({ ...e, at: `argument ${i}${e.at}` })));
          if (hs.some((e) => tagged.has(e.h as object))) cuda = true;
          if (cuda) {
            const host = hs.find((e) => !tagged.has(e.h as object) && !hostAllowed(prop, e.at));
            if (host) throw deviceError(prop, `${host.at} (${host.h.dtype} [${host.h.shape.join(', ')}])`);
            fake.cudaCalls++;
            fake.trace?.push(prop);
          }
          const r = fn.apply(target, a);
          for (const e of handlesIn(r, isHandle)) decorate(e.h as object, cuda && !HOST_RESULTS.has(prop));
          return r;
        };
        cache.set(prop, w);
      }
      return w;
    },
  });
  return wrapped;
}

type DeviceModule = typeof import('../../src/device.js');

/**
 * src/device.js as seen on the pretend device (for vi.mock's factory): 'cuda' resolves to cuda, and a trainer's
 * stream is nothing to make, since the pretend device runs on the CPU.
 */
export function pretendDeviceModule(real: DeviceModule): DeviceModule {
  return {
    ...real,
    resolveDevice: ((c: string) => (c === 'cuda' ? 'cuda' : real.resolveDevice(c as 'auto' | 'cpu'))) as DeviceModule['resolveDevice'],
    describeDevice: ((d: string) => (d === 'cuda' ? 'cuda (pretend)' : real.describeDevice('cpu'))) as DeviceModule['describeDevice'],
    TrainerStream: class {
      release(): void {}
    } as unknown as DeviceModule['TrainerStream'],
  };
}
