/**
 * Tensor handles. Data lives in native memory; a Tensor is its shape, dtype,
 * device and autograd links. Lifetime is explicit: dispose(), scope(), and
 * the tape frees what it saved after backward.
 */
import { Node } from './autograd/node.js';
import { isGradEnabled, trackTensor } from './autograd/mode.js';
import { expected } from './errors.js';
import { native } from './native/loader.js';
import { withForwardLabels } from './profile/state.js';
import type { AnyTypedArray, Device, DType, NativeTensor } from './native/types.js';
import { castTo, toDevice } from './ops/transfer.js';

export type { Device, DType } from './native/types.js';

export class Tensor {
  readonly shape: readonly number[];
  /** Fixed for a tensor's life, except through moveHandle() (Module.to). */
  readonly dtype: DType;
  readonly device: Device;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it was recorded on the tape. */
  gradFn: Node | null = null;
  /** Which output of gradFn this is. */
  outputIndex = 0;
  private handle: NativeTensor | null;

  constructor(handle: NativeTensor, requiresGrad = false) {
    this.handle = handle;
    this.shape = Object.freeze([...handle.shape]);
    this.dtype = handle.dtype;
    this.device = handle.device;
    this.requiresGrad = requiresGrad;
    trackTensor(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get native(): NativeTensor {
    if (!this.handle) throw new Error(`tensor [${this.shape.join(', ')}] ${this.dtype} was used after dispose()`);
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** Frees this handle's share of the native memory (views and saved copies keep theirs). */
  dispose(): void {
    if (this.handle) {
      this.handle.dispose();
      this.handle = null;
    }
    if (this.grad && !this.grad.disposed) this.grad.dispose();
  }

  /** Replaces the native handle (used when an optimizer moves parameters into flat buffers). */
  rebind(handle: NativeTensor): void {
    if (handle.dtype !== this.dtype || handle.shape.join() !== this.shape.join()) {
      throw expected(`a ${this.dtype} handle of shape [${this.shape.join(', ')}]`, 'handle', handle, 'E_SHAPE');
    }
    this.handle?.dispose();
    this.handle = handle;
  }

  /**
   * Replaces the native handle with one of the same shape that may differ in
   * device and dtype: how Module.to() moves parameters in place, so modules
   * and optimizers holding this Parameter see the move.
   */
  moveHandle(handle: NativeTensor): void {
    if (handle.shape.join() !== this.shape.join()) {
      throw expected(`a handle of shape [${this.shape.join(', ')}]`, 'handle', handle, 'E_SHAPE');
    }
    this.handle?.dispose();
    this.handle = handle;
    const self = this as { dtype: DType; device: Device };
    self.dtype = handle.dtype;
    self.device = handle.device;
  }

  /** A copy on `device`, recorded on the tape (the gradient moves back). Returns this tensor when already there. */
  to(device: Device): Tensor {
    return toDevice(this, device);
  }

  /** A copy in `dtype`, recorded on the tape (the gradient is cast back). Returns this tensor when already of that dtype. */
  cast(dtype: DType): Tensor {
    return castTo(this, dtype);
  }

  /** A zero-copy TypedArray view of the data (CPU tensors, not bfloat16). It keeps the memory alive while referenced. */
  data(): AnyTypedArray {
    return this.native.data();
  }

  /** A copy of the data as a plain TypedArray. */
  toArray(): AnyTypedArray {
    return this.native.read();
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw expected('a tensor with one element', 'item()', this, 'E_SHAPE');
    return this.native.read()[0]!;
  }

  /** A new tensor sharing storage, cut off from the tape. */
  detach(): Tensor {
    return new Tensor(this.native.reshape(this.shape));
  }

  clone(): Tensor {
    return new Tensor(this.native.clone());
  }

  /** A handle on the same storage, for ops to save for backward. */
  share(): NativeTensor {
    return this.native.reshape(this.shape);
  }

  toString(): string {
    const where = this.device === 'cpu' ? '' : `, ${this.device}`;
    return `Tensor(${this.dtype} [${this.shape.join(', ')}]${where}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

function checkShape(shape: readonly number[], name = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw expected('an array of non-negative integers', name, shape, 'E_SHAPE');
  }
}

const arrayTypes: Record<DType, { new (n: number | ArrayLike<number>): AnyTypedArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bfloat16: Float32Array,
};

export function zeros(shape: readonly number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  checkShape(shape);
  checkDevice(device);
  return new Tensor(native().empty(dtype, shape, device));
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  const t = zeros(shape, dtype, device);
  if (value !== 0) t.native.fill(value);
  return t;
}

export function ones(shape: readonly number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  return full(shape, 1, dtype, device);
}

export function checkDevice(device: unknown, name = 'device'): asserts device is Device {
  if (device !== 'cpu' && device !== 'cuda') throw expected("'cpu' or 'cuda'", name, device, 'E_DEVICE');
}

/** Copies numbers into a new tensor (on `device`). */
export function tensor(values: ArrayLike<number>, shape?: readonly number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
  const s = shape ?? [values.length];
  checkShape(s);
  const n = s.reduce((a, b) => a * b, 1);
  if (n !== values.length) throw expected(`${n} values for shape [${s.join(', ')}]`, 'values', values.length, 'E_SHAPE');
  const t = zeros(s, dtype, device);
  const buf = typedArrayFor(dtype, n);
  buf.set(values as ArrayLike<number>);
  t.native.write(buf);
  return t;
}

/**
 * A tensor of the TypedArray's values: a copy when the array is over an
 * ArrayBuffer (which JS may transfer or shrink under the tensor), zero-copy
 * over a SharedArrayBuffer (which it cannot; the tensor keeps it alive).
 */
export function fromTypedArray(array: AnyTypedArray, shape?: readonly number[]): Tensor {
  const s = shape ?? [array.length];
  checkShape(s);
  return new Tensor(native().fromTypedArray(array, s));
}

export function typedArrayFor(dtype: DType, n: number): AnyTypedArray {
  return new arrayTypes[dtype](n);
}

/** True when any input needs a gradient and recording is on. */
export function needsGrad(...inputs: Array<Tensor | null | undefined>): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

/**
 * Wraps op outputs as Tensors and, when needed, records the op on the tape.
 * `saved` are handles the backward uses; they are freed after backward, or at
 * once when nothing is recorded.
 */
export function record(
  name: string,
  outputs: NativeTensor[],
  inputs: Array<Tensor | null>,
  backward: (grads: Array<NativeTensor | null>) => Array<NativeTensor | null>,
  saved: NativeTensor[] = [],
): Tensor[] {
  const grad = needsGrad(...inputs);
  const outs = outputs.map((h) => new Tensor(h, grad));
  if (!grad) {
    for (const s of saved) s.dispose();
    return outs;
  }
  // while a profile runs, the backward's native calls are labelled with this forward call's site
  const node = new Node(name, inputs, outputs.length, withForwardLabels(backward), saved);
  outs.forEach((t, i) => {
    t.gradFn = node;
    t.outputIndex = i;
  });
  return outs;
}
