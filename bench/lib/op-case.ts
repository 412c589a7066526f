/**
 * What a bench:ops case is (bench/ops/<family>.ts export `cases` of these),
 * and the context its setup builds inputs in. A case names its op by the
 * forward export of src/ops/list.ts; its setup builds the inputs once, on the
 * context's device, and returns the forward call and, where the table names
 * one, the backward call. The harness (bench/ops.ts) times each call on its
 * own, disposing whatever it returns after every call, and disposes every
 * tensor the context made when the case ends.
 */
import { native } from '../../src/native/loader.js';

export type Addon = ReturnType<typeof native>;
/** A native tensor, as the addon returns it. */
export type NT = ReturnType<Addon['empty']>;
export type Device = 'cpu' | 'cuda';
/** The dtype of a case's float inputs: float32 everywhere, bfloat16 on cuda. */
export type FloatDtype = 'float32' | 'bfloat16';

/** One timed native call, and the work it does. */
export interface Pass {
  /** The call; what it returns (tensors, arrays or objects of them) is disposed after every call. */
  run: () => unknown;
  /** Useful floating-point operations per call; the rate of a compute-bound case. */
  flops?: number;
  /** Tensors the call reads in full (counted once each). */
  reads?: readonly NT[];
  /** Tensors the call reads and writes in place (counted twice each). */
  updates?: readonly NT[];
  /**
   * Bytes per call, where the default (reads + 2 × updates + the returned
   * tensors) would miscount: gathers that read part of a tensor, scatters.
   */
  bytes?: number;
}

export interface CaseRun {
  fwd: Pass;
  /** The backward the op table names, on the forward's saved outputs; absent where the table names none. */
  bwd?: Pass;
}

export interface OpCase {
  /** The op's forward export, as in src/ops/list.ts. */
  op: string;
  /** Where the shape comes from: 'bert-mini MLM 32×128'. */
  model: string;
  /** The inputs: 'x [4096, 256]'. */
  shape: string;
  /** compute: GFLOP/s against the FMA peak; memory: GB/s against the streaming bandwidth. */
  bound: 'compute' | 'memory';
  setup(ctx: CaseContext): CaseRun;
}

/** Calls fn on every native tensor in x (a tensor, or arrays and plain objects holding tensors). */
export function eachTensor(x: unknown, fn: (t: NT) => void): void {
  if (x === null || typeof x !== 'object') return;
  if (Array.isArray(x)) {
    for (const y of x) eachTensor(y, fn);
    return;
  }
  const t = x as Partial<NT>;
  if (typeof t.dispose === 'function' && Array.isArray(t.shape)) {
    fn(x as NT);
    return;
  }
  for (const y of Object.values(x)) eachTensor(y, fn);
}

export function disposeAll(x: unknown): void {
  eachTensor(x, (t) => {
    if (!t.disposed) t.dispose();
  });
}

export function totalBytes(x: unknown): number {
  let n = 0;
  eachTensor(x, (t) => (n += t.nbytes));
  return n;
}

/** 32-bit xorshift (13, 17, 5): the same seed gives the same inputs on every run and device. */
class Xorshift {
  private x: number;
  constructor(seed: number) {
    this.x = (seed * 2654435761) >>> 0 || 1;
  }
  /** Uniform in [0, 2³²). */
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x >>> 0;
    return this.x;
  }
  /** Uniform in [0, 1). */
  unit(): number {
    return this.next() / 2 ** 32;
  }
}

/** Builds a case's inputs on one device and disposes them all when the case ends. */
export class CaseContext {
  private readonly owned: NT[] = [];
  private readonly rng: Xorshift;

  constructor(
    readonly device: Device,
    readonly dtype: FloatDtype,
    seed = 1,
  ) {
    this.rng = new Xorshift(seed);
  }

  get addon(): Addon {
    return native();
  }

  /** Moves a CPU tensor to the case's device (and a float one to `cast`), keeping the result. */
  private place(cpu: NT, cast: FloatDtype | null): NT {
    let t = cpu;
    if (this.device !== 'cpu') {
      const d = t.to(this.device);
      t.dispose();
      t = d;
    }
    if (cast && cast !== 'float32') {
      const c = t.cast(cast);
      t.dispose();
      t = c;
    }
    this.owned.push(t);
    return t;
  }

  /** Float tensor of these values, in the case's float dtype unless told (optimizer state stays float32). */
  floats(values: Float32Array, shape: readonly number[], dtype: FloatDtype = this.dtype): NT {
    return this.place(native().fromTypedArray(values, shape), dtype);
  }

  /** Float tensor, uniform in [−scale, scale). */
  rand(shape: readonly number[], scale = 1, dtype: FloatDtype = this.dtype): NT {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = scale * (2 * this.rng.unit() - 1);
    return this.floats(v, shape, dtype);
  }

  /** Float tensor filled with one value. */
  full(shape: readonly number[], value: number, dtype: FloatDtype = this.dtype): NT {
    return this.floats(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), shape, dtype);
  }

  int32(values: Int32Array, shape: readonly number[]): NT {
    return this.place(native().fromTypedArray(values, shape), null);
  }

  /** int32, uniform in [lo, hi). */
  ints(shape: readonly number[], lo: number, hi: number): NT {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) v[i] = lo + (this.rng.next() % (hi - lo));
    return this.int32(v, shape);
  }

  uint8(values: Uint8Array, shape: readonly number[]): NT {
    return this.place(native().fromTypedArray(values, shape), null);
  }

  /** uint8 0/1, each 1 with probability p. */
  mask(shape: readonly number[], p: number): NT {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = this.rng.unit() < p ? 1 : 0;
    return this.uint8(v, shape);
  }

  /** A random permutation of [0, n) (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.rng.next() % (i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  /** Keeps native results (a forward's outputs a backward reads) until the case ends. */
  keep<T>(x: T): T {
    eachTensor(x, (t) => this.owned.push(t));
    return x;
  }

  dispose(): void {
    for (const t of this.owned) if (!t.disposed) t.dispose();
    this.owned.length = 0;
  }
}

/** n-element product of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** '[4096, 256]' */
export function dims(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
